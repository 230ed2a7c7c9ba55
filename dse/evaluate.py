"""Evaluate one design point: derived values, the arch, every workload, metrics, constraints.

A point's record is plain data (so it crosses process and Ray boundaries and goes to the store):
``{"point_id", "seq", "status", "reason", "params", "metrics", "eval_s"}``. ``status`` is ``ok``,
``infeasible`` (a constraint failed, the model does not fit, the arch is invalid at this point —
``reason`` says which) or ``error`` (an unexpected exception: a bug, reported, never hidden).

Metrics of several workloads are combined as the weighted mean (weights normalised to 1, over the
workloads that report the metric); each workload's own metrics are kept as ``NAME.metric``
columns. A workload runs inference (:func:`sim.run.simulate`) or, with ``mode: finetune``, one
training step (:func:`sim.finetune.simulate_training`); per memory tier and link its bytes and
busy time become ``bytes@RESOURCE`` and ``busy_s@RESOURCE`` columns. A serving sweep (a
``serve:`` section) serves each point as ``xpusim serve`` does (:mod:`dse.serve_eval`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from arch import SpecError, arch_from_dict
from dse.expr import ExprError
from dse.space import point_id
from dse.spec import (
    ARCH_AXIS,
    RUN_DEFAULTS,
    RUN_FIELDS,
    ArchChoice,
    SweepSpec,
    Workload,
    arch_data_path,
    set_path,
)
from sim.devices.base import SimError
from sim.finetune import simulate_training
from sim.run import simulate
from sim.system.placement import parse_placement
from sim.system.schedule import Policies
from workloads.errors import WorkloadError
from workloads.limits import check_run_size
from workloads.scenario import Scenario
from workloads.training import Training


def _copy(data: Any) -> Any:
    """A deep copy of plain YAML data (dicts and lists), faster than ``copy.deepcopy``."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def arch_choice(spec: SweepSpec, axis_values: dict[str, Any]) -> ArchChoice | None:
    """The arch a point picks on the ``arch`` axis (None: the sweep has no such axis)."""
    if not spec.arch_choices or ARCH_AXIS not in axis_values:
        return None
    return spec.arch_choices[axis_values[ARCH_AXIS]]


def resolve_params(spec: SweepSpec, axis_values: dict[str, Any]) -> tuple[dict, dict]:
    """(params: axes and derived values, values: every name an expression may read)."""
    choice = arch_choice(spec, axis_values)
    values: dict[str, Any] = dict(choice.base_values if choice else spec.base_values)
    values.update(axis_values)
    params = dict(axis_values)
    for d in spec.derived:
        value = d.expr.evaluate(values)
        if isinstance(value, bool):
            value = int(value)
        values[d.target] = value
        params[d.target] = value
    return params, values


def build_point(spec: SweepSpec, axis_values: dict[str, Any]):
    """(params, values, arch, scenario overrides, model overrides) of one point.

    Raises :class:`ExprError` for a derived expression that fails here and
    :class:`arch.SpecError` when the edited arch is invalid.
    """
    params, values = resolve_params(spec, axis_values)
    kinds = {a.path: a.kind for a in spec.axes}
    kinds.update({d.target: d.kind for d in spec.derived})
    choice = arch_choice(spec, axis_values)
    data = _copy(choice.data if choice else spec.arch_data)
    scenario: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for path, value in params.items():
        kind = kinds[path]
        if kind == "arch":
            if choice is not None and path in choice.missing:
                continue  # this arch lacks the path: the point is infeasible (see _evaluate)
            set_path(data, arch_data_path(spec, path, choice), value)
        elif kind == "scenario":
            scenario[path.split(".", 1)[1]] = value
        elif kind == "model":
            model[path.split(".", 1)[1]] = value
    label = choice.label if choice else spec.arch_label
    if spec.serve is not None:  # a serving sweep: its software stack goes on the arch's GPUs
        from dse.serve_eval import overrides

        software = spec.serve.value("software", overrides(params))
        if software:
            from arch.software import with_software

            if software.endswith((".yaml", ".yml")) and not software.startswith("/"):
                software = f"{spec.serve.base_dir}/{software}"
            data = with_software(data, software, label)
    arch = arch_from_dict(data, file=label)
    return params, values, arch, scenario, model


def resource_metrics(result) -> dict[str, float]:
    """``bytes@R`` and ``busy_s@R`` per contended resource R of a run (memory tiers such as
    ``host_ddr``, ``cxl0``, ``gpu0.hbm``; link directions such as ``pcie>``, ``pcie<``)."""
    res = getattr(result, "resources", None)
    out: dict[str, float] = {}
    if res is None or not len(res):
        return out
    for name, nbytes, busy in zip(res["resource"], res["bytes"], res["busy_s"], strict=True):
        out[f"bytes@{name}"] = float(nbytes)
        out[f"busy_s@{name}"] = float(busy)
    return out


def _run_metrics(result) -> dict[str, float]:
    m = {k: float(v) for k, v in result.metrics.items()}
    devices = result.device_info.get("devices_used", 1) or 1
    m["power_W"] = m["energy_J"] / m["latency_s"] / devices if m.get("latency_s") else 0.0
    m.update(resource_metrics(result))
    return m


def run_workload(spec: SweepSpec, arch, w: Workload, scen_over: dict[str, Any],
                 model_over: dict[str, Any]):
    """Simulate one workload at one point (axes override its fields); the :class:`Result`."""
    run_over = {k: v for k, v in scen_over.items() if k in RUN_FIELDS}
    scen = {**w.scenario, **{k: v for k, v in scen_over.items() if k not in RUN_FIELDS}}
    opts = {**RUN_DEFAULTS, **w.run, **run_over}
    model = dataclasses.replace(w.model, **model_over) if model_over else w.model
    placement = (parse_placement(opts["placement"]) if opts["placement"]
                 else arch.sections.get("placement"))
    policies = Policies(overlap=opts["overlap"], prefetch=opts["prefetch"])
    if w.mode != "finetune":
        scenario = Scenario(**scen)
        check_run_size(model, scenario)
        return simulate(arch, model, scenario, spec.fidelity, spec.seed, placement=placement,
                        policies=policies)
    # seq: an axis scenario.seq, else an axis scenario.prompt_len, else the workload's
    seq = run_over.get("seq", scen_over.get("prompt_len", w.run.get("seq",
                                                                    scen.get("prompt_len", 512))))
    scenario = Scenario(**{**scen, "prompt_len": seq, "gen_len": 1})
    check_run_size(model, scenario)
    training = Training(recompute=opts["recompute"], offload=opts["offload"])
    return simulate_training(arch, model, scenario, training, spec.fidelity, spec.seed,
                             placement=placement, policies=policies)


def _combine(per_workload: dict[str, dict[str, float]], weights: dict[str, float]
             ) -> dict[str, float]:
    """Weighted mean of every metric over the workloads, plus ``NAME.metric`` columns."""
    if len(per_workload) == 1:
        return dict(next(iter(per_workload.values())))
    keys = list(dict.fromkeys(k for m in per_workload.values() for k in m))
    out = {}
    for k in keys:
        have = [w for w, m in per_workload.items() if k in m]
        out[k] = sum(weights[w] * per_workload[w][k] for w in have) / \
            sum(weights[w] for w in have)
    for w, m in per_workload.items():
        out.update({f"{w}.{k}": v for k, v in m.items()})
    return out


def evaluate_point(spec: SweepSpec, axis_values: dict[str, Any], seq: int = 0) -> dict:
    """Simulate one design point on every workload; never raises for a bad point."""
    start = time.perf_counter()
    record: dict[str, Any] = {"point_id": point_id(axis_values), "seq": seq, "status": "ok",
                              "reason": "", "params": dict(axis_values), "metrics": {}}
    try:
        _evaluate(spec, axis_values, record)
    except Exception as exc:  # noqa: BLE001  (a bug at one point must not end the sweep)
        record["status"] = "error"
        record["reason"] = f"{type(exc).__name__}: {exc}"
    record["eval_s"] = time.perf_counter() - start
    return record


def _infeasible(record: dict, reason: str) -> None:
    record["status"] = "infeasible"
    record["reason"] = reason


def _violated(constraints, values: dict[str, Any]) -> list[str]:
    """Texts of the constraints that fail (one that cannot be evaluated fails, with why)."""
    failed = []
    for c in constraints:
        try:
            if not c.evaluate(values):
                failed.append(c.text)
        except ExprError as exc:
            failed.append(str(exc))
    return failed


def _evaluate(spec: SweepSpec, axis_values: dict[str, Any], record: dict) -> None:
    try:
        params, values = resolve_params(spec, axis_values)
    except ExprError as exc:
        return _infeasible(record, f"derived: {exc}")
    record["params"] = params
    failed = _violated(spec.pre_constraints, values)
    if failed:
        return _infeasible(record, "constraint violated: " + "; ".join(failed))
    choice = arch_choice(spec, axis_values)
    lacking = [p for p in params if choice is not None and p in choice.missing]
    if lacking:
        return _infeasible(record, f"arch {choice.ref}: " + "; ".join(
            f"{p}: {choice.missing[p]}" for p in lacking))
    try:
        _, _, arch, scen_over, model_over = build_point(spec, axis_values)
    except SpecError as exc:
        return _infeasible(record, f"arch: {exc.path}: {exc.message}")
    if spec.serve is not None:
        from dse.serve_eval import overrides, point_error, serve_point

        try:
            arch_key = json.dumps([spec.fingerprint(), spec.serve.value(
                "software", overrides(params)), {k: v for k, v in params.items()
                                                 if not k.startswith("serve.")}],
                sort_keys=True, default=str)
            metrics = serve_point(spec.serve, arch, overrides(params), spec.seed, spec.fidelity,
                                  model_over, arch_key)
        except (SimError, WorkloadError) as exc:
            where, message = point_error(exc)
            return _infeasible(record, f"{where}: {message}")
        return _finish(spec, record, values, metrics)
    per_workload: dict[str, dict[str, float]] = {}
    for w in spec.workloads:
        try:
            result = run_workload(spec, arch, w, scen_over, model_over)
        except (SimError, WorkloadError) as exc:
            return _infeasible(record, f"{w.name}: {exc}")
        per_workload[w.name] = _run_metrics(result)
    metrics = _combine(per_workload, {w.name: w.weight for w in spec.workloads})
    return _finish(spec, record, values, metrics)


def _finish(spec: SweepSpec, record: dict, values: dict[str, Any],
            metrics: dict[str, float]) -> None:
    """Store a point's metrics, then the spec's own metrics and the post-run constraints."""
    record["metrics"] = metrics
    values.update(metrics)
    for name, expr in spec.metrics:
        try:
            metrics[name] = float(expr.evaluate(values))
        except ExprError as exc:
            return _infeasible(record, f"metrics.{name}: {exc}")
        values[name] = metrics[name]
    failed = _violated(spec.post_constraints, values)
    if failed:
        return _infeasible(record, "constraint violated: " + "; ".join(failed))
    return None


def evaluate_chunk(spec: SweepSpec, items: list[tuple[int, dict[str, Any]]]) -> list[dict]:
    """Evaluate ``(seq, axis values)`` items in order (the unit of work sent to a worker)."""
    return [evaluate_point(spec, params, seq) for seq, params in items]
