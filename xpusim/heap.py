"""How the CLI process allocates: freed memory kept for the next arrays (glibc's ``mallopt``),
and numpy's arrays on ordinary pages.

A several-stream run of a 70B model over 2,048 tokens makes and drops hundreds of arrays of
one value per op (40 MB each at 5 M ops). glibc serves a block over ``M_MMAP_THRESHOLD``
(128 KiB, raised on each free up to 32 MiB) with a fresh ``mmap`` and returns it on ``free``,
so each such array is zero-filled by the kernel page by page again: ~195,000 page faults and
1.2-3.4 s of system time in that run on a 2-core VM (issue 18). Serving blocks up to
:data:`MMAP_THRESHOLD` from the heap and not trimming it reuses the pages: ~79,000 faults,
0.6 s. Peak resident memory grows by the fragmentation (1.37 -> 1.57 GB there).

numpy asks the kernel for transparent huge pages on every array of 4 MiB or more
(``madvise``). Where the kernel defragments on such faults (``defrag`` = ``madvise``, a common
default) each 2 MiB fault may stall on compaction: the same run spent 1.3-1.5 s of system time
with them and 0.8 s without (372,649 small faults instead of 60,934), at equal user time; the
one-stream 2,048-token 70B run 0.48-0.70 s against 0.34-0.37 s. ``NUMPY_MADVISE_HUGEPAGE=0`` is
set unless the user set it (numpy reads it when it loads).

Only the command-line process does this (a library does not set its host's allocator; a
script or notebook calls :func:`tune_allocation` itself, before it imports numpy); on
a C library without ``mallopt`` (musl, macOS) or with ``XPUSIM_KEEP_FREED=0`` the allocator is
left as it is.

Kept pages still fault once, when the heap first grows into them: the TP2 x PP4 2,048-token
70B run grew its heap to 2 GB and its report thread mapped 0.5 GB more, ~690,000 faults and
1.2 s of system time on the one core that runs the simulation (its other core idle until
the report). :func:`pretouch` faults the heap a run is about to use in on that other core
first (``madvise(MADV_POPULATE_WRITE)``, which writes nothing), with one heap for every
thread, so the report's thread draws on the same pages. What a run uses past that estimate
(per op, the runs measured use 1-3 times it) is faulted in as the heap grows: glibc then
grows it by :data:`WATCH_PAD` past each request and the same thread faults each growth in
(:func:`_watch`), so the run's next arrays land on pages already there. Where a run knows
what it is about to make (a planned run's task tables: :mod:`sim.memory_hint`), it asks
first and :func:`reserve` grows the heap by that alone, no pad, faulted in on the same
thread: the 70B run with half its KV cache in host DDR grew the heap twice by the pad and
left 0.5 GB of faulted pages unused (2.87 GB resident); asked first, 2.57 GB.

The first touch of a page costs more on a VM whose balloon reports free pages to the host
(virtio ``VIRTIO_BALLOON_F_REPORTING``, as on the 2-core VM these figures come from): the
guest's freed pages go back to the host and the next touch of one faults on the host too,
at a cost that swings with the host's load (a fresh 2 GiB numpy array there: 0.3-4.9 s of
system time within a few minutes). Fewer bytes touched is the remedy that holds in every minute.
"""

from __future__ import annotations

import _thread
import os

#: ``mallopt`` parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: blocks up to this size come from the heap (B)
MMAP_THRESHOLD = 256 << 20
#: free memory at the heap's top kept before trimming (B)
TRIM_THRESHOLD = (1 << 31) - 1
#: extra heap asked for at each growth (B)
TOP_PAD = 16 << 20
#: ``mallopt``: how many heaps threads allocate from (glibc malloc.h)
M_ARENA_MAX = -8
#: ``madvise`` advice: fault pages in, writable, without writing to them (Linux 5.14+)
MADV_POPULATE_WRITE = 23
#: heap a run's op uses at its peak, at least (B): the peak of the bytes malloc holds (heap in
#: use plus mapped blocks, ``mallinfo2`` sampled every 0.5 ms, no pre-touch: what a pre-touched
#: heap must hold, its large arrays included) per op of ten whole runs (simulate and report,
#: ``python benchmarks/bench_memory.py``, 2026-12-08): 112 B (Llama-2-70B DGX-H100 PP8 x 8
#: micro-batches g2048, 17.2 M ops), 122 (TP2 x PP4 x 4 micro-batches g2048, 9.9 M ops), 132
#: (7B H100 g8192), 145 (70B TP8 x 2 micro-batches --overlap g2048), 148 (TP2 x PP4 x 8
#: --overlap g2048, 19.8 M ops), 154 (70B TP8 g2048), 201 (TP2 x PP4 x 4 g2048, half the KV
#: cache in host DDR), 203 (Mixtral TP4 EP4 g512), 258 (13B TP2 x PP2 x 4 g512), 302 (7B
#: g512, 0.2 M ops; repeated runs agree within a few %); below all of them, so what
#: is touched is used (a run that needs more grows the heap, faulted in ahead: :func:`_watch`,
#: :func:`reserve`). The 140 B of 2026-12-05 pre-touched up to 0.48 GB more than the three
#: rows under it use. In process, alternated three rounds (110 / 140 B): PP8 x 8
#: 2.79-3.02 / 2.86-4.18 s (2.16 / 2.56 GB resident), the host-DDR run 4.77-5.35 / 4.76-5.18,
#: TP2 x PP4 x 8 --overlap 4.90-5.65 / 4.92-5.47, TP2 x PP4 x 4 1.98-2.48 / 1.95-3.46 s
HEAP_PER_OP = 110
#: smallest pre-touch worth a thread (B): ~0.1 s of faults
PRETOUCH_MIN = 256 << 20
#: the heap is grown by blocks of this size (B), under :data:`MMAP_THRESHOLD` so they come from
#: the heap and not from their own mappings
PRETOUCH_BLOCK = MMAP_THRESHOLD // 2
#: bytes faulted in per ``madvise`` call (the thread takes the GIL between calls)
PRETOUCH_STEP = 32 << 20
PAGE = 4096
#: while the heap is watched (:func:`_watch`), glibc grows it by this much past each request
#: (``M_TOP_PAD``), which the watching thread faults in before the run reaches it. FITTED for
#: speed only (no result depends on it: the 12 several-stream cases are equal bit for bit
#: with and without the watch): chosen between 256 and 512 MiB on two rows, 70B DGX-H100
#: 2,048-token whole CLI runs (2026-12-05), TP4 x PP2 x 4 --overlap 5.84 -> 5.40 s median of
#: 7 (256 MiB: 5.53-5.60 s) and TP2 x PP4 x 4 --overlap 6.92 -> 6.64 s of 5; checked on rows
#: it was not chosen on, PP8 x 8 and TP2 x PP4 x 4 (equal within noise; PP8 x 8 one round
#: slower, 5.07 against 4.84 s). Above the largest burst of fresh arrays a run's engine set-up
#: asks for at once (its cross-stream tables, four int64 per op: 316 MB at 9.9M ops)
WATCH_PAD = 512 << 20
#: seconds between two looks at the heap's end while nothing grew
WATCH_EVERY = 0.005
#: whether :func:`keep_freed_memory` set the allocator in this process
_kept = [False]
#: the C library, where :func:`pretouch` watches the heap (:func:`reserve` grows it then)
_watched: list = []


def tune_allocation() -> None:
    """Before numpy loads: ordinary pages for its arrays unless the user chose, and glibc's
    freed memory kept (module docstring)."""
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    _kept[0] = keep_freed_memory()


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed blocks (module docstring). Whether it was set."""
    if os.environ.get("XPUSIM_KEEP_FREED", "1") == "0":
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD)))


def pretouch(nbytes: int) -> bool:
    """Fault ``nbytes`` (B) of heap in on another core while this thread goes on (module
    docstring): grow the heap by that much in blocks, free them (never trimmed now), and let
    a thread populate their pages, lowest first, a :data:`PRETOUCH_STEP` per call (the
    kernel's work, no GIL held); then the same thread faults in each later growth of the
    heap, which glibc now makes :data:`WATCH_PAD` larger than asked (:func:`_watch`; only
    where half the memory available holds ``nbytes`` and the pad). Every later thread
    allocates from this heap. Nothing is done below :data:`PRETOUCH_MIN`, on one CPU, or
    where :func:`tune_allocation` left the allocator alone; at most half the memory
    available is touched up front. Whether a thread started."""
    if not _kept[0] or len(os.sched_getaffinity(0)) < 2:
        return False
    half = _available_bytes() // 2
    nbytes = min(nbytes, half)
    if nbytes < PRETOUCH_MIN:
        return False
    watch = half >= nbytes + WATCH_PAD    # room for the pad too (else the pre-touch alone)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mallopt(M_TRIM_THRESHOLD, -1) != 1 or libc.mallopt(M_ARENA_MAX, 1) != 1:
        return False
    blocks = []
    for _ in range(-(-nbytes // PRETOUCH_BLOCK)):
        at = libc.malloc(PRETOUCH_BLOCK)
        if not at:
            break
        blocks.append(at)
    for at in blocks:
        libc.free(at)
    if not blocks:
        return False
    # each block's whole pages (heap memory the allocator owns, free now)
    spans = [(-(-at // PAGE) * PAGE, (at + PRETOUCH_BLOCK) // PAGE * PAGE)
             for at in sorted(blocks)]
    end = 0
    if watch:
        libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
        end = -(-(libc.sbrk(0) or 0) // PAGE) * PAGE       # the heap's end now
        if end > spans[-1][1]:     # and its free top past the blocks (its last pad)
            spans.append((spans[-1][1], end))
        libc.mallopt(M_TOP_PAD, WATCH_PAD)
        from sim.memory_hint import on_expect

        _watched[:] = [libc]
        on_expect(reserve)
    _thread.start_new_thread(_populate_and_watch, (libc, spans, end))
    return True


def reserve(nbytes: int) -> bool:
    """Make room for ``nbytes`` (B) more in the watched heap before a run asks for them
    (:mod:`sim.memory_hint`): blocks of :data:`PRETOUCH_BLOCK` taken (its free ones first)
    and given back, the heap grown by what they lacked and no pad past it (``M_TOP_PAD`` 0
    meanwhile), which the watching thread faults in (:func:`_watch`). Nothing where the heap
    is not watched or ``nbytes`` is over half the memory available. Whether it was done."""
    if not _watched or nbytes <= 0 or nbytes > _available_bytes() // 2:
        return False
    libc = _watched[0]
    libc.mallopt(M_TOP_PAD, 0)
    blocks = [libc.malloc(PRETOUCH_BLOCK) for _ in range(-(-nbytes // PRETOUCH_BLOCK))]
    for at in blocks:
        if at:
            libc.free(at)
    libc.mallopt(M_TOP_PAD, WATCH_PAD)
    return all(blocks)


def _populate_and_watch(libc, spans: list[tuple[int, int]], end: int) -> None:
    """:func:`_populate` ``spans``, then :func:`_watch` the heap from ``end`` on."""
    if _populate(libc, spans) and end:
        _watch(libc, end)


def _populate(libc, spans: list[tuple[int, int]]) -> bool:
    """Fault in the pages of ``spans`` (address ranges), a step at a time; stop where the
    kernel does not know the advice (before Linux 5.14: False)."""
    import ctypes

    for lo, hi in spans:
        for at in range(lo, hi, PRETOUCH_STEP):
            if libc.madvise(at, min(PRETOUCH_STEP, hi - at), MADV_POPULATE_WRITE) != 0 \
                    and ctypes.get_errno() == 22:       # EINVAL: advice unknown
                return False
    return True


def _watch(libc, done: int) -> None:
    """Fault in the heap past ``done`` each time it grows (``sbrk(0)``, looked at every
    :data:`WATCH_EVERY` s; never trimmed, so it only grows), until the process ends."""
    import time

    while True:
        end = (libc.sbrk(0) or 0) // PAGE * PAGE
        if end <= done:
            time.sleep(WATCH_EVERY)
            continue
        _populate(libc, [(done, end)])
        done = end


#: the fields of glibc's ``struct mallinfo2`` (malloc.h), in order
MALLINFO2_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                    "uordblks", "fordblks", "keepcost")


def malloc_info():
    """A function that returns glibc's ``mallinfo2()`` now (its fields: ``arena`` the heap's
    size, ``uordblks`` its bytes in use, ``fordblks`` free, ``keepcost`` its free top,
    ``hblkhd`` the bytes of blocks mapped on their own; B), for probes that sample it; None
    where the C library has none (before glibc 2.33, musl, macOS)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in MALLINFO2_FIELDS]

    try:
        info = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    info.restype = MallInfo2
    return info


def _available_bytes() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` (B); 0 where it cannot be read."""
    from workloads.limits import available_memory

    return available_memory()
