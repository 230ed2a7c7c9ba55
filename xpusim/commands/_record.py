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


#: CPU seconds of ``simulate()`` per op, FITTED: 0.54 and 0.41 us measured for Llama-2-7B on h100
#: (batch 8, prompt 512, 256 and 1,024 tokens; 0.33 us at 2,048), ``time.process_time`` of one
#: ``simulate()`` after a warm-up run (stop 13: lazy op-table columns, per-kind invariants; was
#: 1.2 us at stop 11); checked by tests/test_speed_report.py within 3x
SECONDS_PER_OP = 0.5e-6


def estimate_run_s(model: Any, scenario: Any) -> float:
    """Seconds the event run of ``model`` under ``scenario`` takes, roughly: ops counted as
    ``workloads.limits`` does, at :data:`SECONDS_PER_OP` each."""
    from workloads.limits import estimate_ops

    try:
        return estimate_ops(model, scenario) * SECONDS_PER_OP
    except Exception:  # noqa: BLE001 - an estimate only; the run reports real errors
        return 0.0


def estimate_report_s(n_ops: int) -> float:
    """Seconds ``write_run_report`` takes, roughly, FITTED: 0.2 s for the page and SVG figures
    plus 0.7 us per op (0.21 s at 7k ops and 0.72-0.80 s at 858k ops measured, Llama-2-7B on
    h100, CPU time; only the progress display uses it)."""
    return 0.2 + 0.7e-6 * n_ops
