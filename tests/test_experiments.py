"""Experiments (issue 15 item 7): the schema's one-line errors, the generic runner's claim kinds
against hand counts, overrides, the CLI routes (name, file path, --set)."""

from __future__ import annotations

import json
import math

import pytest

from sim.studies import METRICS, STUDIES, metric, study
from xpusim.cli import main
from xpusim.experiments import ExperimentError, load_experiment, run_experiment, shipped
from xpusim.experiments.schema import parse_experiment

POINTS = [{"n": 1, "a_t": 6.0, "b_t": 2.0, "c": 10.0},
          {"n": 2, "a_t": 8.0, "b_t": 1.0, "c": 20.0},
          {"n": 3, "a_t": 3.0, "b_t": 3.0, "c": 30.0}]


@pytest.fixture(autouse=True)
def toy_registry():
    """A study whose result is fixed, so every claim kind is checked by hand."""
    @study("toy-fixed")
    def toy(systems, params):
        scale = float(params["scale"])
        pts = [{**p, "c": p["c"] * scale} for p in POINTS]
        return {"points": pts, "values": {"v": 2.5 * scale, "arch_seen": systems["a"]},
                "extra": {"targets_seen": params["targets"]}}

    @metric("toy-spread")
    def spread(result, params):
        cs = [p["c"] for p in result["points"]]
        return max(cs) - min(cs)

    yield
    STUDIES.pop("toy-fixed", None)
    METRICS.pop("toy-spread", None)


def toy_data(**change):
    data = {
        "name": "toy", "study": "toy-fixed", "systems": {"a": "h100", "b": "a100"},
        "params": {"scale": 1.0, "sizes": [1, 2]}, "quick": {"scale": 2.0},
        "claims": [
            {"claim": "a/b max", "kind": "ratio", "metric": "t", "of": "a", "over": "b",
             "reduce": "max", "target": 4.0},
            {"claim": "a/b gmean", "kind": "ratio", "metric": "t", "of": "a", "over": "b",
             "reduce": "gmean", "target": 2.0},
            {"claim": "a/b mean where n=3", "kind": "ratio", "metric": "t", "of": "a",
             "over": "b", "where": {"n": 3}, "target": 1.0},
            {"claim": "c min", "kind": "value", "column": "c", "reduce": "min", "target": 5.0},
            {"id": "vv", "claim": "v at scale {scale}", "kind": "value", "value": "v",
             "target": 2.0},
            {"claim": "spread", "kind": "custom", "metric": "toy-spread", "target": 40.0},
            {"claim": "absent", "kind": "value", "value": "nope", "target": 1.0,
             "optional": True},
        ],
        "assumptions": ["arch {system_a}, scale {scale}, v {v:.1f}, gap {claim1_gap:.2f}"],
    }
    data.update(change)
    return data


def test_claim_kinds_by_hand():
    out = run_experiment(parse_experiment(toy_data(), "toy.yaml"))
    got = {r["claim"]: r for r in out["results"]}
    assert got["a/b max"]["measured"] == 8.0                       # 8 / 1
    assert got["a/b gmean"]["measured"] == pytest.approx((3 * 8 * 1) ** (1 / 3))
    assert got["a/b mean where n=3"]["measured"] == 1.0
    assert got["c min"]["measured"] == 10.0
    assert got["v at scale 1.0"]["measured"] == 2.5
    assert got["spread"]["measured"] == 20.0
    assert "absent" not in got and len(out["results"]) == 6        # optional, missing: skipped
    assert got["a/b max"]["rel_error"] == pytest.approx(8.0 / 4.0 - 1)
    assert out["assumptions"] == ["arch h100, scale 1.0, v 2.5, gap 0.50"]
    assert out["targets_seen"] == {"vv": 2.0}                      # claim ids reach the study
    assert out["experiment"]["systems"] == {"a": "h100", "b": "a100"}
    assert [p["n"] for p in out["points"]] == [1, 2, 3]


def test_quick_params_and_sets():
    exp = parse_experiment(toy_data(), "toy.yaml")
    out = run_experiment(exp, quick=True, sets=["systems.a=my.yaml", "sizes=[4]"])
    got = {r["claim"]: r["measured"] for r in out["results"]}
    assert got["v at scale 2.0"] == 5.0 and got["spread"] == 40.0   # quick: scale 2
    assert out["experiment"]["systems"]["a"] == "my.yaml"
    out = run_experiment(exp, sets=["scale=3"])                     # bare name: a parameter
    assert {r["claim"]: r["measured"] for r in out["results"]}["spread"] == 60.0
    for bad, needle in (("scale=[1]", "expected a value like 1.0"),
                        ("nothing=1", "not a system or parameter of toy"),
                        ("systems.zz=h100", "no system 'zz'"), ("scale", "expected KEY=VALUE")):
        with pytest.raises(ExperimentError, match=needle):
            run_experiment(exp, sets=[bad])


@pytest.mark.parametrize("change, where", [
    ({"bogus": 1}, "toy.yaml: bogus: unknown field"),
    ({"study": 3}, "toy.yaml: study: expected a study name"),
    ({"systems": {"a": 5}}, "toy.yaml: systems.a: expected an arch preset"),
    ({"quick": {"zz": 1}}, "toy.yaml: quick.zz: not a parameter"),
    ({"claims": []}, "toy.yaml: claims: expected at least one claim"),
    ({"claims": [{"claim": "x", "kind": "ratio", "target": 1.0}]}, "claims[0].metric"),
    ({"claims": [{"claim": "x", "kind": "odd", "target": 1.0}]}, "claims[0].kind: expected"),
    ({"claims": [{"claim": "x", "kind": "value", "value": "v", "target": "big"}]},
     "claims[0].target: expected the published figure"),
    ({"claims": [{"claim": "x", "kind": "value", "value": "v", "target": 1, "reduce": "avg"}]},
     "claims[0].reduce"),
    ({"options": [{"flag": "--zz", "param": "zz"}]}, "options[0].param"),
    ({"options": [{"flag": "zz", "param": "scale"}]}, "options[0].flag"),
])
def test_schema_errors_name_file_and_field(change, where):
    with pytest.raises(ExperimentError) as info:
        parse_experiment(toy_data(**change), "toy.yaml")
    assert where in str(info.value) and "\n" not in str(info.value)


def test_bad_files_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: toy\nstudy: [1\n")
    assert main(["reproduce", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err and "not valid YAML" in err
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(json.dumps(toy_data(study="no-such-study")))
    assert main(["reproduce", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "study: no study 'no-such-study'" in err and err.count("\n") == 1
    assert main(["reproduce", "lean-attention", "--set", "systems.gpu=3"]) == 2
    assert "3" in capsys.readouterr().err


def test_every_shipped_experiment_loads_and_names_its_study():
    import dse.studies  # noqa: F401
    from sim.studies import get_study

    files = shipped()
    assert {"duplex", "lean-attention", "neupims", "pim-gpt", "cxl-finetune", "instinfer",
            "sn40l", "accllm", "splitwise", "fusemax", "cosma"} <= set(files)
    for name, path in files.items():
        exp = load_experiment(path)
        assert get_study(exp.study) is not None, name
        assert all(c.source for c in exp.claims), f"{name}: every target names its source"
        assert exp.assumptions and exp.description


def test_cli_file_route_and_list(tmp_path, capsys):
    """A user's copy with another chip: the file route runs it; the list shows the shipped."""
    import yaml

    data = yaml.safe_load(shipped()["lean-attention"].read_text())
    data["systems"]["gpu"] = "h100"
    data["params"].update(heads=[32], head_dims=[128], max_context=2048)
    path = tmp_path / "my_lean.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["reproduce", str(path), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["experiment"]["systems"] == {"gpu": "h100"} and len(out["points"]) == 2
    assert out["assumptions"][0].startswith("arch h100;")
    # the same figures as the shipped experiment with --set
    assert main(["reproduce", "lean-attention", "--set", "systems.gpu=h100", "--heads", "32",
                 "--head-dims", "128", "--max-context", "2048", "--json", "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["measured"] for r in again["results"]] == [r["measured"] for r in out["results"]]
    assert main(["reproduce"]) == 0
    listed = capsys.readouterr().out
    assert "lean-attention" in listed and "fusemax" in listed and "splitwise" in listed
    assert not math.isnan(out["results"][0]["measured"])


def test_study_and_claim_mismatches_are_one_line_errors():
    data = toy_data(systems={"x": "h100", "b": "a100"})
    with pytest.raises(ExperimentError, match=r"toy.yaml: systems: study toy-fixed needs 'a'"):
        run_experiment(parse_experiment(data, "toy.yaml"))
    data = toy_data()
    data["claims"][3]["column"] = "zz"
    with pytest.raises(ExperimentError, match=r"claims\[3\]: cannot measure it: .* no 'zz'"):
        run_experiment(parse_experiment(data, "toy.yaml"))
    exp = parse_experiment(toy_data(params={"scale": 1.0, "table": {"a": 1}}), "toy.yaml")
    with pytest.raises(ExperimentError, match="table: expected a value like"):
        run_experiment(exp, sets=["table=3"])


def test_copied_file_keeps_shipped_relative_arch_paths(tmp_path):
    """pim-gpt names its T4 host model by a path relative to the shipped file; a copy elsewhere
    still finds it (next to the copy first, then next to the shipped experiments)."""
    from xpusim.experiments.runner import _near

    shipped_path = str(shipped()["pim-gpt"])
    rel = load_experiment(shipped_path).systems["t4_eager"]
    found = _near(rel, str(tmp_path / "copy.yaml"))
    assert found.endswith("validation/harness/t4-pytorch-eager.yaml")
    assert _near("h100", str(tmp_path / "copy.yaml")) == "h100"
