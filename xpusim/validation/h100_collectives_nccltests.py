"""NCCL all-gather and reduce-scatter on one 8x H100 node (public nccl-tests logs) vs the
dgx-h100 preset; nothing is fitted on them.

Data: ``validation/nccl/h100_collectives_nccltests.csv`` (source and how it was run in the
README beside it): ``all_gather_perf`` and ``reduce_scatter_perf`` (float, 5 warm-up and 20
timed calls back to back, no CUDA graph) on 8 H100 SXM GPUs of one node with NVLS off
(``NCCL_ALGO=RING NCCL_NVLS_ENABLE=0``), 128 B to 8 GB. One thread drives every GPU (``-g 8``),
which sets the pace of calls below a few MB (a 35 us floor, as in the all-reduce logs of the same
cluster), so the suite compares the calls of at least
:data:`~xpusim.validation.h100_allreduce_nccltests.ONE_PROCESS_MIN_BYTES`, all ``test``.

Sizes as nccl-tests prints them: an all-gather's ``size`` is the gathered buffer (each rank
contributes ``size / gpus``), a reduce-scatter's the buffer each rank reduces (it keeps
``size / gpus``); ``count`` is the elements per rank of the output (all-gather: of the input),
so ``count x 4 x gpus = size`` for these float runs. The prediction is the op ``xpusim op
allgather|reducescatter --bytes B --group 8 --arch dgx-h100`` prices (``B``: what each rank
contributes, :func:`rank_bytes`) with NVLS off as in the runs, compared whole with the
in-place time, as suite ``h100-allreduce-nccltests`` compares its rows.
"""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation.h100_allreduce_nccltests import ONE_PROCESS_MIN_BYTES, TAG, devices

NAME = "h100-collectives-nccltests"
DESCRIPTION = ("NCCL all-gather and reduce-scatter (ring) on one 8x H100 node, 4 MB-8 GB "
               "(public nccl-tests logs, validation/nccl); nothing fitted")
THRESHOLD = 0.15
FILE = "h100_collectives_nccltests.csv"
#: the collectives of the file, as ``xpusim op`` names them
KINDS = ("allgather", "reducescatter")
#: B per element of the runs' ``float`` buffers
FLOAT_BYTES = 4


def rows(ctx: ValidationContext) -> list:
    """The table's rows, checked: numbers where numbers belong, a known collective, and
    ``count x 4 x gpus = size`` (the sizes' meaning, module docstring); a bad row is a
    one-line error naming the file, the row and the column. Skipped without the file."""
    from xpusim.validation._own_gpu import rows as own_rows

    path = ctx.project_data / TAG / FILE
    got = own_rows(ctx, FILE, TAG, absent=f"{path} not found (project validation data absent)")
    for r in got:
        gpus, size, count = r.int("gpus"), r.int("size_bytes"), r.int("count")
        r.num("time_us_in_place")
        if r["collective"] not in KINDS:
            raise r.fail("collective", f"expected one of {', '.join(KINDS)}, got "
                                       f"'{r['collective'][:30]}'")
        if count * FLOAT_BYTES * gpus != size:
            raise r.fail("count", f"expected count x {FLOAT_BYTES} B x gpus = size_bytes "
                                  f"({size}), got {count} x {FLOAT_BYTES} x {gpus}")
    return got


def rank_bytes(kind: str, size: int, gpus: int) -> int:
    """What each rank contributes (``xpusim op --bytes``) to a call nccl-tests prints as
    ``size``: an all-gather's share of the gathered buffer, a reduce-scatter's whole input."""
    return size // gpus if kind == "allgather" else size


def run(ctx: ValidationContext) -> list[Point]:
    from xpusim.commands.op import collective_op

    _, ring = devices()
    out = []
    for r in rows(ctx):
        kind, size, gpus = r["collective"], r.int("size_bytes"), r.int("gpus")
        if size < ONE_PROCESS_MIN_BYTES:
            continue
        cost = ring.estimate(collective_op(kind, rank_bytes(kind, size, gpus), gpus, "fp32"))
        out.append(Point(f"{r['source']} {kind} {gpus} GPUs {size} B",
                         r.num("time_us_in_place") * 1e-6, cost.latency, "test",
                         note=f"{cost.detail.get('algorithm', '')}/"
                              f"{cost.detail.get('protocol', '')}"))
    return out
