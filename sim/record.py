"""What a run needs to be rerun bit for bit, as plain data for ``summary.json``.

:func:`run_record` captures the *resolved* inputs - the arch after ``extends`` and overrides
(``Arch.to_dict()`` as YAML text, every value with its source), the model config (JSON), the
full scenario, the policies, the placement spec, fidelity, seed and version - so that a run of
a custom arch file or a Hugging Face ``config.json`` reruns from the summary alone, even where
the file is gone. :func:`load_record` turns it back into the objects :func:`sim.run.simulate`
takes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from arch import Arch
from arch.preset_cache import dump_cached
from arch.schema import BuildContext, build_any, dump
from arch.spec import SECTIONS, arch_from_dict
from workloads.models import ModelConfig
from workloads.scenario import Scenario

#: bump when the record's layout changes
RECORD_FORMAT = 1


def arch_yaml(data: dict[str, Any]) -> str:
    """The record's arch YAML: what ``yaml.safe_dump(data, sort_keys=False,
    allow_unicode=True)`` writes, by libyaml's emitter when PyYAML has it (the same text on
    every preset, tests/test_startup_imports.py, in ~1/6 of the CPU: 5 vs 33 ms for h100)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True)


def run_record(arch: Arch, model: ModelConfig, scenario: Scenario, *, fidelity: str, seed: int,
               placement: Any = None, policies: Any = None, mode: str = "inference",
               training: Any = None, version: str = "") -> dict[str, Any]:
    """The resolved inputs of one run (see the module docstring)."""
    return {
        "format": RECORD_FORMAT, "mode": mode, "fidelity": fidelity, "seed": seed,
        "version": version,
        # memoised by content (arch.preset_cache): a run of a known arch needs no PyYAML
        "arch_yaml": dump_cached("record-arch", arch.to_dict(), arch_yaml),
        "model_config": dataclasses.asdict(model),
        "scenario": dataclasses.asdict(scenario),
        "policies": dataclasses.asdict(policies) if policies is not None else None,
        "placement": dump(placement) if placement is not None else None,
        "training": dataclasses.asdict(training) if training is not None else None,
    }


def load_record(rec: dict[str, Any], file: str = "summary.json") -> dict[str, Any]:
    """``arch``, ``model``, ``scenario``, ``placement`` (or None) and the plain ``policies``,
    ``training``, ``fidelity``, ``seed``, ``mode`` of a :func:`run_record`. A record edited by
    hand (or damaged) is a one-line :class:`~workloads.errors.WorkloadError` naming ``file``
    and the field (``inputs.resolved.<field>``), each field checked against its type."""
    import yaml

    from workloads.errors import WorkloadError

    where = "inputs.resolved"
    if not isinstance(rec, dict):
        raise WorkloadError(file, where, f"expected a mapping, got {type(rec).__name__}")
    text = rec.get("arch_yaml")
    if not isinstance(text, str):
        raise WorkloadError(file, f"{where}.arch_yaml", "expected the arch as YAML text")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkloadError(file, f"{where}.arch_yaml",
                            f"YAML syntax error ({str(exc).splitlines()[0][:80]})") from None
    arch = arch_from_dict(data, file=f"{file}: arch_yaml")
    placement = None
    if rec.get("placement") is not None:
        placement = build_any(SECTIONS["placement"], rec["placement"],
                              BuildContext(file=f"{file}: placement"), "placement")
    fidelity, seed, mode = rec.get("fidelity"), rec.get("seed"), rec.get("mode", "inference")
    if fidelity not in ("roofline", "tile", "cycle"):
        raise WorkloadError(file, f"{where}.fidelity",
                            f"expected roofline, tile or cycle, got {str(fidelity)[:40]!r}")
    if type(seed) is not int:
        raise WorkloadError(file, f"{where}.seed", f"expected an integer, got {seed!r:.40}")
    if mode not in ("inference", "finetune"):
        raise WorkloadError(file, f"{where}.mode",
                            f"expected inference or finetune, got {str(mode)[:40]!r}")
    from sim.system.schedule import Policies
    from workloads.training import Training

    policies, training = rec.get("policies"), rec.get("training")
    if mode == "finetune" and training is None:
        raise WorkloadError(file, f"{where}.training", "missing (a finetune run records it)")
    if policies is not None:   # the plain dicts the callers take, checked by building them
        _built(Policies, policies, file, f"{where}.policies")
    if training is not None:
        _built(Training, training, file, f"{where}.training")
    return {"arch": arch, "model": _built(ModelConfig, _renamed(rec.get("model_config")), file,
                                          f"{where}.model_config"),
            "scenario": _built(Scenario, rec.get("scenario"), file, f"{where}.scenario"),
            "placement": placement,
            "policies": policies, "training": training,
            "fidelity": fidelity, "seed": seed, "mode": mode}


def _renamed(model: Any) -> Any:
    """A recorded model config in today's fields: records of stop 50 wrote Llama 4's layers
    without RoPE as ``global_nope: true``, now ``nope_every`` (= its ``global_every``)."""
    if not isinstance(model, dict) or "global_nope" not in model:
        return model
    model = dict(model)
    if model.pop("global_nope") is True:
        model["nope_every"] = model.get("global_every", 0)
    return model


def _checked(cls: type, data: Any, file: str, where: str) -> dict[str, Any]:
    """``data`` if it is a mapping of ``cls``'s fields, each of its declared type (bool, int,
    float - a finite number -, str, or a tuple of numbers, as JSON gives them); else a
    :class:`~workloads.errors.WorkloadError` naming the field."""
    import math
    import typing

    from workloads.errors import WorkloadError

    if not isinstance(data, dict):
        raise WorkloadError(file, where, f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        tp = hints.get(name)
        if tp is None:
            raise WorkloadError(file, f"{where}.{str(name)[:40]}", f"not a field of {cls.__name__}")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if tp is bool:
            ok = isinstance(value, bool)
        elif tp is int:
            ok = number and isinstance(value, int)
        elif tp is float:
            ok = number and math.isfinite(value)
        elif tp is str:
            ok = isinstance(value, str)
        else:   # tuple[float, ...]
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in value)
        if not ok:
            kind = getattr(tp, "__name__", "list of numbers")
            raise WorkloadError(file, f"{where}.{name}", f"expected {kind}, got {value!r:.40}")
    return data


def _built(cls: type, data: Any, file: str, where: str) -> Any:
    """``cls(**data)`` of a checked mapping (:func:`_checked`); a missing field is a
    :class:`~workloads.errors.WorkloadError` too."""
    from workloads.errors import WorkloadError

    fields = _checked(cls, data, file, where)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in fields and
               f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise WorkloadError(file, f"{where}.{missing[0]}", "missing")
    try:
        return cls(**fields)
    except WorkloadError as exc:   # the class's own checks name a field or an option
        field = exc.path.lstrip("-").replace("-", "_")
        raise WorkloadError(file, f"{where}.{field}" if field else where, exc.message) from None
