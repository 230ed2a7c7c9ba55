"""Typed reading of a Hugging Face ``config.json``'s fields: errors name the file and the
field (shared by the family readers, :mod:`workloads.hf_config` and
:mod:`workloads.hf_families`)."""

from __future__ import annotations

from typing import Any

from workloads.errors import WorkloadError

#: Hugging Face activation names (transformers ``ACT2FN``) -> the tracer's operator
HF_ACTIVATIONS = {
    "gelu": "gelu", "gelu_new": "gelu", "gelu_fast": "gelu", "gelu_pytorch_tanh": "gelu",
    "quick_gelu": "gelu", "gelu_accurate": "gelu", "relu": "relu", "silu": "silu",
    "swish": "silu", "sigmoid": "sigmoid", "tanh": "tanh", "relu2": "relu2",
}


class ConfigReader:
    """Typed field access with errors that name the file and the field."""

    def __init__(self, data: dict[str, Any], file: str):
        self.data = data
        self.file = file

    def int(self, *keys: str, default: int | None = None, minimum: int = 1) -> int:
        for key in keys:
            if key in self.data and self.data[key] is not None:
                value = self.data[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise WorkloadError(self.file, key, f"expected an integer, got {value!r}")
                if value < minimum:
                    raise WorkloadError(self.file, key, f"expected an integer >= {minimum}, "
                                                        f"got {value}")
                return value
        if default is None:
            raise WorkloadError(self.file, keys[0], "missing required field (an integer)")
        return default

    def layers(self, *keys: str) -> int:
        """A layer count (``num_hidden_layers``), refused past :data:`LIMITS`' plausible one
        here, before a reader builds anything per layer."""
        from workloads.models import LIMITS

        value = self.int(*keys)
        limit, covers = LIMITS["n_layers"]
        if value > limit:
            raise WorkloadError(self.file, keys[0], f"implausible value {value:,} (at most "
                                                    f"{limit:,}; largest published: {covers})")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise WorkloadError(self.file, key, f"expected true or false, got {value!r}")
        return value

    def fraction(self, key: str, default: float) -> float:
        """A number in (0, 1] (``partial_rotary_factor``); where the config lacks the key, the
        one its ``rope_parameters`` holds (transformers 5 moved it there)."""
        rope = self.data.get("rope_parameters")
        if key not in self.data and isinstance(rope, dict) and key in rope:
            value, key = rope[key], f"rope_parameters.{key}"
        else:
            value = self.data.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise WorkloadError(self.file, key, f"expected a number in (0, 1], got {value!r:.40}")
        return float(value)

    def str(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise WorkloadError(self.file, key, f"expected a text value, got {value!r}")
        return value


def activation_of(r: ConfigReader, key: str, default: str) -> str:
    """The tracer's activation for the Hugging Face name in field ``key``."""
    act = r.str(key, default)
    if act not in HF_ACTIVATIONS:
        raise WorkloadError(r.file, key, f"unknown activation '{act[:40]}' (known: "
                                         f"{', '.join(HF_ACTIVATIONS)})")
    return HF_ACTIVATIONS[act]


def marked_layers(r: ConfigReader, key: str, layers: int, known: tuple, marked: Any
                  ) -> tuple[int, ...]:
    """The layers the per-layer list ``key`` marks ``marked`` (each entry one of ``known``,
    one per layer: else a one-line error naming ``key``)."""
    values = r.data.get(key)
    if not isinstance(values, list) or len(values) != layers or \
            any(isinstance(v, bool) or v not in known for v in values):
        raise WorkloadError(r.file, key, f"expected a list of {layers} entries, each "
                                         f"{' or '.join(map(str, known))}")
    return tuple(i for i, v in enumerate(values) if v == marked)


def layer_indices(r: ConfigReader, key: str, layers: int, default: tuple[int, ...]
                  ) -> tuple[int, ...]:
    """The layer indices listed in ``key`` (increasing, once each; ``default`` where absent
    or null), each in ``[0, layers)``: else a one-line error naming ``key``."""
    given = r.data.get(key)
    if given is None:
        return default
    if not isinstance(given, list) or any(isinstance(i, bool) or not isinstance(i, int)
                                          or not 0 <= i < layers for i in given):
        raise WorkloadError(r.file, key, f"expected a list of layer indices in [0, {layers})")
    return tuple(sorted(set(given)))


def every_nth(r: ConfigReader, key: str, known: tuple, marked: Any) -> int:
    """``n`` where the per-layer list ``key`` holds ``marked`` at every n-th layer (layers n-1,
    2n-1, ...) and the other value of ``known`` elsewhere; 0 where no layer is marked. Another
    pattern, or a list not one entry per layer, is a one-line error naming ``key``."""
    return periodic(r, key, known, marked, from_first=False)[0]


def periodic(r: ConfigReader, key: str, known: tuple, marked: Any, from_first: bool = True
             ) -> tuple[int, bool]:
    """``(n, first)`` where the per-layer list ``key`` holds ``marked`` at every n-th layer -
    layers n-1, 2n-1, ... (``first`` False) or, where ``from_first``, layers 0, n, 2n, ...
    (``first`` True: Ministral's global layers) - and the other value of ``known``
    elsewhere; ``(0, False)`` where no layer is marked. Another pattern, or a list not one
    entry per layer, is a one-line error naming ``key``."""
    layers = r.layers("num_hidden_layers")
    at = list(marked_layers(r, key, layers, known, marked))
    if not at:
        return 0, False
    every = at[0] + 1
    if at == list(range(every - 1, layers, every)):
        return every, False
    every = at[1] if len(at) > 1 else layers
    if from_first and at == list(range(0, layers, every)) and every > 1:
        return every, True
    start = "counted from the n-th or the first layer; " if from_first else ""
    raise WorkloadError(r.file, key, f"expected {marked} at every n-th layer or none ({start}"
                                     "other patterns are not modelled)")
