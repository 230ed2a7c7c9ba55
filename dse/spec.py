"""Sweep specs: YAML → a validated :class:`SweepSpec`, with the same pinpoint errors as arch YAML.

```yaml
name: my-sweep
arch: h100                     # preset name or arch YAML (relative to this file)
axes:                          # paths into the arch YAML, scenario.*, model.*, or
  # arch: [h100, my_arch.yaml]   # whole arches (then the top-level arch may be left out)
  gpu.sm_count: [66, 108, 132]
  memory.hbm.bandwidth: [2 TB/s, 3.35 TB/s]
  scenario.batch: {min: 1, max: 256, steps: 9, log: true}
derived:                       # safe expressions, in order; arch targets in the field's SI unit
  gpu.tensor_flops.fp16: "989.4e12 * gpu.sm_count / 132"
  area_mm2: "814 * gpu.sm_count / 144"          # a free name: a parameter column
metrics:                       # expressions over results, computed after each run
  tokens_per_s_per_mm2: "tokens_per_s / area_mm2"
constraints: ["area_mm2 <= 814", "power_W <= 700"]
workloads:
  - {model: llama2-70b, batch: 8, prompt_len: 512, gen_len: 16, tp: 4, weight: 1}
  # or one training step, with the run fields of `xpusim run` (docs/dse.md):
  # - {model: llama2-7b, mode: finetune, seq: 4096, offload: full, recompute: true,
  #    placement: "priority:optimizer>host_ddr,cxl*", prefetch: 1, overlap: false}
objectives: [{min: tpot_s}, {min: energy_per_token_J}]
fidelity: tile
seed: 0
strategy: grid                 # or {name: random|lhs|nsga2|bayes, ...}
```

Every error is an :class:`arch.SpecError` ``FILE: FIELD.PATH: what was expected, got what``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arch import DEVICE_TYPES, SECTIONS, SpecError, arch_from_dict, load_arch_data, read_yaml
from arch.units import UnitError, parse_quantity
from dse.expr import Expr, ExprError, parse_expr
from dse.space import Axis
from dse.strategies import MAX_POINTS
from workloads.errors import WorkloadError
from workloads.models import ZERO_OK, ModelConfig
from workloads.scenario import MAX_COUNT, Scenario

TOP_KEYS = ("name", "description", "arch", "axes", "derived", "metrics", "constraints",
            "workloads", "objectives", "fidelity", "seed", "strategy", "serve")
SCENARIO_FIELDS = ("batch", "prompt_len", "gen_len", "dtype", "kv_dtype", "tp", "attention",
                   "pp", "microbatches", "ep", "expert_skew", "weights", "weight_group",
                   "sparsity", "attn_sink", "attn_window")
#: how a workload runs (not :class:`Scenario` fields): mode, fine-tuning, placement, schedule
RUN_FIELDS = ("mode", "seq", "offload", "recompute", "placement", "prefetch", "overlap")
FINETUNE_FIELDS = ("seq", "offload", "recompute")  # only for ``mode: finetune``
RUN_DEFAULTS: dict[str, Any] = {"mode": "inference", "offload": "optimizer", "recompute": False,
                                "placement": None, "prefetch": 1, "overlap": False}
MODES = ("inference", "finetune")
OFFLOADS = ("none", "optimizer", "full")
INT_FIELDS = ("batch", "prompt_len", "gen_len", "tp", "pp", "microbatches", "ep", "seq",
              "prefetch")
#: the axis over whole arches (preset names or arch YAML paths)
ARCH_AXIS = "arch"
MODEL_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                "max_positions", "head_dim", "n_experts", "top_k", "shared_ff",
                "sliding_window", "global_every", "first_dense", "moe_every", "dense_ff",
                "q_lora_rank", "kv_lora_rank", "nope_every", "index_topk")
WORKLOAD_KEYS = ("name", "model", "weight", "layers", *SCENARIO_FIELDS, *RUN_FIELDS)
RESERVED_ROOTS = ("scenario", "model", "serve")
SYSTEM_DERIVED = ("interconnect", "system")  # a system arch derives these from its topology
#: metrics the sweep adds to each simulation result
DSE_METRICS = ("power_W",)
#: metrics of :func:`sim.run.simulate` (used only when probing the device model fails)
FALLBACK_METRICS = (
    "ttft_s", "tpot_s", "latency_s", "tokens_per_s", "decode_tokens_per_s", "energy_J",
    "energy_per_token_J", "dynamic_energy_J", "static_energy_J", "flops", "bytes", "dram_bytes",
    "prefill_flops", "decode_flops", "weights_bytes_per_device", "kv_cache_bytes_per_device",
    "memory_per_device_bytes", "ops", "events")
#: metrics of :func:`sim.finetune.simulate_training` (used only when its probe fails)
FINETUNE_METRICS = (
    "step_s", "tokens_per_s", "latency_s", "events", "flops", "op_time_sum_s", "forward_s",
    "recompute_s", "backward_s", "optimizer_s", "transfer_s", "transfer_bytes", "energy_J")
VERSION = 1


@dataclass(frozen=True)
class Workload:
    """One weighted workload: a model (with overrides applied) and its scenario fields."""

    name: str
    model: ModelConfig
    scenario: dict[str, Any]
    weight: float
    run: dict[str, Any] = field(default_factory=dict)  # RUN_FIELDS given (canonical values)

    @property
    def mode(self) -> str:
        return self.run.get("mode", "inference")


@dataclass(frozen=True)
class ArchChoice:
    """One value of the ``arch`` axis: a whole arch, and which axis paths it lacks."""

    ref: str                                # as written in the sweep (the parameter value)
    label: str
    data: dict[str, Any]
    type: str
    device_prefix: str
    device_sections: tuple[str, ...]
    base_values: dict[str, float]
    missing: dict[str, str]                 # arch path -> why this arch cannot take it


@dataclass(frozen=True)
class Derived:
    """``target = expr``; ``kind`` is ``arch``, ``scenario``, ``model`` or ``free``."""

    target: str
    kind: str
    expr: Expr


@dataclass(frozen=True)
class Objective:
    """Minimise or maximise one metric or parameter column."""

    metric: str
    goal: str  # "min" | "max"

    @property
    def sign(self) -> float:
        """+1 to minimise, -1 to maximise (strategies minimise ``sign * value``)."""
        return 1.0 if self.goal == "min" else -1.0


@dataclass(frozen=True)
class StrategySpec:
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: everything a worker needs to evaluate any point of it."""

    name: str
    file: str
    text: str
    arch_ref: str
    arch_label: str
    arch_data: dict[str, Any]
    arch_type: str
    axes: tuple[Axis, ...]
    derived: tuple[Derived, ...]
    metrics: tuple[tuple[str, Expr], ...]
    constraints: tuple[Expr, ...]
    workloads: tuple[Workload, ...]
    objectives: tuple[Objective, ...]
    fidelity: str
    seed: int
    strategy: StrategySpec
    base_values: dict[str, float]
    metric_names: tuple[str, ...]
    description: str = ""
    device_prefix: str = ""                 # system arch: where its primary device's data lives
    device_sections: tuple[str, ...] = ()   # system arch: device sections set through it
    arch_choices: dict[str, ArchChoice] = field(default_factory=dict)  # the ``arch`` axis
    serve: Any = None   # a serving sweep: its ``serve:`` section (dse.serve_eval.ServeSpec)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter columns: axes, then derived values."""
        return tuple(a.path for a in self.axes) + tuple(d.target for d in self.derived)

    @property
    def pre_constraints(self) -> tuple[Expr, ...]:
        """Constraints that read parameters only: checked before simulating."""
        params = set(self.param_names) | set(self.base_values)
        return tuple(c for c in self.constraints if set(c.names) <= params)

    @property
    def post_constraints(self) -> tuple[Expr, ...]:
        pre = set(self.pre_constraints)
        return tuple(c for c in self.constraints if c not in pre)

    def fingerprint(self) -> dict[str, str]:
        """Hashes of everything that decides a point's result, per field (axes excluded)."""
        parts = {
            "arch": self.arch_data,
            "derived": [(d.target, d.expr.text) for d in self.derived],
            "metrics": [(n, e.text) for n, e in self.metrics],
            "constraints": [c.text for c in self.constraints],
            "workloads": [(w.name, dataclasses.asdict(w.model), w.scenario, w.weight,
                           *([w.run] if w.run else [])) for w in self.workloads],
            "fidelity": self.fidelity,
            "seed": self.seed,
            "version": VERSION,
        }
        if self.serve is not None:
            parts["serve"] = self.serve.fields
        if self.arch_choices:
            parts["arch"] = {"base": self.arch_data,
                             "choices": {k: c.data for k, c in self.arch_choices.items()}}
        return {k: hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode())
                .hexdigest()[:16] for k, v in parts.items()}


# --- loading -----------------------------------------------------------------------------------
def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """Read and validate a sweep YAML; ``overrides`` replace top-level keys (e.g. fidelity)."""
    path = Path(path)
    data = read_yaml(path)
    text = path.read_text(encoding="utf-8")
    if isinstance(data, dict) and overrides:
        data = {**data, **overrides}
    return sweep_from_dict(data, file=str(path), base_dir=path.parent, text=text)


def sweep_from_dict(data: Any, file: str = "", base_dir: str | Path = ".",
                    text: str = "") -> SweepSpec:
    """Validate parsed sweep YAML and build a :class:`SweepSpec`."""
    return _Loader(file, Path(base_dir)).load(data, text)


def _hint(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _leaf_value(node: Any) -> Any:
    return node["value"] if isinstance(node, dict) and "value" in node else node


def numeric_leaves(obj: Any, path: str = "") -> dict[str, float]:
    """Every numeric leaf of a built arch section (or sections dict), by dotted path."""
    out: dict[str, float] = {}
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if not f.init:  # derived, not YAML (e.g. a system component's resolved arch)
                continue
            out.update(numeric_leaves(getattr(obj, f.name), f"{path}.{f.name}" if path
                                      else f.name))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(numeric_leaves(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[path] = obj
    return out


def arch_data_path(spec: SweepSpec, path: str, choice: ArchChoice | None = None) -> str:
    """Where arch parameter ``path`` lies in the raw arch data (of ``choice`` when the sweep has
    an ``arch`` axis): on a ``system`` arch, device sections (``gpu.sm_count``) are the primary
    device component's overrides."""
    prefix, sections = ((choice.device_prefix, choice.device_sections) if choice is not None
                        else (spec.device_prefix, spec.device_sections))
    if prefix and path.split(".")[0] in sections:
        return f"{prefix}.{path}"
    return path


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in raw arch data, replacing a ``{value, source}`` leaf whole."""
    parts = path.split(".")
    node = data
    for key in parts[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict) or "value" in nxt:
            nxt = {}
            node[key] = nxt
        node = nxt
    node[parts[-1]] = value


class _Loader:
    def __init__(self, file: str, base_dir: Path):
        self.file = file
        self.base_dir = base_dir
        self.choices: dict[str, _Loader] = {}  # the ``arch`` axis: a loader per arch

    def err(self, path: str, message: str) -> SpecError:
        return SpecError(self.file, path, message)

    # -- top level --------------------------------------------------------------------------
    def load(self, data: Any, text: str) -> SweepSpec:
        if not isinstance(data, dict):
            raise self.err("", f"expected a mapping at the top level, got {type(data).__name__}")
        for key in data:
            if key not in TOP_KEYS:
                raise self.err(str(key), f"unknown key{_hint(str(key), TOP_KEYS)}")
        name = data.get("name") or (Path(self.file).stem if self.file else "sweep")
        if not isinstance(name, str):
            raise self.err("name", f"expected a text value, got {name!r}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.err("description", f"expected a text value, got {description!r}")
        self._arch_choices(data)
        self._arch(data)
        self.serve = self._serve(data)
        axes = self._axes(data.get("axes"))
        workloads = self._workloads(data) if self.serve is None else []
        self._check_run_axes(axes, workloads)
        fidelity = self._fidelity(data.get("fidelity", "tile"))
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise self.err("seed", f"expected a non-negative integer, got {seed!r}")
        metric_names = self._probe_metrics(workloads, fidelity) if self.serve is None else \
            list(self._serve_metrics(axes))
        self.metric_names = set(metric_names)
        derived = self._derived(data.get("derived"), axes)
        params = [a.path for a in axes] + [d.target for d in derived]
        known = set(params) | self._value_names() | set(metric_names)
        if len(workloads) > 1:
            known |= {f"{w.name}.{m}" for w in workloads for m in metric_names}
        metrics = self._metrics(data.get("metrics"), known, params)
        known |= {n for n, _ in metrics}
        constraints = self._constraints(data.get("constraints"), known)
        objectives = self._objectives(data.get("objectives"), known)
        from dse.strategies import validate_strategy

        strategy = validate_strategy(data.get("strategy", "grid"), axes, self.err)
        spec = SweepSpec(
            name=name, file=self.file, text=text, arch_ref=self.arch_ref,
            arch_label=self.arch_label, arch_data=self.arch_data, arch_type=self.arch_type,
            axes=tuple(axes), derived=tuple(derived), metrics=tuple(metrics),
            constraints=tuple(constraints), workloads=tuple(workloads),
            objectives=tuple(objectives), fidelity=fidelity, seed=seed, strategy=strategy,
            base_values=self.base_values, metric_names=tuple(metric_names),
            description=description, device_prefix=self.device_prefix,
            device_sections=self.device_sections,
            arch_choices=self._choice_specs(axes, derived), serve=self.serve)
        self._check_first_point(spec)
        return spec

    # -- serving sweeps -----------------------------------------------------------------------
    def _serve(self, data: dict) -> Any:
        """A ``serve:`` section (dse/serve_eval.py): the points run ``xpusim serve``."""
        if "serve" not in data:
            return None
        from dse.serve_eval import load_section

        if "workloads" in data:
            raise self.err("workloads", "a serving sweep (serve:) has no workloads; its "
                                        "workload is the serve section's (rate, trace, ...)")
        return load_section(data["serve"], self.err, self.base_dir)

    def _serve_metrics(self, axes: list[Axis]) -> tuple[str, ...]:
        from dse.serve_eval import metric_names

        slos = [self.serve.value("slo")]
        priced = [self.serve.value("price_per_hour")]
        for a in axes:
            if a.path == "serve.slo":
                slos += list(a.values or ())
            elif a.path == "serve.price_per_hour":
                priced += list(a.values) if a.values is not None else [a.high]
        names = metric_names("splitwise" if "splitwise" in slos else "",
                             any(p > 0 for p in priced))
        return names

    # -- arch -------------------------------------------------------------------------------
    def _arch(self, data: dict) -> None:
        ref, where = data.get("arch"), "arch"
        if ref is None and self.choices:  # no base arch: the arch axis's first value is it
            ref, where = next(iter(self.choices)), "axes.arch[0]"
        if ref is None:
            raise self.err("arch", "missing required field (a preset name or an arch YAML path)")
        self._use_arch(where, ref)

    def _arch_choices(self, data: dict) -> None:
        """The ``arch`` axis (whole arches by preset name or YAML path): a loader for each."""
        axes = data.get("axes")
        if not isinstance(axes, dict) or ARCH_AXIS not in axes:
            return
        where = f"axes.{ARCH_AXIS}"
        refs = axes[ARCH_AXIS]
        if not isinstance(refs, list) or not refs:
            raise self.err(where, "expected a non-empty list of preset names or arch YAML paths")
        for i, ref in enumerate(refs):
            if not isinstance(ref, str) or not ref:  # (unhashable values cannot be compared)
                raise self.err(f"{where}[{i}]", f"expected a preset name or a file path, got "
                                                f"{ref!r:.60}")
            if ref in self.choices:
                raise self.err(f"{where}[{i}]", f"duplicate value {ref!r} (same as item "
                                                f"{list(self.choices).index(ref)})")
            sub = _Loader(self.file, self.base_dir)
            sub._use_arch(f"{where}[{i}]", ref)
            self.choices[ref] = sub

    def _use_arch(self, where: str, ref: Any) -> None:
        if not isinstance(ref, str) or not ref:
            raise self.err(where, f"expected a preset name or a file path, got {ref!r}")
        if ref.endswith((".yaml", ".yml")) or "/" in ref:
            path = Path(ref)
            ref = str(path if path.is_absolute() else self.base_dir / path)
        try:
            raw, label = load_arch_data(ref)
            arch = arch_from_dict(raw, file=label)
        except SpecError as exc:
            raise self.err(where, exc.message if exc.path == "--arch" else str(exc)) from None
        self.arch_ref, self.arch_label, self.arch_data = ref, label, raw
        self.arch_type = arch.type
        self.base_arch = arch
        self.sections = DEVICE_TYPES[arch.type]["required"] + DEVICE_TYPES[arch.type]["optional"]
        self.base_values = numeric_leaves(arch.sections)
        self.device_prefix, self.device_sections = "", ()
        self.device_data: dict[str, Any] = {}
        if arch.type == "system":
            self._system_arch(arch)

    def _system_arch(self, arch: Any) -> None:
        """A system arch: device sections (``gpu.*``, ``memory.*`` ...) address its primary
        device component (through ``components.<name>.overrides``); links and counts are set in
        the system's own sections."""
        from arch.topology_view import device_view, primary_component

        primary = primary_component(arch)
        view = device_view(arch, primary)
        own = DEVICE_TYPES[view.type]["required"] + DEVICE_TYPES[view.type]["optional"]
        self.device_sections = tuple(s for s in own if s not in SYSTEM_DERIVED)
        self.device_prefix = f"components.{primary}.overrides"
        self.device_data = arch.sections["components"][primary].device.to_dict()
        self.sections = self.device_sections + self.sections
        self.base_values = {**numeric_leaves(view.sections), **self.base_values}

    def _value_names(self) -> set[str]:
        """Names an expression may read from the arch(s): numeric fields of every arch."""
        names = set(self.base_values)
        for sub in self.choices.values():
            names |= set(sub.base_values)
        return names

    def _all_sections(self) -> set[str]:
        return set(self.sections).union(*(sub.sections for sub in self.choices.values()))

    def _choice_specs(self, axes: list[Axis], derived: list[Derived]) -> dict[str, ArchChoice]:
        """Per value of the ``arch`` axis: its data, and the arch paths it lacks (a point that
        picks it is infeasible, with the reason)."""
        paths = [a.path for a in axes if a.kind == "arch"] + \
            [d.target for d in derived if d.kind == "arch"]
        out = {}
        for ref, sub in self.choices.items():
            missing = {}
            for path in paths:
                try:
                    sub._value_parser(path, path)
                except SpecError as exc:
                    missing[path] = exc.message
            out[ref] = ArchChoice(ref, sub.arch_label, sub.arch_data, sub.arch_type,
                                  sub.device_prefix, sub.device_sections, sub.base_values,
                                  missing)
        return out

    def _arch_field(self, where: str, path: str) -> tuple[Any, dict]:
        """The schema type and field metadata of an arch path; error when it names nothing."""
        parts = path.split(".")
        if self.device_prefix and parts[0] in SYSTEM_DERIVED:
            raise self.err(where, f"'{parts[0]}' of a system arch's device comes from its "
                                  "topology: set links.LINK.* or components.COMPONENT.count")
        if parts[0] not in self.sections:
            raise self.err(where, f"'{parts[0]}' is not a section of a '{self.arch_type}' arch"
                                  f"{_hint(parts[0], self.sections)} (expected a path like "
                                  f"{self.sections[0]}.FIELD, scenario.FIELD or model.FIELD)")
        tp: Any = SECTIONS[parts[0]]
        meta: dict = {}
        root = self.device_data if parts[0] in self.device_sections else self.arch_data
        raw: Any = root.get(parts[0], {})
        for i, key in enumerate(parts[1:], start=1):
            tp = _unwrap(tp)
            here = ".".join(parts[:i])
            if dataclasses.is_dataclass(tp):
                fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
                if key not in fields:
                    raise self.err(where, f"'{here}' has no field '{key}'"
                                          f"{_hint(key, list(fields))}")
                meta = dict(fields[key].metadata)
                tp = typing.get_type_hints(tp)[key]
            elif typing.get_origin(tp) is dict:
                val_tp = typing.get_args(tp)[1]
                if dataclasses.is_dataclass(val_tp) and key not in (raw or {}):
                    have = [k for k in (raw or {}) if k not in ("source", "note")]
                    raise self.err(where, f"'{here}' has no entry '{key}' in the base arch"
                                          f"{_hint(key, have)} (has: {', '.join(have)})")
                tp = val_tp
            else:
                raise self.err(where, f"'{here}' is a single value; nothing lies below it")
            raw = raw.get(key) if isinstance(raw, dict) else None
        tp = _unwrap(tp)
        if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
            raise self.err(where, f"'{path}' is a section, not a single parameter")
        return tp, meta

    def _canonical(self, where: str, tp: Any, meta: dict, raw: Any) -> Any:
        """An arch value in its field's canonical unit (SI float, int, text)."""
        value = _leaf_value(raw)
        if tp is float:
            try:
                number = parse_quantity(value, meta.get("unit") or "")
            except UnitError as exc:
                raise self.err(where, str(exc)) from None
            return number
        if tp is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.err(where, f"expected an integer, got {value!r}")
            return value
        if tp is bool:
            if not isinstance(value, bool):
                raise self.err(where, f"expected true or false, got {value!r}")
            return value
        if tp is str:
            if not isinstance(value, str):
                raise self.err(where, f"expected a text value, got {value!r}")
            return value
        try:
            json.dumps(value)
        except TypeError:
            raise self.err(where, f"expected plain YAML data, got {value!r}") from None
        return value

    # -- axes -------------------------------------------------------------------------------
    def _axes(self, data: Any) -> list[Axis]:
        if data is None:
            raise self.err("axes", "missing required field (a mapping of parameter paths to "
                                   "value lists, e.g. gpu.sm_count: [66, 108, 132])")
        if not isinstance(data, dict) or not data:
            raise self.err("axes", "expected a non-empty mapping of parameter paths to values")
        axes = []
        for path, spec in data.items():
            if not isinstance(path, str) or not path:
                raise self.err("axes", f"expected parameter paths as keys, got {path!r}")
            if path == ARCH_AXIS:  # whole arches, loaded by _arch_choices
                axes.append(Axis(ARCH_AXIS, "arch_ref", tuple(self.choices)))
                continue
            axes.append(self._axis(f"axes.{path}", path, spec))
        return axes

    def _value_parser(self, where: str, path: str):
        """(kind, parse(where, raw) -> canonical value, numeric kind or None, unit)."""
        root, _, rest = path.partition(".")
        if root == "serve":
            return self._serve_parser(where, rest)
        if root == "scenario" and getattr(self, "serve", None) is not None:
            raise self.err(where, "a serving sweep has no scenario; sweep serve.FIELD (rate, "
                                  "max_num_seqs, tp, ...) instead")
        if root == "scenario":
            fields = SCENARIO_FIELDS + tuple(f for f in RUN_FIELDS if f != "mode")
            if rest == "mode":
                raise self.err(where, "the mode is set per workload (mode: finetune), not swept; "
                                      "give one workload per mode")
            if rest not in fields:
                raise self.err(where, f"unknown scenario field '{rest}'"
                                      f"{_hint(rest, fields)} (expected one of "
                                      f"{', '.join(fields)})")
            numeric = "int" if rest in INT_FIELDS else ("float" if rest == "expert_skew"
                                                        else None)
            if rest in RUN_FIELDS:
                return "scenario", lambda w, raw: self._run_value(w, rest, raw), numeric, ""

            def parse_scenario(w: str, raw: Any) -> Any:
                try:
                    Scenario(**{rest: raw})
                except (WorkloadError, TypeError) as exc:
                    msg = exc.message if isinstance(exc, WorkloadError) else str(exc)
                    raise self.err(w, msg) from None
                return raw
            return "scenario", parse_scenario, numeric, ""
        if root == "model":
            if rest not in MODEL_FIELDS:
                raise self.err(where, f"unknown model field '{rest}'{_hint(rest, MODEL_FIELDS)}"
                                      f" (expected one of {', '.join(MODEL_FIELDS)})")

            low = 0 if rest in ZERO_OK else 1   # 0: absent (no window, no layer without RoPE)

            def parse_model(w: str, raw: Any) -> Any:
                if isinstance(raw, float) and raw.is_integer():
                    raw = int(raw)
                if isinstance(raw, bool) or not isinstance(raw, int) or raw < low:
                    raise self.err(w, f"expected an integer >= {low}, got {raw!r}")
                return raw
            return "model", parse_model, "int", ""
        try:
            tp, meta = self._arch_field(where, path)
        except SpecError:
            for sub in self.choices.values():  # another arch of the arch axis may have it
                try:
                    return sub._value_parser(where, path)
                except SpecError:
                    continue
            raise

        def parse_arch(w: str, raw: Any) -> Any:
            value = self._canonical(w, tp, meta, raw)
            if tp in (int, float):
                for bound, test, word in (("gt", lambda v, b: v > b, ">"),
                                          ("ge", lambda v, b: v >= b, ">="),
                                          ("le", lambda v, b: v <= b, "<=")):
                    if meta.get(bound) is not None and not test(value, meta[bound]):
                        raise self.err(w, f"expected a value {word} {meta[bound]:g}"
                                          f"{' ' + meta['unit'] if meta.get('unit') else ''}, "
                                          f"got {raw!r}")
            if meta.get("choices") and value not in meta["choices"]:
                raise self.err(w, f"expected one of {', '.join(meta['choices'])}, got {raw!r}")
            return value
        numeric = "int" if tp is int else ("float" if tp is float else None)
        return "arch", parse_arch, numeric, meta.get("unit") or ""

    def _serve_parser(self, where: str, name: str):
        """(kind, parse, numeric kind, unit) of a ``serve.FIELD`` parameter."""
        from dse.serve_eval import FIELDS, axis_kind, check_field

        if getattr(self, "serve", None) is None:
            raise self.err(where, "serve.FIELD parameters need a serve: section (a serving "
                                  "sweep)")
        if name not in FIELDS:
            raise self.err(where, f"unknown serve field '{name}'{_hint(name, list(FIELDS))}")

        def parse_serve(w: str, raw: Any) -> Any:
            return check_field(name, raw, w, self.err, self.base_dir)
        return "serve", parse_serve, axis_kind(name), ""

    def _axis(self, where: str, path: str, spec: Any) -> Axis:
        kind, parse, numeric, unit = self._value_parser(where, path)
        if isinstance(spec, dict) and "value" not in spec:
            allowed = ("min", "max", "steps", "log")
            for key in spec:
                if key not in allowed:
                    raise self.err(f"{where}.{key}", f"unknown key{_hint(str(key), allowed)} "
                                                     "(a range has min, max, steps, log)")
            if numeric is None:
                raise self.err(where, "a range {min, max} needs a numeric parameter; give a "
                                      "list of values instead")
            for key in ("min", "max"):
                if key not in spec:
                    raise self.err(f"{where}.{key}", "missing required field of a range")
            low, high = parse(f"{where}.min", spec["min"]), parse(f"{where}.max", spec["max"])
            if not low <= high:
                raise self.err(where, f"expected min <= max, got {spec['min']} > {spec['max']}")
            steps = spec.get("steps", 0)
            if isinstance(steps, bool) or not isinstance(steps, int) or \
                    not 0 <= steps <= MAX_POINTS:
                raise self.err(f"{where}.steps", f"expected an integer in 0 .. {MAX_POINTS:,}, "
                                                 f"got {steps!r:.40}")
            log = spec.get("log", False)
            if not isinstance(log, bool):
                raise self.err(f"{where}.log", f"expected true or false, got {log!r}")
            if log and low <= 0:
                raise self.err(f"{where}.log", "a log range needs min > 0")
            axis = Axis(path, kind, None, float(low), float(high), log, numeric == "int", steps,
                        unit)
            for i, v in enumerate(axis.grid_values()):  # every grid value must be valid too
                parse(f"{where}[{i}]", v)
            return axis
        if not isinstance(spec, list) or not spec:
            raise self.err(where, "expected a non-empty list of values or a range "
                                  "{min, max, steps, log}")
        values = []
        for i, raw in enumerate(spec):
            value = parse(f"{where}[{i}]", raw)
            if value in values:
                raise self.err(f"{where}[{i}]", f"duplicate value {raw!r} (same as item "
                                                f"{values.index(value)})")
            values.append(value)
        return Axis(path, kind, tuple(values), unit=unit, integer=numeric == "int")

    # -- workloads --------------------------------------------------------------------------
    def _workloads(self, data: dict) -> list[Workload]:
        items = data.get("workloads")
        if items is None:
            raise self.err("workloads", "missing required field (a list of {model, batch, "
                                        "prompt_len, gen_len, ...})")
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list) or not items:
            raise self.err("workloads", "expected a non-empty list of workloads")
        out: list[Workload] = []
        for i, item in enumerate(items):
            out.append(self._workload(f"workloads[{i}]", item, i))
        names = [w.name for w in out]
        for i, n in enumerate(names):
            if names.index(n) != i:
                raise self.err(f"workloads[{i}].name", f"duplicate workload name '{n}'")
        return out

    def _workload(self, where: str, item: Any, index: int) -> Workload:
        from workloads.hf_config import load_hf_config
        from workloads.models import get_model

        if not isinstance(item, dict):
            raise self.err(where, f"expected a mapping, got {type(item).__name__}")
        for key in item:
            if key not in WORKLOAD_KEYS:
                raise self.err(f"{where}.{key}", f"unknown key{_hint(str(key), WORKLOAD_KEYS)}")
        ref = item.get("model")
        if not isinstance(ref, str) or not ref:
            raise self.err(f"{where}.model", f"expected a model preset name or a config.json "
                                             f"path, got {ref!r}")
        try:
            if ref.endswith(".json") or "/" in ref:
                p = Path(ref)
                model = load_hf_config(p if p.is_absolute() else self.base_dir / p)
            else:
                model = get_model(ref)
        except WorkloadError as exc:
            raise self.err(f"{where}.model", exc.message if exc.path == "--model"
                           else str(exc)) from None
        layers = item.get("layers")
        if layers is not None:
            if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
                raise self.err(f"{where}.layers", f"expected a positive integer, got {layers!r}")
            model = model.with_layers(layers)
        scenario = {k: item[k] for k in SCENARIO_FIELDS if k in item}
        try:
            Scenario(**scenario)
        except WorkloadError as exc:
            opt = exc.path.lstrip("-").replace("-", "_")
            key = {"prompt": "prompt_len", "gen": "gen_len"}.get(opt, opt)
            raise self.err(f"{where}.{key}", exc.message) from None
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise self.err(f"{where}.weight", f"expected a positive number, got {weight!r}")
        name = item.get("name", f"w{index}")
        if not isinstance(name, str) or not name.isidentifier():
            raise self.err(f"{where}.name", f"expected a name made of letters, digits and _, "
                                            f"got {name!r}")
        if name in self._all_sections() or name in RESERVED_ROOTS or name == ARCH_AXIS:
            raise self.err(f"{where}.name", f"'{name}' is taken by a parameter root")
        return Workload(name, model, scenario, float(weight), self._run_fields(where, item))

    def _run_value(self, where: str, key: str, raw: Any) -> Any:
        """A run field (mode, seq, offload, recompute, placement, prefetch, overlap) in its
        canonical form; a one-line error naming ``where`` when it is wrong."""
        if key == "mode":
            if raw not in MODES:
                raise self.err(where, f"expected one of {', '.join(MODES)}, got {raw!r:.60}")
        elif key == "offload":
            if raw not in OFFLOADS:
                raise self.err(where, f"expected one of {', '.join(OFFLOADS)}, got {raw!r:.60}")
        elif key in ("recompute", "overlap"):
            if not isinstance(raw, bool):
                raise self.err(where, f"expected true or false, got {raw!r:.60}")
        elif key in ("seq", "prefetch"):
            low = 1 if key == "seq" else 0
            if isinstance(raw, float) and raw.is_integer():
                raw = int(raw)
            if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= MAX_COUNT:
                word = "a positive integer" if low else "an integer >= 0"
                raise self.err(where, f"expected {word}, got {raw!r:.60}")
        elif key == "placement":
            from sim.devices.base import SimError
            from sim.system.placement import parse_placement

            if not isinstance(raw, str) or not raw.strip():
                raise self.err(where, f"expected a --placement text such as "
                                      f"'priority:optimizer>host_ddr,cxl*', got {raw!r:.60}")
            raw = raw.strip()
            if raw.endswith((".yaml", ".yml")) and not any(c in raw for c in "=>;"):
                p = Path(raw)
                raw = str(p if p.is_absolute() else self.base_dir / p)
            try:
                parse_placement(raw)
            except SimError as exc:
                raise self.err(where, str(exc).removeprefix("--placement: ")) from None
        return raw

    def _run_fields(self, where: str, item: dict) -> dict[str, Any]:
        """The run fields a workload gives, checked against its mode."""
        run = {k: self._run_value(f"{where}.{k}", k, item[k]) for k in RUN_FIELDS if k in item}
        if run.get("mode", "inference") == "finetune":
            if "gen_len" in item:
                raise self.err(f"{where}.gen_len", "not used by mode: finetune (one training "
                                                   "step over seq tokens per sequence)")
            if "seq" in item and "prompt_len" in item:
                raise self.err(f"{where}.prompt_len", "give seq (tokens per sequence) for "
                                                      "mode: finetune, not both")
            try:
                Scenario(**{k: item[k] for k in SCENARIO_FIELDS if k in item},
                         **({"prompt_len": run["seq"]} if "seq" in run else {}), gen_len=1)
            except WorkloadError as exc:
                opt = exc.path.lstrip("-").replace("-", "_")
                key = {"prompt": "seq" if "seq" in run else "prompt_len"}.get(opt, opt)
                raise self.err(f"{where}.{key}", exc.message) from None
        else:
            for key in FINETUNE_FIELDS:
                if key in run:
                    raise self.err(f"{where}.{key}", "only for mode: finetune (this workload "
                                                     "is inference)")
        return run

    def _check_run_axes(self, axes: list[Axis], workloads: list[Workload]) -> None:
        """Fine-tuning axes (scenario.seq, offload, recompute) need fine-tuning workloads."""
        for a in axes:
            key = a.path.partition(".")[2]
            if a.kind == "scenario" and key in FINETUNE_FIELDS:
                for w in workloads:
                    if w.mode != "finetune":
                        raise self.err(f"axes.{a.path}", f"only for mode: finetune workloads; "
                                                         f"workload '{w.name}' is inference")

    # -- derived, metrics, constraints, objectives --------------------------------------------
    def _expr(self, where: str, text: Any, known: set[str]) -> Expr:
        try:
            expr = parse_expr(text)
        except ExprError as exc:
            raise self.err(where, str(exc)) from None
        for name in expr.names:
            if name not in known:
                raise self.err(where, f"unknown name '{name}'{_hint(name, sorted(known))} in "
                                      f"'{expr.text}'")
        return expr

    def _derived(self, data: Any, axes: list[Axis]) -> list[Derived]:
        if data is None:
            return []
        if not isinstance(data, dict):
            raise self.err("derived", "expected a mapping of target: expression")
        known = self._value_names() | {a.path for a in axes}
        axis_paths = {a.path for a in axes}
        sections = self._all_sections()
        out = []
        for target, text in data.items():
            where = f"derived.{target}"
            if not isinstance(target, str) or not target:
                raise self.err("derived", f"expected parameter paths or names as keys, got "
                                          f"{target!r}")
            if target in axis_paths:
                raise self.err(where, "is also an axis; a parameter is either swept or derived")
            root = target.split(".")[0]
            if root in RESERVED_ROOTS or root in sections:
                kind, _parse, numeric, _unit = self._value_parser(where, target)
                if numeric is None:
                    raise self.err(where, "a derived value is a number; this parameter is not")
            elif "." in target or not target.isidentifier():
                raise self.err(where, f"'{root}' is not a section of a '{self.arch_type}' arch"
                                      f"{_hint(root, self.sections)}; a free derived name is "
                                      "made of letters, digits and _")
            elif target in self.metric_names:
                raise self.err(where, f"'{target}' is a result metric; pick another name")
            else:
                kind = "free"
            expr = self._expr(where, text, known)
            out.append(Derived(target, kind, expr))
            known.add(target)
        return out

    def _metrics(self, data: Any, known: set[str], params: list[str]) -> list[tuple[str, Expr]]:
        if data is None:
            return []
        if not isinstance(data, dict):
            raise self.err("metrics", "expected a mapping of name: expression")
        out = []
        known = set(known)
        for name, text in data.items():
            where = f"metrics.{name}"
            if not isinstance(name, str) or not name.isidentifier():
                raise self.err(where, "expected a name made of letters, digits and _")
            if name in known:
                raise self.err(where, f"'{name}' is already a metric or parameter")
            out.append((name, self._expr(where, text, known)))
            known.add(name)
        return out

    def _constraints(self, data: Any, known: set[str]) -> list[Expr]:
        if data is None:
            return []
        if not isinstance(data, list):
            raise self.err("constraints", "expected a list of conditions like "
                                          "'power_W <= 700'")
        out = []
        for i, text in enumerate(data):
            expr = self._expr(f"constraints[{i}]", text, known)
            body = expr.tree.body
            if not isinstance(body, (ast.Compare, ast.BoolOp)) and not (
                    isinstance(body, ast.UnaryOp) and isinstance(body.op, ast.Not)):
                raise self.err(f"constraints[{i}]", f"expected a condition (a comparison such as "
                                                    f"'power_W <= 700'), got '{expr.text}'")
            out.append(expr)
        return out

    def _objectives(self, data: Any, known: set[str]) -> list[Objective]:
        if data is None:
            raise self.err("objectives", "missing required field (a list like "
                                         "[{min: tpot_s}, {min: energy_per_token_J}])")
        if not isinstance(data, list) or not data:
            raise self.err("objectives", "expected a non-empty list like [{min: tpot_s}]")
        out = []
        for i, item in enumerate(data):
            where = f"objectives[{i}]"
            if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in ("min", "max"):
                goal, metric = next(iter(item.items()))
            elif isinstance(item, dict) and set(item) <= {"metric", "goal"} and "metric" in item:
                metric, goal = item["metric"], item.get("goal", "min")
            else:
                raise self.err(where, f"expected {{min: METRIC}} or {{max: METRIC}}, got {item!r}")
            if goal not in ("min", "max"):
                raise self.err(f"{where}.goal", f"expected min or max, got {goal!r}")
            if not isinstance(metric, str) or metric not in known:
                raise self.err(where, f"unknown metric {metric!r}"
                                      f"{_hint(str(metric), sorted(known))}")
            if any(o.metric == metric for o in out):
                raise self.err(where, f"duplicate objective '{metric}'")
            out.append(Objective(metric, goal))
        return out

    # -- fidelity and the device model --------------------------------------------------------
    def _fidelity(self, fidelity: Any) -> str:
        from sim.devices.base import FIDELITIES, SimError, device_for

        if fidelity not in FIDELITIES:
            raise self.err("fidelity", f"expected one of {', '.join(FIDELITIES)}, got "
                                       f"{fidelity!r}")
        if self.serve is not None and fidelity not in ("roofline", "tile"):
            raise self.err("fidelity", f"a serving sweep runs at roofline or tile fidelity "
                                       f"(as xpusim serve), got {fidelity!r}")
        for sub in [self, *self.choices.values()]:
            try:
                device_for(sub.base_arch, fidelity)
            except SimError as exc:
                raise self.err("fidelity", str(exc).removeprefix("--fidelity: ")) from None
        return fidelity

    def _probe_metrics(self, workloads: list[Workload], fidelity: str) -> list[str]:
        """Metric names the runs report: a one-layer, few-token probe of the first workload of
        each mode on the base arch (with its run fields), plus per-resource columns."""
        from dse.evaluate import resource_metrics
        from sim.finetune import simulate_training
        from sim.run import simulate
        from sim.system.placement import parse_placement
        from sim.system.schedule import Policies
        from workloads.training import Training

        names: list[str] = []
        for mode in MODES:
            w = next((w for w in workloads if w.mode == mode), None)
            if w is None:
                continue
            opts = {**RUN_DEFAULTS, **w.run}
            model = w.model.with_layers(1)
            try:
                placement = (parse_placement(opts["placement"]) if opts["placement"]
                             else self.base_arch.sections.get("placement"))
                policies = Policies(overlap=opts["overlap"], prefetch=opts["prefetch"])
                dtype = w.scenario.get("dtype", "fp16")
                if mode == "finetune":
                    result = simulate_training(
                        self.base_arch, model, Scenario(batch=1, prompt_len=2, gen_len=1,
                                                        dtype=dtype),
                        Training(recompute=opts["recompute"], offload=opts["offload"]),
                        "roofline", placement=placement, policies=policies)
                else:
                    result = simulate(self.base_arch, model,
                                      Scenario(batch=1, prompt_len=2, gen_len=2, dtype=dtype),
                                      "roofline", placement=placement, policies=policies)
                found = [*result.metrics, *resource_metrics(result)]
            except Exception:  # noqa: BLE001  (the probe only names metrics; fall back)
                found = list(FINETUNE_METRICS if mode == "finetune" else FALLBACK_METRICS)
            names += [m for m in found if m not in names]
        return names + [m for m in DSE_METRICS if m not in names]

    def _check_first_point(self, spec: SweepSpec) -> None:
        """Build the first design point so that cross-field mistakes show up at load time."""
        from dse.evaluate import build_point

        first = {a.path: a.from_unit(0.0) for a in spec.axes}
        try:
            _, values, arch, _, model_over = build_point(spec, first)
        except ExprError as exc:
            raise self.err("derived", f"at the first design point {first}: {exc}") from None
        except SpecError as exc:
            raise self.err("axes", f"the first design point {first} is not a valid arch: "
                                   f"{exc.path}: {exc.message}") from None
        if model_over:   # a model field the workloads' models cannot take (e.g. latent ranks
            # on a model without latent attention): one line, not a sweep of failed points
            import dataclasses

            for w in spec.workloads:
                try:
                    dataclasses.replace(w.model, **model_over)
                except WorkloadError as exc:
                    raise self.err("axes", f"the first design point {first} gives workload "
                                           f"'{w.name}' ({w.model.name}) an invalid model: "
                                           f"{exc.path}: {exc.message}") from None
        if spec.serve is not None:  # its requests and engine build (without running)
            from dse.serve_eval import check_first_point

            check_first_point(spec, values, arch, model_over, self.err)

