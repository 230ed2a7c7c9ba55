"""Regression tests for the hostile-input defects of issue 19: every reproducer ends with exit 2
and one line on stderr naming the file or option (or, where the input is fine, a valid result).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from xpusim.cli import main

SMALL = ["--model", "gpt2-small", "--batch", "1", "--prompt", "16", "--gen", "2"]


def _write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _error(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI; expect exit 2, nothing on stdout and one line on stderr holding needles."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("xpusim: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert len(err) < 600
    for needle in needles:
        assert needle in err, err
    return err


SWEEP = """name: t
arch: h100
workloads:
  - {model: gpt2-small, batch: 1, prompt_len: 16, gen_len: 2}
objectives: [{min: latency_s}]
"""


# 1. deep nesting -------------------------------------------------------------------------------
def test_deeply_nested_arch_yaml(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: h100\ngpu: " + "[" * 5000 + "]" * 5000 + "\n")
    _error(capsys, ["arch", "validate", f], "nesting deeper than 64")


def test_deeply_nested_sweep_yaml(tmp_path, capsys):
    f = _write(tmp_path, "s.yaml", SWEEP + "axes: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n")
    _error(capsys, ["sweep", f, "--dry-run"], "nesting deeper than 64")


def test_deeply_nested_config_json(tmp_path, capsys):
    f = _write(tmp_path, "m/config.json", '{"model_type": "llama", "x": ' + "[" * 100000
               + "]" * 100000 + "}")
    _error(capsys, ["run", "--model", f, "--json"], "config.json", "nesting deeper than 64")


# 2. extends cycles and chains ---------------------------------------------------------------
def test_extends_self_named_from_another_folder(tmp_path, capsys):
    _write(tmp_path, "d/a.yaml", "extends: ../d/a.yaml\n")
    t0 = time.perf_counter()
    _error(capsys, ["arch", "validate", str(tmp_path / "d/a.yaml")], "circular extends")
    assert time.perf_counter() - t0 < 5


def test_extends_cycle_between_two_files(tmp_path, capsys):
    _write(tmp_path, "d/a.yaml", "name: a\ntype: gpu\nextends: b.yaml\n")
    _write(tmp_path, "d/b.yaml", "extends: ../d/a.yaml\n")
    _error(capsys, ["arch", "validate", str(tmp_path / "d/a.yaml")], "circular extends")


def test_extends_chain_of_a_thousand_files(tmp_path, capsys):
    for i in range(1000):
        _write(tmp_path, f"c{i}.yaml", f"extends: c{i + 1}.yaml\n")
    _write(tmp_path, "c1000.yaml", "extends: h100\n")
    _error(capsys, ["arch", "validate", str(tmp_path / "c0.yaml")], "chain of more than 16")


def test_short_extends_chain_still_works(tmp_path, capsys):
    _write(tmp_path, "b.yaml", "extends: h100\nname: b\n")
    f = _write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\ngpu: {sm_count: 100}\n")
    assert main(["arch", "validate", f]) == 0
    assert "valid gpu arch 'a'" in capsys.readouterr().out


# 3. alias bombs ---------------------------------------------------------------------------------
BOMB = "".join(f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n"
               for p, k in zip("abcdef", "bcdefg", strict=True))


def test_alias_bomb_in_an_arch_leaf(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: h100\nnote: &a [x, x, x, x, x, x, x, x, x]\n" + BOMB)
    t0 = time.perf_counter()
    err = _error(capsys, ["arch", "validate", f], "expands to more than")
    assert time.perf_counter() - t0 < 5 and "x, x" not in err


def test_alias_bomb_in_a_sweep_strategy(tmp_path, capsys):
    f = _write(tmp_path, "s.yaml", SWEEP + "axes: {gpu.sm_count: [66, 132]}\n"
               "defs: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + BOMB + "strategy: {name: grid, x: *g}\n")
    _error(capsys, ["sweep", f, "--dry-run"], "expands to more than")


def test_recursive_alias(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: h100\nnote: &a [*a]\n")
    _error(capsys, ["arch", "validate", f], "recursive alias")


# 4. integers too large for a float --------------------------------------------------------------
def test_400_digit_integer_in_arch(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: h100\ngpu:\n  clock: " + "9" * 400 + "\n")
    _error(capsys, ["arch", "validate", f], "integer too large", "line 3")


def test_400_digit_integer_in_sweep(tmp_path, capsys):
    f = _write(tmp_path, "s.yaml", SWEEP + "axes: {gpu.sm_count: [66, " + "9" * 400 + "]}\n")
    _error(capsys, ["sweep", f, "--dry-run"], "integer too large")


def test_400_digit_integer_in_config_json(tmp_path, capsys):
    f = _write(tmp_path, "m/config.json", '{"model_type": "llama", "hidden_size": '
               + "9" * 400 + "}")
    _error(capsys, ["run", "--model", f], "integer too large")


# 5. integers >= 2^63 in DRAM / PIM timing ----------------------------------------------------
@pytest.mark.parametrize("value", [2**63, 2**63 - 1, 2**40])
def test_huge_dram_timing_is_refused(tmp_path, capsys, value):
    f = _write(tmp_path, "a.yaml", f"extends: pim-hbm-pim\ndram:\n  timing:\n    tRFC: {value}\n")
    _error(capsys, ["run", "--arch", f, *SMALL], "tRFC" if value < 2**63 else "64 bits")


# found by benchmarks/fuzz_inputs.py --seed 7: a DRAM section whose timings complete no request
# in the cycle model's window gave PIM, NPU+PIM and xPU+PIM devices a streaming efficiency of 0,
# and a ZeroDivisionError downstream
@pytest.mark.parametrize("base", ["pim-neupims-hbm2", "neupims", "duplex"])
@pytest.mark.parametrize("field", ["burst_cycles: 2000000", "timing:\n    tRCDRD: 21000"])
def test_dram_timings_that_stream_nothing_are_refused(tmp_path, capsys, base, field):
    f = _write(tmp_path, "a.yaml", f"extends: {base}\ndram:\n  {field}\n")
    _error(capsys, ["run", "--arch", f, *SMALL], str(f), "dram:", "complete no request")


# found by benchmarks/fuzz_inputs.py --seed 71: 4,000,000 chips per channel asked the flash
# model for a 170 GiB mapping table (MemoryError); an MQSim file of too many blocks likewise
def test_flash_pages_are_bounded(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: instinfer-csd\nflash:\n  chips_per_channel: 4000000\n")
    _error(capsys, ["run", "--arch", f, *SMALL, "--fidelity", "cycle"], "a.yaml", "flash",
           "expected at most 134,217,728 flash pages")


# found by benchmarks/fuzz_inputs.py --seed 59: a command queue of 10^8 entries made the DRAM
# kernel's allocation fail (MemoryError); the arch file and a DRAMsim3 INI both bound it
def test_dram_queue_sizes_are_bounded(tmp_path, capsys):
    from arch.plausible import DRAM_QUEUE_MAX
    from sim.micro.dram_config import MAX_QUEUE

    assert MAX_QUEUE == DRAM_QUEUE_MAX
    f = _write(tmp_path, "a.yaml", "extends: neupims\ndram:\n  controller:\n"
                                   "    cmd_queue_size: 128000000\n")
    _error(capsys, ["run", "--arch", f, *SMALL], "dram.controller.cmd_queue_size",
           "<= 4,096")
    ini = _write(tmp_path, "q.ini", "[dram_structure]\nprotocol = HBM2\n[system]\n"
                                    "trans_queue_size = 1000000000\n")
    trace = _write(tmp_path, "q.trc", "0x40 READ 0\n")
    _error(capsys, ["import", "dramsim3", "--config", ini, "--trace", trace, "--cycles", "100"],
           "q.ini", "trans_queue_size: expected 1..4,096")


# 6. extreme but accepted values gave "internal error: ops lost" ------------------------------
# (and, found by benchmarks/fuzz_inputs.py, a p-norm "overlap" below 1 exceeds the sum; near 0
# it overflowed)
@pytest.mark.parametrize("text, field, phrase", [
    ("gpu:\n  launch_overhead: 1e300 s\n", "gpu.launch_overhead", "implausible"),
    ("memory:\n  l2:\n    bandwidth: 1e-300 B/s\n", "memory.l2.bandwidth", "implausible"),
    ("gpu:\n  gemm_overlap_p: 2.5e-6\n", "gpu.gemm_overlap_p", "at least 1"),
    ("gpu:\n  attention_overlap_p: 0.5\n", "gpu.attention_overlap_p", "at least 1"),
])
def test_extreme_values_are_input_errors_not_internal(tmp_path, capsys, text, field, phrase):
    f = _write(tmp_path, "a.yaml", "extends: h100\n" + text)
    _error(capsys, ["run", "--arch", f, *SMALL], field, phrase)


def test_non_finite_op_times_are_a_one_line_input_error():
    import pandas as pd

    from sim.devices.base import SimError
    from sim.invariants import check_invariants

    class _Trace:
        ops = [0, 1]

    table = pd.DataFrame({"id": [0, 1], "op": ["a", "b"], "end_s": [1.0, float("inf")],
                          "latency_s": [1.0, 1.0], "roofline_s": [0.0, 0.0]})
    with pytest.raises(SimError, match="non-finite time"):
        check_invariants(_Trace(), table)


# 7. infinite energy ---------------------------------------------------------------------------
def test_energy_of_1e308_joules_per_flop(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: h100\nenergy:\n  compute:\n    fp16: 1e308 J/FLOP\n")
    _error(capsys, ["run", "--arch", f, *SMALL, "--json"], "energy.compute.fp16", "implausible")


def test_plausibility_names_the_parameter_of_an_infinite_metric():
    from arch import load_arch
    from sim.devices.base import SimError
    from sim.plausibility import check_plausible

    arch = load_arch("h100")
    with pytest.raises(SimError, match="energy.compute"):
        check_plausible(arch, {"energy_J": float("inf"), "latency_s": 1.0}, {}, 1)
    with pytest.raises(SimError, match="1 FLOP/s and 1 B/s"):
        check_plausible(arch, {"latency_s": 1e9, "flops": 10.0, "bytes": 10.0}, {}, 1)
    with pytest.raises(SimError, match="peak power"):
        check_plausible(arch, {"latency_s": 1.0, "flops": 1e15, "bytes": 1e12},
                        {"compute": 1e6}, 1)


def test_print_json_is_strict(capsys):
    from xpusim.commands._common import print_json

    print_json({"a": float("inf"), "b": [float("nan"), 1.0]})
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [None, 1.0]}


def test_run_json_has_plausibility_invariants(capsys):
    assert main(["run", *SMALL, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["invariants"]["metrics_finite"] == "passed"
    assert data["invariants"]["energy_below_peak_power"] == "passed"


# 8. implausible results passing silently -------------------------------------------------------
def test_one_nanohertz_clock(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: h100\ngpu:\n  clock: 1 nHz\n")
    _error(capsys, ["run", "--arch", f, *SMALL], "gpu.clock", "implausible")


def test_top_k_above_expert_count(tmp_path, capsys):
    cfg = {"model_type": "mixtral", "num_attention_heads": 8, "hidden_size": 512,
           "num_hidden_layers": 2, "intermediate_size": 1024, "vocab_size": 1000,
           "num_local_experts": 2, "num_experts_per_tok": 8}
    f = _write(tmp_path, "m/config.json", json.dumps(cfg))
    _error(capsys, ["run", "--model", f], "num_experts_per_tok", "the model has 2")


def test_prompt_longer_than_rope_positions(capsys):
    _error(capsys, ["run", "--prompt", "100000", "--json"], "--prompt", "4,096 positions")


def test_fp8_on_a100_is_a_warned_emulation(capsys):
    assert main(["run", "--arch", "a100", "--dtype", "fp8", *SMALL, "--json", "--quiet"]) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert all(ln.startswith("xpusim: warning: ") for ln in lines)
    assert [ln for ln in lines if "fp8 not native on a100" in ln]


# 9. extends reading any file -----------------------------------------------------------------
def test_extends_a_non_yaml_file_is_refused_without_echo(tmp_path, capsys):
    secret = _write(tmp_path, "secret", "root:SECRET-HASH:19000:0:99999:7:::\n")
    f = _write(tmp_path, "a.yaml", f"extends: {secret}\n")
    err = _error(capsys, ["arch", "validate", f], "extends", "preset name or a .yaml")
    assert "SECRET" not in err


def test_extends_a_non_mapping_yaml_is_refused(tmp_path, capsys):
    _write(tmp_path, "list.yaml", "- root:SECRET\n")
    f = _write(tmp_path, "a.yaml", "extends: list.yaml\n")
    err = _error(capsys, ["arch", "validate", f], "is not an arch")
    assert "SECRET" not in err


def test_extends_a_yaml_with_a_syntax_error_does_not_echo(tmp_path, capsys):
    _write(tmp_path, "b.yaml", "SECRET: [unclosed\n")
    f = _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    err = _error(capsys, ["arch", "validate", f], "extends")
    assert "SECRET" not in err


# 10. duplicate keys ---------------------------------------------------------------------------
def test_duplicate_keys_in_arch(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: h100\nname: a\nname: b\n")
    _error(capsys, ["arch", "validate", f], "duplicate key 'name'", "line 3")


def test_duplicate_keys_in_config_json(tmp_path, capsys):
    f = _write(tmp_path, "m/config.json", '{"model_type": "llama", "model_type": "gpt2"}')
    _error(capsys, ["run", "--model", f], "duplicate key 'model_type'")


def test_yaml_merge_keys_still_work():
    from arch.safe_yaml import load_yaml_text

    data = load_yaml_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")
    assert data["d"] == {"x": 3, "y": 2}


# 11. sweep expressions -------------------------------------------------------------------------
@pytest.mark.parametrize("expr, needle", [
    ("1e9 * (-8) ** (1/3)", "not a real number"),
    ("-" * 999 + "1", "nested too deeply"),
    ("1e308 * 10", "not finite"),
    ("99999999999 * 99999999999 * 99999999999 * 99999999999", "too large"),
])
def test_sweep_expression_results_are_finite_reals(tmp_path, capsys, expr, needle):
    f = _write(tmp_path, "s.yaml", SWEEP + "axes: {gpu.sm_count: [66, 132]}\n"
               f"derived:\n  area: \"{expr}\"\n")
    _error(capsys, ["sweep", f, "--dry-run"], needle)


def test_expression_failing_at_a_later_point_is_infeasible(tmp_path, capsys):
    f = _write(tmp_path, "s.yaml", SWEEP + "axes: {gpu.sm_count: [66, 132]}\n"
               "derived:\n  area: \"(66 - gpu.sm_count) ** 0.5 + 1\"\n")
    out = tmp_path / "o"
    assert main(["sweep", f, "--out", str(out), "--json", "--no-report"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"]["infeasible"] == 1 and summary["status"]["error"] == 0
    assert main(["sweep", f, "--out", str(out), "--json", "--no-report", "--resume"]) == 0


# 12. unbounded sweep sizes ---------------------------------------------------------------------
def test_sweep_steps_are_bounded(tmp_path, capsys):
    f = _write(tmp_path, "s.yaml", SWEEP + "axes:\n  gpu.sm_count: {min: 66, max: 132, "
                                           "steps: 100000000}\n")
    t0 = time.perf_counter()
    _error(capsys, ["sweep", f, "--dry-run"], "steps", "1,000,000")
    assert time.perf_counter() - t0 < 10


def test_sweep_sample_counts_are_bounded(tmp_path, capsys):
    f = _write(tmp_path, "s.yaml", SWEEP + "axes:\n  gpu.sm_count: {min: 66, max: 132}\n"
                                           "strategy: {name: lhs, samples: 10000000000}\n")
    _error(capsys, ["sweep", f, "--dry-run"], "strategy.samples")


def test_sweep_grid_size_is_bounded(tmp_path, capsys):
    axes = "".join(f"  gpu.{k}: {{min: 1, max: 2, steps: 1000}}\n"
                   for k in ("sm_count", "ctas_per_sm", "warp_size"))
    f = _write(tmp_path, "s.yaml", SWEEP + "axes:\n" + axes)
    _error(capsys, ["sweep", f, "--dry-run"], "grid of 1e+09 points")


# 13. a list as a dtype -------------------------------------------------------------------------
def test_list_as_workload_dtype(tmp_path, capsys):
    f = _write(tmp_path, "s.yaml", SWEEP.replace("gen_len: 2}", "gen_len: 2, dtype: [fp16]}")
               + "axes: {gpu.sm_count: [66, 132]}\n")
    _error(capsys, ["sweep", f, "--dry-run"], "dtype", "unknown dtype ['fp16']")


# 14. config.json: unknown hidden_act, a million layers ---------------------------------------
def test_unknown_hidden_act(tmp_path, capsys):
    cfg = {"model_type": "llama", "num_attention_heads": 8, "hidden_size": 512,
           "num_hidden_layers": 2, "intermediate_size": 1024, "vocab_size": 1000,
           "hidden_act": "foo"}
    f = _write(tmp_path, "m/config.json", json.dumps(cfg))
    _error(capsys, ["run", "--model", f], "hidden_act", "unknown activation 'foo'")


def test_a_million_layers(tmp_path, capsys):
    cfg = {"model_type": "llama", "num_attention_heads": 8, "hidden_size": 512,
           "num_hidden_layers": 10**6, "intermediate_size": 1024, "vocab_size": 1000}
    f = _write(tmp_path, "m/config.json", json.dumps(cfg))
    t0 = time.perf_counter()
    _error(capsys, ["run", "--model", f], "num_hidden_layers", "implausible")
    assert time.perf_counter() - t0 < 5


# 15. CLI extremes --------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["check", "--batch", "10000000"], "--force"),
    (["check", "--batch", "100000"], "--force"),
    (["check", "--max-width", "1000000000", "--full", "--model", "llama2-70b"], "--force"),
    (["check", "--seed", "-1"], "--seed"),
    (["check", "--group", "-1"], "--group"),
    (["run", "--gen", "100000", "--model", "gpt2-small"], "--prompt"),
    (["run", "--gen", "28000", "--prompt", "128", "--batch", "1", "--microbatches", "1",
      "--model", "llama3-70b", "--arch", "dgx-h100", "--tp", "8"], "--force"),
    (["run", "--gen", "12000", "--batch", "5", "--microbatches", "5", "--model", "llama2-13b",
      "--arch", "dgx-h100", "--tp", "8"], "--force"),
    (["run", "--batch", "9" * 5000], "--batch"),
    (["run", "--gen", "1" + "0" * 400], "401-digit"),
    (["check", "--seed", "1" + "0" * 400], "--seed"),
    (["run", "--microbatches", "2147483647", "--batch", "2147483647"], "--force"),
    (["op", "gemm", "--arch", "neupims-npu", "--m", "8", "--n", "8", "--k", "1e16"], "--k"),
    (["op", "gemm", "--arch", "neupims-npu", "--m", "8", "--n", "8", "--k", "10" * 9], "--k"),
    # a gamma shape 1/cv^2 that underflows to 0 divided by zero (found by hand, 2026-12-05)
    (["serve", "--arch", "h100", "--tp", "1", "--model", "llama2-7b", "--requests", "5",
      "--rate", "2", "--burstiness", "1e300"], "--burstiness: expected a coefficient"),
    (["serve", "--arch", "h100", "--tp", "1", "--model", "llama2-7b", "--requests", "5",
      "--rate", "2", "--burstiness", "1e-300"], "--burstiness: expected a coefficient"),
    # 2^31 - 1 replicas never finished building (benchmarks/fuzz_inputs.py --seed 31)
    (["serve", "--arch", "h100", "--tp", "1", "--model", "gpt2-small", "--requests", "4",
      "--replicas", "2147483647"], "--replicas: expected 1..4,096"),
])
def test_cli_extremes(capsys, argv, needle):
    t0 = time.perf_counter()
    _error(capsys, argv, needle)
    assert time.perf_counter() - t0 < 20


def test_force_lets_a_large_run_start():
    from workloads.errors import WorkloadError
    from workloads.limits import check_run_size, estimate_ops
    from workloads.models import get_model
    from workloads.scenario import Scenario

    m, sc = get_model("gpt2-small"), Scenario(batch=1, prompt_len=16, gen_len=8)
    from workloads.tracer import trace_model

    assert estimate_ops(m, sc) == len(trace_model(m, sc).ops)
    with pytest.raises(WorkloadError, match="--force"):
        check_run_size(m, sc, limit=10)
    assert check_run_size(m, sc, force=True, limit=10) > 10


# 16. messages ----------------------------------------------------------------------------------
def test_value_with_newline_prints_on_one_line(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", 'extends: h100\ngpu:\n  clock: "1\\n2 GHz"\n')
    _error(capsys, ["arch", "validate", f], "gpu.clock", "\\n")


def test_huge_value_is_truncated(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", f"extends: h100\ngpu:\n  clock: \"{'1' * 100000} GHz\"\n")
    _error(capsys, ["arch", "validate", f], "gpu.clock", "characters cut")


def test_control_character_names_its_line(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", 'extends: h100\nname: "a\x01b"\n')
    _error(capsys, ["arch", "validate", f], "line 2", "'\\x01'")


def test_usage_errors_are_one_line(capsys):
    _error(capsys, ["run", "--attention", "x\ny"], "x\\ny")


# 17. output folders ------------------------------------------------------------------------------
def test_stale_staging_folders_are_cleaned(tmp_path, capsys):
    out = tmp_path / "rep"
    dead = tmp_path / ".rep.staging-999999999-abc"  # a pid no process has
    dead.mkdir()
    (dead / "junk").write_text("x")
    legacy = tmp_path / ".rep.staging-old"
    legacy.mkdir()
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    live = tmp_path / f".rep.staging-{os.getpid()}-xyz"
    live.mkdir()
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    assert not dead.exists() and not legacy.exists() and live.exists()


def test_existing_out_is_replaced_whole(tmp_path, monkeypatch, capsys):
    from sim.report import atomic

    out = tmp_path / "rep"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    (out / "mine.txt").write_text("keep me")
    first = (out / "summary.json").read_text()
    renames: list[tuple[str, str]] = []
    real = os.rename

    def spy(src, dst):
        renames.append((Path(src).name, Path(dst).name))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "rename", spy)
    monkeypatch.setattr(atomic.os, "replace", lambda *a: pytest.fail("file-by-file replace"))
    assert main(["run", *SMALL, "--batch", "2", "--out", str(out)]) == 0
    assert (out / "mine.txt").read_text() == "keep me"
    assert (out / "summary.json").read_text() != first
    assert [d for _, d in renames][-1] == "rep" and len(renames) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep.")]


def test_report_files_of_an_earlier_run_are_not_kept(tmp_path, capsys):
    """A run written over a system run's report with its own kinds of files: the earlier
    run's transfers.parquet, resources.csv and ops.parquet (this one writes ops.csv) go with
    it, the user's file stays: no file of the first run beside the second's."""
    out = tmp_path / "rep"
    assert main(["run", "--arch", "spr-a100-cxl1", "--model", "llama2-7b", "--batch", "2",
                 "--prompt", "16", "--gen", "3", "--placement", "kv_cache=cxl0", "--quiet",
                 "--out", str(out)]) == 0
    assert {"transfers.parquet", "resources.csv", "ops.parquet"} <= \
        {p.name for p in out.iterdir()}
    (out / "mine.txt").write_text("keep me")
    assert main(["run", *SMALL, "--format", "csv", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert "mine.txt" in names and "ops.csv" in names
    assert not names & {"transfers.parquet", "resources.csv", "ops.parquet"}


def test_kill_between_the_two_renames_is_recovered(tmp_path):
    from sim.report.atomic import clean_stale

    out = tmp_path / "rep"
    old = tmp_path / ".rep.replaced-999999999-abc"
    old.mkdir()
    (old / "summary.json").write_text("{}")
    clean_stale(out)
    assert (out / "summary.json").exists() and not old.exists()


# found by the long fuzzing profile (benchmarks/fuzz_inputs.py) -----------------------------------
def test_refresh_longer_than_its_interval(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: neupims\ndram:\n  timing:\n    tREFI: 3\n")
    _error(capsys, ["run", "--arch", f, *SMALL], "dram.timing.tREFI", "more than tRFC")


def test_two_million_component_instances(tmp_path, capsys):
    f = _write(tmp_path, "a.yaml", "extends: spr-a100\ncomponents:\n  cpu:\n    count: 2000000\n")
    t0 = time.perf_counter()
    _error(capsys, ["run", "--arch", f, *SMALL], "components.cpu.count", "65,536")
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("value", ["[1, 2]", "{value: 1}"])
def test_unhashable_arch_axis_value(tmp_path, capsys, value):
    f = _write(tmp_path, "s.yaml", SWEEP.replace("arch: h100\n", "")
               + f"axes:\n  arch: [{value}, h100]\n")
    _error(capsys, ["sweep", f, "--dry-run"], "axes.arch[0]", "expected a preset name")


@pytest.mark.parametrize("opt", ["--dtype", "--kv-dtype"])
def test_check_with_a_datatype_the_reference_kernels_lack(capsys, opt):
    _error(capsys, ["check", "--model", "gpt2-small", "--prompt", "8", "--max-width", "128",
                    opt, "fp4"], opt, "unknown datatype 'fp4'")
