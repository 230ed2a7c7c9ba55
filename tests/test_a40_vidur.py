"""Vidur's A40 cuBLAS layer GEMMs (validation/a40, suite a40-gemm-vidur): the rows' shapes
follow from each model's own shape columns, the a40 preset holds what the fit on the
Llama-2-7B rows gives, and the five other models' rows land within the suite's goal."""

import csv

import pytest

from arch import load_arch
from xpusim.validation import PROJECT_DATA, mape

DATA = PROJECT_DATA / "a40" / "a40_gemm_vidur.csv"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from conftest import project_ctx

    return project_ctx(tmp_path_factory, "a40", "a40_gemm_vidur.csv")


def _rows() -> list[dict[str, str]]:
    with open(DATA, newline="") as fh:
        return list(csv.DictReader(fh))


def test_shapes_by_hand(ctx):
    """Hand counts: Llama-2-70B at TP8 (64 heads, 8 KV heads of 128, hidden 8192, gated MLP
    of 28672) and Phi-2 (32 heads of 80, 2560 hidden, plain MLP of 10240) at 128 tokens."""
    rows = {(r["model"].split("/")[-1], r["tp"], r["num_tokens"], r["op"]):
            (int(r["m"]), int(r["n"]), int(r["k"])) for r in _rows()}
    assert rows["Llama-2-70b-hf", "8", "128", "attn_pre_proj"] == (128, (64 + 16) * 128 // 8, 8192)
    assert rows["Llama-2-70b-hf", "8", "128", "attn_post_proj"] == (128, 8192, 64 * 128 // 8)
    assert rows["Llama-2-70b-hf", "8", "128", "mlp_up_proj"] == (128, 2 * 28672 // 8, 8192)
    assert rows["Llama-2-70b-hf", "8", "128", "mlp_down_proj"] == (128, 8192, 28672 // 8)
    assert rows["phi-2", "1", "128", "attn_pre_proj"] == (128, 3 * 2560, 2560)
    assert rows["phi-2", "1", "128", "mlp_up_proj"] == (128, 10240, 2560)
    # 4,096 tokens: two profiled rows per (model, degree, projection); Phi-2 at TP1 only
    assert len(rows) + (5 * 4 + 1) * 4 == len(_rows()) == 504


def test_preset_holds_what_the_fit_derives(ctx):
    """The FITTED a40 values are the fit's own result on the Llama-2-7B rows (to the preset's
    printed digits); the overlap exponent is the a100's, not refitted."""
    from xpusim.validation._fit_gpu import fit_vidur_a40

    arch, got = load_arch("a40"), fit_vidur_a40(ctx)
    assert arch.gpu.tensor_efficiency == pytest.approx(got["gpu.tensor_efficiency"], abs=6e-4)
    assert arch.gpu.gemm_fixed == pytest.approx(got["gpu.gemm_fixed"], abs=6e-9)
    assert arch.memory["hbm"].efficiency == pytest.approx(got["memory.hbm.efficiency"], abs=6e-4)
    assert arch.gpu.gemm_overlap_p == load_arch("a100").gpu.gemm_overlap_p


def test_held_out_models_within_goal(ctx):
    """Split by model (Llama-2-7B trains, 96 of 504); the issue's goal for held-out layer
    GEMMs (MAPE <= 10%, |bias| <= 5%) on the test half and on each held-out model's rows
    (measured: 5.1%, bias -2.5%)."""
    import statistics

    from xpusim.validation import vidur_gemm_a40

    points = vidur_gemm_a40.run(ctx)
    train = [p for p in points if p.split == "train"]
    test = [p for p in points if p.split == "test"]
    assert len(train) == 96 and len(test) == 408
    assert {p.case.split()[0] for p in train} == {"Llama-2-7b-hf"}
    assert mape(test) < 0.10 and abs(statistics.mean(p.error for p in test)) < 0.05
    for model in {p.case.split()[0] for p in test}:
        assert mape([p for p in test if p.case.startswith(model)]) < 0.10, model


def test_bad_value_is_a_one_line_error_naming_row_and_column(tmp_path):
    """A time that is not a positive number, or a shape that is not a positive integer, stops
    the suite with the file, the row and the column (not a traceback from float())."""
    from conftest import assert_bad_rows_fail

    from xpusim.validation import vidur_gemm_a40

    assert_bad_rows_fail(tmp_path, DATA, vidur_gemm_a40.run, [
        (",3.755,", ",slow,", r"row 2 median_ms.*positive number, got 'slow'"),
        (",4096,12288,", ",4096,-1,", r"row 2 n.*positive integer")])
