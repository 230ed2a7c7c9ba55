"""Cycle-level DRAM model: the controller issues each command the first cycle JEDEC allows, so
on a quiet channel the gap between two dependent commands is exactly the binding constraint.

Each case is a handful of requests whose command log (cycle, command, channel, rank, bank, row)
is compared with the hand-counted gap (JESD79-4 definitions, DRAMsim3's timing.cc scopes); the
JEDEC checker of tests/test_dram_model.py only checks lower bounds."""

from __future__ import annotations

import numpy as np
import pytest

from sim.micro.dram import simulate
from sim.micro.dram_config import ACT, PRE, READ, REF, REF_BANK, WRITE, DramConfig

# DDR4-3200-like timings, all distinct enough to tell which one binds (cycles). tRAS is short
# (below tRCD + tRTP) so that a read's PRE waits for tRTP, not for tRAS.
CFG = DramConfig(protocol="DDR4", ranks=2, CL=22, CWL=16, tRCDRD=22, tRCDWR=20, tRP=21,
                 tRAS=24, tRRD_S=4, tRRD_L=8, tFAW=50, tCCD_S=4, tCCD_L=8, tWTR_S=4,
                 tWTR_L=12, tRTP=12, tWR=24, tRTRS=2, tREFI=7800,
                 address_mapping="rochrababgco")


def commands(cfg: DramConfig, reqs: list[tuple[dict, bool, int]], unified: bool = False):
    """Command log of ``reqs`` = (address fields, is write, arrival cycle), one front end."""
    if unified:
        cfg = cfg.with_(unified_queue=True)
    addrs = np.array([cfg.encode(**f) for f, _, _ in reqs], np.uint64)
    writes = np.array([w for _, w, _ in reqs], np.int8)
    times = np.array([t for _, _, t in reqs], np.int64)
    s = simulate(cfg, addrs, writes, times, 2000, log_commands=64)
    return [tuple(int(x) for x in row) for row in s.commands]


def first(log, cmd, rank=None, bank=None, row=None, after=-1):
    """Cycle of the first ``cmd`` matching the given rank / bank / row, issued after ``after``."""
    for t, c, _ch, r, b, ro in log:
        if c == cmd and t > after and (rank is None or r == rank) and \
                (bank is None or b == bank) and (row is None or ro == row):
            return t
    raise AssertionError(f"no command {cmd} (rank {rank}, bank {bank}, row {row}) in {log}")


def test_row_conflict_is_trcd_then_trtp_then_trp():
    """Two reads of different rows of one bank: ACT, READ tRCD later; PRE tRTP after the READ
    (tRAS = 24 has passed: ACT + 22 + 12 > ACT + 24); the second ACT tRP after the PRE."""
    log = commands(CFG, [({"ro": 0}, False, 0), ({"ro": 1}, False, 1)])
    act0 = first(log, ACT, bank=0, row=0)
    rd0 = first(log, READ, bank=0, row=0)
    pre = first(log, PRE, bank=0)
    act1 = first(log, ACT, bank=0, row=1)
    rd1 = first(log, READ, bank=0, row=1)
    assert rd0 - act0 == 22            # tRCDRD
    assert pre - rd0 == 12             # AL + tRTP (AL = 0)
    assert act1 - pre == 21            # tRP
    assert rd1 - act1 == 22


def test_activates_in_one_bank_group_are_trrd_l_apart_else_trrd_s():
    """ACTs to two banks of one bank group: tRRD_L = 8 apart; of two groups: tRRD_S = 4."""
    log = commands(CFG, [({"bg": 0, "ba": 0}, False, 0), ({"bg": 0, "ba": 1}, False, 0)])
    assert first(log, ACT, bank=1) - first(log, ACT, bank=0) == 8
    log = commands(CFG, [({"bg": 0, "ba": 0}, False, 0), ({"bg": 1, "ba": 0}, False, 0)])
    # bank index = bg * banks_per_group + ba
    assert first(log, ACT, bank=CFG.banks_per_group) - first(log, ACT, bank=0) == 4


def test_reads_to_two_ranks_are_a_burst_plus_trtrs_apart():
    """READs to two ranks (rows open): the data bus changes drivers, burst + tRTRS = 4 + 2."""
    log = commands(CFG, [({"ra": 0}, False, 0), ({"ra": 1}, False, 0)])
    r0, r1 = first(log, READ, rank=0), first(log, READ, rank=1)
    assert first(log, ACT, rank=1) - first(log, ACT, rank=0) == 1   # no tRRD across ranks
    assert r1 - r0 == 4 + 2


def test_read_after_write_waits_twtr():
    """A WRITE then a READ of another bank (unified queue, so the write goes first): the READ
    waits WL + burst + tWTR after the WRITE: tWTR_L = 12 in the same bank group, tWTR_S = 4
    in another (WL = CWL = 16, burst = 4 cycles)."""
    log = commands(CFG, [({"bg": 0, "ba": 0}, True, 0), ({"bg": 0, "ba": 1}, False, 1)],
                   unified=True)
    assert first(log, READ, bank=1) - first(log, WRITE, bank=0) == 16 + 4 + 12
    log = commands(CFG, [({"bg": 0, "ba": 0}, True, 0), ({"bg": 1, "ba": 0}, False, 1)],
                   unified=True)
    assert first(log, READ, bank=CFG.banks_per_group) - first(log, WRITE, bank=0) == 16 + 4 + 4


def test_rank_staggered_refresh_every_trefi_over_ranks():
    """DDR4-3200 (DRAMsim3's DDR4_8Gb_x8_3200: 2 ranks, tREFI = 12,480 cycles), rank-level
    staggered refresh: a refresh is due every 12,480 / 2 = 6,240 cycles, the ranks in turn (each
    rank every tREFI). The first finds rank 0's bank still open after the read: PRE at 6,240,
    REF tRP = 10 later; the others issue when due."""
    cfg = DramConfig(protocol="DDR4", ranks=2, tREFI=12480, tRFC=560, tRP=10)
    s = simulate(cfg, np.zeros(1, np.uint64), np.zeros(1, np.int8), np.zeros(1, np.int64),
                 50_000, log_commands=64)
    refs = [(int(t), int(r)) for t, c, _ch, r, _b, _ro in s.commands if c == REF]
    assert first(s.commands.tolist(), PRE) == 6240
    assert refs == [(6250, 0)] + [(6240 * k, (k - 1) % 2) for k in range(2, 9)]
    assert s.refreshes == 8


def test_gddr6_precharges_are_tppd_apart():
    """GDDR6 (tPPD = 2): two banks open rows 1 cycle apart (tRRD = 1) and both must close for
    a conflicting row; each PRE is due tRAS = 40 after its ACT (2 + 40, 3 + 40), but PRE to
    PRE in a rank waits tPPD: the second at 42 + 2."""
    cfg = DramConfig(protocol="GDDR6", bankgroups=4, banks_per_group=4, tRRD_S=1, tRRD_L=1,
                     tPPD=2, tRAS=40, tRCDRD=10, tRTP=2, CL=10, tREFI=100_000)
    log = commands(cfg, [({"ba": 0, "ro": 0}, False, 0), ({"ba": 1, "ro": 0}, False, 1),
                         ({"ba": 0, "ro": 1}, False, 2), ({"ba": 1, "ro": 1}, False, 3)])
    assert (first(log, ACT, bank=0), first(log, ACT, bank=1)) == (2, 3)
    assert first(log, PRE, bank=0) == 2 + 40
    assert first(log, PRE, bank=1) == 2 + 40 + 2


def test_per_bank_refresh_holds_other_banks_for_trfc():
    """Bank-level staggered refresh (a REFb every tREFIb = 200 cycles): a read of bank 1 that
    arrives just after bank 0's REFb activates tRFC = 74 after it, as DRAMsim3's timing.cc
    tabulates a per-bank refresh for the other banks (refresh_to_activate = tRFC), then READs
    tRCD = 10 later."""
    cfg = DramConfig(protocol="GDDR6", bankgroups=4, banks_per_group=4, tRCDRD=10,
                     refresh_policy="BANK_LEVEL_STAGGERED", tREFIb=200, tRFC=74, tRFCb=20)
    log = commands(cfg, [({"ba": 1}, False, 201)])
    refb = [t for t, c, _ch, _r, b, _ro in log if c == REF_BANK and b == 0]
    assert refb[0] == 200
    assert first(log, ACT, bank=1) == 200 + 74
    assert first(log, READ, bank=1) == 200 + 74 + 10


def test_idd_energies_by_hand():
    """Per-command energies (Micron TN-41-01 / DRAMsim3, pJ = mA x V x ns): x8 devices on a
    64-bit bus (8 per rank), VDD 1.2 V, tCK 1 ns. All-bank REF (IDD5AB 250 - IDD3N 43 mA) over
    tRFC 74 cycles; per-bank REF (IDD5PB 60 - 43) over tRFCb 20; a 4-cycle read burst (IDD4R
    135 - 43)."""
    cfg = DramConfig(VDD=1.2, IDD3N=43.0, IDD5AB=250.0, IDD5PB=60.0, IDD4R=135.0, tRFC=74,
                     tRFCb=20, burst_cycle=4, tCK=1.0)
    e = cfg.energies_pJ()
    assert e["ref"] == pytest.approx(1.2 * (250 - 43) * 74 * 8)
    assert e["refb"] == pytest.approx(1.2 * (60 - 43) * 20 * 8)
    assert e["read"] == pytest.approx(1.2 * (135 - 43) * 4 * 8)
