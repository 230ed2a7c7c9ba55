"""NAND-flash SSD model: per-request event simulation and memoised pattern timing.

``simulate(cfg, flow)`` runs one host flow (:class:`~sim.micro.flash_config.FlowSpec`) against
one drive (:class:`~sim.micro.flash_config.FlashConfig`) request by request in the numba kernel
of :mod:`sim.micro.flash_kernel` (built ahead of time: :mod:`sim.micro.flash_aot`, so a run
that prices a drive imports no numba) and returns :class:`FlashStats` (SI units: s, bytes,
bytes/s).

For the event engine the drive is a few numbers per access pattern:
``pattern_timing(cfg, kind, request_bytes, queue_depth, read_fraction)`` returns sustained
(bandwidth B/s, mean latency s, IOPS), ``page_group_read(cfg, pages)`` the time to read a group
of logical pages; both are memoised per distinct argument set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from sim.micro import flash_fields as K
from sim.micro.flash_aot import kernels
from sim.micro.flash_config import (
    RB_DELAY_READ_NS,
    SECTOR_BYTES,
    FlashConfig,
    FlashConfigError,
    FlowSpec,
)
from sim.micro.flash_rng import mqsim_state, uniform_ulong
from sim.micro.zero_pages import sparse_zeros

__all__ = ["FlashStats", "simulate", "pattern_timing", "page_group_read", "FlashConfig",
           "FlowSpec", "FlashConfigError"]

_TECH = {"SLC": 0, "MLC": 1, "TLC": 2}
#: latency histogram resolution (1 us bins) and range
_HIST_BINS = 200_000


@dataclass(frozen=True)
class FlashStats:
    """What one flow measured (SI units; ``_us`` fields are microseconds as MQSim prints)."""

    requests_served: int
    read_requests: int
    write_requests: int
    sim_time_s: float
    iops_per_s: float
    bandwidth_Bps: float
    read_bandwidth_Bps: float
    write_bandwidth_Bps: float
    bytes_transferred: int
    avg_device_response_us: float
    min_device_response_us: float
    max_device_response_us: float
    p99_device_response_us: float
    avg_read_txn_turnaround_us: float
    avg_read_txn_execution_us: float
    avg_read_txn_transfer_us: float
    avg_read_txn_waiting_us: float
    avg_write_txn_turnaround_us: float
    avg_write_txn_execution_us: float
    avg_write_txn_transfer_us: float
    avg_write_txn_waiting_us: float
    flash_read_cmds: int
    flash_multiplane_read_cmds: int
    flash_program_cmds: int
    flash_multiplane_program_cmds: int
    flash_page_reads: int
    flash_page_programs: int
    update_reads: int
    mean_chip_busy_fraction: float

    @property
    def mean_latency_s(self) -> float:
        return self.avg_device_response_us * 1e-6

    def to_dict(self) -> dict:
        return asdict(self)


def _divisors(cfg: FlashConfig) -> tuple[int, int, int, int]:
    """Divisors of a logical page number giving channel, chip, die, plane under the scheme."""
    sizes = {"C": cfg.channels, "W": cfg.chips_per_channel, "D": cfg.dies_per_chip,
             "P": cfg.planes_per_die}
    div, acc = {}, 1
    for letter in cfg.plane_scheme:
        div[letter] = acc
        acc *= sizes[letter]
    return div["C"], div["W"], div["D"], div["P"]


def _params(cfg: FlashConfig, flow: FlowSpec) -> tuple[np.ndarray, int, int]:
    spp = cfg.sectors_per_page
    req_sec = flow.request_bytes // SECTOR_BYTES
    # MQSim's host-visible sectors: per plane, int(blocks x pages x sectors x (1 - OP))
    lsa_count = cfg.planes * int(cfg.blocks_per_plane * cfg.pages_per_block * spp
                                 * (1.0 - cfg.overprovisioning))
    n_lpa = lsa_count // spp + 1
    lsa_end = int((lsa_count - 1) * flow.working_set)
    if lsa_end < req_sec:
        raise FlashConfigError(f"flow: request of {flow.request_bytes} B does not fit the "
                               f"working set of {cfg.name}")
    align_sec = max(1, flow.alignment_bytes // SECTOR_BYTES)
    # MQSim's generators: request types on seed, addresses on seed + 1
    st_type = mqsim_state(flow.seed)
    st_addr = mqsim_state(flow.seed + 1)
    if flow.kind == "seq":
        if flow.start_fraction >= 0:
            start = int(flow.start_fraction * lsa_end)
        else:
            start = uniform_ulong(st_addr, 0, lsa_end)
        if flow.aligned:
            start -= start % align_sec
    else:
        start = 0
    if flow.queue_depth >= cfg.io_queue_depth:
        raise FlashConfigError(f"flow: queue_depth: {flow.queue_depth} does not fit the NVMe "
                               f"I/O queue of {cfg.io_queue_depth} entries")
    c_div, w_div, d_div, p_div = _divisors(cfg)
    prm = np.zeros(K.NPRM, np.int64)
    prm[K.P_C] = cfg.channels
    prm[K.P_W] = cfg.chips_per_channel
    prm[K.P_D] = cfg.dies_per_chip
    prm[K.P_P] = cfg.planes_per_die
    prm[K.P_SPP] = spp
    prm[K.P_PPB] = cfg.pages_per_block
    prm[K.P_TECH] = _TECH[cfg.technology]
    prm[K.P_DIVC], prm[K.P_DIVW], prm[K.P_DIVD], prm[K.P_DIVP] = c_div, w_div, d_div, p_div
    prm[K.P_TWO] = cfg.two_unit_ps
    prm[K.P_WIDTH] = cfg.channel_width_bytes
    prm[K.P_RB] = RB_DELAY_READ_NS
    prm[K.P_FW] = cfg.controller_ns
    prm[K.P_QD] = flow.queue_depth
    prm[K.P_FETCH] = cfg.queue_fetch_size
    prm[K.P_LANES] = cfg.pcie_lanes
    prm[K.P_BPMAX] = cfg.planes * spp  # MQSim: one page per plane of back-pressure buffer
    prm[K.P_STOP] = int(round(flow.stop_time_s * 1e9))
    prm[K.P_TOTAL] = flow.total_requests
    prm[K.P_KIND] = 0 if flow.kind == "seq" else 1
    prm[K.P_REQSEC] = req_sec
    prm[K.P_ALIGN] = int(flow.aligned)
    prm[K.P_ALIGNSEC] = align_sec
    prm[K.P_LSAEND] = lsa_end
    prm[K.P_SEED] = flow.seed % (2**32)
    prm[K.P_DRAM_RCD] = cfg.dram_tRCD_ns
    prm[K.P_DRAM_CL] = cfg.dram_tCL_ns
    prm[K.P_DRAM_RP] = cfg.dram_tRP_ns
    prm[K.P_DRAM_ROW] = cfg.dram_row_bytes
    prm[K.P_DRAM_BURST] = cfg.dram_burst_bytes
    prm[K.P_STREAM0] = start
    pages_per_req = -(-req_sec // spp) + 1
    # outstanding transactions: reads of every queued request, write-backs and evictions held
    # by the back-pressure buffer (plus the request that crossed it), their update reads
    n_tx = (flow.queue_depth * pages_per_req + 4 * (prm[K.P_BPMAX] + pages_per_req + 1) + 64)
    return prm, int(n_tx), n_lpa, st_type, st_addr


def simulate(cfg: FlashConfig, flow: FlowSpec) -> FlashStats:
    """Run ``flow`` on ``cfg`` request by request; all generated requests finish."""
    prm, n_tx, n_lpa, st_type, st_addr = _params(cfg, flow)
    lat = tuple(cfg.read_ns)
    rd_lat = np.array(lat, np.int64)
    pg_lat = np.array(tuple(cfg.program_ns), np.int64)
    cmd_rd = np.array([0] + [cfg.read_cmd_ns(k) for k in range(1, 5)], np.int64)
    cmd_pg = np.array([0] + [cfg.program_cmd_ns(k) for k in range(1, 5)], np.int64)
    stats = np.zeros(K.NSTAT, np.int64)
    hist = np.zeros(_HIST_BINS, np.int64)
    read_frac = flow.read_fraction if flow.read_fraction > 0 else -1.0
    kernels().simulate_kernel(prm, float(cfg.pcie_lane_GBps), 1e9 / (cfg.dram_MTps * 1e6),
                              rd_lat, pg_lat, cmd_rd, cmd_pg, float(read_frac), n_tx,
                              sparse_zeros(n_lpa, np.int32), sparse_zeros(n_lpa, np.uint64),
                              sparse_zeros(n_lpa, np.int32), sparse_zeros(n_lpa, np.int32),
                              max(1, cfg.cache_bytes // cfg.page_bytes), st_type, st_addr,
                              stats, hist)
    return _stats(cfg, stats, hist)


def _stats(cfg: FlashConfig, s: np.ndarray, hist: np.ndarray) -> FlashStats:
    end_s = s[K.S_END] * 1e-9
    # MQSim divides by the simulated time truncated to whole seconds (when at least one)
    span = math.floor(end_s) if end_s >= 1.0 else max(end_s, 1e-12)
    n = int(s[K.S_SERVED])
    br, bw = int(s[K.S_BYTES_R]), int(s[K.S_BYTES_W])

    def avg(total: int, count: int) -> float:
        return total / count / 1000.0 if count else 0.0

    rt_n, wt_n = int(s[K.S_RT_N]), int(s[K.S_WT_N])
    p99 = 0.0
    if n:
        cum = np.cumsum(hist)
        p99 = float(np.searchsorted(cum, 0.99 * n)) + 0.5
    busy = (s[K.S_CHIP_EXEC] + s[K.S_CHIP_XFER]) / max(1, s[K.S_END]) / cfg.chips
    return FlashStats(
        requests_served=n, read_requests=int(s[K.S_SERVED_R]),
        write_requests=int(s[K.S_SERVED_W]), sim_time_s=end_s, iops_per_s=n / span,
        bandwidth_Bps=(br + bw) / span, read_bandwidth_Bps=br / span,
        write_bandwidth_Bps=bw / span, bytes_transferred=br + bw,
        avg_device_response_us=avg(int(s[K.S_RESP_SUM]), n),
        min_device_response_us=s[K.S_RESP_MIN] / 1000.0 if n else 0.0,
        max_device_response_us=s[K.S_RESP_MAX] / 1000.0, p99_device_response_us=p99,
        avg_read_txn_turnaround_us=avg(int(s[K.S_RT_SUM]), rt_n),
        avg_read_txn_execution_us=avg(int(s[K.S_RT_EXEC]), rt_n),
        avg_read_txn_transfer_us=avg(int(s[K.S_RT_XFER]), rt_n),
        avg_read_txn_waiting_us=avg(int(s[K.S_RT_SUM] - s[K.S_RT_EXEC] - s[K.S_RT_XFER]),
                                    rt_n),
        avg_write_txn_turnaround_us=avg(int(s[K.S_WT_SUM]), wt_n),
        avg_write_txn_execution_us=avg(int(s[K.S_WT_EXEC]), wt_n),
        avg_write_txn_transfer_us=avg(int(s[K.S_WT_XFER]), wt_n),
        avg_write_txn_waiting_us=avg(int(s[K.S_WT_SUM] - s[K.S_WT_EXEC] - s[K.S_WT_XFER]),
                                     wt_n),
        flash_read_cmds=int(s[K.S_RD_CMD]), flash_multiplane_read_cmds=int(s[K.S_RD_MP]),
        flash_program_cmds=int(s[K.S_PG_CMD]), flash_multiplane_program_cmds=int(s[K.S_PG_MP]),
        flash_page_reads=int(s[K.S_RD_CMD] + 2 * s[K.S_RD_MP]),
        flash_page_programs=int(s[K.S_PG_CMD] + 2 * s[K.S_PG_MP]),
        update_reads=int(s[K.S_RMW]), mean_chip_busy_fraction=float(busy))


# ---------------------------------------------------------------------------------------------
# memoised patterns for the event engine

#: simulated time per pattern point (s): long enough for thousands of requests at any depth
PATTERN_TIME_S = 0.02


def _as_config(cfg) -> FlashConfig:
    """``cfg`` itself; an arch ``flash`` section must be converted explicitly with
    :meth:`FlashConfig.from_spec` (the drive it implies adds host-link and firmware details the
    section does not state)."""
    if isinstance(cfg, FlashConfig):
        return cfg
    raise TypeError(f"expected a FlashConfig, got {type(cfg).__name__} (convert an arch flash "
                    "section with FlashConfig.from_spec)")


def _sectors(nbytes: float) -> int:
    return max(1, math.ceil(float(nbytes) / SECTOR_BYTES)) * SECTOR_BYTES


def pattern_timing(cfg, kind: str = "seq", request_bytes: float = 131072,
                   queue_depth: int = 32, read_fraction: float = 1.0,
                   seed: int = 1) -> tuple[float, float, float]:
    """Sustained (bandwidth B/s, mean latency s, IOPS) of a QUEUE_DEPTH flow on ``cfg``.

    ``cfg`` is a :class:`FlashConfig` (``FlashConfig.from_spec(arch.flash)`` for an arch
    section); ``kind`` is ``seq`` or ``rand``; requests round up to whole sectors and align to
    their size; memoised.
    """
    return _pattern_timing(_as_config(cfg), kind, _sectors(request_bytes), int(queue_depth),
                           float(read_fraction), int(seed))


@lru_cache(maxsize=512)
def _pattern_timing(cfg: FlashConfig, kind: str, request_bytes: int, queue_depth: int,
                    read_fraction: float, seed: int) -> tuple[float, float, float]:
    flow = FlowSpec(kind=kind, read_fraction=read_fraction, request_bytes=request_bytes,
                    queue_depth=queue_depth, stop_time_s=PATTERN_TIME_S, seed=seed,
                    aligned=True, alignment_bytes=request_bytes)
    st = simulate(cfg, flow)
    span = st.sim_time_s
    return (st.bytes_transferred / span, st.mean_latency_s, st.requests_served / span)


def page_group_read(cfg, pages: int, queue_depth: int = 32, pages_per_request: int = 1,
                    random: bool = True, seed: int = 1) -> tuple[float, float]:
    """Read ``pages`` logical pages (whole pages, ``pages_per_request`` per request, at most
    ``queue_depth`` requests outstanding); returns (time s, bandwidth B/s).

    ``random`` scatters the requests over the drive (KV-cache page groups); otherwise they are
    consecutive from a seeded start.
    """
    if pages < 1:
        raise FlashConfigError(f"page_group_read: pages: expected >= 1, got {pages}")
    return _page_group_read(_as_config(cfg), int(pages), int(queue_depth),
                            int(pages_per_request), bool(random), int(seed))


@lru_cache(maxsize=512)
def _page_group_read(cfg: FlashConfig, pages: int, queue_depth: int, pages_per_request: int,
                     random: bool, seed: int) -> tuple[float, float]:
    req_bytes = cfg.page_bytes * pages_per_request
    n_req = -(-pages // pages_per_request)
    flow = FlowSpec(kind="rand" if random else "seq", read_fraction=1.0,
                    request_bytes=req_bytes, queue_depth=min(queue_depth, n_req),
                    stop_time_s=0.0, total_requests=n_req, seed=seed, aligned=True,
                    alignment_bytes=req_bytes)
    st = simulate(cfg, flow)
    return st.sim_time_s, st.bytes_transferred / st.sim_time_s
