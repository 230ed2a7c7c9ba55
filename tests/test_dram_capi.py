"""The DRAM trace library (sim.micro.dram_capi) gives exactly what the numpy path gives.

The library is the same numba source (trace parse, address mapping, kernel) compiled into a C
shared library and called through ctypes, so every figure must equal
:func:`sim.micro.dram_run.simulate` on :func:`sim.micro.dram_tracefile.read_trace`'s arrays; and
`xpusim import dramsim3` on it must import neither numpy nor numba (issue 18: their start-up was
more than DRAMsim3's whole run on short traces).
"""

from __future__ import annotations

import importlib.machinery
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.micro import dram_capi
from sim.micro.dram_config import DramConfig
from sim.micro.dram_run import simulate
from sim.micro.dram_tracefile import read_trace

ROOT = Path(__file__).resolve().parents[1]
INIS = ("DDR3_8Gb_x8_1600.ini", "DDR4_8Gb_x8_3200.ini", "GDDR6_8Gb_x16.ini",
        "HBM2_8Gb_x128.ini", "LPDDR4_8Gb_x16_2400.ini")
FIELDS = ("cycles", "requests", "accepted", "reads_done", "writes_done",
          "avg_read_latency_cycles", "read_cmds", "write_cmds", "activates", "precharges",
          "refreshes", "bank_refreshes", "read_row_hits", "write_row_hits", "dual_issues",
          "bandwidth_GBps", "energy_pJ", "energy_breakdown_pJ", "last_done_cycle")


@pytest.fixture(scope="module")
def lib():
    if dram_capi.entry() is None:
        pytest.skip("no DRAM trace library here (no C++ compiler, a failed build, or "
                    "XPUSIM_DRAM_AOT=0): `xpusim import dramsim3` takes the numpy path")
    return dram_capi.entry()


def _write(path: Path, n: int, seed: int, sep: str = "\n", end: str = "\n") -> Path:
    """Sequential, random and repeated 64 B addresses (reads after writes of the same address
    included), a third of them writes, arrivals every 2 cycles."""
    rng = np.random.default_rng(seed)
    seq = [64 * i for i in range(n // 3)]
    rnd = (rng.integers(0, 1 << 24, n // 3) * 64).tolist()
    rep = (rng.integers(0, 40, n - 2 * (n // 3)) * 4096).tolist()  # few rows, many repeats
    addrs = [int(a) for pair in zip(seq, rnd, strict=False) for a in pair] + rep
    lines = [f"0x{a:x} {'WRITE' if rng.random() < 0.33 else 'READ'} {2 * i}"
             for i, a in enumerate(addrs)]
    path.write_text(sep.join(lines) + end, newline="")
    return path


def _numpy(cfg: DramConfig, path: Path, cycles: int) -> dict:
    tr = read_trace(path)
    s = simulate(cfg, tr.addrs, tr.writes, tr.times, cycles, frontend="dramsim3",
                 tail="newline" if tr.trailing_newline else "no_newline")
    return {k: getattr(s, k) for k in FIELDS}


def _same(a: dict, b: dict) -> bool:
    nan = {k for k, v in a.items() if isinstance(v, float) and math.isnan(v)}
    return ({k: v for k, v in a.items() if k not in nan}
            == {k: v for k, v in b.items() if k not in nan}
            and all(math.isnan(b[k]) for k in nan))


def _configs() -> list[DramConfig]:
    from conftest import reference_dir

    cfgs = [DramConfig()]
    ref = reference_dir()
    if ref.is_dir():
        from sim.micro.dram_ini import load_dramsim3_ini

        cfgs += [load_dramsim3_ini(ref / "dram" / "dramsim3_configs" / n) for n in INIS]
    return cfgs


def test_library_equals_numpy_path(lib, tmp_path):
    """Every figure identical (floats bit for bit) on six configs (DDR3/DDR4/GDDR6/HBM2 dual
    issue/LPDDR4/default), with the trace ending in a newline, in none, and CRLF lines."""
    traces = [(_write(tmp_path / "nl.trace", 1500, 1), 20000),
              (_write(tmp_path / "nonl.trace", 1500, 2, end=""), 20000),
              (_write(tmp_path / "crlf.trace", 900, 3, sep="\r\n", end="\r\n"), 900)]
    n = 0
    for cfg in _configs():
        for path, cycles in traces:
            got = dram_capi.run_trace_file(cfg, path, cycles)
            want = _numpy(cfg, path, cycles)
            assert got is not None and _same(got, want), (cfg.name, path.name, got, want)
            n += 1
    assert n == 3 * len(_configs())


def test_short_run_and_edge_traces(lib, tmp_path):
    """A run cut before most requests arrive, an empty trace, one request without newline."""
    cfg = DramConfig()
    path = _write(tmp_path / "t.trace", 600, 4)
    got = dram_capi.run_trace_file(cfg, path, 300)
    assert _same(got, _numpy(cfg, path, 300)) and got["accepted"] < 600
    figs = {}
    for text in ("", "0x40 READ 0", "0x40 WRITE 5\n"):
        p = tmp_path / "e.trace"
        p.write_text(text, newline="")
        figs[text] = dram_capi.run_trace_file(cfg, p, 500)
        assert _same(figs[text], _numpy(cfg, p, 500)), text
    # by hand: 500 idle cycles cost VDD * IDD2N * devices each (1.2 V * 34 mA * 8 chips)
    assert figs[""]["energy_pJ"] == pytest.approx(500 * 1.2 * 34 * 8)
    # one read: a cycle into the queue, ACT, tRCD, then RL + burst to the last beat
    one = figs["0x40 READ 0"]
    assert (one["reads_done"], one["activates"], one["read_cmds"]) == (1, 1, 1)
    assert one["avg_read_latency_cycles"] == 1 + cfg.tRCDRD + cfg.CL + cfg.burst_cycle
    # a write, then DRAMsim3's re-read of the last line (newline at the end) as a read of the
    # same address: served from the write buffer, no DRAM command yet
    w = figs["0x40 WRITE 5\n"]
    assert (w["requests"], w["writes_done"], w["reads_done"], w["read_cmds"]) == (1, 1, 1, 0)


def test_traces_the_compiled_parse_declines_go_to_numpy(lib, tmp_path):
    """Signed cycles, non-ASCII, a bad line, an unreadable file: None (the caller's numpy path
    parses them or names the bad line)."""
    cfg = DramConfig()
    for text in ("0x40 READ +5\n", "0x40 R\u00e9AD 1\n", "0x40 READ\n", "zz READ 1\n"):
        p = tmp_path / "d.trace"
        p.write_text(text, encoding="utf-8")
        assert dram_capi.run_trace_file(cfg, p, 100) is None
    assert dram_capi.run_trace_file(cfg, tmp_path / "missing.trace", 100) is None


def test_module_name_follows_the_sources(tmp_path, monkeypatch):
    """An edited kernel or entry source gets a new library name (an old build is never used)."""
    from conftest import assert_build_name_follows_sources

    from sim.micro import dram_aot

    assert_build_name_follows_sources(monkeypatch, tmp_path, dram_aot, dram_capi.SOURCES,
                                      dram_capi.module_name, ("dram.py", "dram_entry.py"),
                                      "xpusim_dramc_")


def test_failed_build_is_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("XPUSIM_AOT_DIR", str(tmp_path))
    (tmp_path / (dram_capi.module_name() + ".failed")).write_text("no c++\n")
    assert dram_capi.load(build_missing=True) is None  # not retried
    monkeypatch.setattr(dram_capi, "_LOADED", [])
    monkeypatch.setenv("XPUSIM_DRAM_AOT", "0")
    assert dram_capi.entry() is None


_CLI = """
import json, sys
from xpusim.cli import main
rc = main(["import", "dramsim3", "--config", sys.argv[1], "--trace", sys.argv[2],
           "--cycles", "6000", "--json"])
print(json.dumps({"rc": rc, "loaded": sorted({"numpy", "numba", "llvmlite", "dataclasses",
                                               "xpusim.commands.run"} & set(sys.modules))}))
"""


def test_cli_runs_on_the_library_without_numpy(lib, ref_dir, tmp_path):
    """`xpusim import dramsim3` prints the numpy path's figures and imports neither numpy nor
    numba (nor dataclasses, nor the other commands)."""
    trace = _write(tmp_path / "t.trace", 1500, 5)
    cfg_path = ref_dir / "dram" / "dramsim3_configs" / "HBM2_8Gb_x128.ini"
    fname = dram_capi.module_name() + importlib.machinery.EXTENSION_SUFFIXES[0]
    built = next(d for d in dram_capi.dram_aot.directories() if (d / fname).is_file())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XPUSIM_AOT_DIR": str(built)}
    res = subprocess.run([sys.executable, "-c", _CLI, str(cfg_path), str(trace)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    figures, flags = res.stdout.strip().rsplit("\n", 1)
    assert json.loads(flags) == {"rc": 0, "loaded": []}
    from sim.micro.dram_ini import load_dramsim3_ini
    from xpusim.importers.dramsim3 import KEYS

    want = _numpy(load_dramsim3_ini(cfg_path), trace, 6000)
    got = json.loads(figures)
    assert got == {k: want[k] for k in KEYS} and got["reads_done"] > 600
