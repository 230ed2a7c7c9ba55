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

from sim.micro import flash_rng
from sim.micro.flash_fields import *  # noqa: F403 - the kernel's constants

#: one MRG32k3a draw, compiled (the Python function of :mod:`sim.micro.flash_rng`)
next_double = njit(cache=True)(flash_rng.next_double)


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
    dt = (tx[t, TX_BYTES] // prm[P_WIDTH] // 2) * prm[P_TWO] // 1000
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
            elif chip[g, C_UQH] >= 0:
                _issue(g, 2, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats, cmd_rd,
                       cmd_pg)
            elif chip[g, C_WQH] >= 0:
                _issue(g, 1, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats, cmd_rd,
                       cmd_pg)
        chan[ch, 1] = (chan[ch, 1] + 1) % w
        if chan[ch, 0] != 0:
            break


@njit(cache=True)
def _issue(g, queue, now, tx, chip, chan, prm, ht, hs, hy, ha, hn, seq, stats, cmd_rd,
           cmd_pg):
    """TSU_Base::issue_command_to_chip + PHY Send_command_to_chip for one chip; ``queue`` is
    0 reads, 1 writes, 2 urgent writes (cache evictions)."""
    is_write = 1 if queue > 0 else 0
    if queue == 0:
        hf, tf = C_RQH, C_RQT
    elif queue == 1:
        hf, tf = C_WQH, C_WQT
    else:
        hf, tf = C_UQH, C_UQT
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
            dd = (tx[t, TX_BYTES] // prm[P_WIDTH] // 2) * prm[P_TWO] // 1000
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
def _dispatch_write(t, bits, urgent, prm, lpa_page, lpa_bits, plane_wf, tx, chip, free_tx, nf,
                    stats):
    """Map a write transaction to its plane's next page and queue it; a sub-page write over
    sectors already on flash first reads them (MQSim's update read, same plane)."""
    lpa = tx[t, TX_LPA]
    prev = lpa_bits[lpa]
    old = _map_page(lpa, 1, bits, prm, lpa_page, lpa_bits, plane_wf, tx, t, stats)
    if urgent:
        _q_append(tx, chip, tx[t, TX_CHIP], t, C_UQH, C_UQT)
    else:
        _q_append(tx, chip, tx[t, TX_CHIP], t, C_WQH, C_WQT)
    if old > 0:
        nf[0] -= 1
        u = free_tx[nf[0]]
        for f in range(NTXF):
            tx[u, f] = tx[t, f]
        tx[u, TX_TYPE] = 0
        tx[u, TX_PAGE] = (old - 1) % prm[P_PPB]
        tx[u, TX_BYTES] = _popcount(prev & ~bits) * 512
        tx[u, TX_REL] = t
        tx[t, TX_REL] = u
        _q_append(tx, chip, tx[u, TX_CHIP], u, C_RQH, C_RQT)
        stats[S_RMW] += 1


@njit(cache=True)
def _popcount(x):
    n = 0
    while x:
        x &= x - np.uint64(1)
        n += 1
    return n


@njit(cache=True)
def _lru_unlink(s, sl_prev, sl_next, lru):
    p = sl_prev[s]
    n = sl_next[s]
    if p >= 0:
        sl_next[p] = n
    else:
        lru[0] = n
    if n >= 0:
        sl_prev[n] = p
    else:
        lru[1] = p
    sl_prev[s] = -1
    sl_next[s] = -1


@njit(cache=True)
def _lru_front(s, sl_prev, sl_next, lru):
    sl_prev[s] = -1
    sl_next[s] = lru[0]
    if lru[0] >= 0:
        sl_prev[lru[0]] = s
    else:
        lru[1] = s
    lru[0] = s


@njit(cache=True)
def simulate_kernel(prm, lane_gbps, dram_beat, rd_lat, pg_lat, cmd_rd, cmd_pg, read_frac,
                    n_tx, lpa_page, lpa_bits, lpa_slot, bloom, cache_cap, st_type, st_addr, stats,
                    lat_hist):
    """Run one flow; fills ``stats`` (see S_*) and ``lat_hist`` (1 us bins).

    ``lpa_page`` / ``lpa_bits`` / ``lpa_slot`` / ``bloom`` are zeroed per-logical-page arrays
    (page counter + 1 in its plane, written-sector bitmap, write-cache slot + 1, hot-data
    filter epoch); passing them in lets numpy hand out lazily zeroed memory for drives with
    millions of pages. ``cache_cap`` is the write cache in pages. ``st_type`` / ``st_addr`` are
    the MRG32k3a states of the request-type and address generators (MQSim's streams).
    """
    n_lpa = lpa_page.shape[0]
    c = prm[P_C]
    w = prm[P_W]
    d = prm[P_D]
    p = prm[P_P]
    g_n = c * w
    spp = prm[P_SPP]
    qd = prm[P_QD]
    lanes = prm[P_LANES]
    tech = prm[P_TECH]

    tx = np.zeros((n_tx, NTXF), np.int64)
    free_tx = np.arange(n_tx - 1, -1, -1).astype(np.int64)
    nf = np.full(1, n_tx, np.int64)
    tx_bits = np.zeros(n_tx, np.uint64)
    chip = np.zeros((g_n, NCF), np.int64)
    for g in range(g_n):
        chip[g, C_RQH] = -1
        chip[g, C_RQT] = -1
        chip[g, C_WQH] = -1
        chip[g, C_WQT] = -1
        chip[g, C_UQH] = -1
        chip[g, C_UQT] = -1
    chan = np.zeros((c, 2), np.int64)  # busy, round-robin turn
    wcap = w * p * d + 1
    chan_wait = np.zeros((c, wcap), np.int64)
    chan_wh = np.zeros(c, np.int64)
    chan_wn = np.zeros(c, np.int64)
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
    dram_cap = 4 * nreq + 4 + n_tx
    dram_fifo_r = np.zeros(dram_cap, np.int64)
    dram_fifo_s = np.zeros(dram_cap, np.int64)
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
    # write cache: slots with LRU list (MQSim Data_Cache_Flash), hot-data filter epochs
    cap = max(cache_cap, 1)
    sl_lpa = np.zeros(cap, np.int64)
    sl_bits = np.zeros(cap, np.uint64)
    sl_ts = np.zeros(cap, np.int64)
    sl_dirty = np.zeros(cap, np.int64)  # 1: DIRTY_NO_FLASH_WRITEBACK, 0: write-back issued
    sl_prev = np.full(cap, -1, np.int64)
    sl_next = np.full(cap, -1, np.int64)
    sl_free = np.arange(cap - 1, -1, -1).astype(np.int64)
    n_sl_free = cap
    lru = np.full(2, -1, np.int64)  # most, least recently used
    epoch = 1
    bloom_milestone = np.int64(0)
    ev_fifo = np.zeros(n_tx + 1, np.int64)
    ev_h = 0
    ev_n = 0
    dram_fifo_k = np.zeros(4 * (qd + 1) + 4 + n_tx, np.int64)
    r_ts = np.zeros(qd + 1, np.int64)
    single = -1
    prog_chip = -1
    fin = np.zeros(4, np.int64)
    n_fin = 0
    done_r = -1
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
                if next_double(st_type) <= read_frac:
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
                    start = np.int64(np.float64(lsa_end + 1) * next_double(st_addr))
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
                from_cache = 0
                while left > 0:
                    size = spp - lsa % spp
                    if size > left:
                        size = left
                    lpa = (lsa // spp) % n_lpa
                    bits = ((np.uint64(1) << np.uint64(size)) - np.uint64(1)) \
                        << np.uint64(lsa % spp)
                    if size == 64:
                        bits = ~np.uint64(0)
                    sl = lpa_slot[lpa] - 1
                    if sl >= 0:  # sectors in the write cache are read from DRAM
                        if lru[0] != sl:
                            _lru_unlink(sl, sl_prev, sl_next, lru)
                            _lru_front(sl, sl_prev, sl_next, lru)
                        avail = sl_bits[sl] & bits
                        if avail == bits:
                            from_cache += size
                            lsa += size
                            left -= size
                            continue
                        if avail != 0:
                            k_av = _popcount(avail)
                            from_cache += k_av
                            size_flash = size - k_av
                        else:
                            size_flash = size
                    else:
                        size_flash = size
                    nf[0] -= 1
                    t = free_tx[nf[0]]
                    tx[t, TX_REQ] = r
                    tx[t, TX_LPA] = lpa
                    tx[t, TX_BYTES] = size_flash * 512
                    tx[t, TX_TYPE] = 0
                    tx[t, TX_REL] = -1
                    tx[t, TX_T0] = now
                    tx[t, TX_EXEC] = 0
                    tx[t, TX_XFER] = 0
                    tx[t, TX_URG] = 0
                    _map_page(lpa, 0, bits, prm, lpa_page, lpa_bits, plane_wf, tx, t, stats)
                    _q_append(tx, chip, tx[t, TX_CHIP], t, C_RQH, C_RQT)
                    cnt += 1
                    lsa += size
                    left -= size
                r_left[r] = cnt
                r_dram[r] = from_cache
                if from_cache > 0:
                    dram_free = max(now, dram_free) + _dram_ns(from_cache * 512, prm, dram_beat)
                    q = (dram_h + dram_n) % dram_cap
                    dram_fifo_r[q] = r
                    dram_fifo_s[q] = from_cache
                    dram_fifo_k[q] = 1
                    dram_n += 1
                    _hpush(ht, hs, hy, ha, hn, seq, dram_free, EV_DRAM_DONE, 0)
                if cnt > 0:
                    sched_all = True
        elif typ == EV_HOST_RREQ_WDATA:
            to_dev_free = max(now, to_dev_free) + _pcie_ns(r_sec[arg] * 512, False, lanes,
                                                           lane_gbps)
            _hpush(ht, hs, hy, ha, hn, seq, to_dev_free, EV_DEV_WDATA, arg)
        elif typ == EV_DEV_WDATA:
            r = arg
            r_ts[r] = now
            r_wnext[r] = r_lsa[r]
            r_wleft[r] = r_sec[r]
            r_dram[r] = 0
            r_left[r] = 0
            r_waiting[r] = 0
            single = r
            typ = -1  # destage this request below
        elif typ == EV_DRAM_DONE:
            r = dram_fifo_r[dram_h]
            k = dram_fifo_s[dram_h]
            kind = dram_fifo_k[dram_h]
            dram_h = (dram_h + 1) % dram_cap
            dram_n -= 1
            if kind == 2:
                # evicted dirty pages read out of DRAM: write them back, urgent priority
                for _ in range(k):
                    t = ev_fifo[ev_h]
                    ev_h = (ev_h + 1) % (n_tx + 1)
                    ev_n -= 1
                    _dispatch_write(t, tx_bits[t], 1, prm, lpa_page, lpa_bits, plane_wf, tx,
                                    chip, free_tx, nf, stats)
                sched_all = True
            else:
                r_dram[r] -= k
                if r_dram[r] == 0 and r_wleft[r] == 0 and r_waiting[r] == 0 and r_left[r] == 0:
                    done_r = r
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
                    fin[i] = chip[g, C_ACT + i]
                n_fin = n
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
                if r_left[r] == 0 and r_dram[r] == 0:
                    done_r = r
            free_tx[nf[0]] = t
            nf[0] += 1
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

        if done_r >= 0:
            # Handle_serviced_request: read data to the host, the next SQ fetch if one waits
            # for the fetch limit, then the completion entry
            r = done_r
            done_r = -1
            on_fly -= 1
            if r_type[r] == 0:
                to_host_free = max(now, to_host_free) + _pcie_ns(r_sec[r] * 512, False, lanes,
                                                                 lane_gbps)
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
        if typ == -1:
            # write-cache destage (MQSim write_to_destage_buffer): a new write request buffers
            # itself; each programmed transaction frees back-pressure space and retries the
            # waiting requests in order; each destage that writes back runs the TSU at once
            for fi in range(max(n_fin, 1)):
                if n_fin > 0:
                    t = fin[fi]
                    if tx[t, TX_URG] == 0:
                        turn = now - tx[t, TX_T0]
                        stats[S_WT_SUM] += turn
                        stats[S_WT_EXEC] += tx[t, TX_EXEC]
                        stats[S_WT_XFER] += tx[t, TX_XFER]
                        stats[S_WT_N] += 1
                    bp_depth -= (tx[t, TX_BYTES] + 511) // 512
                    sl = lpa_slot[tx[t, TX_LPA]] - 1
                    if sl >= 0:
                        # MQSim looks the slot up (Get_slot), which makes it most recent
                        if lru[0] != sl:
                            _lru_unlink(sl, sl_prev, sl_next, lru)
                            _lru_front(sl, sl_prev, sl_next, lru)
                        if tx[t, TX_TS] >= sl_ts[sl]:
                            # the cached copy is what reached flash: drop it
                            _lru_unlink(sl, sl_prev, sl_next, lru)
                            lpa_slot[sl_lpa[sl]] = 0
                            sl_free[n_sl_free] = sl
                            n_sl_free += 1
                    free_tx[nf[0]] = t
                    nf[0] += 1
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
                    evict = 0
                    n_ev = 0
                    dram_sec = 0
                    while r_wleft[r] > 0 and bp_depth + evict + written < bp_max:
                        lsa = r_wnext[r]
                        size = spp - lsa % spp
                        if size > r_wleft[r]:
                            size = r_wleft[r]
                        lpa = (lsa // spp) % n_lpa
                        bits = ((np.uint64(1) << np.uint64(size)) - np.uint64(1)) \
                            << np.uint64(lsa % spp)
                        if size == 64:
                            bits = ~np.uint64(0)
                        ts = r_ts[r]
                        sl = lpa_slot[lpa] - 1
                        if sl >= 0:
                            if ts > sl_ts[sl]:
                                sl_ts[sl] = ts
                            sl_bits[sl] = sl_bits[sl] | bits
                            sl_dirty[sl] = 1
                            if lru[0] != sl:
                                _lru_unlink(sl, sl_prev, sl_next, lru)
                                _lru_front(sl, sl_prev, sl_next, lru)
                        else:
                            if n_sl_free == 0:
                                e = lru[1]
                                _lru_unlink(e, sl_prev, sl_next, lru)
                                lpa_slot[sl_lpa[e]] = 0
                                sl_free[n_sl_free] = e
                                n_sl_free += 1
                                if sl_dirty[e] == 1:
                                    nf[0] -= 1
                                    u = free_tx[nf[0]]
                                    k_ev = _popcount(sl_bits[e])
                                    tx[u, TX_REQ] = -1
                                    tx[u, TX_LPA] = sl_lpa[e]
                                    tx[u, TX_BYTES] = k_ev * 512
                                    tx[u, TX_TYPE] = 1
                                    tx[u, TX_REL] = -1
                                    tx[u, TX_T0] = now
                                    tx[u, TX_EXEC] = 0
                                    tx[u, TX_XFER] = 0
                                    tx[u, TX_TS] = sl_ts[e]
                                    tx[u, TX_URG] = 1
                                    tx_bits[u] = sl_bits[e]
                                    ev_fifo[(ev_h + ev_n) % (n_tx + 1)] = u
                                    ev_n += 1
                                    n_ev += 1
                                    evict += k_ev
                            n_sl_free -= 1
                            sl = sl_free[n_sl_free]
                            lpa_slot[lpa] = sl + 1
                            sl_lpa[sl] = lpa
                            sl_bits[sl] = bits
                            sl_ts[sl] = ts
                            sl_dirty[sl] = 1
                            _lru_front(sl, sl_prev, sl_next, lru)
                        dram_sec += size
                        if bloom[lpa] != epoch:
                            # cold data: write back at once (MQSim's hot/cold filter)
                            sl_dirty[sl] = 0
                            bloom[lpa] = epoch
                            nf[0] -= 1
                            t = free_tx[nf[0]]
                            tx[t, TX_REQ] = r
                            tx[t, TX_LPA] = lpa
                            tx[t, TX_BYTES] = size * 512
                            tx[t, TX_TYPE] = 1
                            tx[t, TX_REL] = -1
                            tx[t, TX_T0] = ts
                            tx[t, TX_EXEC] = 0
                            tx[t, TX_XFER] = 0
                            tx[t, TX_TS] = ts
                            tx[t, TX_URG] = 0
                            _dispatch_write(t, bits, 0, prm, lpa_page, lpa_bits, plane_wf, tx, chip,
                                            free_tx, nf, stats)
                            written += size
                        r_wnext[r] += size
                        r_wleft[r] -= size
                    bp_depth += evict + written
                    if written > 0:
                        sched_all = True
                    if n_ev > 0:
                        dram_free = max(now, dram_free) + _dram_ns(evict * 512, prm, dram_beat)
                        q = (dram_h + dram_n) % dram_cap
                        dram_fifo_r[q] = -1
                        dram_fifo_s[q] = n_ev
                        dram_fifo_k[q] = 2
                        dram_n += 1
                        _hpush(ht, hs, hy, ha, hn, seq, dram_free, EV_DRAM_DONE, 0)
                    if dram_sec > 0:
                        r_dram[r] += dram_sec
                        dram_free = max(now, dram_free) + _dram_ns(dram_sec * 512, prm, dram_beat)
                        q = (dram_h + dram_n) % dram_cap
                        dram_fifo_r[q] = r
                        dram_fifo_s[q] = dram_sec
                        dram_fifo_k[q] = 0
                        dram_n += 1
                        _hpush(ht, hs, hy, ha, hn, seq, dram_free, EV_DRAM_DONE, 0)
                    if now > bloom_milestone:
                        epoch += 1
                        bloom_milestone = now + 1000000000
                    if written > 0:
                        for ch in range(c):
                            if chan[ch, 0] == 0:
                                _tsu_channel(ch, now, tx, chip, chan, prm, ht, hs, hy, ha, hn,
                                             seq, stats, cmd_rd, cmd_pg)
                        sched_all = False
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
            n_fin = 0
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
