"""Cycle-level DRAM model: JEDEC timing checked by an independent command-log checker on every
DRAMsim3 config and several access patterns, plus closed-form latencies and sanity properties."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from sim.micro.dram import simulate
from sim.micro.dram_config import (
    ACT,
    PRE,
    READ,
    READ_P,
    REF,
    WRITE,
    WRITE_P,
    DramConfig,
    DramConfigError,
)
from sim.micro.dram_ini import load_dramsim3_ini

CONFIGS = ("DDR3_8Gb_x8_1600.ini", "DDR4_8Gb_x16_2666.ini", "DDR4_8Gb_x8_3200.ini",
           "GDDR6_8Gb_x16.ini", "HBM2_4Gb_x128.ini", "HBM2_8Gb_x128.ini",
           "LPDDR4_8Gb_x16_2400.ini")


def pattern(kind: str, n: int, every: int, wfrac: float, seed: int, stride: int = 8192,
            span: int = 1 << 31):
    """Requests like the reference generator: seq (64 B), stride, rand; writes with wfrac."""
    rng = np.random.default_rng(seed)
    i = np.arange(n, dtype=np.uint64)
    if kind == "seq":
        addrs = i * np.uint64(64)
    elif kind == "stride":
        addrs = (i * np.uint64(stride)) % np.uint64(span)
    else:
        addrs = rng.integers(0, span // 64, n).astype(np.uint64) * np.uint64(64)
    writes = (rng.random(n) < wfrac).astype(np.int8)
    return addrs, writes, (np.arange(n) * every).astype(np.int64)


def check_jedec(cfg: DramConfig, log: np.ndarray) -> int:
    """Verify every issued command against the JEDEC constraints; return commands checked."""
    bc = cfg.burst_cycle
    open_row: dict = {}
    last: dict = defaultdict(lambda: -10**9)
    acts: dict = defaultdict(list)
    col: dict = {}
    bg_of = cfg.banks_per_group

    def gap(key, t, need, what):
        assert t - last[key] >= need, f"{what}: {t - last[key]} < {need} at cycle {t}"

    for t, c, ch, r, b, row in log.tolist():
        bank = (ch, r, b)
        if c == ACT:
            assert bank not in open_row, f"ACT to an open bank at {t}"
            gap(("pre", bank), t, cfg.tRP, "tRP")
            gap(("act", bank), t, cfg.tRC, "tRC")
            gap(("ref", ch, r), t, cfg.tRFC, "tRFC")
            for bb in range(cfg.banks):
                if bb != b:
                    need = cfg.tRRD_L if (bb // bg_of == b // bg_of and cfg.bankgroups > 1) \
                        else cfg.tRRD_S
                    gap(("act", (ch, r, bb)), t, need, "tRRD")
            window = acts[(ch, r)]
            if len(window) >= 4:
                assert t - window[-4] >= cfg.tFAW, f"tFAW at {t}"
            window.append(t)
            open_row[bank] = row
            last[("act", bank)] = t
        elif c in (READ, READ_P, WRITE, WRITE_P):
            is_rd = c in (READ, READ_P)
            assert open_row.get(bank) == row, f"column command to a closed/other row at {t}"
            gap(("act", bank), t, cfg.tRCDRD if is_rd else cfg.tRCDWR, "tRCD")
            for (pr, pbg, pkind), pt in col.get(ch, {}).items():
                same_rank = pr == r
                same_bg = pbg == b // bg_of and cfg.bankgroups > 1
                if pkind == "R" and is_rd:
                    need = (max(bc, cfg.tCCD_L) if same_bg else max(bc, cfg.tCCD_S)) \
                        if same_rank else bc + cfg.tRTRS
                elif pkind == "R":
                    need = cfg.RL + bc - cfg.WL + cfg.tRTRS if same_rank else \
                        cfg.read_delay + bc + cfg.tRTRS - cfg.write_delay
                elif is_rd:
                    need = (cfg.write_delay + (cfg.tWTR_L if same_bg else cfg.tWTR_S)) \
                        if same_rank else cfg.write_delay + bc + cfg.tRTRS - cfg.read_delay
                else:
                    need = (max(bc, cfg.tCCD_L) if same_bg else max(bc, cfg.tCCD_S)) \
                        if same_rank else bc
                assert t - pt >= need, f"column spacing {pkind}->{c} {t - pt} < {need} at {t}"
            col.setdefault(ch, {})[(r, b // bg_of, "R" if is_rd else "W")] = t
            last[("rd" if is_rd else "wr", bank)] = t
            if c in (READ_P, WRITE_P):
                pre_at = t + (cfg.AL + bc + cfg.tRTP if is_rd else cfg.WL + bc + cfg.tWR)
                del open_row[bank]
                last[("pre", bank)] = pre_at - cfg.tRP + cfg.tRP  # precharge issues at pre_at
                last[("pre", bank)] = pre_at
        elif c == PRE:
            assert bank in open_row, f"PRE to a closed bank at {t}"
            gap(("act", bank), t, cfg.tRAS, "tRAS")
            gap(("rd", bank), t, cfg.AL + cfg.tRTP, "tRTP")
            gap(("wr", bank), t, cfg.WL + bc + cfg.tWR, "tWR")
            del open_row[bank]
            last[("pre", bank)] = t
        elif c == REF:
            for bb in range(cfg.banks):
                assert (ch, r, bb) not in open_row, f"REF with an open bank at {t}"
                gap(("pre", (ch, r, bb)), t, cfg.tRP, "PRE->REF tRP")
            gap(("ref", ch, r), t, cfg.tRFC, "REF->REF")
            last[("ref", ch, r)] = t
    return len(log)


@pytest.fixture
def configs(ref_dir):
    base = ref_dir / "dram" / "dramsim3_configs"
    return {name: load_dramsim3_ini(base / name) for name in CONFIGS}


@pytest.mark.parametrize("name", CONFIGS)
def test_jedec_timing_every_config(configs, name):
    cfg = configs[name]
    for kind, every, wfrac in (("seq", 1, 0.0), ("rand", 2, 0.3), ("stride", 1, 0.5)):
        addrs, writes, times = pattern(kind, 3000, every, wfrac, seed=len(name))
        span = cfg.capacity_bytes
        addrs = addrs % np.uint64(span)
        s = simulate(cfg, addrs, writes, times, 20000, log_commands=200000)
        assert check_jedec(cfg, s.commands) > 0
        done = s.reads_done + s.writes_done
        assert 0 < done <= len(addrs) + 1
        assert s.bandwidth_GBps <= cfg.peak_bandwidth / 1e9 * 1.0001
        assert s.read_cmds >= s.read_row_hits and s.activates > 0


def test_closed_form_latencies():
    cfg = DramConfig(protocol="DDR4", CL=22, CWL=16, tRCDRD=22, tRCDWR=22, tRP=22, tRAS=52,
                     address_mapping="rochrababgco")
    # one read to a closed bank: accepted at t, queued at t+1, ACT t+2, READ after tRCD
    s = simulate(cfg, np.array([0], np.uint64), np.zeros(1), np.zeros(1), 1000)
    assert s.avg_read_latency_cycles == 1 + cfg.tRCDRD + cfg.CL + cfg.burst_cycle
    # a second read of the same row long after: a row hit, CL + burst
    s = simulate(cfg, np.array([0, 64], np.uint64), np.zeros(2), np.array([0, 500]), 1000)
    assert s.read_row_hits == 1
    assert s.avg_read_latency_cycles == pytest.approx(
        ((1 + cfg.tRCDRD + cfg.CL + 4) + (1 + cfg.CL + 4)) / 2)
    # close page: every read activates
    closed = cfg.with_(row_buf_policy="CLOSE_PAGE")
    addrs = np.arange(200, dtype=np.uint64) * np.uint64(64)
    s = simulate(closed, addrs, np.zeros(200), np.arange(200) * 60, 20000)
    assert s.activates == s.read_cmds == 200 and s.read_row_hits == 0


def test_refresh_count_and_determinism(configs):
    cfg = configs["DDR4_8Gb_x8_3200.ini"]
    a, w, t = pattern("rand", 2000, 3, 0.2, seed=7)
    s1 = simulate(cfg, a, w, t, 50000)
    s2 = simulate(cfg, a, w, t, 50000)
    assert s1.to_dict() == s2.to_dict()
    assert s1.refreshes == (50000 - 1) // cfg.refresh_interval
    # the peak is reached by one saturating sequential stream per channel
    hbm = configs["HBM2_8Gb_x128.ini"]
    n = 40000
    a = np.arange(n, dtype=np.uint64) * np.uint64(64)
    s = simulate(hbm, a, np.zeros(n), np.zeros(n), 10**6, frontend="per_channel",
                 until_done=True)
    assert s.reads_done == n
    eff = s.bandwidth_GBps / (hbm.peak_bandwidth / 1e9)
    assert 0.7 < eff <= 1.0


def test_config_validation():
    from sim.micro.dram_config import DramConfigError

    with pytest.raises(DramConfigError, match="address_mapping"):
        DramConfig(address_mapping="rorochbabgco")
    with pytest.raises(DramConfigError, match="rows"):
        DramConfig(rows=1000)
    cfg = DramConfig()
    f = cfg.decode(np.array([cfg.encode(ra=0, bg=3, ba=1, ro=77, co=5)], np.uint64))
    assert (f["bg"][0], f["ba"][0], f["ro"][0], f["co"][0]) == (3, 1, 77, 5)


def test_ini_reader_semantics(configs, tmp_path: Path):
    hbm = configs["HBM2_8Gb_x128.ini"]
    assert (hbm.ranks, hbm.columns, hbm.burst_cycle, hbm.dual_command_issue) == (1, 128, 2, True)
    ddr = configs["DDR4_8Gb_x8_3200.ini"]
    assert (ddr.ranks, ddr.request_bytes, ddr.tRCDRD) == (2, 64, 22)
    gddr = configs["GDDR6_8Gb_x16.ini"]
    assert gddr.bankgroups == 1 and gddr.banks_per_group == 16 and gddr.tRTP == 5
    e = ddr.energies_pJ()
    assert e["act"] == pytest.approx(1.2 * (57 * 74 - (52 * 52 + 37 * 22)) * 8)


def test_dram_config_is_a_frozen_hashable_record():
    """DramConfig (hand-written, not a dataclass, for start-up): keyword construction with
    defaults, equality and hash over every field but `sources`, frozen, copies and pickles
    that rebuild (string hashes differ between processes)."""
    import copy
    import pickle

    a, b, c = DramConfig(), DramConfig(CL=12), DramConfig(CL=13)
    assert a == b and hash(a) == hash(b) and a != c and len({a, b, c}) == 2
    assert a.with_(CL=13) == c and a.with_(sources=(("CL", "datasheet"),)) == a
    assert a.with_(CL=13).sources == () and c.with_(sources=(("x", "y"),)).CL == 13
    for other in (pickle.loads(pickle.dumps(c)), copy.deepcopy(c), copy.copy(c)):
        assert other == c and hash(other) == hash(c) and other.CL == 13
    with pytest.raises(AttributeError, match="frozen"):
        a.CL = 3
    with pytest.raises(TypeError, match="unexpected field"):
        DramConfig(CLL=3)
    with pytest.raises(DramConfigError, match="rows"):
        a.with_(rows=1000)  # validated again
    assert repr(c).startswith("DramConfig(name='dram', protocol='DDR4'") and "CL=13" in repr(c)
