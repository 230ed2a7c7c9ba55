"""The DRAM kernels built ahead of time (sim.micro.dram_aot) give what numba's JIT gives.

The extension is the same source compiled by numba's pycc, so every figure, every command logged
and every parsed trace field must be identical; and `xpusim import dramsim3` run on it must not
import numba at all (that start-up was most of its CPU, issue 18).
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_build_name_follows_sources, built_ahead_or_skip

from sim.micro import dram_aot
from sim.micro.dram_config import DramConfig
from sim.micro.dram_run import simulate

ROOT = Path(__file__).resolve().parents[1]
INIS = ("DDR3_8Gb_x8_1600.ini", "DDR4_8Gb_x8_3200.ini", "GDDR6_8Gb_x16.ini",
        "HBM2_8Gb_x128.ini", "LPDDR4_8Gb_x16_2400.ini")


@pytest.fixture(scope="module")
def aot():
    return built_ahead_or_skip(dram_aot, "DRAM kernel", "XPUSIM_DRAM_AOT")


def _with(kernels, monkeypatch):
    monkeypatch.setattr(dram_aot, "_CACHE", [kernels])


def _requests(n: int, seed: int, span: int = 1 << 30):
    """Half sequential, half random 64 B requests, a third of them writes, one per 2 cycles."""
    rng = np.random.default_rng(seed)
    seq = np.arange(n // 2, dtype=np.uint64) * np.uint64(64)
    rnd = rng.integers(0, span // 64, n - n // 2).astype(np.uint64) * np.uint64(64)
    addrs = np.concatenate([seq, rnd])
    writes = (rng.random(n) < 0.33).astype(np.int8)
    times = np.arange(n, dtype=np.int64) * 2
    return addrs, writes, times


def _configs(ref_dir_or_none) -> list[DramConfig]:
    cfgs = [DramConfig()]
    if ref_dir_or_none is not None:
        from sim.micro.dram_ini import load_dramsim3_ini

        cfgs += [load_dramsim3_ini(ref_dir_or_none / "dram" / "dramsim3_configs" / n)
                 for n in INIS]
    return cfgs


def _run_all(cfgs) -> list:
    out = []
    for i, cfg in enumerate(cfgs):
        addrs, writes, times = _requests(1500, seed=i)
        for kw in ({"frontend": "dramsim3", "tail": "newline"},
                   {"frontend": "per_channel", "until_done": True}):
            s = simulate(cfg, addrs, writes, times, 20000, log_commands=400, **kw)
            out.append((s.to_dict(), s.per_channel.tolist(), s.commands.tolist(),
                        s.last_done_cycle, s.dual_issues, s.energy_breakdown_pJ))
    return out


def test_aot_kernel_equals_jit(aot, monkeypatch):
    """Every statistic, per-channel counter and logged command is identical on six configs
    (DDR3/DDR4/GDDR6/HBM2 dual issue/LPDDR4 and the default), both front ends."""
    from conftest import reference_dir

    ref = reference_dir() if reference_dir().is_dir() else None
    cfgs = _configs(ref)
    _with(aot, monkeypatch)
    got = _run_all(cfgs)
    _with(dram_aot.jit_kernels(), monkeypatch)
    want = _run_all(cfgs)
    assert len(got) == 2 * len(cfgs)
    for g, w in zip(got, want, strict=True):
        assert g == w
    # the runs did work: commands issued, reads finished, refreshes in the longer runs
    assert all(g[0]["reads_done"] > 0 and len(g[2]) == 400 for g in got)


def test_aot_trace_pass_equals_jit(aot):
    lines = [f"0x{(64 * i * 2654435761) % (1 << 40):x} {'WRITE' if i % 3 else 'READ'} {7 * i}"
             for i in range(3000)]
    for text in ("\n".join(lines) + "\n", "\r\n".join(lines), "0x40 READ +5\n", "",
                 "0x40 R\xe9AD 1\n"):
        buf = np.frombuffer(text.encode("latin-1"), np.uint8)
        a = aot.parse_plain(buf)
        j = dram_aot.jit_kernels().parse_plain(buf)
        assert a[0] == j[0] and a[1] == j[1]
        n = a[1]
        for x, y in zip(a[2:], j[2:], strict=True):
            assert x.dtype == y.dtype and x[:n].tolist() == y[:n].tolist()
    ok, n, addrs, writes, times = aot.parse_plain(
        np.frombuffer(("\n".join(lines) + "\n").encode(), np.uint8))
    assert ok and n == 3000 and times[2999] == 7 * 2999 and writes[:3].tolist() == [0, 1, 1]


def test_aot_pim_schedule_equals_jit(aot, monkeypatch):
    """The PIM command schedule (dram_pim.sweep) gives the same figures from the extension
    and from numba's JIT, over ranks, buffering, GWRITE cost and tile shapes."""
    import dataclasses
    import itertools

    from sim.micro.dram_pim import PimConfig, sweep

    cases = list(itertools.product(
        (DramConfig(), DramConfig(ranks=4)),
        (PimConfig(), PimConfig(double_buffered_gb=False, act_group=16)),
        ((0, 1, 1, 1), (1, 1, 8, 1), (3, 5, 7, 3), (17, 8, 32, 4), (40, 3, 64, 0))))

    def run_all():
        return [dataclasses.asdict(sweep(c, p, *shape)) for c, p, shape in cases]

    _with(aot, monkeypatch)
    got = run_all()
    _with(dram_aot.jit_kernels(), monkeypatch)
    assert got == run_all()
    assert got[3]["tiles"] == 17 * 8 and got[3]["gwrites"] == 17 and got[3]["rdres"] == 17 * 8 * 4


def test_wrong_array_type_is_refused_not_misread(aot):
    """The extension reads memory as its signature says; the wrapper refuses anything else."""
    with pytest.raises(TypeError, match="argument 0"):
        aot.parse_plain(np.zeros(4, np.int8))
    with pytest.raises(TypeError, match="arguments"):
        aot.run_kernel(np.zeros(3, np.int64))
    buf = np.frombuffer(b"0x40 READ 1\n0x80 WRITE 2\n", np.uint8)[::2]  # not contiguous
    with pytest.raises(TypeError, match="C-contiguous"):
        aot.parse_plain(buf)


def test_name_follows_the_sources(tmp_path, monkeypatch):
    """An edited kernel source gets a new extension name (the old build is never reused)."""
    assert_build_name_follows_sources(monkeypatch, tmp_path, dram_aot, dram_aot.SOURCES,
                                      dram_aot.module_name, ("dram.py",), "xpusim_dram_")


def test_failed_build_is_remembered_and_jit_used(tmp_path, monkeypatch):
    monkeypatch.setenv("XPUSIM_AOT_DIR", str(tmp_path))
    (tmp_path / (dram_aot.module_name() + ".failed")).write_text("no compiler\n")
    assert dram_aot.load(build_missing=True) is None  # not retried
    monkeypatch.setattr(dram_aot, "_CACHE", [])
    assert dram_aot.kernels().kind == "jit"
    monkeypatch.setenv("XPUSIM_AOT_DIR", str(tmp_path / "other"))
    monkeypatch.setenv("XPUSIM_DRAM_AOT", "0")
    monkeypatch.setattr(dram_aot, "_CACHE", [])
    assert dram_aot.kernels().kind == "jit" and not (tmp_path / "other").exists()


_CLI = """
import json, sys
from xpusim.cli import main
rc = main(["import", "dramsim3", "--config", sys.argv[1], "--trace", sys.argv[2],
           "--cycles", "6000", "--json"])
print(json.dumps({"rc": rc, "numba": "numba" in sys.modules,
                  "llvmlite": "llvmlite" in sys.modules}))
"""


def test_cli_on_the_aot_kernel_skips_numba(aot, ref_dir, tmp_path):
    """`xpusim import dramsim3` prints the same figures without importing numba or llvmlite."""
    trace = tmp_path / "t.trace"
    trace.write_text("".join(f"0x{(64 * i * 40503) % (1 << 31):x} "
                             f"{'WRITE' if i % 4 == 0 else 'READ'} {3 * i}\n"
                             for i in range(1500)))
    cfg = ref_dir / "dram" / "dramsim3_configs" / "DDR4_8Gb_x8_3200.ini"
    outs = {}
    # the child imports the checkout (PYTHONPATH), whose package directory may differ from the
    # installed one this process built into: point it at the extension the fixture loaded
    fname = dram_aot.module_name() + importlib.machinery.EXTENSION_SUFFIXES[0]
    built = next(d for d in dram_aot.directories() if (d / fname).is_file())
    from sim.micro import dram_capi

    try:   # the CLI's whole-run library, in the same folder (built once, with numba, here)
        dram_capi.build(built)
    except Exception as exc:  # noqa: BLE001 - no C++ compiler: the CLI takes the AOT kernel
        print(f"C library not built ({exc}); the CLI runs the AOT kernel")
    for mode in ("1", "0"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XPUSIM_DRAM_AOT": mode,
               "XPUSIM_AOT_DIR": str(built)}
        res = subprocess.run([sys.executable, "-c", _CLI, str(cfg), str(trace)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        text = res.stdout.strip()
        figures, flags = text.rsplit("\n", 1)
        outs[mode] = (json.loads(figures), json.loads(flags))
    assert outs["1"][1] == {"rc": 0, "numba": False, "llvmlite": False}
    assert outs["0"][1] == {"rc": 0, "numba": True, "llvmlite": True}
    assert outs["1"][0] == outs["0"][0] and outs["1"][0]["reads_done"] > 900


@pytest.mark.slow
def test_fresh_build_in_a_new_directory(tmp_path, monkeypatch, capfd):
    """A build from nothing (about as long as numba's first compile): the extension appears
    under its hashed name, nothing reaches stdout, and it runs like the JIT kernel."""
    monkeypatch.setenv("XPUSIM_AOT_DIR", str(tmp_path))
    path = dram_aot.build(tmp_path)
    assert path.name.startswith(dram_aot.module_name()) and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no build leftovers
    assert capfd.readouterr().out == ""
    mod = dram_aot.load()
    assert mod is not None and Path(mod.__file__) == path
    buf = np.frombuffer(b"0x40 READ 1\n0x80 WRITE 2\n", np.uint8)
    ok, n, addrs, writes, times = mod.trace(buf)
    assert ok and n == 2 and addrs[:2].tolist() == [64, 128] and writes[:2].tolist() == [0, 1]
