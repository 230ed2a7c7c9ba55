"""Memoised DRAM access-pattern timing for the event-driven run.

The event run asks "how fast does this memory stream this access pattern?" once per distinct
(memory, pattern) and reuses the answer for every op with that pattern. Each answer comes from
the cycle-level model (:mod:`sim.micro.dram`) run on one channel (channels are independent and
the address mapping interleaves evenly, so the per-channel figure scales with the channel count),
saturated by a per-channel front end (one request per cycle, blocking when refused).

Patterns:

* ``stream`` — consecutive bursts (weights, activations, KV cache appends);
* ``strided`` — every ``stride`` bytes (column-major walks, head-strided KV layouts);
* ``random`` — independent bursts at random addresses (gathers, embedding rows);
* ``kv_pages`` — random ``page_bytes`` pages read whole (paged KV cache: vLLM-style blocks);
* all-bank PIM sweeps live in :mod:`sim.micro.dram_pim`.

``efficiency`` is the sustained fraction of peak bandwidth; ``energy_pJ_per_byte`` includes ACT,
RD/WR, refresh and background energy by the IDD method.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim.micro.dram_config import DramConfig
from sim.micro.dram_run import simulate

PATTERNS = ("stream", "strided", "random", "kv_pages")
DEFAULT_REQUESTS = 4096


@dataclass(frozen=True)
class PatternTiming:
    """Sustained behaviour of one pattern on one channel (scale bandwidth by channels)."""

    pattern: str
    requests: int
    cycles: int
    bytes_per_channel_s: float      # sustained B/s of one channel
    efficiency: float               # of the channel's peak
    avg_read_latency_ns: float
    row_hit_rate: float
    energy_pJ_per_byte: float
    activates_per_request: float

    def bandwidth(self, channels: int) -> float:
        """Sustained bytes/s over ``channels`` channels."""
        return self.bytes_per_channel_s * channels


def _addresses(cfg: DramConfig, pattern: str, n: int, stride: int, page_bytes: int,
               seed: int) -> np.ndarray:
    req = cfg.request_bytes
    span = cfg.channel_bytes
    rng = np.random.default_rng(seed)
    if pattern == "stream":
        return (np.arange(n, dtype=np.uint64) * np.uint64(req)) % np.uint64(span)
    if pattern == "strided":
        step = max(stride, req)
        return (np.arange(n, dtype=np.uint64) * np.uint64(step)) % np.uint64(span)
    if pattern == "random":
        return rng.integers(0, span // req, n).astype(np.uint64) * np.uint64(req)
    if pattern == "kv_pages":
        per_page = max(1, page_bytes // req)
        pages = max(1, n // per_page)
        base = rng.integers(0, span // (per_page * req), pages).astype(np.uint64) \
            * np.uint64(per_page * req)
        offs = np.arange(per_page, dtype=np.uint64) * np.uint64(req)
        return (base[:, None] + offs[None, :]).reshape(-1)[:n]
    raise ValueError(f"unknown pattern '{pattern}' (expected one of {', '.join(PATTERNS)})")


@lru_cache(maxsize=512)
def pattern_timing(cfg: DramConfig, pattern: str, write_fraction: float = 0.0,
                   stride: int = 0, page_bytes: int = 0, requests: int = DEFAULT_REQUESTS,
                   seed: int = 0) -> PatternTiming:
    """Run ``pattern`` saturating one channel of ``cfg``; memoised per argument set."""
    one = cfg.with_(channels=1)
    addrs = _addresses(one, pattern, requests, stride, page_bytes, seed)
    rng = np.random.default_rng(seed + 1)
    writes = (rng.random(addrs.shape[0]) < write_fraction).astype(np.int8)
    times = np.zeros(addrs.shape[0], np.int64)
    stats = simulate(one, addrs, writes, times, cycles=200 * requests + 10_000,
                     frontend="per_channel", until_done=True)
    done = stats.reads_done + stats.writes_done
    seconds = stats.cycles * one.tCK * 1e-9
    bps = done * one.request_bytes / seconds if seconds > 0 else 0.0
    cmds = max(stats.read_cmds + stats.write_cmds, 1)
    return PatternTiming(
        pattern=pattern, requests=int(addrs.shape[0]), cycles=stats.cycles,
        bytes_per_channel_s=bps, efficiency=bps / one.peak_bandwidth,
        avg_read_latency_ns=(stats.avg_read_latency_cycles * one.tCK
                             if stats.reads_done else float("nan")),
        row_hit_rate=(stats.read_row_hits + stats.write_row_hits) / cmds,
        energy_pJ_per_byte=one.joules(stats.energy_pJ) * 1e12 / max(done * one.request_bytes,
                                                                    1),
        activates_per_request=stats.activates / max(done, 1))


def transfer_time(cfg: DramConfig, channels: int, nbytes: float, pattern: str = "stream",
                  **kw) -> float:
    """Seconds to move ``nbytes`` with ``pattern`` over ``channels`` channels of ``cfg``."""
    if nbytes <= 0:
        return 0.0
    t = pattern_timing(cfg, pattern, **kw)
    return nbytes / t.bandwidth(channels)
