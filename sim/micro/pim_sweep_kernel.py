"""The PIM command schedule of :func:`sim.micro.dram_pim.sweep` as a compiled loop (numba).

The schedule is the one ``dram_pim``'s docstring describes: each rank walks its tiles (GACTs,
MACs, RDRESs, PRE), GWRITEs fill the global buffer, and the command bus takes the
earliest-ready command each cycle (a GWRITE before a rank on a tie, lower ranks first). A
full-length GEMV at ``--fidelity cycle`` issues millions of commands, one Python iteration
each before; here they run as machine code, built ahead of time with the DRAM kernel
(:mod:`sim.micro.dram_aot`). Every value is an int64 cycle count; ``INF``: never.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.micro.dram_layout import INF

# timing and shape parameters, in this order (``sweep_kernel``'s ``prm``)
(K_RANKS, K_GROUPS, K_MAC_IV, K_COL_IV, K_GW_CYCLES, K_RDRES, K_CHUNKS, K_TILES_PER_CHUNK,
 K_HALVES, K_TFAW, K_TRCDRD, K_RL, K_TRAS, K_AL, K_TRTP, K_BURST, K_READ_DELAY, K_TRP,
 K_N) = range(19)
# results, in this order: the end cycle, then the command counts and data-bus cycles
(R_CYCLES, R_GACT, R_MAC, R_RDRES, R_GW, R_PRE, R_DATA, R_N) = range(8)


@njit(cache=True, nogil=True)
def sweep_kernel(prm, per_out):
    """The schedule of ``prm`` (``K_*`` order) whose tiles read out ``per_out[i]`` MACs'
    results in turn; returns the ``R_*`` figures."""
    R, groups, mac_iv, col_iv = prm[K_RANKS], prm[K_GROUPS], prm[K_MAC_IV], prm[K_COL_IV]
    gw_cycles, rdres, chunks = prm[K_GW_CYCLES], prm[K_RDRES], prm[K_CHUNKS]
    per_chunk, halves = prm[K_TILES_PER_CHUNK], prm[K_HALVES]
    tfaw, trcd, rl, tras = prm[K_TFAW], prm[K_TRCDRD], prm[K_RL], prm[K_TRAS]
    al, trtp, burst, rdelay, trp = prm[K_AL], prm[K_TRTP], prm[K_BURST], prm[K_READ_DELAY], \
        prm[K_TRP]
    n_out = per_out.shape[0]
    tiles = chunks * per_chunk
    # rank r runs tiles r, r + R, r + 2R ... (tile k belongs to chunk k // per_chunk)
    length = np.empty(R, np.int64)
    for r in range(R):
        length[r] = (tiles - r + R - 1) // R if tiles > r else 0
    gb_ready = np.full(chunks, INF, np.int64)
    chunk_left = np.full(chunks, per_chunk, np.int64)
    chunk_done_at = np.zeros(chunks, np.int64)
    pos = np.zeros(R, np.int64)
    phase = np.zeros(R, np.int64)           # 0 GACT, 1 MAC, 2 RDRES, 3 PRE
    g_i = np.zeros(R, np.int64)
    o_i = np.zeros(R, np.int64)
    m_i = np.zeros(R, np.int64)
    last_gact = np.full(R, -(10 ** 9), np.int64)
    first_gact = np.zeros(R, np.int64)
    pre_ready = np.zeros(R, np.int64)
    col_free = np.zeros(R, np.int64)
    last_col = np.zeros(R, np.int64)
    out = np.zeros(R_N, np.int64)
    never, zero = np.int64(INF), np.int64(0)
    bus = zero
    data_free = zero
    gw_next = 0
    end = zero
    while True:
        # the next GWRITE: its half of the buffer freed by the chunk two back (one back
        # without double buffering) and the data bus free
        best_t = never
        if gw_next < chunks:
            prev = gw_next - halves
            free_at = zero
            if prev >= 0:
                free_at = chunk_done_at[prev] if chunk_left[prev] == 0 else never
            best_t = max(free_at, data_free)
        best = -1
        for r in range(R):
            if pos[r] >= length[r]:
                continue
            ph = phase[r]
            if ph == 0:
                t = max(pre_ready[r], last_gact[r] + tfaw)
            elif ph == 1:
                c = (r + pos[r] * R) // per_chunk
                t = max(col_free[r], last_gact[r] + trcd, gb_ready[c])
            elif ph == 2:
                t = max(col_free[r], data_free - rl)
            else:
                t = max(first_gact[r] + tras, last_col[r] + al + trtp)
            if t < best_t:
                best_t = t
                best = r
        if best_t >= never:
            break
        t = max(best_t, bus)
        bus = t + 1
        if best < 0:
            gb_ready[gw_next] = t + gw_cycles
            data_free = t + gw_cycles
            out[R_DATA] += gw_cycles
            out[R_GW] += 1
            gw_next += 1
            continue
        r = best
        ph = phase[r]
        if ph == 0:
            if g_i[r] == 0:
                first_gact[r] = t
            last_gact[r] = t
            out[R_GACT] += 1
            g_i[r] += 1
            if g_i[r] == groups:
                g_i[r] = 0
                phase[r] = 1
                o_i[r] = 0
                m_i[r] = 0
        elif ph == 1:
            col_free[r] = t + mac_iv
            last_col[r] = t
            out[R_MAC] += 1
            m_i[r] += 1
            if m_i[r] >= per_out[o_i[r]]:
                m_i[r] = 0
                phase[r] = 2 if rdres else 3
        elif ph == 2:
            col_free[r] = t + col_iv
            last_col[r] = t
            data_free = t + rl + burst
            out[R_DATA] += burst
            end = max(end, t + rdelay)
            out[R_RDRES] += 1
            o_i[r] += 1
            phase[r] = 1 if o_i[r] < n_out else 3
        else:
            c = (r + pos[r] * R) // per_chunk
            chunk_left[c] -= 1
            chunk_done_at[c] = max(chunk_done_at[c], last_col[r] + col_iv)
            pre_ready[r] = t + trp
            out[R_PRE] += 1
            end = max(end, t + 1)
            pos[r] += 1
            phase[r] = 0
    out[R_CYCLES] = max(end, bus)
    return out
