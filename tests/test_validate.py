"""``xpusim validate``: suites discovered, thresholds enforced, CSV written, skips reported."""

import csv
import json
import math

import pytest

from xpusim.cli import main
from xpusim.plugins import discover
from xpusim.validation import Point, SuiteSkipped, ValidationContext, alternate_split, mape

EXPECTED = {"a100-gemm": 0.05, "a100-softmax": 0.10, "a100-layernorm": 0.10, "a100-gelu": 0.10,
            "gpt3-layer-prefill": 0.10, "gpt3-layer-decode": 0.10, "splitwise-prompt": 0.08,
            "splitwise-token": 0.08}


def test_suites_are_discovered_with_thresholds():
    suites = discover("xpusim.validation")
    for name, thr in EXPECTED.items():
        assert name in suites and suites[name].THRESHOLD == thr
    assert {"h100-gemm", "h100-llm", "h100-vector", "h200-gemm", "h200-llm",
            "h200-vector"} <= set(suites)
    assert not any(n.startswith("_") for n in suites)


def test_point_error_and_mape():
    pts = [Point("a", 2.0, 2.2), Point("b", 1.0, 0.9)]
    assert pts[0].error == pytest.approx(0.1) and pts[1].error == pytest.approx(-0.1)
    assert mape(pts) == pytest.approx(0.1)
    assert alternate_split(3) == ["train", "test", "train"]
    assert math.isnan(mape([]))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from conftest import reference_dir

    ref_dir = reference_dir()
    if not ref_dir.is_dir():
        pytest.skip(f"reference data not found at {ref_dir} (set XPUSIM_REFERENCE_DIR)")
    out = tmp_path_factory.mktemp("validate")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["validate", "--reference-dir", str(ref_dir), "--out", str(out), "--json"])
    return code, json.loads(buf.getvalue()), out


def test_validate_runs_every_suite_and_writes_csv(results):
    code, data, out = results
    rows = {r["suite"]: r for r in data["suites"]}
    assert set(EXPECTED) <= set(rows)
    with open(out / "validation.csv") as fh:
        table = {r["suite"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(table)
    with open(out / "validation_points.csv") as fh:
        points = list(csv.DictReader(fh))
    assert len(points) == sum(r["n"] for r in data["suites"])
    # misses are reported, not failures: exit 0 (1 only with --strict, see test_validate_cli)
    assert code == 0
    for r in data["suites"]:
        if r["status"] != "skipped":
            assert r["status"] == ("pass" if r["mape"] <= r["threshold"] else "MISS")


@pytest.mark.parametrize("suite", ["a100-gemm", "a100-softmax", "a100-layernorm", "a100-gelu",
                                   "gpt3-layer-prefill", "gpt3-layer-decode", "splitwise-token"])
def test_suite_meets_threshold(results, suite, capsys):
    """The calibrated model meets these thresholds (figures in docs/validation.md)."""
    rows = {r["suite"]: r for r in results[1]["suites"]}
    r = rows[suite]
    with capsys.disabled():
        split = (f" (train {r['train_mape']:.1%}, test {r['test_mape']:.1%})"
                 if r["train_mape"] is not None else " (all held out)")
        print(f"\n[validate] {suite}: n={r['n']} MAPE {r['mape']:.1%}{split} "
              f"max {r['max_error']:.1%} <= {r['threshold']:.0%}")
    assert r["mape"] <= r["threshold"]


def test_fitted_suites_report_held_out_error(results):
    rows = {r["suite"]: r for r in results[1]["suites"]}
    for name in ("a100-gemm", "a100-softmax", "a100-layernorm", "a100-gelu", "splitwise-token"):
        assert rows[name]["n_test"] > 0 and math.isfinite(rows[name]["test_mape"])
    assert rows["gpt3-layer-prefill"]["train_mape"] is None
    # the GPT-3 layer uses no parameter fitted on it: every point is held out
    assert rows["gpt3-layer-prefill"]["n_train"] == 0


def test_splitwise_prompt_miss_is_reported_not_hidden(results):
    rows = {r["suite"]: r for r in results[1]["suites"]}
    r = rows["splitwise-prompt"]
    assert r["n"] == 76 and r["status"] in ("pass", "MISS")
    assert (r["status"] == "MISS") == (r["mape"] > 0.08)


def test_gpt3_layer_end_to_end_error(ref_dir):
    from xpusim.validation._gpt3_layer import points

    ctx = ValidationContext(ref_dir)
    for phase in ("prefill", "decode"):
        pts = points(ctx, phase)
        total = sum(p.predicted for p in pts) / sum(p.measured for p in pts) - 1
        assert abs(total) < 0.041  # LLMCompass: 4.1% end-to-end


def test_h100_suites_skip_without_measurements(tmp_path):
    from xpusim.validation import h100_gemm

    with pytest.raises(SuiteSkipped, match="measure_gpu.py --tag h100"):
        h100_gemm.run(ValidationContext(tmp_path, project_data=tmp_path))


def test_h100_suites_read_measurements(tmp_path):
    from xpusim.validation import h100_gemm, h100_llm

    d = tmp_path / "h100"
    d.mkdir()
    (d / "h100_gemm.csv").write_text("dtype,M,N,K,latency_s,tflops\n"
                                     "bf16,8192,8192,8192,0.0012,900\n")
    (d / "h100_attention.csv").write_text(
        "phase,impl,batch,heads,kv_heads,q_len,kv_len,head_dim,dtype,latency_s\n"
        "decode,flash_attn_with_kvcache,8,64,8,1,4096,128,bf16,0.00004\n")
    (d / "h100_decode_step.csv").write_text(
        "model,layers,batch,context,dtype,latency_s,mode\n"
        "llama2-7b,32,1,1024,bf16,0.006,cuda-graph\nllama2-7b,32,1,1024,bf16,0.02,eager\n")
    ctx = ValidationContext(tmp_path, project_data=tmp_path)
    gemm = h100_gemm.run(ctx)
    llm = h100_llm.run(ctx)
    assert len(gemm) == 1 and len(llm) == 2  # eager rows are not compared
    assert all(p.predicted > 0 for p in gemm + llm)


def test_unknown_suite_is_one_line_error(capsys, tmp_path):
    assert main(["validate", "--suite", "a100-gem", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a100-gemm" in err and err.count("\n") == 1


def test_missing_reference_dir_is_one_line_error(capsys, tmp_path):
    assert main(["validate", "--reference-dir", str(tmp_path / "nope")]) == 2
    assert "reference folder not found" in capsys.readouterr().err


def test_absent_reference_data_skips(tmp_path, capsys):
    code = main(["validate", "--reference-dir", str(tmp_path), "--out", str(tmp_path),
                 "--suite", "a100-gemm"])
    assert code == 0 and "skipped" in capsys.readouterr().out
