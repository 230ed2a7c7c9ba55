"""SCALE-Sim compatibility: the shared reference cases exactly, golden small cases, the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import assert_refused

from sim.micro.systolic_trace import ScaleSimConfig, run_gemm, trace_cycles
from xpusim.importers.scalesim import KEYS, read_config

CASES = {"R1": "cfg_os_CALC.cfg", "R2": "cfg_ws_CALC.cfg", "R3": "cfg_ws_USER.cfg",
         "R3b": "cfg_os_USER.cfg"}


def _reference(ref_dir):
    with open(ref_dir / "accel" / "systolic_gemm_reference_cases.csv", newline="") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


def _check(layer: dict, row: dict) -> None:
    for key in KEYS:
        if key == "utilization":
            assert layer[key] == pytest.approx(float(row[key]), abs=5e-5), key
        else:
            assert layer[key] == int(row[key]), key


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xpusim", "import", "scalesim", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("case", ["R1", "R2", "R3", "R3b"])
def test_reference_case_exact(ref_dir, case):
    inputs = ref_dir / "accel" / "scalesim_inputs"
    cfg = read_config(str(inputs / CASES[case]))
    rep = run_gemm(512, 512, 512, ScaleSimConfig(**cfg)).as_dict()
    _check(rep, _reference(ref_dir)[case])


def test_r2b_input_stationary_exact(ref_dir, tmp_path):
    """R2b is R2's config with Dataflow: is (accel/README.md)."""
    src = (ref_dir / "accel" / "scalesim_inputs" / "cfg_ws_CALC.cfg").read_text()
    cfg_path = tmp_path / "cfg_is_CALC.cfg"
    cfg_path.write_text(src.replace("Dataflow : ws", "Dataflow : is"))
    rep = run_gemm(512, 512, 512, ScaleSimConfig(**read_config(str(cfg_path)))).as_dict()
    _check(rep, _reference(ref_dir)["R2b"])


# Small cases run with SCALE-Sim 3.0.0 (PyPI `scalesim`, 2026-11) by us: (M, N, K, config) ->
# its COMPUTE_REPORT / DETAILED_ACCESS_REPORT figures.
GOLDEN = [
    ((37, 53, 29), dict(rows=8, cols=4, dataflow="os", ifmap_kb=2, filter_kb=2, ofmap_kb=1,
                        bandwidth=8),
     dict(total_cycles=2935, compute_cycles=2729, stall_cycles=0, sram_ifmap_reads=15022,
          sram_filter_reads=7685, sram_ofmap_writes=2801, dram_ifmap_reads=15022,
          dram_filter_reads=1609, dram_ofmap_writes=1964)),
    ((61, 23, 45), dict(rows=4, cols=8, dataflow="ws", ifmap_kb=1, filter_kb=2, ofmap_kb=1,
                        bandwidth=4, user_bandwidth=True, ifmap_bank_bw=4, filter_bank_bw=4),
     dict(total_cycles=4478, compute_cycles=3981, stall_cycles=1282, sram_ifmap_reads=8235,
          sram_filter_reads=1035, sram_ofmap_writes=16836, dram_ifmap_reads=11264,
          dram_filter_reads=2048, dram_ofmap_writes=16839)),
    ((50, 70, 33), dict(rows=8, cols=8, dataflow="is", ifmap_kb=2, filter_kb=1, ofmap_kb=1,
                        bandwidth=8, user_bandwidth=True, ifmap_bank_bw=8, filter_bank_bw=8),
     dict(total_cycles=3359, compute_cycles=3219, stall_cycles=0, sram_ifmap_reads=1650,
          sram_filter_reads=16170, sram_ofmap_writes=17500, dram_ifmap_reads=2048,
          dram_filter_reads=23040, dram_ofmap_writes=17507)),
]


@pytest.mark.parametrize("shape,cfg,want", GOLDEN)
def test_golden_small_cases(shape, cfg, want):
    rep = run_gemm(*shape, ScaleSimConfig(**cfg)).as_dict()
    assert {k: rep[k] for k in want} == want


def test_compute_cycles_are_fold_cycles_without_stalls():
    """With no stalls, SCALE-Sim's compute cycles are folds x fold length - 1, any shape."""
    from sim.micro.systolic import gemm_cycles

    for m, n, k, r, c, df in [(7, 300, 65, 16, 8, "os"), (129, 3, 200, 8, 16, "ws"),
                              (64, 64, 64, 64, 64, "is"), (1, 1, 1, 3, 5, "ws")]:
        rep = run_gemm(m, n, k, ScaleSimConfig(r, c, df, 4096, 4096, 4096))
        assert rep.stall_cycles == 0
        assert rep.compute_cycles == gemm_cycles(m, n, k, r, c, df).cycles - 1
        assert trace_cycles(m, n, k, ScaleSimConfig(r, c, df, 4096, 4096, 4096)) == \
            rep.compute_cycles + 1


def test_cli_json_keys(ref_dir):
    inputs = ref_dir / "accel" / "scalesim_inputs"
    out = _cli("--config", str(inputs / "cfg_os_CALC.cfg"), "--topology",
               str(inputs / "gemm512.csv"), "--layout", str(inputs / "layout_gemm512.csv"),
               "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["layers"]) == 1
    assert set(KEYS) <= set(data["layers"][0])
    _check(data["layers"][0], _reference(ref_dir)["R1"])


def test_cli_bad_input(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("[architecture_presets]\nArrayHeight: x\n")
    topo = tmp_path / "t.csv"
    topo.write_text("Layer,M,N,K,\nL0,4,4,4,\n")
    out = _cli("--config", str(bad), "--topology", str(topo))
    assert out.returncode == 2
    assert "bad.cfg" in out.stderr and "ArrayHeight" in out.stderr
    assert "Traceback" not in out.stderr
    topo.write_text("Layer,M,N,K,\nL0,4,-1,4,\n")
    good = tmp_path / "good.cfg"
    good.write_text("[architecture_presets]\nArrayHeight: 4\nArrayWidth: 4\nIfmapSramSzkB: 1\n"
                    "FilterSramSzkB: 1\nOfmapSramSzkB: 1\nIfmapOffset: 0\nFilterOffset: 100\n"
                    "OfmapOffset: 200\nBandwidth: 4\nDataflow: ws\n[run_presets]\n"
                    "InterfaceBandwidth: CALC\n")
    out = _cli("--config", str(good), "--topology", str(topo))
    assert out.returncode == 2 and "line 2: N" in out.stderr


def test_analytical_mode_r4_within_10_percent(ref_dir):
    inputs = ref_dir / "accel" / "scalesim_inputs"
    out = _cli("--config", str(inputs / "cfg_ws_CALC.cfg"), "--topology",
               str(inputs / "gemm512.csv"), "--analytical", "--json")
    assert out.returncode == 0, out.stderr
    lat = json.loads(out.stdout)["layers"][0]["latency_cycles"]
    target = float(_reference(ref_dir)["R4"]["total_cycles"])
    assert abs(lat / target - 1) < 0.10


@pytest.mark.parametrize("layer, config, needle", [
    # found by benchmarks/fuzz_inputs.py: 23 digits hung the cycle run, 2^31 rows ran out of
    # memory; a layer within the limits whose trace would take minutes is refused by its size
    ("L0,512,512,99999999999999999999999,", "", "line 2: K: expected a positive integer up to"),
    ("L0,2147483648,512,512,", "", "line 2: M: expected a positive integer up to"),
    ("L0,1048576,1048576,512,", "", "layer L0: 549,805,096,960 cycles to trace"),
    ("L0,4,4,4,", "ArrayHeight: 4194304\n", "ArrayHeight: expected at most 1,048,576"),
    ("L0,4,4,4,", "IfmapOffset: 9999999999999999\n", "IfmapOffset: expected at most"),
])
def test_cli_refuses_what_the_cycle_run_cannot_hold(tmp_path, capsys, layer, config, needle):
    from xpusim.cli import main

    topo = tmp_path / "t.csv"
    topo.write_text(f"Layer,M,N,K,\n{layer}\n")
    cfg = tmp_path / "c.cfg"
    base = {"ArrayHeight": "32", "ArrayWidth": "32", "IfmapSramSzkB": "64",
            "FilterSramSzkB": "64", "OfmapSramSzkB": "64", "IfmapOffset": "0",
            "FilterOffset": "10000000", "OfmapOffset": "20000000", "Bandwidth": "32",
            "Dataflow": "ws"}
    for line in config.splitlines():
        key, value = line.split(": ")
        base[key] = value
    cfg.write_text("[architecture_presets]\n" + "".join(f"{k}: {v}\n" for k, v in base.items())
                   + "[run_presets]\nInterfaceBandwidth: CALC\n")
    assert_refused(main(["import", "scalesim", "--config", str(cfg), "--topology", str(topo)]),
                   capsys, needle)
