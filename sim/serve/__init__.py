"""Request-level serving simulation (``xpusim serve``; docs/serving.md).

``costs`` (iteration time from the device models, memoised), ``request`` (a request's state),
``kvcache`` (paged KV blocks, prefix caching, swap), ``replica`` (engine knobs, schedulers,
iterations, roles), ``loop`` (event queue, router, hand-offs, timeouts), ``metrics``
(percentiles, goodput, energy, invariants), ``report`` (tables, timelines, HTML).
:func:`serve` runs one homogeneous deployment end to end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sim.serve.costs import IterationModel
from sim.serve.loop import Simulation
from sim.serve.metrics import SLO, check_invariants, iteration_table, summarise
from sim.serve.replica import EngineConfig, Replica

__all__ = ["IterationModel", "EngineConfig", "Replica", "Simulation", "SLO", "ServeResult",
           "serve", "build_replicas", "finish"]


@dataclass
class ServeResult:
    """Metrics (``--json`` keys), per-request and per-iteration tables, invariants, inputs."""

    metrics: dict
    requests: pd.DataFrame
    iterations: pd.DataFrame
    invariants: dict
    inputs: dict
    sim: Simulation


#: the most replicas one serving run simulates (a large cluster of 8-GPU replicas)
MAX_REPLICAS = 4096


def build_replicas(model: IterationModel, cfg: EngineConfig, count: int = 1,
                   role: str = "mixed", start: int = 0) -> list[Replica]:
    """``count`` identical replicas (indices from ``start``); at most :data:`MAX_REPLICAS`
    (each holds its own KV cache, queues and logs: a count near 2^31 would never finish
    building)."""
    if not 1 <= count <= MAX_REPLICAS:
        from sim.devices.base import SimError

        raise SimError(f"--replicas: expected 1..{MAX_REPLICAS:,} model replicas, got {count:,}")
    return [Replica(start + i, model, cfg, role) for i in range(count)]


def finish(sim: Simulation, slo: SLO | None = None, ref: IterationModel | None = None,
           price_per_hour: float = 0.0, price_source: str = "",
           inputs: dict | None = None) -> ServeResult:
    """Check the invariants of a finished simulation and compute its metrics."""
    invariants = check_invariants(sim)
    metrics, table = summarise(sim, slo, ref, price_per_hour, price_source)
    return ServeResult(metrics, table, iteration_table(sim), invariants, inputs or {}, sim)


def serve(model: IterationModel, cfg: EngineConfig, requests, replicas: int = 1,
          router: str = "round_robin", timeout: float = math.inf, slo: SLO | None = None,
          price_per_hour: float = 0.0, price_source: str = "", progress=None,
          record_tokens: bool | None = None, inputs: dict | None = None) -> ServeResult:
    """Serve ``requests`` on ``replicas`` identical mixed replicas and summarise the run."""
    reps = build_replicas(model, cfg, replicas)
    sim = Simulation(reps, requests, router, timeout, record_tokens, progress).run()
    return finish(sim, slo, None, price_per_hour, price_source, inputs)
