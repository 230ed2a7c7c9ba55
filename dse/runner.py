"""The sweep loop: strategy → executor → store, then the results table and the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dse.executors import make_executor
from dse.space import point_id
from dse.spec import SweepSpec
from dse.store import Store, export_results, records_frame
from dse.strategies import make_strategy

#: progress(done, total, evaluated_now, elapsed_s); ``done`` counts resumed points too
Progress = Callable[[int, int, int, float], None]


def plan(spec: SweepSpec) -> dict[str, Any]:
    """What a sweep will do, without running it (``--dry-run``)."""
    strategy = make_strategy(spec)
    axes = {a.path: (len(a.grid_values()) if (a.values is not None or a.steps)
                     else f"[{a.low:g}, {a.high:g}]") for a in spec.axes}
    return {"n_points": strategy.planned(), "name": spec.name, "strategy": spec.strategy.name,
            "adaptive": strategy.adaptive, "strategy_options": spec.strategy.options,
            "axes": axes, "derived": [d.target for d in spec.derived],
            "workloads": [{"name": w.name, "model": w.model.name, "weight": w.weight,
                           **w.scenario, **w.run} for w in spec.workloads],
            **({"serve": spec.serve.fields} if spec.serve is not None else {}),
            "objectives": [f"{o.goal} {o.metric}" for o in spec.objectives],
            "constraints": [c.text for c in spec.constraints],
            "fidelity": spec.fidelity, "seed": spec.seed}


def run_sweep(spec: SweepSpec, out: str | Path, *, resume: bool = False, workers: int = 1,
              executor: str = "local", address: str | None = None,
              progress: Progress | None = None, report: bool = True) -> dict[str, Any]:
    """Run (or resume) a sweep into ``out``; return a summary.

    Every finished point is committed to ``out/points.sqlite`` as it arrives. At the end
    ``results.csv`` (and ``results.parquet`` with pyarrow) and, with ``report``, the HTML report
    and plots are written.
    """
    out = Path(out)
    store = Store.open(out, spec, resume=resume)
    resumed = len(store)
    start = time.perf_counter()
    evaluated = 0
    ex = None
    try:
        strategy = make_strategy(spec)
        total = strategy.planned()
        ex = make_executor(executor, spec, workers, address)
        seq_of: dict[str, int] = {}
        done_ids: set[str] = set()
        while True:
            batch = strategy.ask()
            if not batch:
                break
            ids = [point_id(p) for p in batch]
            todo = []
            for p, pid in zip(batch, ids, strict=True):
                if pid in seq_of:
                    continue
                seq_of[pid] = len(seq_of)
                if pid in store:
                    done_ids.add(pid)
                else:
                    todo.append((seq_of[pid], p))
            if progress:
                progress(len(done_ids), total, evaluated, time.perf_counter() - start)
            for record in ex.run(todo):
                store.add(record)
                done_ids.add(record["point_id"])
                evaluated += 1
                if progress:
                    progress(len(done_ids), total, evaluated, time.perf_counter() - start)
            strategy.tell([store.get(pid) for pid in ids])
    finally:
        if ex is not None:
            ex.close()
    wall = time.perf_counter() - start
    records = [store.get(pid) for pid in seq_of]
    store.close()
    df = records_frame(records, list(spec.param_names))
    files = [str(p) for p in export_results(df, out)]
    summary: dict[str, Any] = {
        "name": spec.name, "out": str(out), "n_points": len(df), "evaluated": evaluated,
        "resumed": resumed, "wall_s": wall,
        "points_per_min": evaluated / wall * 60 if wall > 0 else 0.0,
        "status": {s: int((df["status"] == s).sum()) for s in ("ok", "infeasible", "error")},
        "executor": executor, "workers": workers,
    }
    if report:
        from dse.report import write_sweep_report

        summary_for_report = dict(summary)
        files += [str(p) for p in write_sweep_report(df, spec, out, summary_for_report)]
        summary["pareto"] = summary_for_report.get("pareto", [])
    summary["files"] = files
    return summary
