"""Run the cycle-level DRAM model: pack a :class:`DramConfig` and requests, call the kernel, sum.

The kernel is :func:`sim.micro.dram.run_kernel` (numba); :func:`simulate` takes it from
:func:`sim.micro.dram_aot.kernels`, which returns the same source compiled ahead of time when that
build is available (no numba import, no LLVM start-up: what makes a short ``xpusim import
dramsim3`` cheap) and the numba dispatcher otherwise. This module imports no numba itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.micro.dram_aot import kernels
from sim.micro.dram_channels import channel_groups, representatives
from sim.micro.dram_config import N_CMD, DramConfig, timing_table
from sim.micro.dram_layout import FRONTEND_MODES, P_CH, TAIL_MODES, param_values
from sim.micro.dram_stats import run_figures


def sparse_timing(TT: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dense table as per-(scope, command) lists of (target, delay)."""
    S = TT.shape[0]
    TN = np.zeros((S, N_CMD), np.int64)
    TK = np.zeros((S, N_CMD, N_CMD), np.int64)
    TD = np.zeros((S, N_CMD, N_CMD), np.int64)
    for s in range(S):
        for c in range(N_CMD):
            for t in range(N_CMD):
                if TT[s, c, t] >= 0:
                    k = TN[s, c]
                    TK[s, c, k] = t
                    TD[s, c, k] = TT[s, c, t]
                    TN[s, c] = k + 1
    return TN, TK, TD



def pack_params(cfg: DramConfig) -> np.ndarray:
    """The integer parameters the kernel reads, in ``P_*`` order."""
    return np.array(param_values(cfg), dtype=np.int64)


@dataclass
class DramStats:
    """Totals over all channels of one run (cycles are memory-clock cycles)."""

    cycles: int
    requests: int
    accepted: int
    reads_done: int
    writes_done: int
    avg_read_latency_cycles: float
    read_cmds: int
    write_cmds: int
    activates: int
    precharges: int
    refreshes: int
    bank_refreshes: int
    read_row_hits: int
    write_row_hits: int
    dual_issues: int
    bandwidth_GBps: float
    energy_pJ: float
    energy_breakdown_pJ: dict
    per_channel: np.ndarray
    last_done_cycle: int
    commands: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {
            "cycles": self.cycles, "requests": self.requests, "accepted": self.accepted,
            "reads_done": self.reads_done, "writes_done": self.writes_done,
            "avg_read_latency_cycles": self.avg_read_latency_cycles,
            "activates": self.activates, "precharges": self.precharges,
            "read_row_hits": self.read_row_hits, "write_row_hits": self.write_row_hits,
            "refreshes": self.refreshes, "bank_refreshes": self.bank_refreshes,
            "bandwidth_GBps": self.bandwidth_GBps, "energy_pJ": self.energy_pJ,
        }


def simulate(cfg: DramConfig, addrs: np.ndarray, writes: np.ndarray, times: np.ndarray,
             cycles: int, frontend: str = "dramsim3", tail: str = "none",
             until_done: bool = False, log_commands: int = 0) -> DramStats:
    """Run requests (byte ``addrs``, ``writes`` flags, arrival ``times`` in cycles) on ``cfg``.

    ``frontend='dramsim3'``: one request per cycle in list order, blocking when refused (the
    DRAMsim3 trace CPU); ``'per_channel'``: each channel takes its own requests, one per cycle.
    ``tail`` mirrors how DRAMsim3 reads the trace's end: ``'newline'`` (the last line is
    re-read once as a read after end of file), ``'no_newline'`` (the last line is tried once),
    ``'none'`` (no quirk). ``until_done`` runs until every request has completed (``cycles``
    is then the limit). ``log_commands`` keeps the first that many issued commands in
    ``DramStats.commands`` (columns: cycle, command, channel, rank, bank, row).
    """
    addrs = np.asarray(addrs, dtype=np.uint64)
    writes = np.asarray(writes, dtype=np.int8)
    times = np.asarray(times, dtype=np.int64)
    n = addrs.shape[0]
    if not (writes.shape[0] == n and times.shape[0] == n):
        raise ValueError("addrs, writes and times must have the same length")
    if n and tail == "newline" and frontend == "dramsim3":
        addrs = np.append(addrs, addrs[-1])
        writes = np.append(writes, np.int8(0))
        times = np.append(times, times[-1])
    elif tail == "newline":
        tail = "none"
    fields = cfg.decode(addrs)
    if n and bool(np.all(addrs[1:] > addrs[:-1])):   # rising (a stream): each its own id
        n_addr, aid = addrs.shape[0], np.arange(addrs.shape[0], dtype=np.int64)
    else:
        uniq, aid = np.unique(addrs, return_inverse=True)
        n_addr = uniq.shape[0]
    ch = fields["ch"]
    bank = fields["bg"] * cfg.banks_per_group + fields["ba"]
    if frontend == "per_channel":
        order = np.argsort(ch, kind="stable").astype(np.int64)
        start = np.searchsorted(ch[order], np.arange(cfg.channels + 1)).astype(np.int64)
    else:
        order = np.arange(addrs.shape[0], dtype=np.int64)
        start = np.zeros(cfg.channels + 1, np.int64)
    log = np.zeros((max(int(log_commands), 0), 6), np.int64)
    i64 = [np.ascontiguousarray(a, np.int64) for a in (
        ch, fields["ra"], bank, fields["ro"], fields["co"], aid.reshape(-1))]
    timing = sparse_timing(timing_table(cfg))
    if frontend == "per_channel" and until_done and not log_commands and n:
        out = _grouped(cfg, timing, i64, writes, times, order, start, cycles)
        if out is not None:
            return out
    stats, act, idle, ticks, accepted, nlog, max_done = kernels().run_kernel(
        pack_params(cfg), *timing, *i64,
        np.ascontiguousarray(writes, np.int8), np.ascontiguousarray(times, np.int64),
        np.int64(n_addr), np.int64(FRONTEND_MODES[frontend]), order, start,
        np.int64(TAIL_MODES[tail]), np.int64(cycles), bool(until_done), log)
    out = _collect(cfg, stats, act, idle, int(ticks), n, int(accepted))
    out.commands = log[:nlog]
    out.last_done_cycle = int(max_done)
    return out


def _grouped(cfg: DramConfig, timing: tuple, i64: list[np.ndarray], writes: np.ndarray,
             times: np.ndarray, order: np.ndarray, start: np.ndarray,
             cycles: int) -> DramStats | None:
    """A per-channel run until done with one channel of each group of identical channels
    simulated (:mod:`sim.micro.dram_channels`), its statistics copied to the others; None
    where every channel differs or the reduced run reaches the cycle limit (the caller then
    runs every channel)."""
    ch, ra, bank, ro, co, aid = i64
    w64, t64 = writes.astype(np.int64), times.astype(np.int64)
    group = channel_groups(order, start, (ra, bank, ro, co, w64, t64), aid)
    if np.all(group == np.arange(len(group))):
        return None
    picked, offsets, slot = representatives(order, start, group)
    reps = len(offsets) - 1
    red_aid = aid[picked]   # (ids only name addresses: the kernel sizes its arrays to them)
    red_ch = np.repeat(np.arange(reps, dtype=np.int64), np.diff(offsets))
    params = pack_params(cfg)
    params[P_CH] = reps
    cols = [np.ascontiguousarray(a[picked], np.int64) for a in (ra, bank, ro, co)]
    stats, act, idle, ticks, accepted, _, max_done = kernels().run_kernel(
        params, *timing, red_ch, *cols, np.ascontiguousarray(red_aid, np.int64),
        np.ascontiguousarray(writes[picked], np.int8), np.ascontiguousarray(t64[picked]),
        np.int64(int(aid.max()) + 1), np.int64(FRONTEND_MODES["per_channel"]),
        np.arange(len(picked), dtype=np.int64), offsets, np.int64(TAIL_MODES["none"]),
        np.int64(cycles), True, np.zeros((0, 6), np.int64))
    if int(ticks) >= cycles or int(accepted) != len(picked):
        return None   # stopped by the limit: how far each channel got is not known
    out = _collect(cfg, stats[slot], act[slot], idle[slot], int(ticks), len(ch), len(ch))
    out.commands = np.zeros((0, 6), np.int64)
    out.last_done_cycle = int(max_done)
    return out


def _collect(cfg: DramConfig, stats: np.ndarray, act: np.ndarray, idle: np.ndarray, ticks: int,
             n: int, accepted: int) -> DramStats:
    return DramStats(**run_figures(cfg, stats.sum(axis=0), int(act.sum()), int(idle.sum()),
                                   ticks, n, accepted), per_channel=stats, last_done_cycle=-1)
