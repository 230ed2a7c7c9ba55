"""Array layouts the DRAM kernel shares with its callers: packed parameters, statistics columns.

Kept apart from :mod:`sim.micro.dram` (the numba kernel) so that :mod:`sim.micro.dram_run` can
pack inputs and read results without importing numba when the ahead-of-time compiled kernel
(:mod:`sim.micro.dram_aot`) is used; imports no numpy either (:mod:`sim.micro.dram_capi`).
"""

from __future__ import annotations

INF = 1 << 62  # an int64 constant in the kernel
NONE = -1

# packed parameters
(P_CH, P_RANKS, P_BG, P_BPG, P_BANKS, P_NQ, P_PERBANK, P_CQS, P_TQS, P_UNIFIED, P_OPEN,
 P_RDELAY, P_REFINT, P_REFPOL, P_DUAL, P_TFAW, P_GDDR, P_T32AW, P_DRAIN, P_HITCAP, P_N) = range(21)

# per-channel statistics
(S_READS, S_WRITES, S_LAT, S_RDCMD, S_WRCMD, S_ACT, S_PRE, S_REF, S_REFB, S_RDHIT, S_WRHIT,
 S_DUAL, S_N) = range(13)

FRONTEND_MODES = {"dramsim3": 0, "per_channel": 1}
TAIL_MODES = {"newline": 0, "no_newline": 1, "none": 2}


def param_values(cfg) -> list[int]:
    """The integer parameters the kernel reads, in ``P_*`` order, of a
    :class:`~sim.micro.dram_config.DramConfig`."""
    P = [0] * P_N
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
