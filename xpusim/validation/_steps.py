"""One forward pass of a model through the event engine, as the suites that time steps need."""

from __future__ import annotations


def phase_trace(model_name: str, tp: int, batch: int, prompt: int, phase: str,
                dtype: str | None = None):
    """The ``phase`` ("prefill" or "decode") trace of ``model_name``: ``batch`` requests over
    ``prompt`` tokens (a decode step attends to them), TP ``tp``, fused attention; ``dtype``
    (default the scenario's)."""
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    gen = 1 if phase == "prefill" else 2
    extra = {"dtype": dtype} if dtype else {}
    sc = Scenario(batch=batch, prompt_len=prompt, gen_len=gen, tp=tp, attention="flash",
                  **extra)
    return trace_model(get_model(model_name), sc, phases=(phase,))


def step_time(device, trace) -> float:
    """Seconds the event engine takes to run ``trace`` on ``device``."""
    from sim.engine import Engine

    return float(Engine({"device0": device}).run(trace).end.max())
