"""An op's DRAM traffic through the cycle-level DRAM model (``--fidelity cycle``).

The traffic of one op is a sequence of *segments*: ``(base, rows, row_bytes, stride, write)``
(``rows`` runs of ``row_bytes`` bytes, ``stride`` bytes apart, starting at byte ``base``), e.g.
the rows of a tile of a row-major matrix. :func:`run_segments` turns them into the DRAM model's
requests (one per ``request_bytes`` burst, in order; writes are timed as column accesses like
reads, since the model completes a write once buffered) and runs them through
:func:`sim.micro.dram.simulate` on every channel of the configuration, each channel's front end
issuing one request per cycle (a DMA engine that keeps the controller's queues full).

Size bound: at most ``cap`` requests (default 65,536 = 4 MiB at 64 B) are simulated; a longer
stream is simulated up to the cap and its measured rate (bytes per second of the simulated
prefix) is applied to the rest. Tile loops repeat the same access shape, so the prefix covers
whole tile periods for all but the largest tiles; ``DramRun.simulated_fraction`` says how much
was simulated. Results are memoised per (configuration, segments, cap).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim.micro.dram_config import DramConfig

DEFAULT_CAP = 65536

Segment = tuple[int, int, int, int, bool]


@dataclass(frozen=True)
class DramRun:
    """Cycle-model timing of a request stream (SI units)."""

    seconds: float              # whole stream (prefix time scaled when capped)
    simulated_seconds: float    # the simulated prefix
    requests: int               # requests of the whole stream
    simulated_requests: int
    energy_J: float             # IDD energy of the prefix, scaled like the time
    row_hit_rate: float

    @property
    def simulated_fraction(self) -> float:
        return self.simulated_requests / self.requests if self.requests else 1.0


def segment_requests(seg: Segment, req: int) -> int:
    """Requests one segment issues (each row rounded out to whole bursts)."""
    base, rows, row_bytes, stride, _w = seg
    first = base // req
    if rows <= 0 or row_bytes <= 0:
        return 0
    if stride == row_bytes:
        return -(-(base + rows * row_bytes) // req) - first
    return rows * (-(-(base % req + row_bytes) // req))


def _addresses(segs: Iterable[Segment], req: int, cap: int) -> tuple[np.ndarray, np.ndarray,
                                                                      int]:
    addrs: list[np.ndarray] = []
    writes: list[np.ndarray] = []
    count = 0
    total = 0
    for seg in segs:
        base, rows, row_bytes, stride, w = seg
        n_seg = segment_requests(seg, req)
        total += n_seg
        if count >= cap or n_seg == 0:
            continue
        if stride == row_bytes:  # contiguous: one run
            lo = base // req
            a = np.arange(lo, lo + n_seg, dtype=np.uint64)
        else:
            per_row = n_seg // rows
            r = np.arange(rows, dtype=np.uint64)[:, None] * np.uint64(stride) + np.uint64(base)
            a = (r // np.uint64(req) + np.arange(per_row, dtype=np.uint64)[None, :]).ravel()
        a = a[: cap - count]
        addrs.append(a * np.uint64(req))
        writes.append(np.full(a.shape[0], 1 if w else 0, np.int8))
        count += a.shape[0]
    if not addrs:
        return np.zeros(0, np.uint64), np.zeros(0, np.int8), total
    return np.concatenate(addrs), np.concatenate(writes), total


@lru_cache(maxsize=8192)
def run_segments(cfg: DramConfig, segs: tuple[Segment, ...], cap: int = DEFAULT_CAP,
                 total_requests: int = 0, prefix_only: bool = False) -> DramRun:
    """Run ``segs`` through the cycle DRAM model (see the module docstring); memoised.

    ``total_requests`` > 0: ``segs`` is a prefix of a longer stream of that many requests (the
    time is scaled to it); ``prefix_only``: the time of the first ``cap`` requests alone."""
    from sim.micro.dram import simulate  # numba kernels load only when a cycle run needs them

    req = cfg.request_bytes
    addrs, writes, total = _addresses(segs, req, cap)
    n = int(addrs.shape[0])
    if n == 0:
        return DramRun(0.0, 0.0, 0, 0, 0.0, 0.0)
    addrs = addrs % np.uint64(cfg.channel_bytes * cfg.channels)
    # the model completes a write when its controller buffers it (DRAMsim3), so a stream that
    # ends in writes would stop the clock before they reach the banks: writes are timed as
    # column accesses like reads (same bursts, rows and bank timing; no write turnaround)
    writes = np.zeros_like(writes)
    stats = simulate(cfg, addrs, writes, np.zeros(n, np.int64), cycles=400 * n + 100_000,
                     frontend="per_channel", until_done=True)
    sim_s = stats.cycles * cfg.tCK * 1e-9
    total = n if prefix_only else max(total, total_requests)
    scale = total / n
    cmds = max(stats.read_cmds + stats.write_cmds, 1)
    return DramRun(seconds=sim_s * scale, simulated_seconds=sim_s, requests=int(total),
                   simulated_requests=n, energy_J=cfg.joules(stats.energy_pJ) * scale,
                   row_hit_rate=(stats.read_row_hits + stats.write_row_hits) / cmds)


def stream_segments(nbytes: float, base: int = 0, write_bytes: float = 0.0) -> tuple[Segment,
                                                                                       ...]:
    """A sequential read of ``nbytes`` from ``base``, then a sequential write of
    ``write_bytes`` just above it (vector ops, copies)."""
    out: list[Segment] = []
    nb, wb = int(round(nbytes)), int(round(write_bytes))
    if nb > 0:
        out.append((base, 1, nb, nb, False))
    if wb > 0:
        out.append((base + nb, 1, wb, wb, True))
    return tuple(out)
