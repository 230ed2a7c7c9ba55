"""How big a run is, estimated before it starts, and the limits above which a run needs ``--force``.

A trace holds one op per kernel of every layer of every step. :func:`estimate_ops` counts the
ops of a run from four one- and two-layer traces, so ``--gen 100000`` or a 10^6-layer config
is refused in milliseconds with one line instead of running for minutes and gigabytes.

What an op costs depends on the engine's path (:data:`COST_PER_OP`), measured as whole
``xpusim run ... --out DIR --force`` commands (start-up, trace, engine, tables, report;
``/usr/bin/time``, 2-core machine, 2026-12-04): a run of one stream per device (tensor
parallelism included) is priced a step at a time and coarsened into one event; pipeline
stages, micro-batches and expert parallelism run several streams that wait on each other and
contend for links (and, with overlapped collectives, for memory), an event per stretch of ops
between those points.
"""

from __future__ import annotations

import dataclasses

from workloads.errors import WorkloadError
from workloads.models import ModelConfig
from workloads.scenario import Scenario

#: (seconds per op, low and high; bytes of peak memory per op) of a whole run, per path:
#: ``one-stream`` (re-measured 2026-12-05, wall seconds): Llama-2-70B DGX-H100 TP8 b8 p512
#: g2048, 2,465,792 ops, 1.14 s, 671 MB (0.46 us, 272 B), Llama-2-7B H100 b8 p512 g8192,
#: 3,432,448 ops, 1.82 s, 878 MB (0.53 us, 256 B), up to 1.03 us per op on a busier run of
#: the same machine (2026-12-04); ``streams`` (planned and
#: run from arrays, sim/system/array_plan.py, sim/engine_arrays.py; re-measured 2026-12-05
#: after the engine's scans and spans were compiled, wall seconds): Llama-2-7B DGX-H100 PP2 x
#: 2 micro-batches g512, 430,080 ops, 0.66 s, 234 MB (1.5 us, 544 B), Llama-2-13B TP2 PP2 x 4
#: micro-batches g512, 1,239,040 ops, 1.18 s, 456 MB (0.95 us, 368 B), Mixtral-8x7B TP4 EP4
#: g512, 673,792 ops, 0.70 s, 296 MB (1.0 us, 439 B), the 13B run with ``--overlap``
#: (compute and communication streams share HBM), 2.15 s, 495 MB (1.7 us, 399 B),
#: Llama-2-70B TP8 b32 x 2 micro-batches g512 ``--overlap`` (each collective beside the other
#: micro-batch's compute), 1,232,896 ops, 1.52 s, 484 MB (1.2 us, 393 B), the same at g2048,
#: 4,931,584 ops, 4.81 s, 1.49 GB (0.98 us, 303 B), Llama-2-70B TP2 PP4 x 4 micro-batches b8
#: g2048, 9,887,744 ops, 6.37 s, 2.84 GB (0.64 us, 288 B); after the setup and parquet
#: changes of 2026-12-05 (bytecode cached): the g2048 overlap run 3.94-4.07 s (0.80-0.83 us),
#: the TP2 PP4 run 5.33-5.72 s, 2.88 GB (0.54-0.58 us, 291 B); after the heap pre-touch and
#: the compiled quiet runs and bounds of 2026-12-05 (second session): the TP2 PP4 run
#: 4.60-4.86 s, 2.39 GB (0.47-0.49 us, 241 B), the same with ``--overlap`` 12.7-13.4 s (1.3
#: us), TP4 PP2 x 4 micro-batches ``--overlap`` 7.4-7.7 s (0.75-0.78 us), PP8 x 8
#: micro-batches, 17,203,200 ops, 5.2-6.3 s, 3.98 GB (0.30-0.36 us, 231 B)
COST_PER_OP = {"one-stream": (0.46e-6, 1.03e-6, 272), "streams": (0.30e-6, 1.74e-6, 550)}
#: ops a run may have without ``--force``, per path (about 5-10 s and 2.7 GB of one stream;
#: 3-9 s and 1.5-2.8 GB of several streams)
MAX_OPS = {"one-stream": 10_000_000, "streams": 5_000_000}
_PATH_WORDS = {"one-stream": "one stream", "streams": "several streams"}


def engine_path(scenario: Scenario) -> str:
    """``streams`` where pipeline stages, micro-batches or expert parallelism give a device
    several streams (waits and contention between them), else ``one-stream``."""
    return "streams" if scenario.pp > 1 or scenario.microbatches > 1 or scenario.ep > 1 \
        else "one-stream"


def estimate_ops(model: ModelConfig, scenario: Scenario) -> int:
    """Ops the full trace of ``model`` under ``scenario`` will have (exact for dense models
    with one micro-batch; micro-batches multiply it, MoE routing varies it by a few per
    cent)."""
    from workloads.tracer import trace_model

    # the layers by kind (a hybrid's attention and Mamba-2 layers, a block pattern's kinds)
    if model.blocks:
        kinds = {k: model.blocks.count(k) for k in sorted(set(model.blocks))}
    else:
        kinds = {"attn": model.n_layers - model.mamba_layers(), "mamba": model.mamba_layers()}

    def ops(kind: str, layers: int, gen: int) -> int:
        if model.blocks:
            m = dataclasses.replace(model, n_layers=layers, blocks=kind * layers,
                                    block_widths=())
        else:   # a plain model's layers are all "attn"
            m = dataclasses.replace(model, n_layers=layers, attn_layers=tuple(
                range(layers)) if kind == "attn" and model.recurrent else ())
        sc = dataclasses.replace(scenario, gen_len=gen, pp=1, microbatches=1)
        return len(trace_model(m, sc).ops) * scenario.microbatches

    prefill = decode = 0
    for kind, count in kinds.items():
        if not count:
            continue
        p1, p2 = ops(kind, 1, 1), ops(kind, 2, 1)
        d1, d2 = ops(kind, 1, 2) - p1, ops(kind, 2, 2) - p2
        prefill += count * (p2 - p1)
        decode += count * (d2 - d1)
        fixed = (p1 - (p2 - p1), d1 - (d2 - d1))   # embedding, head: once, whatever the kind
    steps = scenario.gen_len - 1
    sends = (scenario.pp - 1) * scenario.microbatches * scenario.gen_len
    return prefill + fixed[0] + steps * (decode + fixed[1]) + sends


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
                   limit: int | None = None) -> int:
    """The estimated op count; raise :class:`WorkloadError` above ``limit`` (default: the
    engine path's :data:`MAX_OPS`) unless ``force``."""
    check_context(model, scenario, force)
    n = estimate_ops(model, scenario)
    path = engine_path(scenario)
    limit = MAX_OPS[path] if limit is None else limit
    if n > limit and not force:
        low, high, nbytes = COST_PER_OP[path]
        raise WorkloadError("", "--gen", f"this run would simulate about {n:,} ops (limit "
                                         f"{limit:,} with {_PATH_WORDS[path]} per device, "
                                         f"~{n * low:,.0f}-{n * high:,.0f} s and "
                                         f"{n * nbytes / 1e9:,.1f} GB); use fewer --gen "
                                         "tokens, layers or micro-batches, or --force")
    return n
