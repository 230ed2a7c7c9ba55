"""Serving sweeps: a sweep spec's ``serve:`` section, checked, and one point served.

A spec with a ``serve:`` section (instead of ``workloads:``) evaluates every design point the
way ``xpusim serve`` does (docs/serving.md): the same request table (same generator, same
seed), the same engine knobs (vLLM's names, with ``_`` for ``-``), the same iteration model and
event loop, the same metrics. Its fields are the options of ``xpusim serve`` and have their
defaults; ``serve.FIELD`` axes sweep any of them (rate, max_num_seqs, max_num_batched_tokens,
enable_chunked_prefill, tp, software ...). The point's arch is the sweep's (arch-path axes and
the ``arch`` axis apply as usual); ``seed`` and ``fidelity`` are the sweep's.

```yaml
serve: {model: llama2-70b, tp: 8, trace: azure-conv, rate: 4, requests: 500,
        scheduler: chunked, over_context: truncate, slo: "ttft=1s,tbt=50ms"}
axes: {serve.rate: [2, 4, 6], serve.max_num_batched_tokens: [512, 2048]}
objectives: [{max: goodput_req_s}, {min: ttft_p99_s}]
```

Metrics: every numeric key of ``xpusim serve --json`` (:func:`metric_names`): ``ttft_*``,
``tbt_*``, ``e2e_*``, ``queue_*`` (``_mean_s``, ``_p50_s``, ``_p90_s``, ``_p99_s``),
``throughput_req_s``, ``throughput_tok_s``, ``goodput_req_s``, energy, KV peak ... A point whose
workload or engine cannot run (no room for a KV cache, a request longer than the context under
``over_context: error``) is ``infeasible`` with the one-line reason ``xpusim serve`` prints.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: (kind, default) of every field; kinds: int (>= 1), float (> 0), float0 (>= 0), frac (0, 1],
#: bool, text, rate, lengths, duration, path, or a tuple of choices. Defaults: xpusim serve's.
FIELDS: dict[str, tuple[Any, Any]] = {
    "model": ("text", "llama2-70b"), "software": ("text", None), "tp": ("int", 8),
    "pp": ("int", 1), "replicas": ("int", 1), "router": (("round_robin", "least_tokens"),
                                                         "round_robin"),
    "dtype": ("text", "fp16"), "kv_dtype": ("text", ""), "attention": (("unfused", "flash"),
                                                                        "flash"),
    "trace": ("path", None), "rate": ("rate", None), "burstiness": ("float", 1.0),
    "duration": ("duration", None), "requests": ("int", None), "prompt": ("lengths", "512"),
    "gen": ("lengths", "128"), "prompt_file": ("path", None), "shared_prefix": ("int", None),
    "prefix_groups": ("int", 1), "over_context": (("error", "truncate", "skip"), "error"),
    "timeout": ("duration", None),
    "scheduler": (("static", "continuous", "chunked"), None),
    "enable_chunked_prefill": ("bool", False), "max_num_seqs": ("int", 256),
    "max_num_batched_tokens": ("int", None), "gpu_memory_utilization": ("frac", 0.9),
    "block_size": ("int", 16), "enable_prefix_caching": ("bool", False),
    "preemption_mode": (("recompute", "swap"), "recompute"), "swap_space": ("float0", 4.0),
    "num_gpu_blocks_override": ("int", None), "max_model_len": ("int", None),
    "slo": ("text", ""), "price_per_hour": ("float0", 0.0), "price_source": ("text",
                                                                             "price_per_hour"),
}
SERVE_FIDELITIES = ("roofline", "tile")
_PCT = ("mean", "p50", "p90", "p99")
#: numeric keys of :func:`sim.serve.metrics.summarise` (tested against a real run)
BASE_METRICS = (
    *(f"{m}_{p}_s" for m in ("ttft", "tbt", "e2e", "queue") for p in _PCT),
    "requests", "requests_completed", "requests_failed", "requests_rejected", "duration_s",
    "throughput_req_s", "throughput_tok_s", "input_tok_s", "preemptions",
    "cached_prompt_tokens", "prefill_tokens", "goodput_req_s", "requests_within_slo",
    "utilisation", "kv_peak_fraction", "energy_J", "dynamic_energy_J", "static_energy_J",
    "energy_per_token_J", "devices", "replicas", "events")
SLOWDOWN_METRICS = (*(f"slowdown_{m}_p{p}" for m in ("ttft", "tbt", "e2e")
                      for p in (50, 90, 99)), "slo_met")
COST_METRICS = ("cost_usd", "cost_per_million_tokens_usd", "price_per_hour_usd")
Err = Callable[[str, str], Exception]


@dataclass(frozen=True)
class ServeSpec:
    """A validated ``serve:`` section: the fields given (canonical values) and the folder
    relative paths (trace, prompt_file, model config) are read from."""

    fields: dict[str, Any]
    base_dir: str
    names: tuple[str, ...] = field(default=())   # metric names of this section's runs

    def value(self, name: str, over: dict[str, Any] | None = None) -> Any:
        """A field at a point: the axis value, else the section's, else the default."""
        if over and name in over:
            return over[name]
        return self.fields.get(name, FIELDS[name][1])


def metric_names(slo: str, priced: bool) -> tuple[str, ...]:
    """Metric columns of a serving point (the SLO kind and a price add their keys)."""
    names = BASE_METRICS
    if str(slo).strip() == "splitwise":
        names += SLOWDOWN_METRICS
    return names + (COST_METRICS if priced else ())


def _hint(word: str, options) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_field(name: str, raw: Any, where: str, err: Err, base_dir: Path) -> Any:
    """One field's value in canonical form; ``err(where, message)`` when it is wrong."""
    from workloads.errors import WorkloadError
    from workloads.requests import parse_duration, parse_lengths, parse_rate_schedule

    kind = FIELDS[name][0]
    if raw is None:
        if FIELDS[name][1] is None:
            return None
        raise err(where, "expected a value, got null")
    if isinstance(kind, tuple):
        if raw not in kind:
            raise err(where, f"expected one of {', '.join(kind)}, got {raw!r:.60}")
        return raw
    if kind == "int":
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw < 2**31:
            raise err(where, f"expected a positive integer, got {raw!r:.60}")
        return raw
    if kind in ("float", "float0", "frac"):
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw)
        ok = ok and (raw > 0 if kind == "float" else raw >= 0)
        if kind == "frac":
            ok = ok and 0 < raw <= 1
        if not ok:
            word = {"float": "a number > 0", "float0": "a number >= 0",
                    "frac": "a fraction in (0, 1]"}[kind]
            raise err(where, f"expected {word}, got {raw!r:.60}")
        return float(raw)
    if kind == "bool":
        if not isinstance(raw, bool):
            raise err(where, f"expected true or false, got {raw!r:.60}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise err(where, f"expected a text value, got {raw!r:.60}")
    try:
        if kind == "rate":
            parse_rate_schedule(str(raw))
            return float(raw) if isinstance(raw, (int, float)) else raw
        if kind == "duration":
            parse_duration(str(raw), name)
        elif kind == "lengths":
            parse_lengths(str(raw), name)
    except WorkloadError as exc:
        raise err(where, exc.message) from None
    if kind == "path":
        if not (name == "trace" and raw in ("azure-code", "azure-conv")):
            full = Path(_path(str(raw), str(base_dir)))
            if not full.is_file():
                raise err(where, f"no such file: {full}" + (" (or a named trace: azure-code, "
                                                            "azure-conv)" if name == "trace"
                                                            else ""))
        return str(raw)
    if kind == "text" and not isinstance(raw, str):
        raise err(where, f"expected a text value, got {raw!r:.60}")
    if name == "model":
        try:
            load_model(ServeSpec({"model": raw}, str(base_dir)), {})
        except WorkloadError as exc:
            raise err(where, exc.message if exc.path == "--model" else str(exc)) from None
    if name in ("dtype", "kv_dtype") and raw:
        from workloads.scenario import Scenario

        try:
            Scenario(batch=1, prompt_len=1, gen_len=2, **{name: raw})
        except WorkloadError as exc:
            raise err(where, exc.message) from None
    if name == "software":
        from arch import SpecError
        from arch.software import load_stack

        if raw.endswith((".yaml", ".yml")) and not Path(raw).is_absolute():
            raw = str(base_dir / raw)
        try:
            load_stack(raw)
        except SpecError as exc:
            raise err(where, exc.message if exc.path == "--software" else str(exc)) from None
    if name == "slo":
        from sim.devices.base import SimError
        from sim.serve.metrics import parse_slo

        try:
            parse_slo(raw)
        except (SimError, WorkloadError) as exc:
            raise err(where, str(exc).removeprefix("--slo: ")) from None
    return raw


def load_section(data: Any, err: Err, base_dir: Path) -> ServeSpec:
    """Check a ``serve:`` mapping (unknown keys, each value)."""
    if not isinstance(data, dict):
        raise err("serve", f"expected a mapping of xpusim serve options (model, tp, rate, "
                           f"trace, max_num_seqs ...), got {type(data).__name__}")
    fields = {}
    for key, raw in data.items():
        if key not in FIELDS:
            raise err(f"serve.{key}", f"unknown field{_hint(str(key), FIELDS)} (the options "
                                      "of xpusim serve, with _ for -)")
        fields[key] = check_field(key, raw, f"serve.{key}", err, base_dir)
    return ServeSpec(fields, str(base_dir.resolve()))


def axis_kind(name: str) -> str | None:
    """``int`` / ``float`` for a numeric field (ranges allowed), else None (lists only)."""
    kind = FIELDS[name][0]
    if kind == "int":
        return "int"
    if kind in ("float", "float0", "frac", "rate"):
        return "float"
    return None


# --- one point -----------------------------------------------------------------------------------
def _path(value: str | None, base_dir: str) -> str | None:
    if not value:
        return value
    p = Path(value)
    return str(p if p.is_absolute() else Path(base_dir) / p)


def reference_dir() -> Path | None:
    """The reference data folder ``xpusim serve`` uses (:mod:`workloads.reference_data`), or
    None when it does not exist."""
    from workloads.reference_data import reference_dir as found

    ref = found()
    return ref if ref.is_dir() else None


def build_requests(s: ServeSpec, over: dict[str, Any], seed: int, max_len: int,
                   model_name: str):
    """The request table of a point: :func:`workloads.requests.build_requests`, the function
    ``xpusim serve`` calls, with paths relative to the sweep file (so equal fields and seed give
    equal requests)."""
    from workloads.requests import TRACES, RequestSpec
    from workloads.requests import build_requests as build

    def v(name):
        return s.value(name, over)

    trace = v("trace")
    if trace and trace not in TRACES:
        trace = _path(trace, s.base_dir)
    spec = RequestSpec(seed=seed, rate=None if v("rate") is None else str(v("rate")),
                       duration=str(v("duration")) if v("duration") else None,
                       requests=v("requests") or 0, trace=trace or None,
                       burstiness=v("burstiness"), prompt=str(v("prompt")), gen=str(v("gen")),
                       prompt_file=_path(v("prompt_file"), s.base_dir) if v("prompt_file")
                       else None,
                       shared_prefix=v("shared_prefix") or 0, prefix_groups=v("prefix_groups"),
                       over_context=v("over_context"))
    return build(spec, max_len, model_name, reference_dir())


def load_model(s: ServeSpec, over: dict[str, Any], model_over: dict[str, Any] | None = None):
    """The served model (preset or config.json relative to the sweep file), with ``model.*``
    axis values applied."""
    import dataclasses

    from workloads.hf_config import load_hf_config
    from workloads.models import get_model

    ref = s.value("model", over)
    model = load_hf_config(_path(ref, s.base_dir)) if ref.endswith(".json") or "/" in ref \
        else get_model(ref)
    return dataclasses.replace(model, **model_over) if model_over else model


#: iteration models kept per process, by what decides their costs (arch, model, parallelism,
#: dtypes, fidelity): points that differ in engine knobs or workload only share one, so the
#: device model prices each batch shape once per worker. Its memo is a pure function of the
#: shape, so sharing does not change a number (tested: points equal separate runs).
_MODELS: OrderedDict[str, Any] = OrderedDict()
KEEP_MODELS = 4


def _iteration_model(key: str | None, build: Callable[[], Any]):
    if key is None:
        return build()
    im = _MODELS.get(key)
    if im is None:
        im = _MODELS[key] = build()
        while len(_MODELS) > KEEP_MODELS:
            _MODELS.popitem(last=False)
    else:
        _MODELS.move_to_end(key)
    return im


def setup(s: ServeSpec, arch, over: dict[str, Any], seed: int, fidelity: str,
          model_over: dict[str, Any] | None = None, arch_key: str | None = None):
    """(replicas, requests, router, timeout, slo, price) of a point, as ``xpusim serve`` builds
    them; raises :class:`WorkloadError` / :class:`SimError` for a point that cannot run.
    ``arch_key`` (text that identifies the point's arch) lets points share iteration models."""
    from sim.serve import EngineConfig, IterationModel, build_replicas
    from sim.serve.metrics import parse_slo
    from workloads.requests import parse_duration

    def v(name):
        return s.value(name, over)

    model = load_model(s, over, model_over)
    max_len = v("max_model_len") or model.max_positions
    scheduler = v("scheduler") or ("chunked" if v("enable_chunked_prefill") else "continuous")
    cfg = EngineConfig(scheduler=scheduler, max_num_seqs=v("max_num_seqs"),
                       max_num_batched_tokens=v("max_num_batched_tokens") or 0,
                       block_size=v("block_size"),
                       gpu_memory_utilization=v("gpu_memory_utilization"),
                       enable_prefix_caching=v("enable_prefix_caching"),
                       preemption=v("preemption_mode"), swap_space=v("swap_space") * 2**30,
                       kv_blocks=v("num_gpu_blocks_override") or 0, max_model_len=max_len)
    slo = parse_slo(v("slo"))
    timeout = parse_duration(str(v("timeout")), "--timeout") if v("timeout") else math.inf
    key = None if arch_key is None else json.dumps(
        [arch_key, v("model"), model_over or {}, v("tp"), v("pp"), v("dtype"), v("kv_dtype"),
         v("attention"), fidelity], sort_keys=True, default=str)
    im = _iteration_model(key, lambda: IterationModel(
        arch, model, tp=v("tp"), pp=v("pp"), dtype=v("dtype"), kv_dtype=v("kv_dtype"),
        attention=v("attention"), fidelity=fidelity))
    requests = build_requests(s, over, seed, max_len, model.name)
    replicas = build_replicas(im, cfg, v("replicas"))
    return replicas, requests, v("router"), timeout, slo, (v("price_per_hour"),
                                                           v("price_source"))


def serve_point(s: ServeSpec, arch, over: dict[str, Any], seed: int, fidelity: str,
                model_over: dict[str, Any] | None = None,
                arch_key: str | None = None) -> dict[str, float]:
    """Serve one point; its numeric metrics (bools as 0/1; text keys dropped)."""
    from sim.serve import Simulation, finish

    replicas, requests, router, timeout, slo, (price, source) = setup(
        s, arch, over, seed, fidelity, model_over, arch_key)
    sim = Simulation(replicas, requests, router, timeout).run()
    result = finish(sim, slo, None, price, source)
    out = {}
    for k, val in result.metrics.items():
        if isinstance(val, bool):
            out[k] = float(val)
        elif isinstance(val, (int, float)):
            out[k] = float(val)
    return out


def overrides(params: dict[str, Any]) -> dict[str, Any]:
    """``serve.FIELD`` parameters of a point (axes and derived values) by field name."""
    return {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("serve.")}


def _field_of(option: str) -> str:
    name = option.lstrip("-").replace("-", "_")
    return {"preemption": "preemption_mode", "num_gpu_blocks": "num_gpu_blocks_override",
            "model": "model"}.get(name, name)


def point_error(exc: Exception) -> tuple[str, str]:
    """(field, message) of a :class:`WorkloadError` / :class:`SimError` raised by a point:
    ``--rate: ...`` -> ``serve.rate``; a trace file's row errors -> ``serve.trace``."""
    from workloads.errors import WorkloadError

    if isinstance(exc, WorkloadError):
        name = _field_of(exc.path or "")
        if exc.file and exc.file not in ("requests", "--prompt/--gen"):
            # the file's own row and field
            return ("serve.prompt_file" if name == "prompt_file" else "serve.trace"), str(exc)
        if name in FIELDS:
            return f"serve.{name}", exc.message
        return "serve", f"{exc.path}: {exc.message}" if exc.path else exc.message
    text = str(exc)
    head, sep, rest = text.partition(": ")
    if sep and head.startswith("--"):
        name = _field_of(head)
        if name in FIELDS:
            return f"serve.{name}", rest
    return "serve", text


def check_first_point(spec, values: dict[str, Any], arch, model_over: dict[str, Any],
                      err: Err) -> None:
    """Build (without running) the first point's requests and replicas, so that a workload or
    engine that cannot run is a one-line error at load time."""
    from sim.devices.base import SimError
    from workloads.errors import WorkloadError

    try:
        setup(spec.serve, arch, overrides(values), spec.seed, spec.fidelity, model_over)
    except (WorkloadError, SimError) as exc:
        where, message = point_error(exc)
        raise err(where, message) from None
