"""``xpusim rerun``: summary.json records the resolved inputs and reruns bit for bit, even when
the arch file and the model's config.json are gone (issue 16, item 6)."""

import json

import pandas as pd
import pytest
import yaml

from xpusim.cli import main

QWEN = {"model_type": "qwen2", "num_attention_heads": 8, "num_key_value_heads": 2,
        "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 2,
        "vocab_size": 1000, "max_position_embeddings": 4096}


def _ops(folder):
    path = folder / "ops.parquet"
    return pd.read_parquet(path) if path.exists() else pd.read_csv(folder / "ops.csv")


def _run_and_rerun(tmp_path, capsys, argv):
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["run", *argv, "--out", str(first), "--quiet"]) == 0
    capsys.readouterr()
    return first, again


def test_custom_arch_and_config_json_rerun_identically(tmp_path, capsys):
    arch = tmp_path / "my-gpu.yaml"
    arch.write_text(yaml.safe_dump({"name": "my-gpu", "type": "gpu", "extends": "h100",
                                    "memory": {"hbm": {"bandwidth": "6.7 TB/s"}}}))
    model = tmp_path / "qwen-tiny" / "config.json"
    model.parent.mkdir()
    model.write_text(json.dumps(QWEN))
    first, again = _run_and_rerun(tmp_path, capsys, ["--arch", str(arch), "--model", str(model),
                                                     "--batch", "2", "--prompt", "32",
                                                     "--gen", "4", "--seed", "7"])
    arch.unlink()
    model.unlink()  # the summary alone must suffice
    summary = json.loads((first / "summary.json").read_text())
    rec = summary["inputs"]["resolved"]
    assert yaml.safe_load(rec["arch_yaml"])["memory"]["hbm"]["bandwidth"] == "6.7 TB/s"
    assert rec["model_config"]["qkv_bias"] is True and rec["model_config"]["d_model"] == 512
    assert rec["seed"] == 7 and rec["scenario"]["batch"] == 2 and rec["version"]
    assert main(["rerun", str(first / "summary.json"), "--out", str(again), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identical"] and out["differences"] == []
    new = json.loads((again / "summary.json").read_text())
    assert new["metrics"] == summary["metrics"]
    pd.testing.assert_frame_equal(_ops(first), _ops(again))


@pytest.mark.slow
def test_system_with_placement_reruns_identically(tmp_path, capsys):
    first, again = _run_and_rerun(tmp_path, capsys, [
        "--arch", "a6000-offload", "--model", "opt-13b", "--batch", "1", "--prompt", "32",
        "--gen", "3", "--placement", "weights=gpu.hbm:0.5,host_ddr:0.5"])
    assert main(["rerun", str(first), "--out", str(again), "--quiet"]) == 0
    assert "identical" in capsys.readouterr().out
    a = json.loads((first / "summary.json").read_text())
    b = json.loads((again / "summary.json").read_text())
    assert a["metrics"] == b["metrics"] and a["inputs"]["placement"] == b["inputs"]["placement"]


def test_old_summary_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps({"inputs": {"arch": "h100"}}))
    assert main(["rerun", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inputs.resolved" in err


@pytest.mark.parametrize("field, value, needle", [
    ("seed", [1], "inputs.resolved.seed: expected an integer"),
    ("arch_yaml", 3.5, "inputs.resolved.arch_yaml: expected the arch as YAML text"),
    ("arch_yaml", "gpu: [1, 2", "inputs.resolved.arch_yaml: YAML syntax error"),
    ("fidelity", "exact", "inputs.resolved.fidelity: expected roofline, tile or cycle"),
    ("model_config.bias", None, "inputs.resolved.model_config.bias: expected bool"),
    ("model_config.d_model", "4096", "inputs.resolved.model_config.d_model: expected int"),
    ("model_config.colour", 1, "inputs.resolved.model_config.colour: not a field"),
    ("scenario.sparse_kv", "nan", "inputs.resolved.scenario.sparse_kv: expected float"),
    ("scenario", [], "inputs.resolved.scenario: expected a mapping"),
    ("policies.overlap", 2, "inputs.resolved.policies.overlap: expected bool"),
    # the classes' own checks, now naming the file and the record's field
    ("model_config.d_model", 10**30, "summary.json: inputs.resolved.model_config.d_model: "
                                     "implausible value"),
    ("scenario.batch", -1, "summary.json: inputs.resolved.scenario.batch: expected a positive"),
    ("mode", "finetune", "inputs.resolved.training: missing"),
    ("training", {"offload": "bogus"}, "inputs.resolved.training.offload: expected one of"),
])
def test_damaged_record_is_a_one_line_error(tmp_path, capsys, field, value, needle):
    # found by mutating summary.json (2026-12-05): a seed of [1] or a float arch_yaml escaped
    # as tracebacks, and wrongly typed model fields ran silently
    first = tmp_path / "first"
    assert main(["run", "--model", "gpt2-small", "--batch", "1", "--prompt", "16", "--gen", "2",
                 "--out", str(first), "--quiet"]) == 0
    capsys.readouterr()
    data = json.loads((first / "summary.json").read_text())
    node = data["inputs"]["resolved"]
    if node.get("policies") is None:
        node["policies"] = {}
    *parents, leaf = field.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    (first / "summary.json").write_text(json.dumps(data))
    assert main(["rerun", str(first)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_stop_50_record_of_llama4_layers_without_rope_reruns():
    """A record written before ``nope_every`` (stop 50: ``global_nope: true`` with
    ``global_every: 4``) loads as today's field: every 4th layer without RoPE."""
    from arch import load_arch
    from sim.record import load_record, run_record
    from workloads.models import get_model
    from workloads.scenario import Scenario

    rec = run_record(load_arch("h100"), get_model("llama4-scout"), Scenario(), fidelity="tile",
                     seed=0)
    del rec["model_config"]["nope_every"]
    rec["model_config"]["global_nope"] = True
    assert load_record(rec)["model"] == get_model("llama4-scout")
