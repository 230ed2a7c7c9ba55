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


#: CPU seconds of ``simulate()`` per op, FITTED on Llama-2-7B on h100 (batch 8, prompt 512) at
#: 512 and 1,024 tokens: 0.115 and 0.091 us, ``time.process_time`` of one ``simulate()`` after
#: a warm-up run, median of 5 (2026-12-07; 0.54 / 0.41 us at stop 13, when it was 0.5 us);
#: tested on 256 tokens (0.163 us, tests/test_speed_report.py, within 3x); 0.082 at 2,048, and
#: 0.12 us for the 9.9M-op 70B TP2 x PP4 x 4 run. Only the progress display uses it.
SECONDS_PER_OP = 0.1e-6
#: bare SimPy's timeouts per CPU second on a host where :data:`SECONDS_PER_OP` holds, FITTED
#: on the same rows (Llama-2-7B on h100, 512 and 1,024 tokens): one op of those runs costs
#: what 0.208 and 0.169 SimPy timeouts cost (each ``simulate()`` paired with bare SimPy
#: measured right after it, median of 5, 2026-12-07), their mean ~0.19, so 0.19 / 0.1 us;
#: tested on 256 tokens (0.278: tests/test_speed_report.py, within 3x, which scales the
#: estimate by the rate it measures beside its run; this 2-core host's rate swings 0.56-1.8 M
#: within minutes). Only that test reads it.
SIMPY_RATE_AT_FIT = 1.9e6


def estimate_run_s(model: Any, scenario: Any) -> float:
    """Seconds the event run of ``model`` under ``scenario`` takes, roughly: ops counted as
    ``workloads.limits`` does, at :data:`SECONDS_PER_OP` each."""
    from workloads.limits import estimate_ops

    try:
        return estimate_ops(model, scenario) * SECONDS_PER_OP
    except Exception:  # noqa: BLE001 - an estimate only; the run reports real errors
        return 0.0


def run_progress(model: Any, scenario: Any, fidelity: str, arch_name: str) -> tuple[float, str]:
    """``(estimate s, key)`` for the run's progress bar (:func:`xpusim.progress.timed`): the
    per-op estimate, except at ``cycle`` fidelity, whose ops run cycle-level models at costs no
    op count predicts (a NeuPIMs run at 1,792 tokens: 10 s against 0.07 s estimated): there
    the last duration of the same run (``key``), else elapsed time only."""
    if fidelity != "cycle":
        return estimate_run_s(model, scenario), ""
    return 0.0, f"run:{arch_name}:{model.name}:{fidelity}:{scenario!r}"


def estimate_report_s(n_ops: int) -> float:
    """Seconds ``write_run_report`` takes, roughly, FITTED: 0.2 s for the page and SVG figures
    plus 0.7 us per op (0.21 s at 7k ops and 0.72-0.80 s at 858k ops measured, Llama-2-7B on
    h100, CPU time; only the progress display uses it)."""
    return 0.2 + 0.7e-6 * n_ops
