"""The SCALE-Sim-compatible GEMM kernel built ahead of time (sim.micro.systolic_aot) gives what
numba's JIT gives, and `xpusim import scalesim` run on it imports no numba (its import and the
kernel's cached machine code were ~0.7 of a small case's ~0.95 CPU s, issue 18)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_build_name_follows_sources, built_ahead_or_skip

from sim.micro import systolic_aot
from sim.micro.systolic_trace import ScaleSimConfig, run_gemm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aot():
    return built_ahead_or_skip(systolic_aot, "SCALE-Sim kernel", "XPUSIM_SYSTOLIC_AOT")


def _runs() -> list:
    """Every field of the report of GEMMs of odd and even shapes, on three dataflows, CALC and
    USER modes, SRAMs from one that stalls the array to ample."""
    out = []
    for df in ("os", "ws", "is"):
        for user in (False, True):
            for kb, bw in ((1, 2), (64, 10), (512, 50)):
                cfg = ScaleSimConfig(rows=8, cols=16, dataflow=df, ifmap_kb=kb, filter_kb=kb,
                                     ofmap_kb=kb, bandwidth=bw, user_bandwidth=user,
                                     ifmap_bank_bw=bw, filter_bank_bw=bw)
                for m, n, k in ((37, 23, 61), (64, 64, 64), (5, 130, 9)):
                    try:
                        out.append(run_gemm(m, n, k, cfg).as_dict())
                    except ValueError as exc:   # an ofmap SRAM too small: the same refusal
                        out.append(str(exc))
    return out


def test_aot_kernel_equals_jit(aot, monkeypatch):
    monkeypatch.setattr(systolic_aot, "_CACHE", [aot])
    got = _runs()
    monkeypatch.setattr(systolic_aot, "_CACHE", [systolic_aot.jit_kernels()])
    want = _runs()
    assert got == want and len(got) == 54
    figures = [g for g in got if isinstance(g, dict)]
    assert len(figures) > 40 and any(g["stall_cycles"] > 0 for g in figures)


def test_a_float_where_an_integer_goes_is_refused(aot):
    """The extension would truncate 100.5 to 100 where numba's JIT computes with it: refused."""
    args = (0, 0, 8, 8, 8, 4, 4, 2, 2, 10, 100)
    assert aot.calc_read_pass(*args) == systolic_aot.jit_kernels().calc_read_pass(*args)
    with pytest.raises(TypeError, match="argument 10: expected an integer"):
        aot.calc_read_pass(*args[:-1], 100.5)
    with pytest.raises(TypeError, match="argument 2: expected an integer"):
        aot.calc_write_pass(0, 0, True, 8, 8, 4, 4, 2, 2, 10, 4, 0, 0)


def test_name_follows_the_sources(tmp_path, monkeypatch):
    """An edited kernel or its model's module gets a new extension name."""
    assert_build_name_follows_sources(monkeypatch, tmp_path, systolic_aot, systolic_aot.SOURCES,
                                      systolic_aot.module_name,
                                      ("systolic_kernel.py", "systolic_trace.py"),
                                      "xpusim_systolic_")


_CLI = """
import json, sys
from xpusim.cli import main
rc = main(["import", "scalesim", "--config", sys.argv[1], "--topology", sys.argv[2], "--json",
           "--quiet"])
print(json.dumps({"rc": rc, "numba": "numba" in sys.modules,
                  "llvmlite": "llvmlite" in sys.modules}))
"""


def test_cli_on_the_aot_kernel_skips_numba(aot, ref_dir, tmp_path):
    """`xpusim import scalesim` prints the same figures without importing numba or llvmlite."""
    import importlib.machinery

    from sim.micro import dram_aot

    inputs = ref_dir / "accel" / "scalesim_inputs"
    fname = systolic_aot.module_name() + importlib.machinery.EXTENSION_SUFFIXES[0]
    built = next(d for d in dram_aot.directories() if (d / fname).is_file())
    outs = {}
    for mode in ("1", "0"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XPUSIM_SYSTOLIC_AOT": mode,
               "XPUSIM_AOT_DIR": str(built)}
        res = subprocess.run([sys.executable, "-c", _CLI, str(inputs / "cfg_ws_USER.cfg"),
                              str(inputs / "gemm512.csv")], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600, env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        figures, flags = res.stdout.strip().rsplit("\n", 1)
        outs[mode] = (json.loads(figures), json.loads(flags))
    assert outs["1"][1] == {"rc": 0, "numba": False, "llvmlite": False}
    assert outs["0"][1] == {"rc": 0, "numba": True, "llvmlite": True}
    assert outs["1"][0] == outs["0"][0]
