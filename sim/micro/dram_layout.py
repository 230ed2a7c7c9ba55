"""Array layouts the DRAM kernel shares with its callers: packed parameters, statistics columns.

Kept apart from :mod:`sim.micro.dram` (the numba kernel) so that :mod:`sim.micro.dram_run` can
pack inputs and read results without importing numba when the ahead-of-time compiled kernel
(:mod:`sim.micro.dram_aot`) is used.
"""

from __future__ import annotations

import numpy as np

INF = np.int64(1) << np.int64(62)
NONE = -1

# packed parameters
(P_CH, P_RANKS, P_BG, P_BPG, P_BANKS, P_NQ, P_PERBANK, P_CQS, P_TQS, P_UNIFIED, P_OPEN,
 P_RDELAY, P_REFINT, P_REFPOL, P_DUAL, P_TFAW, P_GDDR, P_T32AW, P_DRAIN, P_HITCAP, P_N) = range(21)

# per-channel statistics
(S_READS, S_WRITES, S_LAT, S_RDCMD, S_WRCMD, S_ACT, S_PRE, S_REF, S_REFB, S_RDHIT, S_WRHIT,
 S_DUAL, S_N) = range(13)

FRONTEND_MODES = {"dramsim3": 0, "per_channel": 1}
TAIL_MODES = {"newline": 0, "no_newline": 1, "none": 2}
