"""How big a run is, estimated before it starts, and the limits above which a run needs ``--force``.

A trace holds one op per kernel of every layer of every step. :func:`estimate_ops` counts the
ops of a run from four one- and two-layer traces, so ``--gen 100000`` or a 10^6-layer config
is refused in milliseconds with one line instead of running for minutes and gigabytes.

What an op costs depends on the engine's path (:data:`COST_PER_OP`), measured as whole
``xpusim run ... --out DIR --force`` commands (start-up, trace, engine, tables, report;
``/usr/bin/time``, 2-core machine, 2026-12-07): a run of one stream per device (tensor
parallelism included) is priced a step at a time and folded; pipeline stages, micro-batches
and expert parallelism run several streams that wait on each other and contend for links
(and, with overlapped collectives, for memory), timed by the engine's compiled passes over
every op (sim/engine_arrays.py).
"""

from __future__ import annotations

import dataclasses

from workloads.errors import WorkloadError
from workloads.models import ModelConfig
from workloads.scenario import Scenario

#: (seconds per op, low and high; bytes of peak memory per op) of a whole run, per path,
#: re-measured 2026-12-07 (``xpusim run ... --force --quiet --out DIR`` under
#: ``/usr/bin/time``, wall seconds and peak RSS, two runs each, this project's 2-core
#: machine; its speed varied ~2x that day, so a busier host may take up to twice the high
#: figure), runs of 2M ops and more, batch 8, prompt 512, DGX-H100 unless said:
#: ``one-stream``: Llama-2-70B TP8 g2048, 2,465,792 ops, 0.89-1.11 s, 0.59 GB (0.36-0.45 us,
#: 238 B); the same g8192, 9,863,168 ops, 2.61-2.80 s, 1.72 GB (0.26-0.28 us, 175 B);
#: Llama-2-7B H100 g8192, 3,432,448 ops, 1.26-1.30 s, 0.79 GB (0.37-0.38 us, 231 B); the
#: same prompt 128 g16000, 6,704,000 ops, 2.31-2.98 s, 1.28 GB (0.34-0.44 us, 191 B).
#: ``streams``: Llama-2-70B TP2 PP4 x 4 micro-batches g2048, 9,887,744 ops, 2.58-3.00 s,
#: 1.67 GB (0.26-0.30 us, 169 B), the same ``--overlap`` 3.68-3.82 s, 2.23 GB (0.37-0.39 us,
#: 225 B), with 8 micro-batches, 19,775,488 ops, 5.37-5.85 s, 3.57 GB (0.27-0.30 us, 181 B);
#: TP4 PP2 x 2 g2048, 4,935,680 ops, 1.93-2.17 s, 1.00 GB (0.39-0.44 us, 202 B); TP4 PP2 x 4
#: ``--overlap`` on DGX-A100, 9,871,360 ops, 2.88-3.15 s, 2.23 GB (0.29-0.32 us, 226 B);
#: TP8 b32 x 2 ``--overlap``, 4,931,584 ops, 1.77-2.04 s, 1.03 GB (0.36-0.41 us, 208 B);
#: Llama-2-13B TP2 PP2 x 4 ``--overlap``, 4,956,160 ops, 2.13-2.27 s, 0.99 GB (0.43-0.46 us,
#: 201 B); Mixtral-8x7B TP4 EP4, 2,695,168 ops, 1.31-1.62 s, 1.19 GB (0.49-0.60 us, 441 B);
#: Qwen3-30B-A3B TP8 EP8, 20,661,248 ops, 4.39-4.60 s, 3.13 GB (0.21-0.22 us, 151 B). Low and
#: high: the least and most per op; bytes: the most per op (shorter runs cost more per op:
#: Llama-2-7B PP2 x 2 g512, 430,080 ops, 0.69-0.78 s, 1.6-1.8 us, 574 B, mostly start-up)
COST_PER_OP = {"one-stream": (0.26e-6, 0.45e-6, 238), "streams": (0.21e-6, 0.60e-6, 441)}
#: ops a run may have without ``--force``, per path: about 2-6 s and at most 2.4-4.4 GB at
#: the costs above (one limit for both: with the engine's compiled passes a run of several
#: streams per device costs about what a run of one does per op; at its 0.30-1.74 us per
#: op of 2026-12-05 it was held to 5M)
MAX_OPS = {"one-stream": 10_000_000, "streams": 10_000_000}
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
