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
from sim.micro.dram_config import N_CMD, DramConfig, timing_table
from sim.micro.dram_layout import (
    FRONTEND_MODES,
    P_BANKS,
    P_BG,
    P_BPG,
    P_CH,
    P_CQS,
    P_DRAIN,
    P_DUAL,
    P_GDDR,
    P_HITCAP,
    P_N,
    P_NQ,
    P_OPEN,
    P_PERBANK,
    P_RANKS,
    P_RDELAY,
    P_REFINT,
    P_REFPOL,
    P_T32AW,
    P_TFAW,
    P_TQS,
    P_UNIFIED,
    S_ACT,
    S_DUAL,
    S_LAT,
    S_PRE,
    S_RDCMD,
    S_RDHIT,
    S_READS,
    S_REF,
    S_REFB,
    S_WRCMD,
    S_WRHIT,
    S_WRITES,
    TAIL_MODES,
)


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
    P = np.zeros(P_N, np.int64)
    P[P_CH] = cfg.channels
    P[P_RANKS] = cfg.ranks
    P[P_BG] = cfg.bankgroups
    P[P_BPG] = cfg.banks_per_group
    P[P_BANKS] = cfg.banks
    per_bank = cfg.queue_structure == "PER_BANK"
    P[P_NQ] = cfg.ranks * cfg.banks if per_bank else cfg.ranks
    P[P_PERBANK] = 1 if per_bank else 0
    P[P_CQS] = cfg.cmd_queue_size
    P[P_TQS] = cfg.trans_queue_size
    P[P_UNIFIED] = 1 if cfg.unified_queue else 0
    P[P_OPEN] = 1 if cfg.row_buf_policy == "OPEN_PAGE" else 0
    P[P_RDELAY] = cfg.read_delay
    P[P_REFINT] = cfg.refresh_interval
    P[P_REFPOL] = {"RANK_LEVEL_STAGGERED": 0, "RANK_LEVEL_SIMULTANEOUS": 1,
                   "BANK_LEVEL_STAGGERED": 2}[cfg.refresh_policy]
    P[P_DUAL] = 1 if cfg.dual_command_issue else 0
    P[P_TFAW] = cfg.tFAW
    P[P_GDDR] = 1 if cfg.is_gddr else 0
    P[P_T32AW] = cfg.t32AW
    P[P_DRAIN] = cfg.write_drain_threshold
    P[P_HITCAP] = cfg.row_hit_cap
    return P


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
    uniq, aid = np.unique(addrs, return_inverse=True)
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
    stats, act, idle, ticks, accepted, nlog, max_done = kernels().run_kernel(
        pack_params(cfg), *sparse_timing(timing_table(cfg)), *i64,
        np.ascontiguousarray(writes, np.int8), np.ascontiguousarray(times, np.int64),
        np.int64(uniq.shape[0]), np.int64(FRONTEND_MODES[frontend]), order, start,
        np.int64(TAIL_MODES[tail]), np.int64(cycles), bool(until_done), log)
    out = _collect(cfg, stats, act, idle, int(ticks), n, int(accepted))
    out.commands = log[:nlog]
    out.last_done_cycle = int(max_done)
    return out


def _collect(cfg: DramConfig, stats: np.ndarray, act: np.ndarray, idle: np.ndarray, ticks: int,
             n: int, accepted: int) -> DramStats:
    tot = stats.sum(axis=0)
    e = cfg.energies_pJ()
    breakdown = {
        "act": float(tot[S_ACT] * e["act"]),
        "read": float(tot[S_RDCMD] * e["read"]),
        "write": float(tot[S_WRCMD] * e["write"]),
        "refresh": float(tot[S_REF] * e["ref"] + tot[S_REFB] * e["refb"]),
        "background": float(act.sum() * e["act_standby"] + idle.sum() * e["pre_standby"]),
    }
    reads = int(tot[S_READS])
    done = reads + int(tot[S_WRITES])
    seconds = ticks * cfg.tCK * 1e-9
    return DramStats(
        cycles=ticks, requests=n, accepted=accepted, reads_done=reads,
        writes_done=int(tot[S_WRITES]),
        avg_read_latency_cycles=float(tot[S_LAT]) / reads if reads else float("nan"),
        read_cmds=int(tot[S_RDCMD]), write_cmds=int(tot[S_WRCMD]), activates=int(tot[S_ACT]),
        precharges=int(tot[S_PRE]), refreshes=int(tot[S_REF]), bank_refreshes=int(tot[S_REFB]),
        read_row_hits=int(tot[S_RDHIT]), write_row_hits=int(tot[S_WRHIT]),
        dual_issues=int(tot[S_DUAL]),
        bandwidth_GBps=done * cfg.request_bytes / seconds / 1e9 if seconds > 0 else 0.0,
        energy_pJ=float(sum(breakdown.values())), energy_breakdown_pJ=breakdown,
        per_channel=stats, last_done_cycle=-1)

