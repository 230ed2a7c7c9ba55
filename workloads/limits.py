"""How big a run is, estimated before it starts, and the limits above which a run needs ``--force``.

A trace holds one op per kernel of every layer of every step, and the event run costs about
15 us and 1 kB per op (``benchmarks/bench_run.py``: Llama-2-7B, 429,056 ops, 6.5 s, 460 MB on
one core). :func:`estimate_ops` counts the ops of a run from four one- and two-layer traces,
so ``--gen 100000`` or a 10^6-layer config is refused in milliseconds with one line instead of
running for minutes and gigabytes.
"""

from __future__ import annotations

import dataclasses

from workloads.errors import WorkloadError
from workloads.models import ModelConfig
from workloads.scenario import Scenario

#: ops a run may have without ``--force`` (15-55 s and about 1 GB of event run: tensor
#: parallelism's collectives make an op cost up to 55 us, Llama-2-13B TP 8 on a DGX H100)
MAX_OPS = 1_000_000


def estimate_ops(model: ModelConfig, scenario: Scenario) -> int:
    """Ops the full trace of ``model`` under ``scenario`` will have (exact for dense models
    with one micro-batch; micro-batches multiply it, MoE routing varies it by a few per
    cent)."""
    from workloads.tracer import trace_model

    def ops(layers: int, gen: int) -> int:
        m = dataclasses.replace(model, n_layers=layers)
        sc = dataclasses.replace(scenario, gen_len=gen, pp=1, microbatches=1)
        return len(trace_model(m, sc).ops) * scenario.microbatches

    p1, p2 = ops(1, 1), ops(2, 1)
    d1, d2 = ops(1, 2) - p1, ops(2, 2) - p2
    layers, steps = model.n_layers, scenario.gen_len - 1
    prefill = p1 + (layers - 1) * (p2 - p1)
    decode = d1 + (layers - 1) * (d2 - d1)
    sends = (scenario.pp - 1) * scenario.microbatches * scenario.gen_len
    return prefill + steps * decode + sends


def check_context(model: ModelConfig, scenario: Scenario) -> None:
    """Refuse a context longer than the model was built for (rotary and learned positions;
    ALiBi extrapolates by design)."""
    if model.position != "alibi" and scenario.max_context > model.max_positions:
        raise WorkloadError("", "--prompt", f"prompt + generated tokens "
                                            f"({scenario.max_context:,}) exceed {model.name}'s "
                                            f"{model.max_positions:,} positions")


def check_run_size(model: ModelConfig, scenario: Scenario, force: bool = False,
                   limit: int = MAX_OPS) -> int:
    """The estimated op count; raise :class:`WorkloadError` above ``limit`` unless ``force``."""
    check_context(model, scenario)
    n = estimate_ops(model, scenario)
    if n > limit and not force:
        raise WorkloadError("", "--gen", f"this run would simulate about {n:,} ops (limit "
                                         f"{limit:,}, ~{n * 15e-6:,.0f}-{n * 55e-6:,.0f} s and "
                                         f"{n / 1e6:,.1f} GB); use fewer --gen tokens, layers or "
                                         "micro-batches, or --force")
    return n
