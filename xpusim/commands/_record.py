"""Attach the resolved inputs of a run to its result, so ``summary.json`` can be rerun."""

from __future__ import annotations

import argparse
from typing import Any


def attach_record(result: Any, arch: Any, model: Any, scenario: Any, args: argparse.Namespace,
                  placement: Any, policies: Any, mode: str = "inference",
                  training: Any = None) -> None:
    """Put :func:`sim.record.run_record` under ``result.inputs["resolved"]`` and the model's
    file (a ``config.json``) under ``model_origin``."""
    from sim.record import run_record
    from xpusim import __version__

    result.inputs["resolved"] = run_record(
        arch, model, scenario, fidelity=args.fidelity, seed=args.seed, placement=placement,
        policies=policies, mode=mode, training=training, version=__version__)
    result.inputs.setdefault("model_origin", args.model)


def estimate_run_s(model: Any, scenario: Any) -> float:
    """Seconds the event run of ``model`` under ``scenario`` takes, roughly: ops counted as
    ``workloads.limits`` does, at 25 us per op (15-55 us measured, ``benchmarks/bench_run.py``)."""
    from workloads.limits import estimate_ops

    try:
        return estimate_ops(model, scenario) * 25e-6
    except Exception:  # noqa: BLE001 - an estimate only; the run reports real errors
        return 0.0
