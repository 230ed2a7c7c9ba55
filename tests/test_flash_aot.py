"""The flash kernel built ahead of time (sim.micro.flash_aot) gives what numba's JIT gives.

The extension is the same source compiled by numba's pycc: every statistic of a flow must be
identical, on the six MQSim reference cases and on synthetic flows of both kinds; and a run
that prices a computational SSD must not import numba at all (its import and the kernel's
cached machine code cost ~0.7 CPU s, issue 18). The random draws the kernel compiles are the
Python function MQSim's stream is checked on (tests/test_flash.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_build_name_follows_sources, built_ahead_or_skip

from sim.micro import flash_aot, flash_rng
from sim.micro.flash import FlashConfig, FlowSpec, simulate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aot():
    return built_ahead_or_skip(flash_aot, "flash kernel", "XPUSIM_FLASH_AOT")


def _with(kernels, monkeypatch):
    monkeypatch.setattr(flash_aot, "_CACHE", [kernels])


def _flows(ref_dir) -> list[tuple[FlashConfig, FlowSpec]]:
    """Synthetic flows (sequential and random, reads, writes and a mix, 2 KiB to 128 KiB, queue
    depths 1-64, aligned or not) on the default drive, and the MQSim reference cases where
    present."""
    cfg = FlashConfig()
    flows = [(cfg, FlowSpec(kind=kind, read_fraction=rf, request_bytes=rb, queue_depth=qd,
                            stop_time_s=0.002, seed=seed, aligned=True, alignment_bytes=rb))
             for kind, rf, rb, qd, seed in (("seq", 1.0, 131072, 32, 1), ("rand", 1.0, 4096, 64, 2),
                                            ("rand", 0.0, 16384, 8, 3), ("seq", 0.5, 65536, 1, 4),
                                            ("rand", 0.7, 8192, 16, 5))]
    # sub-page writes over a small working set: a cached page written back part-filled is
    # read first (an update read)
    flows.append((cfg, FlowSpec(kind="seq", read_fraction=0.0, request_bytes=2048,
                                queue_depth=16, stop_time_s=0.02, seed=7, aligned=False,
                                working_set=0.001)))
    inputs = ref_dir / "ssd" / "mqsim_inputs"
    if inputs.is_dir():
        import csv

        from sim.micro.mqsim_xml import load_ssd_config, load_workload

        for row in csv.DictReader(open(ref_dir / "ssd" / "mqsim_cases.csv")):
            c = load_ssd_config(inputs / row["config_file"])
            flows.append((c, load_workload(inputs / row["workload_file"], c)))
    return flows


def test_aot_kernel_equals_jit(aot, ref_dir, monkeypatch):
    """Every statistic of every flow is identical, and the flows did work."""
    flows = _flows(ref_dir)
    _with(aot, monkeypatch)
    got = [simulate(c, f) for c, f in flows]
    _with(flash_aot.jit_kernels(), monkeypatch)
    want = [simulate(c, f) for c, f in flows]
    assert got == want
    assert all(s.requests_served > 0 for s in got)
    assert any(s.flash_page_programs > 0 for s in got) and any(s.update_reads > 0 for s in got)


def test_draws_in_python_are_the_compiled_ones():
    """The MRG32k3a step the kernel compiles and the same function run in Python draw the same
    doubles and leave the same states (the Python one seeds the streaming start)."""
    from sim.micro.flash_kernel import next_double as compiled

    for seed in (0, 1, 102, 103, 199, 200, 12345):
        a, b = flash_rng.mqsim_state(seed), flash_rng.mqsim_state(seed)
        drawn = [(flash_rng.next_double(a), compiled(b)) for _ in range(500)]
        assert all(x == y for x, y in drawn) and a.tobytes() == b.tobytes()


def test_wrong_array_type_is_refused_not_misread(aot):
    """The extension reads memory as its signature says; the wrapper refuses anything else."""
    with pytest.raises(TypeError, match="argument 0"):
        aot.simulate_kernel(*([np.zeros(4, np.int32)] + [None] * 17))
    with pytest.raises(TypeError, match="arguments"):
        aot.simulate_kernel(np.zeros(3, np.int64))


def test_name_follows_the_sources(tmp_path, monkeypatch):
    """An edited kernel source, constants or draw gets a new extension name (the old build is
    never reused)."""
    assert_build_name_follows_sources(monkeypatch, tmp_path, flash_aot, flash_aot.SOURCES,
                                      flash_aot.module_name,
                                      ("flash_kernel.py", "flash_fields.py", "flash_rng.py"),
                                      "xpusim_flash_")


_RUN = """
import json, sys
from arch import load_arch
from sim.run import simulate
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario
r = simulate(load_arch("a6000-storage"), get_model("llama2-7b"),
             Scenario(batch=4, prompt_len=64, gen_len=4), policies=Policies(attention_on="csd"))
print(json.dumps({"latency_s": r.metrics["latency_s"], "numba": "numba" in sys.modules,
                  "llvmlite": "llvmlite" in sys.modules}))
"""


def test_csd_run_on_the_aot_kernel_skips_numba(aot, tmp_path):
    """A run with its attention on the computational SSD gives the same figures without
    importing numba or llvmlite (its DRAM and engine loops are built ahead of time too)."""
    from sim.engine_aot import kernels as engine_kernels
    from sim.micro import dram_aot

    # the run's other loops built ahead of time too (here, first: a build imports numba)
    assert engine_kernels().kind == dram_aot.kernels().kind == "aot"
    fname = flash_aot.module_name() + __import__("importlib.machinery").machinery \
        .EXTENSION_SUFFIXES[0]
    built = next(d for d in dram_aot.directories() if (d / fname).is_file())
    outs = {}
    for mode in ("1", "0"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XPUSIM_FLASH_AOT": mode,
               "XPUSIM_AOT_DIR": str(built)}
        res = subprocess.run([sys.executable, "-c", _RUN], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600, env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        outs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    assert outs["0"]["numba"] and outs["0"]["llvmlite"]
    assert not outs["1"]["numba"] and not outs["1"]["llvmlite"]
    assert outs["1"]["latency_s"] == outs["0"]["latency_s"] > 0
