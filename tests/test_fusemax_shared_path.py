"""FuseMax and FLAT through the shared path: mapper (mappings/cascade_map.py), NPU device, engine.

Hand counts on the fusemax / flat presets (256x256 2D array, 256 1D PEs, exp = 6 cycles, so
``exp(x - m)`` takes 7), with DRAM bandwidth set unlimited where only compute is checked.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from arch import load_arch
from mappings.cascade_map import (
    CascadeMapping,
    cascade_arch,
    evaluate,
    map_cascade,
)
from mappings.fusemax import ENCODERS, flat_attention, fusemax_attention
from workloads.cascades import attention_1pass, attention_3pass
from workloads.passes import passes

R = 256


@pytest.fixture(scope="module")
def fm():
    return cascade_arch(load_arch("fusemax"))


@pytest.fixture(scope="module")
def fl():
    return cascade_arch(load_arch("flat"))


def _compute_only(a):
    return dataclasses.replace(a, dram_bw=math.inf)


def test_mapper_picks_interleave_and_pipeline_when_it_helps(fm):
    """One block of 256 queries over 64 key tiles (E = F = 64). Per tile, hand count:
    2D: QK 64 + LM 1 + SLN 7 + SLD 1 + SLNV 64 = 137; 1D: RM 1 + PRM 7 + SPD 1 + RD 1 +
    SPNV 64 + RNV 64 = 138. Interleaved and pipelined (FuseMax's epoch schedule):
    max(QK+LM, RD+RNV) + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV) = 65+1+8+64 = 138 per
    tile, + 65 (first QK, LM) + 64 (the final division AV on the 1D array) = 8961 cycles.
    Everything on the 2D array: 137 + 10 (row statistics, 256 rows = one fold) + 2 (SPNV,
    RNV spread over 64x256 PEs) = 149 per tile."""
    casc = attention_1pass(1, 1, R, 64 * R, 64, tile=R)
    best = map_cascade(casc, _compute_only(fm))
    assert best.mapping.unit("row") == "1d" and best.mapping.unit("tile") == "2d"
    assert best.mapping.depth >= 2
    assert best.cycles == pytest.approx(64 * 138 + 65 + 64)
    all2d = CascadeMapping((("contraction", "2d"), ("tile", "2d"), ("row", "2d")), 2, R)
    assert evaluate(casc, _compute_only(fm), all2d).cycles == pytest.approx(64 * 149 + 64,
                                                                            abs=64)
    serial = CascadeMapping(best.mapping.units, 1, R)   # no epoch pipeline
    assert evaluate(casc, _compute_only(fm), serial).cycles > 1.3 * best.cycles


def test_mapper_keeps_statistics_on_2d_when_1d_is_small(fm):
    """With 16 1D PEs the running statistics (SPNV, RNV: 64x256 elements) take 16x longer on
    the 1D array than the 256-PE figure above; the interleave no longer helps."""
    casc = attention_1pass(1, 1, R, 64 * R, 64, tile=R)
    best = map_cascade(casc, dataclasses.replace(_compute_only(fm), lanes=16))
    assert best.mapping.unit("row") == "2d"
    assert best.cycles == pytest.approx(64 * 149 + 64, abs=64)


def test_flat_three_pass_is_1d_bound_by_hand(fl):
    """FLAT, N = 1024, blocks of 256 queries: the ws array puts E = 64 on one edge, so QK and
    AV take 256 x 1024 / 256 = 1024 cycles per block; the 1D array runs GM 1 + SN 7 + SD 1 +
    A 1 = 10 cycles per element: 10 x 1024 = 10240 per block; overlapped over 4 blocks:
    4 x 10240 + first QK + last AV = 43008."""
    best = map_cascade(attention_3pass(1, 1, 1024, 1024, 64), _compute_only(fl))
    assert best.mapping.unit("tile") == "1d"          # FLAT's 2D PEs only MAC
    assert best.cycles == pytest.approx(4 * 10240 + 2 * 1024)
    assert best.util2d == pytest.approx(2 * 4 * 1024 * 0.25 / 43008, rel=1e-6)


def test_pass_count_ratio_equals_dram_traffic_ratio_when_rows_do_not_fit(fl, fm):
    """N = 64K on a 2 MiB buffer: one 256-query block's score rows (256 x 64K x 2 B = 32 MiB)
    cannot stay on chip. Holding them spills ~all; recomputing them streams K once per pass,
    so FLAT's K traffic over FuseMax's equals the pass-count ratio (3 / 1)."""
    n = 1 << 16
    small = dataclasses.replace(fl, buffer=2 * 2 ** 20)
    three = attention_3pass(1, 1, 1024, n, 64)
    one = attention_1pass(1, 1, 1024, n, 64, tile=R)
    units3 = (("contraction", "2d"), ("tile", "1d"), ("row", "1d"))
    held = evaluate(three, small, CascadeMapping(units3, 2, R, "hold"))
    assert held.spilled > 0.98
    rec = evaluate(three, small, CascadeMapping(units3, 2, R, "recompute"))
    fused = evaluate(one, dataclasses.replace(small, array_ops=fm.array_ops),
                     CascadeMapping((("contraction", "2d"), ("tile", "2d"), ("row", "1d")),
                                    2, R))
    ratio = rec.tensor_dram["K"] / fused.tensor_dram["BK"]
    assert ratio == pytest.approx(passes(three) / passes(one)) == 3.0
    assert rec.tensor_dram["V"] == fused.tensor_dram["BV"]       # V: the last pass only


@pytest.mark.parametrize("model", ["BERT", "XLM"])
@pytest.mark.parametrize("n", [4096, 65536, 1 << 20])
def test_fusemax_matches_the_artifact_formula_cross_check(fm, model, n):
    """The mapped 1-pass cascade reproduces the closed-form port of the artifact's model
    (mappings/fusemax.py) from 4K on: same epoch schedule found by search, not written in."""
    enc = ENCODERS[model]
    arch = load_arch("fusemax")
    mapped = map_cascade(attention_1pass(64, enc.h, n, n, enc.e, tile=R), fm)
    formula = fusemax_attention(enc, n, arch)
    assert mapped.latency == pytest.approx(formula.latency, rel=0.01)
    assert mapped.util2d == pytest.approx(formula.util2d, abs=0.01)


def test_flat_gap_to_formula_is_the_exp_cost(fl):
    """The formula's FLAT runs each softmax Einsum at 1 element/cycle (4 N^2/R); the preset's
    exp takes 6 (+1 sub), so the 1D array needs 10 N^2/R: the mapped FLAT is 2.5x slower."""
    enc = ENCODERS["BERT"]
    mapped = map_cascade(attention_3pass(64, enc.h, 4096, 4096, enc.e), fl)
    formula = flat_attention(enc, 4096, load_arch("flat"))
    assert mapped.latency / formula.latency == pytest.approx(10 / 4, rel=0.01)


def test_engine_equals_sum_of_mapped_op_costs():
    """One encoder layer on one stream: the engine's makespan is the sum of the op costs, and
    the attention op costs what the mapper says."""
    from xpusim.reproductions.fusemax import Shape, layer_trace, run_layer

    arch = load_arch("fusemax")
    shape = Shape("BERT", 768, 64, 12, 3072)
    out = run_layer(arch, shape, 4096, True)
    assert out["e2e_latency"] == pytest.approx(out["op_latency_sum"], rel=1e-12)
    casc = layer_trace(shape, 4096, arch, True).ops[1].compute
    assert out["attn_latency"] == pytest.approx(map_cascade(casc, cascade_arch(arch)).latency)


def test_unknown_array_operator_is_a_one_line_spec_error(tmp_path):
    import arch
    from arch import SpecError

    text = (Path(arch.__file__).parent / "presets" / "flat.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("array_ops: {value: [mac]", "array_ops: {value: [mac, tanh]"),
                   encoding="utf-8")
    with pytest.raises(SpecError, match="array_ops.*tanh"):
        load_arch(str(bad))
