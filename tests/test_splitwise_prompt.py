"""Splitwise A100 rows whose KV cache overflows are excluded, by the serving engine's sizing.

Hand counts: Llama2-70B (80 layers, d 8192, 8 KV heads of 128, d_ff 28672, vocab 32000) in fp16
on A100-80GB (80 GiB) under vLLM's defaults (gpu_memory_utilization 0.9, 16-token blocks).
"""

import math

import pytest

from xpusim.validation import ValidationContext, bias, mape
from xpusim.validation import _splitwise as sw

GIB = 2**30
PARAMS = 80 * (2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192) \
    + 2 * 32000 * 8192 + 8192                          # layers, embedding + LM head, final norm


def _capacity_by_hand(tp: int, budget: int) -> int:
    """KV tokens per device: 0.9 x 80 GiB - weights - activations of ``budget`` tokens, in
    whole 16-token blocks of 2 (K, V) x 80 layers x 8/tp heads x 128 x 2 bytes per token."""
    weights = PARAMS * 2 / tp
    acts = budget * (4 * 8192 + 2 * 28672 // tp) * 2   # sim/serve/costs.py ACT_WIDTHS = 4
    per_token = 2 * 80 * (8 // tp) * 128 * 2
    return int((0.9 * 80 * GIB - weights - acts) // (16 * per_token)) * 16


@pytest.mark.parametrize("tp,batch", [(2, 64), (2, 32), (4, 64), (8, 16)])
def test_kv_tokens_hand_count(tp, batch):
    cfg = {"model": "llama2-70b", "tp": tp, "batch": batch, "prompt": 512, "tokens": 128}
    need, capacity = sw.kv_tokens(cfg)
    assert need == batch * math.ceil((512 + 128 - 1) / 16) * 16      # 640 tokens per request
    assert capacity == _capacity_by_hand(tp, max(batch * 512, 4096))


def test_tp2_batch64_overflows_and_batch32_fits():
    small = {"model": "llama2-70b", "tp": 2, "prompt": 512, "tokens": 128}
    need64, cap64 = sw.kv_tokens({**small, "batch": 64})
    need32, cap32 = sw.kv_tokens({**small, "batch": 32})
    assert (need64, cap64) == (40960, 26272)
    assert need32 == 20480 < cap32


def test_overflowing_row_is_excluded_with_the_reason(ref_dir):
    ctx = ValidationContext(ref_dir)
    cfgs = sw.configs(ctx)
    excluded = [c for c in cfgs if c["split"] == sw.EXCLUDED]
    assert [(c["model"], c["tp"], c["batch"], c["prompt"]) for c in excluded] == \
        [("llama2-70b", 2, 64, 512)]
    # the other 75 keep the documented alternate split (even rows train)
    kept = [(i, c["split"]) for i, c in enumerate(cfgs) if c["split"] != sw.EXCLUDED]
    assert all(s == ("train" if i % 2 == 0 else "test") for i, s in kept) and len(kept) == 75
    cfg = excluded[0]
    # the published prompt time is a tenth of the roofline bound of 64 x 512 prompt tokens:
    # 2 FLOP x 69.0e9 parameters x 32,768 tokens / (2 GPUs x 312 TFLOP/s) = 7.24 s at least
    bound = sw.prefill_bound(cfg)
    assert bound >= 2 * PARAMS * 32768 / (2 * 312e12)
    assert cfg["prompt_s"] < bound / 9


def test_excluded_points_carry_nan_and_note(ref_dir):
    pts = sw.points(ValidationContext(ref_dir), metric="both")
    bad = [p for p in pts if p.split == sw.EXCLUDED]
    assert [p.case.split()[0] for p in bad] == ["prompt", "token"]
    for p in bad:
        assert math.isnan(p.predicted) and math.isnan(p.error)
        assert "40,960" in p.note and "26,272" in p.note and "roofline" in p.note
    rest = [p for p in pts if p.split != sw.EXCLUDED]
    assert len(rest) == 150 and all(math.isfinite(p.error) for p in rest)
    # NaN points stay out of MAPE and bias
    prompt = [p for p in pts if p.case.startswith("prompt")]
    assert mape(prompt) == pytest.approx(mape([p for p in prompt if p.split != sw.EXCLUDED]))
    assert bias(prompt) == pytest.approx(bias([p for p in prompt if p.split != sw.EXCLUDED]))
