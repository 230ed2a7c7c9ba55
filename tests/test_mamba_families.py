"""Mamba families read from config.json: pure Mamba-2 (Mamba-Codestral), Bamba's Mamba-2 /
attention hybrid, Falcon-Mamba's normed Mamba-1 mixer, Jamba's Mamba-1 / attention / MoE
hybrid, Falcon-H1's side-by-side hybrid, LFM2's short convolutions, and Mamba-1 under tensor
parallelism: parameters against the checkpoints, the ops and the states a request keeps
counted by hand, long decodes folded, refusals in one line."""

import math

import pytest

from workloads.errors import WorkloadError
from workloads.hf_config import model_from_hf_dict
from workloads.scenario import Scenario
from workloads.tracer import kv_cache_bytes, trace_model

# mistralai/Mamba-Codestral-7B-v0.1 in the Hugging Face format (the HF conversion's config.json,
# Molbap/code2; mlx-community's copy has the same values; "exactly 7,285,403,648 parameters")
CODESTRAL = {
    "model_type": "mamba2", "chunk_size": 256, "conv_kernel": 4, "expand": 2, "head_dim": 64,
    "hidden_size": 4096, "intermediate_size": 8192, "n_groups": 8, "num_heads": 128,
    "num_hidden_layers": 64, "state_size": 128, "tie_word_embeddings": False,
    "time_step_rank": 256, "use_bias": False, "use_conv_bias": True, "vocab_size": 32768}
# ibm-fms/Bamba-9B's config.json (HF blame @ 43f2151; model card: 9.78B)
BAMBA_9B = {
    "model_type": "bamba", "attn_layer_indices": [9, 18, 27], "attn_rotary_emb": 64,
    "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
    "mamba_chunk_size": 256, "mamba_conv_bias": True, "mamba_d_conv": 4, "mamba_d_head": 64,
    "mamba_d_state": 128, "mamba_dt_rank": 256, "mamba_expand": 2, "mamba_n_groups": 1,
    "mamba_n_heads": 128, "mamba_proj_bias": False, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "tie_word_embeddings": False,
    "vocab_size": 128256}
# tiiuae/falcon-mamba-7b's config.json (HF raw/main): expand 16 beside intermediate_size 8,192,
# the width its 14.56 GB of bf16 shards hold
FALCON_MAMBA_7B = {
    "model_type": "falcon_mamba", "conv_kernel": 4, "expand": 16, "hidden_size": 4096,
    "intermediate_size": 8192, "num_hidden_layers": 64, "state_size": 16,
    "tie_word_embeddings": False, "time_step_rank": 256, "use_bias": False,
    "use_conv_bias": True, "vocab_size": 65024}
# state-spaces/mamba-2.8b-hf's config.json (a byte-size-identical copy; HF page "2.77B")
MAMBA_28B = {
    "model_type": "mamba", "conv_kernel": 4, "expand": 2, "hidden_size": 2560,
    "intermediate_size": 5120, "num_hidden_layers": 64, "state_size": 16,
    "time_step_rank": 160, "use_bias": False, "use_conv_bias": True, "vocab_size": 50280}
# ai21labs/Jamba-v0.1's config.json (HF main; "12B active parameters and an overall of 52B")
JAMBA = {
    "model_type": "jamba", "attn_layer_offset": 4, "attn_layer_period": 8,
    "expert_layer_offset": 1, "expert_layer_period": 2, "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "mamba_conv_bias": True,
    "mamba_d_conv": 4, "mamba_d_state": 16, "mamba_dt_rank": 256, "mamba_expand": 2,
    "mamba_proj_bias": False, "max_position_embeddings": 262144, "num_attention_heads": 32,
    "num_experts": 16, "num_experts_per_tok": 2, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "sliding_window": None, "tie_word_embeddings": False,
    "vocab_size": 65536}

# LiquidAI/LFM2-700M's config.json (official repo, refs/pr/8); the card's table: 354,483,968 /
# 742,489,344 / 1,170,340,608 / 2,569,272,320 parameters
LFM2_700M = {
    "model_type": "lfm2", "block_auto_adjust_ff_dim": True, "block_dim": 1536,
    "block_ff_dim": 10240, "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256,
    "conv_L_cache": 3, "conv_bias": False, "full_attn_idxs": [2, 5, 8, 10, 12, 14],
    "hidden_size": 1536, "max_position_embeddings": 128000, "norm_eps": 1e-05,
    "num_attention_heads": 24, "num_hidden_layers": 16, "num_key_value_heads": 8,
    "vocab_size": 65536}
# LFM2-2.6B as LiquidAI's own LFM2-2.6B-Transcript-ONNX config.json gives it (its FFN not cut)
LFM2_26B_TYPES = ["conv", "conv", "full_attention", "conv", "conv", "full_attention", "conv",
                  "conv", "conv", "full_attention", "conv", "conv", "conv", "full_attention",
                  "conv", "conv", "conv", "full_attention", "conv", "conv", "conv",
                  "full_attention", "conv", "conv", "full_attention", "conv", "conv",
                  "full_attention", "conv", "conv"]
# Falcon-H1-0.5B: NVIDIA-NeMo/Megatron-Bridge's copy of its config.json (test_falcon_h1_bridge.py
# @ ebd91e9, FALCON_H1_500M_CONFIG) with mamba_d_ssm 1,536 (= 24 heads x 64, HF's docs table;
# a derivative's config.json) - no official copy was reachable
FALCON_H1_05B = {
    "model_type": "falcon_h1", "attention_bias": False, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 1024, "intermediate_size": 2048, "mamba_chunk_size": 128,
    "mamba_conv_bias": True, "mamba_d_conv": 4, "mamba_d_head": 64, "mamba_d_ssm": 1536,
    "mamba_d_state": 128, "mamba_expand": 2, "mamba_n_groups": 1, "mamba_n_heads": 24,
    "mamba_norm_before_gate": False, "mamba_proj_bias": False, "mamba_rms_norm": False,
    "max_position_embeddings": 16384, "num_attention_heads": 8, "num_hidden_layers": 36,
    "num_key_value_heads": 2, "projectors_bias": False, "rope_theta": 1e11,
    "tie_word_embeddings": False, "vocab_size": 32784}


def _read(config: dict):
    return model_from_hf_dict(config, "m/config.json")


def _layer_ops(model, sc: Scenario, phase: str, layer: int) -> dict:
    return {op.name: op for op in trace_model(model, sc).ops
            if op.phase == phase and op.layer == layer and op.step == (0 if phase == "prefill"
                                                                      else 1)}


def _rank(op, what: str = "flops") -> float:
    """One tensor-parallel rank's FLOPs (or bytes) of a compute op (its figure over the ranks
    it is sharded on)."""
    return getattr(op, what) / op.shards


def test_checkpoint_parameter_counts():
    """Each count against its checkpoint: Codestral exactly 7,285,403,648; Bamba-9B 9.78B
    (29 Mamba-2 layers, attention in 9, 18, 27); Falcon-Mamba-7B 7,272,665,088 (the 8,192
    channels, not 16 x 4,096: 14.56 GB of bf16 shards); Mamba-2.8B 2.77B; Jamba-v0.1 52B total
    and 12B active, a Mamba-1 mixer 105,308,448 by hand."""
    codestral, bamba, falcon, mamba, jamba = map(_read, (CODESTRAL, BAMBA_9B, FALCON_MAMBA_7B,
                                                         MAMBA_28B, JAMBA))
    assert codestral.param_count() == 7_285_403_648
    assert (codestral.blocks, codestral.kv_layers()) == ("M" * 64, 0)
    assert bamba.param_count() == 9_780_235_392 == pytest.approx(9.78e9, abs=5e6)
    assert (bamba.attn_layers, bamba.mamba_layers(), bamba.rotary_dim) == ((9, 18, 27), 29, 64)
    assert (falcon.d_inner, falcon.ssm_norms) == (8192, "plain")
    assert falcon.param_count() == 7_272_665_088 == pytest.approx(14.56e9 / 2, rel=2e-3)
    assert mamba.param_count() == pytest.approx(2.77e9, abs=5e6)
    di, r, n = 8192, 256, 16   # in_proj, conv (taps, bias), x_proj, dt_proj (bias), A, D,
    # out_proj, the dt/B/C norms' gains
    mixer = 4096 * 2 * di + di * 5 + di * (r + 2 * n) + r * di + di + di * n + di + di * 4096 \
        + r + 2 * n
    assert jamba.mamba_layer_params() - jamba.norm_params() == mixer == 105_308_448
    assert jamba.param_count() == pytest.approx(52e9, rel=0.01)
    assert jamba.active_param_count() == pytest.approx(12e9, rel=0.01)
    assert jamba.attn_layers == (4, 12, 20, 28) and jamba.mamba_layers() == 28
    assert [jamba.dense_layer(i) for i in range(4)] == [True, False, True, False]


def test_jamba_layers_by_hand():
    """A Jamba decode step at TP 2 (2 requests): a Mamba layer runs in_proj to 2 x 4,096
    channels per rank, x_proj row-parallel with its 2 x (256 + 32) values all-reduced, the
    gained norms of dt (256) and B, C (16 each), dt_proj, the scan over the rank's 4,096 x 16
    fp32 state, out_proj all-reduced; odd layers route to experts; attention layers have no
    RoPE; the cache is the one attention layer's K/V plus 7 Mamba layers' states."""
    m = _read(JAMBA).with_layers(8)
    sc = Scenario(batch=2, prompt_len=16, gen_len=3, tp=2)
    mamba, moe, attn = (_layer_ops(m, sc, "decode", i) for i in (0, 1, 4))
    inner = 4096
    assert _rank(mamba["in_proj"]) == 2 * 2 * 4096 * 2 * inner
    assert _rank(mamba["x_proj"]) == 2 * 2 * inner * (256 + 32)
    assert mamba["allreduce_x_proj"].flops == 2 * (256 + 32)   # (TP - 1) adds an element
    assert _rank(mamba["dt_proj"]) == 2 * 2 * 256 * inner
    assert {"dt_norm", "bc_norm", "ssm_scan", "conv_state", "allreduce_mamba"} <= set(mamba)
    # the norm of B and C: 2 x 2 rows of 16 in and out (2 B), a 16-wide gain
    assert _rank(mamba["bc_norm"], "bytes") == 2 * (2 * 2 * 16 * 2) + 16 * 2
    # the scan's bytes by hand: the fp32 state read and written, x, delta and z (2 B), B and
    # C, A (fp32, inner x 16), D and dt_bias (fp32), the output, the softplus's scalar one
    assert _rank(mamba["ssm_scan"], "bytes") == 2 * 2 * inner * 16 * 4 + 3 * 2 * inner * 2 \
        + 2 * 2 * 16 * 2 + inner * 16 * 4 + 2 * inner * 4 + 2 * inner * 2 + 4
    assert "router" in moe and "router" not in mamba and "qkv_proj" not in mamba
    assert "qkv_proj" in attn and "rope" not in attn and "in_proj" not in attn
    state = 7 * (inner * 16 * 4 + inner * 3 * 2)
    assert kv_cache_bytes(m, sc) == 2 * 4 * 128 * 2 * 19 * 2 + 2 * state


def test_mamba1_tensor_parallel():
    """Mamba-1 (a Mamba model, Falcon-Mamba) under TP 2 halves each rank's channels: in_proj,
    the scan and the state per rank are half of TP 1's, x_proj's outputs and out_proj are
    all-reduced (two all-reduces a layer, as vLLM's MambaMixer); Falcon-Mamba's weightless
    norms of dt and B, C run on the whole all-reduced x_proj output."""
    m = _read(FALCON_MAMBA_7B).with_layers(2)
    one, two = (Scenario(batch=2, prompt_len=32, gen_len=2, tp=tp) for tp in (1, 2))
    a, b = (_layer_ops(m, sc, "prefill", 0) for sc in (one, two))
    assert _rank(b["in_proj"]) * 2 == _rank(a["in_proj"]) == 2 * 64 * 4096 * 2 * 8192
    assert _rank(b["ssm_scan"]) * 2 == _rank(a["ssm_scan"])
    assert _rank(b["dt_norm"]) == _rank(a["dt_norm"]) and "allreduce_x_proj" not in a
    assert b["allreduce_x_proj"].flops == 64 * (256 + 32)
    assert b["allreduce_mamba"].flops == 64 * 4096
    assert kv_cache_bytes(m, two) * 2 == kv_cache_bytes(m, one) == \
        2 * 2 * (8192 * 16 * 4 + 8192 * 3 * 2)
    plain = _read(MAMBA_28B).with_layers(1)
    assert "dt_norm" not in _layer_ops(plain, one, "prefill", 0)


def test_pure_mamba2_and_bamba_by_hand():
    """Codestral's blocks are a norm and a Mamba-2 mixer (8 groups of B and C: in_proj 2 x
    8,192 + 2 x 8 x 128 + 128 wide), nothing else; at TP 2 the heads and the groups split;
    its cache is the states alone. Bamba's attention layers rotate 64 of 128 channels."""
    m = _read(CODESTRAL).with_layers(2)
    sc = Scenario(batch=1, prompt_len=8, gen_len=2, tp=2)
    ops = _layer_ops(m, sc, "prefill", 0)
    assert _rank(ops["in_proj"]) == 2 * 8 * 4096 * (8192 / 2 + 8192 / 2 + 2 * 4 * 128 + 64)
    assert not {"qkv_proj", "ln_ffn", "ffn_up"} & set(ops)
    heads, groups = 64, 4
    state = 2 * (heads * 64 * 128 * 4 + (heads * 64 + 2 * groups * 128) * 3 * 2)
    assert kv_cache_bytes(m, sc) == state
    bamba = _read(BAMBA_9B).with_layers(10)
    attn = _layer_ops(bamba, Scenario(batch=1, prompt_len=8, gen_len=2), "prefill", 9)
    assert attn["rope"].flops == pytest.approx(8 * (32 + 8) * 64 * 3)
    assert "ssd_cb" in _layer_ops(bamba, Scenario(batch=1, prompt_len=8, gen_len=2),
                                  "prefill", 0)


@pytest.mark.parametrize("config", [JAMBA, CODESTRAL, FALCON_H1_05B, LFM2_700M])
def test_long_decodes_fold(config, monkeypatch):
    """Jamba's, Codestral's, Falcon-H1's and LFM2's long decodes fold: the folded trace has the
    op-by-op trace's FLOPs op for op, its run the unfolded run's metrics."""
    from test_hf_windows_shared import _folds_like_op_by_op

    want = _folds_like_op_by_op(_read(config).with_layers(8),
                                Scenario(batch=2, prompt_len=6, gen_len=20), monkeypatch)
    assert {op.name for op in want if op.layer == 0 and op.phase == "decode"} >= {
        "in_proj", "out_proj", "conv_state"}


def test_refusals_in_one_line():
    """A Jamba mixture in other layers than every period-th from ``period - 1``, an attention
    offset past its period, Bamba attention indices out of range, a Mamba width that is not a
    multiple of the model width, Mamba-2 heads that do not tile it: each names its field;
    the NPU+PIM decode stages' layer model refuses Jamba's recurrent layers."""
    from arch import load_arch
    from sim.devices.base import SimError
    from sim.serving.layer_costs import LayerCosts

    cases = [({**JAMBA, "expert_layer_offset": 0}, "expert_layer_offset"),
             ({**JAMBA, "attn_layer_offset": 8}, "attn_layer_offset"),
             ({**BAMBA_9B, "attn_layer_indices": [9, 32]}, "attn_layer_indices"),
             ({**FALCON_MAMBA_7B, "intermediate_size": 5000}, "intermediate_size"),
             ({**CODESTRAL, "head_dim": 63}, "head_dim"),
             # refused before a list per layer is built (the fuzzer's 2**31 layers took 20 GB)
             ({**JAMBA, "num_hidden_layers": 2**31}, "num_hidden_layers"),
             ({**CODESTRAL, "num_hidden_layers": 2 * 10**12}, "num_hidden_layers")]
    for config, field in cases:
        with pytest.raises(WorkloadError) as exc:
            _read(config)
        assert exc.value.path == field
    with pytest.raises(SimError, match="mixes recurrent"):
        LayerCosts(load_arch("h100"), _read(JAMBA), 1)
    assert math.isfinite(_read({**JAMBA, "num_experts": 1}).param_count())


def test_falcon_mamba_checks_its_norms():
    """``xpusim check`` runs Falcon-Mamba's layer against the float64 reference, its
    weightless norms of dt (16 wide here) and of B and C (2 x 16 rows a token) included, in a
    prefill and a decode step."""
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer

    m = _read({**FALCON_MAMBA_7B, "hidden_size": 256, "intermediate_size": 512,
               "time_step_rank": 16})
    rep = check_layer(load_arch("h100"), m, CheckSpec(batch=2, prompt=8))
    rows = {(r.phase, r.op): r for r in rep.rows}
    assert rep.passed
    for phase, tokens in (("prefill", 16), ("decode", 2)):
        assert rows[phase, "dt_norm"].elements == tokens * 16
        assert rows[phase, "bc_norm"].elements == 2 * tokens * 16


def test_falcon_h1_parallel_hybrid_by_hand():
    """Falcon-H1-0.5B: 521,411,104 parameters ("0.5B"), by hand per layer: attention (8 heads
    of 64, 2 KV heads), the Mamba-2 mixer 1,536 wide (in_proj 2 x 1,536 + 2 x 128 + 24, no
    gated norm), the gated MLP, two norms. A layer runs both from one norm (one ln_attn, no
    ln_mamba), RoPE over whole heads, one residual add of three inputs; every layer keeps K/V
    and a state; mamba_rms_norm adds the gated norm (1,536 gains a layer)."""
    m = _read(FALCON_H1_05B)
    d, di, h = 1024, 1536, 24
    attn = d * 512 + 2 * d * 128 + 512 * d
    mixer = d * (2 * di + 256 + h) + (di + 256) * 5 + 3 * h + di * d
    layer = attn + mixer + 3 * d * 2048 + 2 * d
    assert m.param_count() == 36 * layer + 2 * 32784 * d + d == 521_411_104
    ops = _layer_ops(m.with_layers(1), Scenario(batch=1, prompt_len=8, gen_len=2), "prefill", 0)
    names = list(ops)
    assert names.count("ln_attn") == 1 and "ln_mamba" not in ops and "ssd_norm" not in ops
    assert names.index("o_proj") < names.index("in_proj") < names.index("residual_hybrid")
    assert ops["residual_hybrid"].flops == 2 * 8 * d   # input + attention + mixer
    assert ops["rope"].flops == pytest.approx(8 * (8 + 2) * 64 * 3)
    sc = Scenario(batch=1, prompt_len=8, gen_len=2)
    state = h * 64 * 128 * 4 + (di + 256) * 3 * 2
    assert kv_cache_bytes(m, sc) == 36 * (2 * 2 * 64 * 2 * 10 + state)
    normed = _read({**FALCON_H1_05B, "mamba_rms_norm": True})
    assert normed.param_count() - m.param_count() == 36 * di
    assert "ssd_norm" in _layer_ops(normed.with_layers(1), sc, "prefill", 0)
    for config, field in (({**FALCON_H1_05B, "projectors_bias": True}, "projectors_bias"),
                          ({**FALCON_H1_05B, "mamba_d_head": 32}, "mamba_d_head")):
        with pytest.raises(WorkloadError) as exc:
            _read(config)
        assert exc.value.path == field


def test_jamba_checks_its_mamba_layer():
    """``xpusim check`` of Jamba runs its layer 0 (a Mamba-1 mixer with gained dt/B/C norms,
    then a dense MLP) against the float64 reference: every op of both phases, the mixer's
    residual feeding the MLP's norm."""
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer

    rep = check_layer(load_arch("h100"), _read(JAMBA), CheckSpec(batch=1, prompt=16,
                                                                  max_width=512))
    names = {(r.phase, r.op) for r in rep.rows}
    assert rep.passed and {("prefill", "ssm_scan"), ("decode", "conv_state"),
                           ("decode", "residual_mamba"), ("decode", "ffn_down")} <= names
    assert ("prefill", "router") not in names   # layer 0 is a dense one


def test_lfm2_counts_and_layers_by_hand():
    """LFM2: every size's count exactly as its card gives it (the FFN cut to 2/3 and rounded
    up to 256: 6,912 for the 700M; the 2.6B's not cut); a convolution layer at TP 2 runs
    in_proj (1,536 -> 3 x 768 per rank), B x, the 3-tap depthwise convolution over the rank's
    768 channels (no activation), C times it, out_proj all-reduced; it keeps 2 rows of B x
    per request (vLLM's short-conv state); LFM2-8B-A1B 8.3B with 1.5B active."""
    sizes = [(1024, 16, 6656, 354_483_968), (1536, 24, 10240, 742_489_344),
             (2048, 32, 12288, 1_170_340_608)]
    for d, heads, ff, total in sizes:
        m = _read({**LFM2_700M, "hidden_size": d, "num_attention_heads": heads,
                   "block_ff_dim": ff})
        assert m.param_count() == total
    big = _read({**LFM2_700M, "hidden_size": 2048, "num_attention_heads": 32,
                 "num_hidden_layers": 30, "block_ff_dim": 10752,
                 "block_auto_adjust_ff_dim": False, "layer_types": LFM2_26B_TYPES})
    assert big.param_count() == 2_569_272_320 and len(big.attn_layers) == 8
    m = _read(LFM2_700M)
    assert (m.d_ff, m.attn_layers, m.short_conv) == (6912, (2, 5, 8, 10, 12, 14), 3)
    sc = Scenario(batch=2, prompt_len=16, gen_len=3, tp=2)
    ops = _layer_ops(m.with_layers(3), sc, "decode", 0)
    assert _rank(ops["in_proj"]) == 2 * 2 * 1536 * 3 * 768
    assert ops["conv1d"].flops / ops["conv1d"].shards == 2 * 2 * 768 * 3
    assert {"conv_gate_b", "conv_gate_c", "conv_state", "allreduce_conv"} <= set(ops)
    assert "conv_act" not in ops and "qkv_proj" in _layer_ops(m.with_layers(3), sc, "decode", 2)
    state = 2 * 768 * 2   # 2 rows of 768 fp16 channels a layer
    kv = 2 * 4 * 64 * 2   # 1 attention layer: K and V of 4 KV heads per rank, a token
    assert kv_cache_bytes(m.with_layers(3), sc) == 2 * (2 * state + kv * 19)
    moe = _read({"model_type": "lfm2_moe", "hidden_size": 2048, "intermediate_size": 7168,
                 "moe_intermediate_size": 1792, "num_dense_layers": 2, "num_experts": 32,
                 "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "vocab_size": 65536,
                 "layer_types": ["conv", "conv", "full_attention"] * 8})
    assert moe.param_count() == pytest.approx(8.3e9, rel=0.01)
    assert moe.active_param_count() == pytest.approx(1.5e9, rel=0.05)
    with pytest.raises(WorkloadError) as exc:
        _read({**LFM2_700M, "full_attn_idxs": [2, 16]})
    assert exc.value.path == "full_attn_idxs"
