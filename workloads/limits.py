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


#: contexts up to this multiple of a rotary or ALiBi model's trained positions run with a
#: warning (RoPE scaling - position interpolation, NTK, YaRN - serves 2-4x the trained context);
#: beyond it a run is refused as a likely mistake unless forced
CONTEXT_STRETCH = 4


def check_context(model: ModelConfig, scenario: Scenario, force: bool = False) -> str:
    """Refuse a context the model cannot address: beyond a learned position table, or more than
    :data:`CONTEXT_STRETCH` times the trained positions of a rotary model (unless ``force``).
    Return a one-line warning ('' if none) when the run leaves the trained context."""
    ctx, trained = scenario.max_context, model.max_positions
    if ctx <= trained:
        return ""
    if model.position == "learned" or (model.position == "rope" and not force
                                       and ctx > CONTEXT_STRETCH * trained):
        hint = "" if model.position == "learned" else \
            f" (more than {CONTEXT_STRETCH}x; --force runs it anyway)"
        raise WorkloadError("", "--prompt", f"prompt + generated tokens "
                                            f"({ctx:,}) exceed {model.name}'s "
                                            f"{trained:,} positions{hint}")
    return (f"--prompt: prompt + generated tokens ({ctx:,}) exceed {model.name}'s trained "
            f"context of {trained:,} positions; the run assumes it works unchanged "
            "(quality beyond the trained context is not modelled)")


def check_run_size(model: ModelConfig, scenario: Scenario, force: bool = False,
                   limit: int = MAX_OPS) -> int:
    """The estimated op count; raise :class:`WorkloadError` above ``limit`` unless ``force``."""
    check_context(model, scenario, force)
    n = estimate_ops(model, scenario)
    if n > limit and not force:
        raise WorkloadError("", "--gen", f"this run would simulate about {n:,} ops (limit "
                                         f"{limit:,}, ~{n * 15e-6:,.0f}-{n * 55e-6:,.0f} s and "
                                         f"{n / 1e6:,.1f} GB); use fewer --gen tokens, layers or "
                                         "micro-batches, or --force")
    return n
