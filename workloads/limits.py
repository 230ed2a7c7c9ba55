"""How big a run is, estimated before it starts, and the limits above which a run needs ``--force``.

A trace holds one op per kernel of every layer of every step. :func:`estimate_ops` counts the
ops of a run from the templates its trace stamps, without stamping them, so ``--gen 100000``
is refused in milliseconds with one line instead of running for minutes and gigabytes. A run
is refused above :data:`MAX_OPS` ops, or where the memory it may need (:data:`COST_PER_OP`'s
bytes per op) exceeds what the machine has available.

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
import functools
import os

from workloads.errors import WorkloadError
from workloads.models import ModelConfig
from workloads.scenario import Scenario

#: (seconds per op, low and high; bytes of peak memory per op) of a whole run, per path:
#: ``xpusim run ... --force --quiet --out DIR`` under ``/usr/bin/time`` (wall seconds, peak
#: RSS, two runs each, this project's 2-core machine), runs of 2M ops and more, batch 8,
#: prompt 512, DGX-H100 unless said. The low figure is the least per op on the fast host of
#: 2026-12-07's second session, the high the most on the slower host of its first (the same
#: code ran ~1.6-1.9x faster in the second). Bytes: the most per op a run itself needs, its
#: peak RSS in process (``simulate`` and ``write_run_report``, no heap pre-touch, which the
#: CLI caps at half the available memory): 243 B for Mixtral-8x7B TP4 EP4 g2048, 2,695,168
#: ops, 0.65 GB (the CLI's RSS, 441 B, holds pre-touched heap it never uses), 238 B for
#: Llama-2-70B TP8 g2048; 123-219 B on the others (TP2 PP4 x 4 and x 8 ``--overlap`` 165
#: and 161, Qwen3-30B-A3B TP8 EP8 123, Llama-2-7B g8192 219; ``python /tmp/s63/peak.py``).
#: ``one-stream``, second session: Llama-2-70B TP8 g2048, 2,465,792 ops, 0.63-0.66 s, 0.59 GB
#: (0.26-0.27 us, 240 B); g8192, 9,863,168 ops, 1.38-1.45 s, 1.72 GB (0.14-0.15 us, 174 B);
#: prompt 128 g16000, 19,264,000 ops, 2.35-2.40 s, 3.14 GB (0.12 us, 163 B); Llama-2-7B H100
#: g8192, 3,432,448 ops, 0.96 s, 0.79 GB (0.28 us, 231 B). First session: the same g8192
#: 2.61-2.80 s; Llama-2-7B prompt 128 g16000, 6,704,000 ops, 2.31-2.98 s (0.34-0.45 us).
#: ``streams``, second session: Llama-2-70B TP2 PP4 x 4 micro-batches g2048, 9,887,744 ops,
#: 1.63-1.67 s, 1.67 GB (0.17 us, 169 B), ``--overlap`` 1.90-1.91 s, 2.25 GB (0.19 us, 228 B),
#: x 8 ``--overlap``, 19,775,488 ops, 3.21-3.28 s, 3.59 GB (0.16-0.17 us, 181 B); TP1 PP8 x 8,
#: 17,203,200 ops, 2.17-2.20 s, 2.61 GB (0.13 us, 152 B); Qwen3-30B-A3B TP8 EP8, 20,661,248
#: ops, 2.67-2.70 s, 3.13 GB (0.13 us, 152 B); DeepSeek-V3 TP8 PP2 EP8 on two DGX-H100,
#: 26,186,307 ops, 3.46-3.55 s, 3.98 GB (0.13-0.14 us, 152 B); gpt-oss-120b TP4 EP4, 8,349,824
#: ops, 1.63-1.66 s, 1.42 GB (0.20 us, 170 B); Llama-2-13B TP2 PP2 x 4 ``--overlap`` on
#: DGX-A100, 4,956,160 ops, 1.17-1.19 s, 1.0 GB (0.24 us, 200 B); Mixtral-8x7B TP4 EP4,
#: 2,695,168 ops, 0.84 s, 0.99-1.19 GB (0.31 us, 441 B). First session: TP2 PP4 x 8
#: ``--overlap`` 5.37-5.85 s (0.30 us); Mixtral-8x7B TP4 EP4 1.31-1.62 s (0.49-0.60 us).
#: (Shorter runs cost more per op: Llama-2-7B PP2 x 2 g512, 430,080 ops, 0.69-0.78 s, 1.6-1.8
#: us, 574 B, mostly start-up.)
COST_PER_OP = {"one-stream": (0.12e-6, 0.45e-6, 240), "streams": (0.13e-6, 0.60e-6, 243)}
#: ops a run may have without ``--force``, per path (a policy): about 4-18 s and at most
#: 7.3 GB at the costs above, the memory checked against what is available
#: (:func:`check_run_size`). With an exact count of the ops, every 2,048-token run of the
#: models above starts; DeepSeek-V3's ran before only because the count it had took its 58
#: mixture-of-experts layers for dense ones (2.6M ops of 26.2M)
MAX_OPS = {"one-stream": 30_000_000, "streams": 30_000_000}
_PATH_WORDS = {"one-stream": "one stream", "streams": "several streams"}


def engine_path(scenario: Scenario) -> str:
    """``streams`` where pipeline stages, micro-batches or expert parallelism give a device
    several streams (waits and contention between them), else ``one-stream``."""
    return "streams" if scenario.pp > 1 or scenario.microbatches > 1 or scenario.ep > 1 \
        else "one-stream"


def estimate_ops(model: ModelConfig, scenario: Scenario) -> int:
    """Ops the full trace of ``model`` under ``scenario`` will have: a decoder's counted from
    the templates its trace stamps (exact, :func:`workloads.tracer.count_decoder_ops`), other
    models' from one- and two-layer traces of each layer kind. Kept for the last few runs: a
    command asks up to three times (the limit, the heap, the progress bar)."""
    try:
        return _estimate_kept(model, scenario)
    except TypeError:   # a model or scenario that cannot be a key (a list in a field)
        return _estimate(model, scenario)


@functools.lru_cache(maxsize=8)
def _estimate_kept(model: ModelConfig, scenario: Scenario) -> int:
    return _estimate(model, scenario)


def _estimate(model: ModelConfig, scenario: Scenario) -> int:
    """:func:`estimate_ops`, counted."""
    from workloads.tracer import count_decoder_ops, trace_model

    if model.kind == "decoder":
        prefill, step = count_decoder_ops(model, scenario)
        return prefill + (scenario.gen_len - 1) * step

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
    engine path's :data:`MAX_OPS`) or where the run may need more memory than is available
    (:func:`available_memory`), unless ``force``."""
    check_context(model, scenario, force)
    n = estimate_ops(model, scenario)
    path = engine_path(scenario)
    limit = MAX_OPS[path] if limit is None else limit
    if force:
        return n
    low, high, nbytes = COST_PER_OP[path]
    cost = f"~{n * low:,.0f}-{n * high:,.0f} s and {n * nbytes / 1e9:,.1f} GB"
    if n > limit:
        raise WorkloadError("", "--gen", f"this run would simulate about {n:,} ops (limit "
                                         f"{limit:,} with {_PATH_WORDS[path]} per device, "
                                         f"{cost}); use fewer --gen tokens, layers or "
                                         "micro-batches, or --force")
    free = available_memory()
    if free and n * nbytes > free:
        raise WorkloadError("", "--gen", f"this run would simulate about {n:,} ops ({cost} "
                                         f"at most), more memory than the {free / 1e9:,.1f} "
                                         "GB available; use fewer --gen tokens, layers or "
                                         "micro-batches, or --force")
    return n


#: where the machine's available memory and a container's memory limit are read (cgroup v2,
#: then v1; "max" or a page-rounded 2**63 - 1: no limit)
MEMINFO = "/proc/meminfo"
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
#: beside each limit file: what the cgroup uses now (B) and the ``memory.stat`` line of its
#: page cache (reclaimable, as ``MemAvailable`` counts the machine's)
CGROUP_USAGE = {"memory.max": ("memory.current", "file"),
                "memory.limit_in_bytes": ("memory.usage_in_bytes", "total_cache")}


def available_memory() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` (B), at most what the cgroup the process runs in
    has left under its memory limit (a container's: a run cannot use more, whatever the host
    has free): the limit less its usage, its page cache counted as free (1 B where nothing is
    left); 0 where ``MemAvailable`` cannot be read (no check)."""
    free = 0
    try:
        with open(MEMINFO) as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        return 0
    for path in CGROUP_LIMITS:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < free:
            return min(free, max(1, int(text) - _cgroup_used(path)))
        break   # the first one present decides
    return free


def _cgroup_used(limit_path: str) -> int:
    """What the cgroup of ``limit_path`` uses (B) less its page cache; 0 where not read."""
    folder, name = os.path.split(limit_path)
    usage_name, cache_key = CGROUP_USAGE.get(name, ("", ""))
    try:
        with open(os.path.join(folder, usage_name)) as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return 0
    try:
        with open(os.path.join(folder, "memory.stat")) as f:
            cache = next((int(line.split()[1]) for line in f
                          if line.split()[:1] == [cache_key]), 0)
    except (OSError, ValueError, IndexError):
        cache = 0
    return max(0, used - cache)
