"""Sweeps over system features: fine-tuning workloads, placements, schedule policies, an axis
over whole arches, per-tier and per-link columns, and the CXL fine-tuning example."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from arch import SpecError, load_arch
from dse.evaluate import evaluate_point
from dse.spec import load_sweep, sweep_from_dict
from sim.finetune import simulate_training
from sim.run import simulate
from sim.system.placement import parse_placement
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.training import Training
from xpusim.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sweeps" / "cxl_finetune.yaml"
PRIORITY = "priority:optimizer,weights,activations,gradients>host_ddr,cxl*"
INTERLEAVE = "interleave[optimizer,weights,activations,gradients]:host_ddr,cxl*"
#: a small fine-tuning workload (two Llama-2-7B layers, 512 tokens): ~50 ms a point
FT = {"name": "ft", "model": "llama2-7b", "layers": 2, "mode": "finetune", "seq": 512,
      "offload": "full", "recompute": True}
BASE = {
    "arch": "spr-a100-cxl2",
    "axes": {"scenario.placement": [PRIORITY, INTERLEAVE]},
    "workloads": [FT],
    "objectives": [{"min": "step_s"}],
    "fidelity": "tile",
}


def spec_with(**changes):
    data = {**BASE, **changes}
    return sweep_from_dict({k: v for k, v in data.items() if v is not None}, file="s.yaml")


def error_of(**changes) -> str:
    with pytest.raises(SpecError) as info:
        spec_with(**changes)
    text = str(info.value)
    assert "\n" not in text and text.startswith("s.yaml: ")
    return text


def direct_training(arch: str, placement: str, layers: int = 2, seq: int = 512) -> dict:
    """The same step run without the sweep: what a point's metrics must equal."""
    result = simulate_training(load_arch(arch), _layers(get_model("llama2-7b"), layers),
                               Scenario(batch=1, prompt_len=seq, gen_len=1),
                               Training(recompute=True, offload="full"), "tile", 0,
                               placement=parse_placement(placement), policies=Policies())
    return result.metrics


def _layers(model, n: int):
    return dataclasses.replace(model, n_layers=n)


# --- spec parsing --------------------------------------------------------------------------------
def test_finetune_fields_parse_and_metrics_are_the_training_ones():
    spec = spec_with(workloads=[{**FT, "prefetch": 2, "overlap": True, "microbatches": 1}])
    w = spec.workloads[0]
    assert w.mode == "finetune"
    assert w.run == {"mode": "finetune", "seq": 512, "offload": "full", "recompute": True,
                     "prefetch": 2, "overlap": True}
    assert w.scenario == {"microbatches": 1}
    axis = spec.axes[0]
    assert axis.kind == "scenario" and axis.values == (PRIORITY, INTERLEAVE)
    for name in ("step_s", "tokens_per_s", "forward_s", "backward_s", "optimizer_s",
                 "transfer_s", "energy_J", "power_W", "bytes@host_ddr", "busy_s@host_ddr"):
        assert name in spec.metric_names, name
    assert "ttft_s" not in spec.metric_names  # an inference metric: no inference workload here


def test_inference_workload_keeps_the_old_fields_and_fingerprint_shape():
    inf = {"model": "gpt2-small", "layers": 1, "batch": 1, "prompt_len": 16, "gen_len": 2}
    spec = spec_with(arch="h100", axes={"scenario.batch": [1, 2]}, workloads=[inf],
                     objectives=[{"min": "tpot_s"}])
    assert spec.workloads[0].run == {} and spec.workloads[0].mode == "inference"
    assert "ttft_s" in spec.metric_names


@pytest.mark.parametrize("workload, expected", [
    ({"placement": "priority:optimizer>>host_ddr"},
     "s.yaml: workloads[0].placement: "),
    ({"placement": ""}, "workloads[0].placement: expected a --placement text"),
    ({"placement": "interleav:host_ddr"}, "workloads[0].placement: unknown policy 'interleav'"),
    ({"offload": "cpu"}, "workloads[0].offload: expected one of none, optimizer, full, "
                         "got 'cpu'"),
    ({"recompute": "yes"}, "workloads[0].recompute: expected true or false, got 'yes'"),
    ({"prefetch": -1}, "workloads[0].prefetch: expected an integer >= 0, got -1"),
    ({"seq": 0}, "workloads[0].seq: expected a positive integer, got 0"),
    ({"mode": "train"}, "workloads[0].mode: expected one of inference, finetune, got 'train'"),
    ({"gen_len": 4}, "workloads[0].gen_len: not used by mode: finetune"),
    ({"prompt_len": 4}, "workloads[0].prompt_len: give seq"),
    ({"microbatches": 2}, "workloads[0].microbatches: 2 micro-batches exceed the batch"),
    ({"expert_skew": 20}, "workloads[0].expert_skew: expected a number in [0, 10]"),
    ({"mode": "inference"}, "workloads[0].seq: only for mode: finetune"),
    ({"overlap": 1}, "workloads[0].overlap: expected true or false, got 1"),
])
def test_workload_field_errors_are_one_line_and_name_the_field(workload, expected):
    assert expected in error_of(workloads=[{**FT, **workload}])


@pytest.mark.parametrize("axes, expected", [
    ({"scenario.placement": [PRIORITY, "priority:weights"]},
     "axes.scenario.placement[1]: priority entry 'weights' has no single '>'"),
    ({"scenario.placement": [PRIORITY, PRIORITY]},
     "axes.scenario.placement[1]: duplicate value"),
    ({"scenario.mode": ["finetune"]}, "axes.scenario.mode: the mode is set per workload"),
    ({"scenario.offload": ["full", "gpu"]}, "axes.scenario.offload[1]: expected one of"),
    ({"scenario.prefetch": {"min": 0, "max": 3.5, "steps": 3}},
     "axes.scenario.prefetch.max: expected an integer >= 0, got 3.5"),
    ({"scenario.plaecment": [PRIORITY]}, "(did you mean 'placement'?)"),
    ({"arch": ["spr-a100-cxl1", "no-such-arch"]}, "axes.arch[1]: unknown preset 'no-such-arch'"),
    ({"arch": ["spr-a100-cxl1", "spr-a100-cxl1"]}, "axes.arch[1]: duplicate value"),
    ({"arch": "spr-a100-cxl1"}, "axes.arch: expected a non-empty list of preset names"),
    ({"arch": ["spr-a100-cxl1"], "gpu.sm_cont": [100]}, "'gpu' has no field 'sm_cont'"),
])
def test_axis_errors_are_one_line_and_name_the_axis(axes, expected):
    assert expected in error_of(axes=axes)


def test_finetune_axes_need_finetune_workloads():
    inf = {"name": "inf", "model": "gpt2-small", "layers": 1, "prompt_len": 16, "gen_len": 2}
    text = error_of(axes={"scenario.recompute": [True, False]}, workloads=[FT, inf])
    assert "axes.scenario.recompute: only for mode: finetune workloads; workload 'inf'" in text


def test_placement_file_in_a_workload_is_relative_to_the_sweep(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"placement": {
        "policy": "interleave", "tiers": ["host_ddr", "cxl0", "cxl1"]}}))
    sweep = {**BASE, "axes": {"scenario.prefetch": [0, 1]},
             "workloads": [{**FT, "placement": "p.yaml"}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    spec = load_sweep(tmp_path / "s.yaml")
    assert spec.workloads[0].run["placement"] == str(tmp_path / "p.yaml")
    rec = evaluate_point(spec, {"scenario.prefetch": 1})
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metrics"]["bytes@cxl1"] > 0


# --- evaluation ----------------------------------------------------------------------------------
def test_finetune_point_equals_simulate_training_and_has_resource_columns():
    spec = spec_with()
    rec = evaluate_point(spec, {"scenario.placement": INTERLEAVE})
    assert rec["status"] == "ok", rec["reason"]
    m = rec["metrics"]
    want = direct_training("spr-a100-cxl2", INTERLEAVE)
    for k, v in want.items():
        assert m[k] == pytest.approx(v, rel=1e-12), k
    # interleave over DDR and both cards: every tier and both card links carry bytes
    for tier in ("host_ddr", "cxl0", "cxl1"):
        assert m[f"bytes@{tier}"] > 0 and m[f"busy_s@{tier}"] > 0
    assert m["bytes@pcie>"] > 0 and m["busy_s@pcie<"] > 0
    # the step is no shorter than the busiest resource
    assert m["step_s"] >= max(v for k, v in m.items() if k.startswith("busy_s@")) * (1 - 1e-9)


def test_inference_point_takes_placement_and_policies():
    inf = {"model": "llama2-7b", "layers": 2, "batch": 1, "prompt_len": 64, "gen_len": 3,
           "placement": "weights=gpu.hbm:50%,host_ddr", "prefetch": 0}
    spec = spec_with(arch="spr-a100", axes={"scenario.overlap": [False, True]}, workloads=[inf],
                     objectives=[{"min": "latency_s"}])
    rec = evaluate_point(spec, {"scenario.overlap": True})
    assert rec["status"] == "ok", rec["reason"]
    want = simulate(load_arch("spr-a100"), _layers(get_model("llama2-7b"), 2),
                    Scenario(batch=1, prompt_len=64, gen_len=3), "tile", 0,
                    placement=parse_placement("weights=gpu.hbm:50%,host_ddr"),
                    policies=Policies(overlap=True, prefetch=0)).metrics
    assert rec["metrics"]["latency_s"] == pytest.approx(want["latency_s"], rel=1e-12)
    assert rec["metrics"]["bytes@host_ddr"] > 0


def test_bad_tier_in_a_placement_makes_the_point_infeasible_not_an_error():
    spec = spec_with(axes={"scenario.placement": [PRIORITY, "interleave:host_ddr,cxl9"]})
    rec = evaluate_point(spec, {"scenario.placement": "interleave:host_ddr,cxl9"})
    assert rec["status"] == "infeasible" and "cxl9" in rec["reason"]


# --- the arch axis -------------------------------------------------------------------------------
def test_arch_axis_over_two_presets_two_cards_speed_up_the_interleaved_optimizer():
    spec = spec_with(arch=None, axes={"arch": ["spr-a100-cxl1", "spr-a100-cxl2"],
                                      "scenario.placement": [INTERLEAVE]})
    assert spec.axes[0].kind == "arch_ref" and spec.arch_label == "spr-a100-cxl1.yaml"
    recs = [evaluate_point(spec, {"arch": a, "scenario.placement": INTERLEAVE})
            for a in ("spr-a100-cxl1", "spr-a100-cxl2")]
    assert [r["status"] for r in recs] == ["ok", "ok"]
    assert [r["params"]["arch"] for r in recs] == ["spr-a100-cxl1", "spr-a100-cxl2"]
    one, two = (r["metrics"] for r in recs)
    # each point is exactly the direct run on its arch (hand check of the arch swap)
    for m, arch in ((one, "spr-a100-cxl1"), (two, "spr-a100-cxl2")):
        want = direct_training(arch, INTERLEAVE)
        assert m["optimizer_s"] == pytest.approx(want["optimizer_s"], rel=1e-12)
        assert m["step_s"] == pytest.approx(want["step_s"], rel=1e-12)
    # the one-card preset's card is component cxl0; the two-card one has cxl x 2: cxl0, cxl1
    assert "bytes@cxl0" in one and "bytes@cxl1" not in one
    assert "bytes@cxl0" in two and "bytes@cxl1" in two
    # pages split over 3 tiers instead of 2 and two card links: the CPU's AdamW streams faster
    assert two["optimizer_s"] < one["optimizer_s"]
    assert two["step_s"] < one["step_s"]
    assert two["bytes@host_ddr"] < one["bytes@host_ddr"]


def test_arch_paths_apply_to_each_chosen_arch_and_a_lacking_arch_is_infeasible():
    spec = spec_with(arch=None, axes={"arch": ["spr-a100", "spr-a100-cxl2"],
                                      "components.cxl.count": [1, 2],
                                      "memory.hbm.bandwidth": ["1 TB/s"]},
                     workloads=[{**FT, "offload": "optimizer"}])
    lacking = evaluate_point(spec, {"arch": "spr-a100", "components.cxl.count": 1,
                                    "memory.hbm.bandwidth": 1e12})
    assert lacking["status"] == "infeasible"
    assert lacking["reason"].startswith("arch spr-a100: components.cxl.count: ")
    ok = evaluate_point(spec, {"arch": "spr-a100-cxl2", "components.cxl.count": 1,
                               "memory.hbm.bandwidth": 1e12})
    assert ok["status"] == "ok", ok["reason"]
    # the HBM bandwidth reached the chosen arch's GPU: slower than its own 1935 GB/s
    base = evaluate_point(spec_with(axes={"scenario.prefetch": [1]},
                                    workloads=[{**FT, "offload": "optimizer"}]),
                          {"scenario.prefetch": 1})
    assert ok["metrics"]["forward_s"] > base["metrics"]["forward_s"]


def test_arch_axis_paths_in_the_sweep_file_are_relative_to_it(tmp_path):
    raw = yaml.safe_load((ROOT / "arch" / "presets" / "spr-a100-cxl1.yaml").read_text())
    raw["name"] = "my-cxl1"
    (tmp_path / "archs").mkdir()
    # (sort_keys=False: the first component is the system's primary device)
    (tmp_path / "archs" / "mine.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sweep = {**BASE, "axes": {"arch": ["archs/mine.yaml", "spr-a100-cxl2"],
                              "scenario.placement": [INTERLEAVE]}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    spec = load_sweep(tmp_path / "s.yaml")
    assert spec.axes[0].values == ("archs/mine.yaml", "spr-a100-cxl2")
    rec = evaluate_point(spec, {"arch": "archs/mine.yaml", "scenario.placement": INTERLEAVE})
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metrics"]["optimizer_s"] == pytest.approx(
        direct_training("spr-a100-cxl1", INTERLEAVE)["optimizer_s"], rel=1e-12)


# --- the CXL fine-tuning example -----------------------------------------------------------------
def test_example_dry_run(capsys):
    assert main(["sweep", str(EXAMPLE), "--dry-run", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_points"] == 6
    assert info["axes"] == {"arch": 2, "scenario.placement": 3}
    assert info["workloads"][0]["mode"] == "finetune"
    assert info["workloads"][0]["seq"] == 4096


def test_example_runs_two_points(tmp_path, capsys):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["axes"]["scenario.placement"] = [INTERLEAVE]
    spec_file = tmp_path / "two.yaml"
    spec_file.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    assert main(["sweep", str(spec_file), "--out", str(out), "--workers", "2", "--json",
                 "--no-report"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == {"ok": 2, "infeasible": 0, "error": 0}
    df = pd.read_csv(out / "results.csv").set_index("arch")
    assert set(df.index) == {"spr-a100-cxl1", "spr-a100-cxl2"}
    for col in ("bytes@host_ddr", "busy_s@host_ddr", "bytes@pcie>", "busy_s@pcie>",
                "optimizer_s", "step_s", "optimizer_share"):
        assert col in df.columns, col
    assert df.loc["spr-a100-cxl1", "bytes@cxl0"] > 0
    assert pd.isna(df.loc["spr-a100-cxl1", "bytes@cxl1"])
    assert df.loc["spr-a100-cxl2", "bytes@cxl1"] > 0
    assert df.loc["spr-a100-cxl2", "optimizer_s"] < df.loc["spr-a100-cxl1", "optimizer_s"]
    want = direct_training("spr-a100-cxl2", INTERLEAVE, layers=32, seq=4096)
    assert df.loc["spr-a100-cxl2", "step_s"] == pytest.approx(want["step_s"], rel=1e-9)
    # a resume finds both points stored (the arch choices are in the fingerprint)
    assert main(["sweep", str(spec_file), "--out", str(out), "--resume", "--json",
                 "--no-report"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["evaluated"] == 0 and again["resumed"] == 2


def test_cxl_card_count_axis_renames_the_tiers_and_two_cards_are_faster():
    spec = spec_with(axes={"components.cxl.count": [1, 2], "scenario.placement": [INTERLEAVE]})
    one, two = (evaluate_point(spec, {"components.cxl.count": n,
                                      "scenario.placement": INTERLEAVE}) for n in (1, 2))
    assert one["status"] == two["status"] == "ok", (one["reason"], two["reason"])
    # a count-1 memory component's tier is named after it; count 2 gives cxl0, cxl1
    assert one["metrics"]["bytes@cxl"] > 0 and "bytes@cxl0" not in one["metrics"]
    assert two["metrics"]["bytes@cxl0"] > 0 and two["metrics"]["bytes@cxl1"] > 0
    assert two["metrics"]["optimizer_s"] < one["metrics"]["optimizer_s"]
    # one card on spr-a100-cxl2 is the one-card preset, whose card is named cxl0
    assert one["metrics"]["optimizer_s"] == pytest.approx(
        direct_training("spr-a100-cxl1", INTERLEAVE)["optimizer_s"], rel=1e-12)
