"""Event kernel of the NAND-flash SSD model (numba, integer nanoseconds).

One simulation is one host flow against one drive. The mechanisms follow MQSim's
(CMU-SAFARI/MQSim: ``IO_Flow_Synthetic``, ``Host_Interface_NVMe``, ``PCIe_Link``,
``Data_Cache_Manager_Flash_Advanced``, ``Address_Mapping_Unit_Page_Level``,
``TSU_Priority_OutOfOrder``, ``NVM_PHY_ONFI_NVDDR2``), re-expressed over flat arrays:

* host: QUEUE_DEPTH flow; each submission rings the SQ doorbell, each completion entry rings
  the CQ doorbell and (before the stop time) submits the next request;
* PCIe: two FIFO directions, each message ``pcie_ns(payload)``; the device fetches one SQ entry
  per doorbell (read request + 72-byte completion), write data by a read request, returns read
  data and a 16-byte completion entry;
* firmware: requests split into page transactions; static plane allocation of a logical page;
  the page inside the plane is the plane's write frontier (never-written pages are mapped on
  first read); sub-page writes of a mapped page read the rest first (read-modify-write);
* write cache: written data goes to DRAM (one FIFO channel) and the request completes there; cold
  pages are written back at once, bounded by a back-pressure buffer of one page per plane;
* TSU: per-chip read and write queues, reads first; a chip takes a command only when idle; one
  command holds up to ``planes`` transactions of one die with the same page offset; channels
  serve their chips round robin whenever the bus goes idle;
* PHY: command (+data-in) cycles hold the bus, then the die executes; read data waits for the bus
  and leaves in FIFO order per channel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# event types
EV_START, EV_DEV_DB, EV_HOST_RREQ_SQE, EV_DEV_SQE, EV_FW = 0, 1, 2, 3, 4
EV_HOST_RREQ_WDATA, EV_DEV_WDATA, EV_DRAM_DONE, EV_HOST_CQE = 5, 6, 7, 8
EV_CMD_DONE, EV_CHIP_DONE, EV_DATA_DONE = 9, 10, 11

# chip states
IDLE, CMD_IN, READING, WRITING, WAIT_OUT, DATA_OUT = 0, 1, 2, 3, 4, 5

# transaction fields
TX_REQ, TX_LPA, TX_CHIP, TX_DIE, TX_PLANE, TX_PAGE, TX_BYTES, TX_TYPE, TX_REL = range(9)
TX_NEXT, TX_PREV, TX_T0, TX_EXEC, TX_XFER = 9, 10, 11, 12, 13
NTXF = 14
# chip fields
C_STAT, C_RQH, C_RQT, C_WQH, C_WQT, C_NACT, C_WAIT, C_CMDT = range(8)
C_ACT = 8  # C_ACT .. C_ACT+3: active transactions
NCF = 12

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


@njit(cache=True)
def _hpush(ht, hs, hy, ha, hn, seq, t, typ, arg):
    i = hn[0]
    hn[0] += 1
    s = seq[0]
    seq[0] += 1
    while i > 0:
        p = (i - 1) >> 1
        if ht[p] < t or (ht[p] == t and hs[p] < s):
            break
        ht[i] = ht[p]
        hs[i] = hs[p]
        hy[i] = hy[p]
        ha[i] = ha[p]
        i = p
    ht[i] = t
    hs[i] = s
    hy[i] = typ
    ha[i] = arg


@njit(cache=True)
def _hpop(ht, hs, hy, ha, hn):
    t0 = ht[0]
    y0 = hy[0]
    a0 = ha[0]
    n = hn[0] - 1
    hn[0] = n
    t = ht[n]
    s = hs[n]
    y = hy[n]
    a = ha[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hs[c + 1] < hs[c])):
            c += 1
        if t < ht[c] or (t == ht[c] and s < hs[c]):
            break
        ht[i] = ht[c]
        hs[i] = hs[c]
        hy[i] = hy[c]
        ha[i] = ha[c]
        i = c
    if n > 0:
        ht[i] = t
        hs[i] = s
        hy[i] = y
        ha[i] = a
    return t0, y0, a0


@njit(cache=True)
def _pcie_ns(payload, read_request, lanes, lane_gbps):
    if read_request:
        total = 32
    else:
        total = (payload // 128) * 156
        rest = payload % 128
        if rest:
            total += rest + 28
    beats = (total + lanes - 1) // lanes
    return np.int64(beats / lane_gbps)


@njit(cache=True)
def _dram_ns(nbytes, prm, beat):
    row = prm[P_DRAM_ROW]
    burst = prm[P_DRAM_BURST]
    rcd = prm[P_DRAM_RCD]
    cl = prm[P_DRAM_CL]
    if nbytes <= row:
        return np.int64(rcd + cl + np.int64((nbytes // burst // 2) * beat))
    per_row = rcd + cl + np.int64((row // burst // 2) * beat) + prm[P_DRAM_RP]
    return np.int64(per_row * (nbytes // row // 2) + rcd + cl
                    + np.int64((nbytes % row) / (burst * beat)))


@njit(cache=True)
def _page_type(page, tech):
    if tech == 1:
        return page % 2
    if tech == 2:
        if page <= 5:
            return 0
        if page <= 7:
            return 1
        return ((page - 8) >> 1) % 3
    return 0


@njit(cache=True)
def _q_append(tx, chip, g, t, head_f, tail_f):
    tx[t, TX_NEXT] = -1
    tx[t, TX_PREV] = chip[g, tail_f]
    if chip[g, tail_f] >= 0:
        tx[chip[g, tail_f], TX_NEXT] = t
    else:
        chip[g, head_f] = t
    chip[g, tail_f] = t


@njit(cache=True)
def _q_remove(tx, chip, g, t, head_f, tail_f):
    p = tx[t, TX_PREV]
    n = tx[t, TX_NEXT]
    if p >= 0:
        tx[p, TX_NEXT] = n
    else:
        chip[g, head_f] = n
    if n >= 0:
        tx[n, TX_PREV] = p
    else:
        chip[g, tail_f] = p


@njit(cache=True)
def _map_page(lpa, is_write, bits, prm, lpa_page, lpa_bits, plane_wf, tx, t, stats):
    """Static plane of ``lpa`` and its page offset; returns the old page (+1) for RMW or 0."""
    c = prm[P_C]
    w = prm[P_W]
    d = prm[P_D]
    p = prm[P_P]
    ch = (lpa // prm[P_DIVC]) % c
    wy = (lpa // prm[P_DIVW]) % w
    di = (lpa // prm[P_DIVD]) % d
    pl = (lpa // prm[P_DIVP]) % p
    g = ch * w + wy
    tx[t, TX_CHIP] = g
    tx[t, TX_DIE] = di
    tx[t, TX_PLANE] = pl
    plane = (g * d + di) * p + pl
    old = lpa_page[lpa]
    if is_write == 0 and old > 0:
        tx[t, TX_PAGE] = (old - 1) % prm[P_PPB]
        return 0
    counter = plane_wf[plane]
    plane_wf[plane] = counter + 1
    lpa_page[lpa] = counter + 1
    tx[t, TX_PAGE] = counter % prm[P_PPB]
    if is_write == 0:
        lpa_bits[lpa] = bits
        return 0
    prev = lpa_bits[lpa]
    lpa_bits[lpa] = prev | bits
    if old > 0 and (prev & ~bits) != 0:
        return old
    return 0


@njit(cache=True)
def _start_data_out(t, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats):
    g = tx[t, TX_CHIP]
    ch = g // prm[P_W]
    chip[g, C_STAT] = DATA_OUT
    chan[ch, 0] = 1
    dt = (tx[t, TX_BYTES] // prm[P_WIDTH] // 2) * prm[P_TWO]
    tx[t, TX_XFER] += dt
    stats[S_CHIP_XFER] += dt
    _hpush(ht, hs, hy, ha, hn, seq, now + dt, EV_DATA_DONE, t)


@njit(cache=True)
def _tsu_channel(ch, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats, cmd_rd, cmd_pg):
    """MQSim's channel-idle handler: offer the bus to the chips round robin."""
    w = prm[P_W]
    for _ in range(w):
        g = ch * w + chan[ch, 1]
        if chip[g, C_STAT] == IDLE:
            if chip[g, C_RQH] >= 0:
                _issue(g, 0, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats, cmd_rd,
                       cmd_pg)
            elif chip[g, C_WQH] >= 0:
                _issue(g, 1, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats, cmd_rd,
                       cmd_pg)
        chan[ch, 1] = (chan[ch, 1] + 1) % w
        if chan[ch, 0] != 0:
            break


@njit(cache=True)
def _issue(g, is_write, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats, cmd_rd,
           cmd_pg):
    """TSU_Base::issue_command_to_chip + PHY Send_command_to_chip for one chip."""
    hf = C_WQH if is_write else C_RQH
    tf = C_WQT if is_write else C_RQT
    front = chip[g, hf]
    die = tx[front, TX_DIE]
    page = tx[front, TX_PAGE]
    vec = 0
    n = 0
    t = front
    while t >= 0 and n < prm[P_P]:
        nxt = tx[t, TX_NEXT]
        ready = (is_write == 0) or tx[t, TX_REL] < 0
        if ready and tx[t, TX_DIE] == die and (vec & (1 << tx[t, TX_PLANE])) == 0:
            if vec == 0 or tx[t, TX_PAGE] == page:
                vec |= 1 << tx[t, TX_PLANE]
                _q_remove(tx, chip, g, t, hf, tf)
                chip[g, C_ACT + n] = t
                n += 1
        t = nxt
    if n == 0:
        return
    chip[g, C_NACT] = n
    ch = g // prm[P_W]
    chan[ch, 0] = 1
    chip[g, C_STAT] = CMD_IN
    if is_write:
        dt = cmd_pg[n]
        data = 0
        for i in range(n):
            t = chip[g, C_ACT + i]
            dd = (tx[t, TX_BYTES] // prm[P_WIDTH] // 2) * prm[P_TWO]
            tx[t, TX_XFER] += cmd_pg[n] + dd
            data += dd
        dt += data
        if n == 1:
            stats[S_PG_CMD] += 1
        else:
            stats[S_PG_MP] += 1
    else:
        dt = cmd_rd[n]
        for i in range(n):
            tx[chip[g, C_ACT + i], TX_XFER] += dt
        if n == 1:
            stats[S_RD_CMD] += 1
        else:
            stats[S_RD_MP] += 1
    stats[S_CHIP_XFER] += dt
    chip[g, C_CMDT] = is_write
    _hpush(ht, hs, hy, ha, hn, seq, now + dt, EV_CMD_DONE, g)


@njit(cache=True)
def simulate_kernel(prm, lane_gbps, dram_beat, rd_lat, pg_lat, cmd_rd, cmd_pg, read_frac,
                    n_tx, n_lpa, stats, lat_hist):
    """Run one flow; fills ``stats`` (see S_*) and returns nothing."""
    c = prm[P_C]
    w = prm[P_W]
    d = prm[P_D]
    p = prm[P_P]
    g_n = c * w
    spp = prm[P_SPP]
    qd = prm[P_QD]
    lanes = prm[P_LANES]
    np.random.seed(prm[P_SEED])
    tech = prm[P_TECH]

    tx = np.zeros((n_tx, NTXF), np.int64)
    free_tx = np.arange(n_tx - 1, -1, -1).astype(np.int64)
    n_free = n_tx
    chip = np.zeros((g_n, NCF), np.int64)
    for g in range(g_n):
        chip[g, C_RQH] = -1
        chip[g, C_RQT] = -1
        chip[g, C_WQH] = -1
        chip[g, C_WQT] = -1
    chan = np.zeros((c, 2), np.int64)  # busy, round-robin turn
    wcap = w * p * d + 1
    chan_wait = np.zeros((c, wcap), np.int64)
    chan_wh = np.zeros(c, np.int64)
    chan_wn = np.zeros(c, np.int64)
    lpa_page = np.zeros(n_lpa, np.int32)
    lpa_bits = np.zeros(n_lpa, np.uint64)
    plane_wf = np.zeros(g_n * d * p, np.int64)

    hcap = 8 * qd + 8 * g_n + 8 * c + 2 * n_tx + 64
    ht = np.zeros(hcap, np.int64)
    hs = np.zeros(hcap, np.int64)
    hy = np.zeros(hcap, np.int64)
    ha = np.zeros(hcap, np.int64)
    hn = np.zeros(1, np.int64)
    seq = np.zeros(1, np.int64)

    nreq = qd + 1
    r_type = np.zeros(nreq, np.int64)
    r_lsa = np.zeros(nreq, np.int64)
    r_sec = np.zeros(nreq, np.int64)
    r_enq = np.zeros(nreq, np.int64)
    r_left = np.zeros(nreq, np.int64)  # flash read transactions outstanding
    r_wnext = np.zeros(nreq, np.int64)  # write: next sector to buffer
    r_wleft = np.zeros(nreq, np.int64)  # write: sectors not yet buffered
    r_dram = np.zeros(nreq, np.int64)  # sectors in DRAM writes not finished
    r_waiting = np.zeros(nreq, np.int64)
    free_req = np.arange(nreq - 1, -1, -1).astype(np.int64)
    n_free_req = nreq
    sq_fifo = np.zeros(nreq + 1, np.int64)
    sq_h = 0
    sq_n = 0
    wait_list = np.zeros(nreq, np.int64)
    n_wait = 0
    dram_fifo_r = np.zeros(4 * nreq + 4, np.int64)
    dram_fifo_s = np.zeros(4 * nreq + 4, np.int64)
    dram_cap = 4 * nreq + 4
    dram_h = 0
    dram_n = 0
    dram_free = np.int64(0)
    to_host_free = np.int64(0)
    to_dev_free = np.int64(0)
    on_fly = 0
    sq_pending = 0
    bp_depth = 0
    bp_max = prm[P_BPMAX]
    stop = prm[P_STOP]
    total = prm[P_TOTAL]
    req_sec = prm[P_REQSEC]
    lsa_end = prm[P_LSAEND]
    stream_next = prm[P_STREAM0]
    generated = 0
    stats[S_RESP_MIN] = np.int64(1) << 62
    sched_all = False
    todo = np.zeros(c + 1, np.int64)
    n_todo = 0
    fw = prm[P_FW]
    single = -1
    prog_chip = -1
    nbins = lat_hist.shape[0]

    _hpush(ht, hs, hy, ha, hn, seq, np.int64(1), EV_START, 0)
    now = np.int64(0)
    while hn[0] > 0:
        now, typ, arg = _hpop(ht, hs, hy, ha, hn)
        sched_all = False
        n_todo = 0
        if typ == EV_START or typ == EV_HOST_CQE:
            n_new = qd
            if typ == EV_HOST_CQE:
                r = arg
                resp = now - r_enq[r]
                stats[S_SERVED] += 1
                stats[S_RESP_SUM] += resp
                if resp < stats[S_RESP_MIN]:
                    stats[S_RESP_MIN] = resp
                if resp > stats[S_RESP_MAX]:
                    stats[S_RESP_MAX] = resp
                b = resp // 1000
                if b >= nbins:
                    b = nbins - 1
                lat_hist[b] += 1
                if r_type[r] == 0:
                    stats[S_SERVED_R] += 1
                    stats[S_BYTES_R] += r_sec[r] * 512
                else:
                    stats[S_SERVED_W] += 1
                    stats[S_BYTES_W] += r_sec[r] * 512
                free_req[n_free_req] = r
                n_free_req += 1
                # CQ head doorbell
                to_dev_free = max(now, to_dev_free) + _pcie_ns(2, False, lanes, lane_gbps)
                n_new = 1
            for _ in range(n_new):
                if stop > 0:
                    if now > stop:
                        break
                elif generated >= total:
                    break
                n_free_req -= 1
                r = free_req[n_free_req]
                generated += 1
                if np.random.random() <= read_frac:
                    r_type[r] = 0
                else:
                    r_type[r] = 1
                r_sec[r] = req_sec
                if prm[P_KIND] == 0:
                    start = stream_next
                    if start + req_sec > lsa_end:
                        start = 0
                    stream_next += req_sec
                    if stream_next > lsa_end:
                        stream_next = 0
                    if prm[P_ALIGN] and stream_next % prm[P_ALIGNSEC] != 0:
                        stream_next += prm[P_ALIGNSEC] - stream_next % prm[P_ALIGNSEC]
                else:
                    start = np.random.randint(0, lsa_end + 1)
                    if start + req_sec > lsa_end:
                        start = 0
                if prm[P_ALIGN]:
                    start -= start % prm[P_ALIGNSEC]
                r_lsa[r] = start
                r_enq[r] = now
                sq_fifo[(sq_h + sq_n) % (nreq + 1)] = r
                sq_n += 1
                to_dev_free = max(now, to_dev_free) + _pcie_ns(2, False, lanes, lane_gbps)
                _hpush(ht, hs, hy, ha, hn, seq, to_dev_free, EV_DEV_DB, 0)
        elif typ == EV_DEV_DB:
            if on_fly < prm[P_FETCH]:
                on_fly += 1
                r = sq_fifo[sq_h]
                sq_h = (sq_h + 1) % (nreq + 1)
                sq_n -= 1
                to_host_free = max(now, to_host_free) + _pcie_ns(4, True, lanes, lane_gbps)
                _hpush(ht, hs, hy, ha, hn, seq, to_host_free, EV_HOST_RREQ_SQE, r)
            else:
                sq_pending += 1
        elif typ == EV_HOST_RREQ_SQE:
            to_dev_free = max(now, to_dev_free) + _pcie_ns(72, False, lanes, lane_gbps)
            _hpush(ht, hs, hy, ha, hn, seq, to_dev_free, EV_DEV_SQE, arg)
        elif typ == EV_DEV_SQE and fw > 0:
            _hpush(ht, hs, hy, ha, hn, seq, now + fw, EV_FW, arg)
        elif typ == EV_DEV_SQE or typ == EV_FW:
            r = arg
            if r_type[r] == 1:
                to_host_free = max(now, to_host_free) + _pcie_ns(4, True, lanes, lane_gbps)
                _hpush(ht, hs, hy, ha, hn, seq, to_host_free, EV_HOST_RREQ_WDATA, r)
            else:
                lsa = r_lsa[r]
                left = r_sec[r]
                cnt = 0
                while left > 0:
                    size = spp - lsa % spp
                    if size > left:
                        size = left
                    lpa = (lsa // spp) % n_lpa
                    bits = ((np.uint64(1) << np.uint64(size)) - np.uint64(1)) \
                        << np.uint64(lsa % spp)
                    if size == 64:
                        bits = ~np.uint64(0)
                    n_free -= 1
                    t = free_tx[n_free]
                    tx[t, TX_REQ] = r
                    tx[t, TX_LPA] = lpa
                    tx[t, TX_BYTES] = size * 512
                    tx[t, TX_TYPE] = 0
                    tx[t, TX_REL] = -1
                    tx[t, TX_T0] = now
                    tx[t, TX_EXEC] = 0
                    tx[t, TX_XFER] = 0
                    _map_page(lpa, 0, bits, prm, lpa_page, lpa_bits, plane_wf, tx, t, stats)
                    _q_append(tx, chip, tx[t, TX_CHIP], t, C_RQH, C_RQT)
                    cnt += 1
                    lsa += size
                    left -= size
                r_left[r] = cnt
                r_dram[r] = 0
                sched_all = True
        elif typ == EV_HOST_RREQ_WDATA:
            to_dev_free = max(now, to_dev_free) + _pcie_ns(r_sec[arg] * 512, False, lanes,
                                                           lane_gbps)
            _hpush(ht, hs, hy, ha, hn, seq, to_dev_free, EV_DEV_WDATA, arg)
        elif typ == EV_DEV_WDATA:
            r = arg
            r_wnext[r] = r_lsa[r]
            r_wleft[r] = r_sec[r]
            r_dram[r] = 0
            r_left[r] = 0
            r_waiting[r] = 0
            single = r
            typ = -1  # destage this request below
        elif typ == EV_DRAM_DONE:
            r = dram_fifo_r[dram_h]
            s = dram_fifo_s[dram_h]
            dram_h = (dram_h + 1) % dram_cap
            dram_n -= 1
            r_dram[r] -= s
            if r_dram[r] == 0 and r_wleft[r] == 0 and r_waiting[r] == 0:
                on_fly -= 1
                if sq_pending > 0:
                    sq_pending -= 1
                    on_fly += 1
                    r2 = sq_fifo[sq_h]
                    sq_h = (sq_h + 1) % (nreq + 1)
                    sq_n -= 1
                    to_host_free = max(now, to_host_free) + _pcie_ns(4, True, lanes, lane_gbps)
                    _hpush(ht, hs, hy, ha, hn, seq, to_host_free, EV_HOST_RREQ_SQE, r2)
                to_host_free = max(now, to_host_free) + _pcie_ns(16, False, lanes, lane_gbps)
                _hpush(ht, hs, hy, ha, hn, seq, to_host_free, EV_HOST_CQE, r)
        elif typ == EV_CMD_DONE:
            g = arg
            ch = g // w
            n = chip[g, C_NACT]
            t0 = chip[g, C_ACT]
            if chip[g, C_CMDT] == 1:
                lat = pg_lat[_page_type(tx[t0, TX_PAGE], tech)]
                chip[g, C_STAT] = WRITING
            else:
                lat = rd_lat[_page_type(tx[t0, TX_PAGE], tech)] + prm[P_RB]
                chip[g, C_STAT] = READING
            for i in range(n):
                tx[chip[g, C_ACT + i], TX_EXEC] = lat
            stats[S_CHIP_EXEC] += lat
            _hpush(ht, hs, hy, ha, hn, seq, now + lat, EV_CHIP_DONE, g)
            chan[ch, 0] = 0
            if chan_wn[ch] > 0:
                t = chan_wait[ch, chan_wh[ch]]
                chan_wh[ch] = (chan_wh[ch] + 1) % wcap
                chan_wn[ch] -= 1
                _start_data_out(t, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats)
            else:
                todo[n_todo] = ch
                n_todo += 1
        elif typ == EV_CHIP_DONE:
            g = arg
            ch = g // w
            n = chip[g, C_NACT]
            chip[g, C_NACT] = 0
            if chip[g, C_CMDT] == 0:
                chip[g, C_STAT] = WAIT_OUT
                for i in range(n):
                    t = chip[g, C_ACT + i]
                    chip[g, C_WAIT] += 1
                    if chan[ch, 0] == 0:
                        _start_data_out(t, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq,
                                        stats)
                    else:
                        chan_wait[ch, (chan_wh[ch] + chan_wn[ch]) % wcap] = t
                        chan_wn[ch] += 1
            else:
                for i in range(n):
                    t = chip[g, C_ACT + i]
                    turn = now - tx[t, TX_T0]
                    stats[S_WT_SUM] += turn
                    stats[S_WT_EXEC] += tx[t, TX_EXEC]
                    stats[S_WT_XFER] += tx[t, TX_XFER]
                    stats[S_WT_N] += 1
                    bp_depth -= (tx[t, TX_BYTES] + 511) // 512
                    free_tx[n_free] = t
                    n_free += 1
                typ = -1  # retry the buffer waiters below, then mark the chip idle
                single = -1
                prog_chip = g
            if chan[ch, 0] == 0 and typ != -1:
                todo[n_todo] = ch
                n_todo += 1
        elif typ == EV_DATA_DONE:
            t = arg
            g = tx[t, TX_CHIP]
            ch = g // w
            turn = now - tx[t, TX_T0]
            rel = tx[t, TX_REL]
            if rel >= 0:  # update read of a read-modify-write
                tx[rel, TX_REL] = -1
            else:
                stats[S_RT_SUM] += turn
                stats[S_RT_EXEC] += tx[t, TX_EXEC]
                stats[S_RT_XFER] += tx[t, TX_XFER]
                stats[S_RT_N] += 1
                r = tx[t, TX_REQ]
                r_left[r] -= 1
                if r_left[r] == 0:
                    on_fly -= 1
                    to_host_free = max(now, to_host_free) + _pcie_ns(r_sec[r] * 512, False,
                                                                     lanes, lane_gbps)
                    if sq_pending > 0:
                        sq_pending -= 1
                        on_fly += 1
                        r2 = sq_fifo[sq_h]
                        sq_h = (sq_h + 1) % (nreq + 1)
                        sq_n -= 1
                        to_host_free = max(now, to_host_free) + _pcie_ns(4, True, lanes,
                                                                         lane_gbps)
                        _hpush(ht, hs, hy, ha, hn, seq, to_host_free, EV_HOST_RREQ_SQE, r2)
                    to_host_free = max(now, to_host_free) + _pcie_ns(16, False, lanes,
                                                                     lane_gbps)
                    _hpush(ht, hs, hy, ha, hn, seq, to_host_free, EV_HOST_CQE, r)
            free_tx[n_free] = t
            n_free += 1
            chip[g, C_WAIT] -= 1
            if chip[g, C_WAIT] == 0:
                chip[g, C_STAT] = IDLE
            else:
                chip[g, C_STAT] = WAIT_OUT
            chan[ch, 0] = 0
            if chan_wn[ch] > 0:
                t = chan_wait[ch, chan_wh[ch]]
                chan_wh[ch] = (chan_wh[ch] + 1) % wcap
                chan_wn[ch] -= 1
                _start_data_out(t, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats)
            else:
                todo[n_todo] = ch
                n_todo += 1

        if typ == -1:
            # write-cache destage (MQSim write_to_destage_buffer): a new write request buffers
            # itself; a finished program retries the waiting requests in order
            k = 0
            while True:
                if single >= 0:
                    if k > 0:
                        break
                    r = single
                else:
                    if k >= n_wait:
                        break
                    r = wait_list[k]
                written = 0
                while r_wleft[r] > 0 and bp_depth + written < bp_max:
                    lsa = r_wnext[r]
                    size = spp - lsa % spp
                    if size > r_wleft[r]:
                        size = r_wleft[r]
                    lpa = (lsa // spp) % n_lpa
                    bits = ((np.uint64(1) << np.uint64(size)) - np.uint64(1)) \
                        << np.uint64(lsa % spp)
                    if size == 64:
                        bits = ~np.uint64(0)
                    n_free -= 1
                    t = free_tx[n_free]
                    tx[t, TX_REQ] = r
                    tx[t, TX_LPA] = lpa
                    tx[t, TX_BYTES] = size * 512
                    tx[t, TX_TYPE] = 1
                    tx[t, TX_REL] = -1
                    tx[t, TX_T0] = now
                    tx[t, TX_EXEC] = 0
                    tx[t, TX_XFER] = 0
                    old = _map_page(lpa, 1, bits, prm, lpa_page, lpa_bits, plane_wf, tx, t,
                                    stats)
                    _q_append(tx, chip, tx[t, TX_CHIP], t, C_WQH, C_WQT)
                    if old > 0:
                        # read the sectors this write leaves in place (same plane, old page)
                        n_free -= 1
                        u = free_tx[n_free]
                        for f in range(NTXF):
                            tx[u, f] = tx[t, f]
                        tx[u, TX_TYPE] = 0
                        tx[u, TX_PAGE] = (old - 1) % prm[P_PPB]
                        tx[u, TX_BYTES] = (spp - size) * 512
                        tx[u, TX_REL] = t
                        tx[t, TX_REL] = u
                        _q_append(tx, chip, tx[u, TX_CHIP], u, C_RQH, C_RQT)
                        stats[S_RMW] += 1
                    written += size
                    r_wnext[r] += size
                    r_wleft[r] -= size
                bp_depth += written
                if written > 0:
                    sched_all = True
                    r_dram[r] += written
                    dram_free = max(now, dram_free) + _dram_ns(written * 512, prm, dram_beat)
                    dram_fifo_r[(dram_h + dram_n) % dram_cap] = r
                    dram_fifo_s[(dram_h + dram_n) % dram_cap] = written
                    dram_n += 1
                    _hpush(ht, hs, hy, ha, hn, seq, dram_free, EV_DRAM_DONE, 0)
                if single >= 0:
                    if r_wleft[r] > 0:
                        wait_list[n_wait] = r
                        n_wait += 1
                        r_waiting[r] = 1
                    k = 1
                    continue
                if r_wleft[r] == 0:
                    r_waiting[r] = 0
                    n_wait -= 1
                    for j in range(k, n_wait):
                        wait_list[j] = wait_list[j + 1]
                else:
                    k += 1
                if bp_depth > bp_max:
                    break
            if sched_all:
                for ch in range(c):
                    if chan[ch, 0] == 0:
                        _tsu_channel(ch, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq,
                                     stats, cmd_rd, cmd_pg)
                sched_all = False
            if prog_chip >= 0:
                # the program's chip goes idle after the TSU saw it busy (MQSim's order)
                g = prog_chip
                prog_chip = -1
                if chip[g, C_WAIT] == 0:
                    chip[g, C_STAT] = IDLE
                ch = g // w
                if chan[ch, 0] == 0:
                    todo[n_todo] = ch
                    n_todo += 1
        if sched_all:
            for ch in range(c):
                if chan[ch, 0] == 0:
                    _tsu_channel(ch, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats,
                                 cmd_rd, cmd_pg)
        for i in range(n_todo):
            ch = todo[i]
            if chan[ch, 0] == 0:
                _tsu_channel(ch, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats,
                             cmd_rd, cmd_pg)
    stats[S_END] = now
    stats[S_GEN] = generated
