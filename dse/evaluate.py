"""Evaluate one design point: derived values, the arch, every workload, metrics, constraints.

A point's record is plain data (so it crosses process and Ray boundaries and goes to the store):
``{"point_id", "seq", "status", "reason", "params", "metrics", "eval_s"}``. ``status`` is ``ok``,
``infeasible`` (a constraint failed, the model does not fit, the arch is invalid at this point —
``reason`` says which) or ``error`` (an unexpected exception: a bug, reported, never hidden).

Metrics of several workloads are combined as the weighted mean (weights normalised to 1); each
workload's own metrics are kept as ``NAME.metric`` columns.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from arch import SpecError, arch_from_dict
from dse.expr import ExprError
from dse.space import point_id
from dse.spec import SweepSpec, arch_data_path, set_path
from sim.devices.base import SimError
from sim.run import simulate
from workloads.errors import WorkloadError
from workloads.limits import check_run_size
from workloads.scenario import Scenario


def _copy(data: Any) -> Any:
    """A deep copy of plain YAML data (dicts and lists), faster than ``copy.deepcopy``."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def resolve_params(spec: SweepSpec, axis_values: dict[str, Any]) -> tuple[dict, dict]:
    """(params: axes and derived values, values: every name an expression may read)."""
    values: dict[str, Any] = dict(spec.base_values)
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
    data = _copy(spec.arch_data)
    scenario: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for path, value in params.items():
        kind = kinds[path]
        if kind == "arch":
            set_path(data, arch_data_path(spec, path), value)
        elif kind == "scenario":
            scenario[path.split(".", 1)[1]] = value
        elif kind == "model":
            model[path.split(".", 1)[1]] = value
    arch = arch_from_dict(data, file=spec.arch_label)
    return params, values, arch, scenario, model


def _run_metrics(result) -> dict[str, float]:
    m = {k: float(v) for k, v in result.metrics.items()}
    devices = result.device_info.get("devices_used", 1) or 1
    m["power_W"] = m["energy_J"] / m["latency_s"] / devices if m.get("latency_s") else 0.0
    return m


def _combine(per_workload: dict[str, dict[str, float]], weights: dict[str, float]
             ) -> dict[str, float]:
    """Weighted mean of every metric over the workloads, plus ``NAME.metric`` columns."""
    if len(per_workload) == 1:
        return dict(next(iter(per_workload.values())))
    total = sum(weights.values())
    keys = list(next(iter(per_workload.values())))
    out = {k: sum(weights[w] * m.get(k, 0.0) for w, m in per_workload.items()) / total
           for k in keys}
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
    try:
        _, _, arch, scen_over, model_over = build_point(spec, axis_values)
    except SpecError as exc:
        return _infeasible(record, f"arch: {exc.path}: {exc.message}")
    per_workload: dict[str, dict[str, float]] = {}
    for w in spec.workloads:
        try:
            model = dataclasses.replace(w.model, **model_over) if model_over else w.model
            scenario = Scenario(**{**w.scenario, **scen_over})
            check_run_size(model, scenario)
            result = simulate(arch, model, scenario, spec.fidelity, spec.seed)
        except (SimError, WorkloadError) as exc:
            return _infeasible(record, f"{w.name}: {exc}")
        per_workload[w.name] = _run_metrics(result)
    metrics = _combine(per_workload, {w.name: w.weight for w in spec.workloads})
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
