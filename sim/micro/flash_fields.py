"""The flash kernel's constants (:mod:`sim.micro.flash_kernel`): event types, chip states, the
fields of its transaction and chip rows, and the indices of its parameter and statistics arrays
(what :mod:`sim.micro.flash` fills and reads without loading the kernel or numba)."""

from __future__ import annotations

# event types
EV_START, EV_DEV_DB, EV_HOST_RREQ_SQE, EV_DEV_SQE, EV_FW = 0, 1, 2, 3, 4
EV_HOST_RREQ_WDATA, EV_DEV_WDATA, EV_DRAM_DONE, EV_HOST_CQE = 5, 6, 7, 8
EV_CMD_DONE, EV_CHIP_DONE, EV_DATA_DONE = 9, 10, 11

# chip states
IDLE, CMD_IN, READING, WRITING, WAIT_OUT, DATA_OUT = 0, 1, 2, 3, 4, 5

# transaction fields
TX_REQ, TX_LPA, TX_CHIP, TX_DIE, TX_PLANE, TX_PAGE, TX_BYTES, TX_TYPE, TX_REL = range(9)
TX_NEXT, TX_PREV, TX_T0, TX_EXEC, TX_XFER, TX_TS, TX_URG = 9, 10, 11, 12, 13, 14, 15
NTXF = 16
# chip fields
C_STAT, C_RQH, C_RQT, C_WQH, C_WQT, C_NACT, C_WAIT, C_CMDT = range(8)
C_UQH, C_UQT = 8, 9  # urgent write queue (cache evictions)
C_ACT = 10  # C_ACT .. C_ACT+3: active transactions
NCF = 14

# parameter indices (prm array)
(P_C, P_W, P_D, P_P, P_SPP, P_PPB, P_TECH, P_DIVC, P_DIVW, P_DIVD, P_DIVP, P_TWO,
 P_WIDTH, P_RB, P_FW, P_QD, P_FETCH, P_LANES, P_BPMAX, P_STOP, P_TOTAL, P_KIND, P_REQSEC,
 P_ALIGN, P_ALIGNSEC, P_LSAEND, P_SEED, P_DRAM_RCD, P_DRAM_CL, P_DRAM_RP, P_DRAM_ROW,
 P_DRAM_BURST, P_STREAM0) = range(33)
NPRM = 33

# statistics indices
(S_SERVED, S_SERVED_R, S_SERVED_W, S_RESP_SUM, S_RESP_MIN, S_RESP_MAX, S_BYTES_R, S_BYTES_W,
 S_RD_CMD, S_RD_MP, S_PG_CMD, S_PG_MP, S_END, S_RT_SUM, S_RT_EXEC, S_RT_XFER, S_RT_N,
 S_WT_SUM, S_WT_EXEC, S_WT_XFER, S_WT_N, S_GEN, S_CHIP_EXEC, S_CHIP_XFER, S_RMW) = range(25)
NSTAT = 25
