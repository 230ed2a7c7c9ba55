"""Encoder, encoder-decoder, Mamba and parallel-block families: parameter counts against
published counts, traces against hand counts of their FLOPs and bytes, config.json families."""

import math

import numpy as np
import pytest

from workloads.errors import WorkloadError
from workloads.hf_config import model_from_hf_dict
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import kv_cache_bytes, trace_model
from workloads.tracer_families import check_scenario, selective_scan_cascade

# Exact counts: Hugging Face transformers ``num_parameters()`` of the checkpoints, as widely
# quoted (BERT: google-bert/bert-{base,large}-uncased with pooler, no MLM head; T5: google-t5,
# shared tied embedding); the papers round them to 110M / 340M (Devlin et al. 2019) and
# 60M / 220M / 770M (Raffel et al. 2020).
EXACT = {"bert-base": 109_482_240, "bert-large": 335_141_888, "t5-small": 60_506_624,
         "t5-base": 222_903_552, "t5-large": 737_668_096}
# Rounded published figures: Mamba sizes (Gu & Dao 2023, model names of Table 3 / Fig. 4),
# GPT-J model card (6,053,381,344), Falcon model cards ("7B", "40B"), Phi-2 (Microsoft
# Research blog, "2.7 billion"); tolerance is the rounding of each figure.
ROUNDED = {"mamba-130m": (130e6, 0.02), "mamba-370m": (370e6, 0.02),
           "mamba-790m": (790e6, 0.02), "mamba-1.4b": (1.4e9, 0.02),
           "mamba-2.8b": (2.8e9, 0.02), "gpt-j-6b": (6_053_381_344, 1e-3),
           "falcon-7b": (7e9, 0.05), "falcon-40b": (40e9, 0.05), "phi-2": (2.7e9, 0.05)}


@pytest.mark.parametrize("name,count", sorted(EXACT.items()))
def test_exact_published_counts(name, count):
    assert get_model(name).param_count() == count


@pytest.mark.parametrize("name,spec", sorted(ROUNDED.items()))
def test_rounded_published_counts(name, spec):
    count, rel = spec
    assert get_model(name).param_count() == pytest.approx(count, rel=rel)


def test_gemma_non_embedding_counts_match_paper():
    """Gemma Team 2024, Table 2: non-embedding parameters exactly; its embedding counts
    (524,550,144 and 786,825,216) are 256,128 rows, the config's 256,000 padded."""
    assert get_model("gemma-2b").non_embedding_params() == 1_981_884_416
    assert get_model("gemma-7b").non_embedding_params() == 7_751_248_896
    assert 524_550_144 // 2048 == 786_825_216 // 3072 == 256_128


def test_mamba_130m_by_hand():
    """One block of HF MambaMixer at d=768, d_inner=1536, N=16, dt_rank=48, conv 4."""
    d, di, n, r = 768, 1536, 16, 48
    block = d * 2 * di + di * 4 + di + di * (r + 2 * n) + r * di + di + di * n + di + di * d + d
    m = get_model("mamba-130m")
    assert m.dt_rank == r and m.mamba_layer_params() == block
    assert m.param_count() == 50280 * d + 24 * block + d == 129_135_360


def _matmul_flops(trace, phase="prefill", step=None):
    return sum(op.flops for op in trace.ops if op.kind == "matmul" and op.phase == phase
               and (step is None or op.step == step))


def test_bert_prefill_flops_by_hand():
    m = get_model("bert-base")
    b, p, d, ff, L = 2, 128, 768, 3072, 12
    tr = trace_model(m, Scenario(batch=b, prompt_len=p, gen_len=1))
    t = b * p
    per_layer = 2 * t * (4 * d * d + 2 * d * ff) + 2 * 2 * b * p * p * d  # projections, QK, PV
    assert _matmul_flops(tr) == L * per_layer + 2 * b * d * d  # + the pooler
    assert {op.phase for op in tr.ops} == {"prefill"}
    names = [op.name for op in tr.ops if op.layer == -1]
    assert names == ["embedding", "pos_embedding", "type_embedding", "embed_norm"]
    assert kv_cache_bytes(m, Scenario(batch=b, prompt_len=p, gen_len=1)) == 0


def test_t5_prefill_and_decode_flops_by_hand():
    m = get_model("t5-small")
    b, p, gen, d, ff, L, V = 2, 64, 3, 512, 2048, 6, 32128
    tr = trace_model(m, Scenario(batch=b, prompt_len=p, gen_len=gen))
    t = b * p
    enc = L * (2 * t * (4 * d * d + 2 * d * ff) + 4 * b * p * p * d)
    dec0 = L * (2 * b * (4 * d * d + 2 * d * d + 2 * d * ff) + 2 * t * d * 2 * d
                + 4 * b * 1 * d + 4 * b * p * d)
    assert _matmul_flops(tr) == enc + dec0 + 2 * b * d * V
    for k in range(1, gen):  # self attention over k + 1 tokens, cross over the prompt
        step = L * (2 * b * (4 * d * d + 2 * d * d + 2 * d * ff) + 4 * b * (k + 1) * d
                    + 4 * b * p * d)
        assert _matmul_flops(tr, "decode", k) == step + 2 * b * d * V
    # the relative-position bias: an add on every self-attention score (none on cross attention)
    bias = [op for op in tr.ops if op.name == "pos_bias"]
    assert sum(op.flops for op in bias if op.phase == "prefill") == \
        L * b * 8 * p * p + L * b * 8 * 1 * 1
    assert sum(op.flops for op in bias if op.phase == "decode") == \
        sum(L * b * 8 * (k + 1) for k in range(1, gen))
    flash = trace_model(m, Scenario(batch=b, prompt_len=p, gen_len=gen, attention="flash"))
    assert not any(op.name == "pos_bias" for op in flash.ops)
    # decoder KV cache: self K/V over prompt + gen positions as an upper bound, plus cross K/V
    sc = Scenario(batch=b, prompt_len=p, gen_len=gen)
    assert kv_cache_bytes(m, sc) == b * 2 * L * 8 * 64 * 2 * (p + gen)


def test_mamba_scan_flops_and_bytes_by_hand():
    """Per token, channel and state: exp(dt A) 2, dt B x 2, the update 2, C h 2; per token and
    channel: softplus 4, D x + y 2, silu gate 4 + multiply 1."""
    b, seq, c, n = 2, 16, 64, 8
    casc = selective_scan_cascade(b, seq, c, n, "fp16")
    assert casc.flops == b * seq * c * (8 * n + 11)
    # prefill: x, delta, z (fp16), B, C (fp16), A, D, dt_bias, the constant 1 (fp32) in; the
    # output (fp16) and the last state (fp32) out
    params = c * n * 4 + 2 * c * 4 + 4
    assert casc.min_bytes == 3 * b * seq * c * 2 + 2 * b * seq * n * 2 + params \
        + b * seq * c * 2 + b * c * n * 4
    # decode: one token, and the carried fp32 state is read as well as written
    dec = selective_scan_cascade(b, 1, c, n, "fp16", carried_state=True)
    assert dec.min_bytes == 3 * b * c * 2 + 2 * b * n * 2 + params + b * c * n * 4 \
        + b * c * 2 + b * c * n * 4


def test_mamba_trace_by_hand():
    m = get_model("mamba-130m")
    b, p, gen = 2, 32, 3
    d, di, n, r, L = 768, 1536, 16, 48, 24
    tr = trace_model(m, Scenario(batch=b, prompt_len=p, gen_len=gen))
    t = b * p
    proj = d * 2 * di + di * (r + 2 * n) + r * di + di * d
    assert _matmul_flops(tr) == L * 2 * t * proj + 2 * b * d * 50280
    scan = [op for op in tr.ops if op.name == "ssm_scan"]
    assert len(scan) == L * gen
    assert sum(op.flops for op in scan if op.phase == "prefill") == L * t * di * (8 * n + 11)
    assert sum(op.flops for op in tr.ops if op.name == "conv1d" and op.phase == "decode") \
        == L * (gen - 1) * 2 * b * di * 4
    # a decode step's conv reads its window (3 state rows + the new one, fp16) and the taps,
    # writes fp32; the state shift copies 3 rows per request and channel
    conv = next(op for op in tr.ops if op.name == "conv1d" and op.phase == "decode")
    assert conv.bytes == b * 4 * di * 2 + di * 4 * 2 + b * di * 4
    shift = [op for op in tr.ops if op.name == "conv_state"]
    assert len(shift) == L * (gen - 1) and shift[0].bytes == 2 * b * 3 * di * 2
    state = kv_cache_bytes(m, Scenario(batch=b, prompt_len=p, gen_len=gen))
    assert state == b * L * (di * n * 4 + di * 3 * 2)  # independent of the context length
    assert state == kv_cache_bytes(m, Scenario(batch=b, prompt_len=4 * p, gen_len=gen))


def test_parallel_blocks():
    """GPT-J: one norm and one residual per layer, a single all-reduce under TP, RoPE on 64 of
    256 channels per head; Falcon-40B: two norms."""
    sc = Scenario(batch=1, prompt_len=16, gen_len=1, tp=2)
    gptj = [op for op in trace_model(get_model("gpt-j-6b"), sc).ops if op.layer == 0]
    names = [op.name for op in gptj]
    assert names.count("ln_attn") == 1 and "ln_ffn" not in names
    assert [op.name for op in gptj if op.kind == "collective"] == ["allreduce_block"]
    rope = next(op for op in gptj if op.name == "rope")
    assert rope.flops == 2 * 3 * 16 * (8 + 8) * 64  # two shards, 3 maps, 16 tokens, heads/tp
    f40 = [op.name for op in trace_model(get_model("falcon-40b"), Scenario(
        batch=1, prompt_len=16, gen_len=1)).ops if op.layer == 0]
    assert f40.count("ln_attn") == 1 and f40.count("ln_ffn") == 1
    assert f40[-1] == "residual_parallel"
    # the residual adds attention and MLP outputs to the input: 2 adds per element
    res = next(op for op in trace_model(get_model("falcon-7b"), Scenario(
        batch=1, prompt_len=16, gen_len=1)).ops if op.name == "residual_parallel")
    assert res.flops == 2 * 16 * 4544


def test_family_options_refused_in_one_line():
    with pytest.raises(WorkloadError, match="--gen: bert-base is an encoder"):
        check_scenario(get_model("bert-base"), Scenario(batch=1, prompt_len=8, gen_len=2))
    with pytest.raises(WorkloadError, match="--tp: mamba-130m has d_ff 1536, not divis"):
        trace_model(get_model("mamba-130m"), Scenario(batch=1, prompt_len=8, gen_len=2, tp=5))
    with pytest.raises(WorkloadError, match="--pp"):
        check_scenario(get_model("t5-small"), Scenario(batch=1, prompt_len=8, gen_len=2,
                                                       pp=2))


HF = {
    "gpt-j-6b": {"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16,
                 "n_inner": None, "rotary_dim": 64, "vocab_size": 50400, "n_positions": 2048,
                 "activation_function": "gelu_new", "tie_word_embeddings": False},
    "falcon-7b": {"model_type": "falcon", "hidden_size": 4544, "num_attention_heads": 71,
                  "num_hidden_layers": 32, "multi_query": True, "parallel_attn": True,
                  "bias": False, "vocab_size": 65024, "new_decoder_architecture": False},
    "falcon-40b": {"model_type": "RefinedWeb", "hidden_size": 8192, "n_head": 128,
                   "n_head_kv": 8, "n_layer": 60, "parallel_attn": True, "bias": False,
                   "vocab_size": 65024},
    "phi-2": {"model_type": "phi", "hidden_size": 2560, "intermediate_size": 10240,
              "num_hidden_layers": 32, "num_attention_heads": 32, "partial_rotary_factor": 0.4,
              "vocab_size": 51200, "max_position_embeddings": 2048, "hidden_act": "gelu_new",
              "tie_word_embeddings": False},
    "gemma-7b": {"model_type": "gemma", "hidden_size": 3072, "intermediate_size": 24576,
                 "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16,
                 "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192,
                 "hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh"},
    "gemma-2b": {"model_type": "gemma", "hidden_size": 2048, "intermediate_size": 16384,
                 "num_hidden_layers": 18, "num_attention_heads": 8, "num_key_value_heads": 1,
                 "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192,
                 "hidden_act": "gelu"},
}


@pytest.mark.parametrize("name", sorted(HF))
def test_hf_config_families_match_presets(name):
    """config.json files (keys as published on the Hugging Face hub) give the preset's shape."""
    m = model_from_hf_dict(HF[name], "x/config.json")
    p = get_model(name)
    assert m.param_count() == p.param_count()
    assert (m.block, m.n_kv_heads, m.rotary_dim, m.tied_embeddings, m.head_bias) == \
        (p.block, p.n_kv_heads, p.rotary_dim, p.tied_embeddings, p.head_bias)


def test_hf_config_family_errors():
    bad = {**HF["phi-2"], "partial_rotary_factor": 2}
    with pytest.raises(WorkloadError, match="config.json: partial_rotary_factor: expected a "
                                            "number in"):
        model_from_hf_dict(bad, "config.json")
    with pytest.raises(WorkloadError, match="config.json: alibi:"):
        model_from_hf_dict({**HF["falcon-7b"], "alibi": True}, "config.json")
    with pytest.raises(WorkloadError, match="n_embd: missing required field"):
        model_from_hf_dict({"model_type": "gptj", "n_layer": 2}, "config.json")


def test_mamba_check_passes_and_catches_wrong_cascades():
    """The traced scan cascade, evaluated Einsum by Einsum in fp32, matches kernels_ref's scan
    within the allowance; a cascade that forgets dt in dB x, flips the sign of D x, or a device
    that computes in bf16 while declaring fp32, fails."""
    from dataclasses import replace

    from kernels_ref.dtypes import quantize
    from sim.functional.ssm import run_scan, scan_inputs
    from sim.functional.tolerance import compare

    rng = np.random.default_rng(3)
    b, seq, c, n = 2, 24, 32, 16
    data = scan_inputs(rng, c, n)
    for k, shape in (("ssm.x", (b, seq, c)), ("ssm.delta", (b, seq, c)),
                     ("ssm.z", (b, seq, c)), ("ssm.B", (b, seq, n)), ("ssm.C", (b, seq, n))):
        data[k] = quantize(rng.standard_normal(shape), "fp32")
    casc = selective_scan_cascade(b, seq, c, n, "fp32")

    def passed(cs, executed=None):
        y, r, a = run_scan(cs, data, "fp32", executed=executed)
        return compare(y, r, "fp32", a)["passed"]

    assert passed(casc)
    es = casc.einsums
    no_dt = replace(casc, einsums=tuple(replace(e, inputs=e.inputs[1:]) if e.name == "ssm.dBx"
                                        else e for e in es))
    minus = replace(casc, einsums=tuple(replace(e, map_op="sub") if e.name == "ssm.yd" else e
                                        for e in es))
    assert not passed(no_dt) and not passed(minus)
    assert not passed(casc, executed="bf16")
    # the carried state of a decode step
    h0 = quantize(0.5 * rng.standard_normal((b, c, n)), "fp32")
    one = selective_scan_cascade(b, 1, c, n, "fp32", carried_state=True)
    step = {k: (v[:, :1] if k in ("ssm.x", "ssm.delta", "ssm.z", "ssm.B", "ssm.C") else v)
            for k, v in data.items()}
    y, r, a = run_scan(one, {**step, "ssm.state": h0}, "fp32")
    assert compare(y, r, "fp32", a)["passed"]
    assert not math.isclose(float(np.abs(r).sum()), float(np.abs(run_scan(
        one, step, "fp32")[1]).sum()))  # the state matters


def test_xpusim_check_mamba(capsys):
    from xpusim.cli import main

    assert main(["check", "--model", "mamba-130m", "--arch", "h100", "--prompt", "16",
                 "--json"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    ops = {(r["phase"], r["op"]) for r in out["ops"]}
    assert ("prefill", "ssm_scan") in ops and ("decode", "ssm_scan") in ops
    assert len(ops) == 19 and out["passed"]  # 9 prefill ops, 10 decode (the conv state shift)
    assert main(["check", "--model", "t5-small", "--arch", "h100"]) == 2


def test_xpusim_check_encoder_is_bidirectional(capsys):
    """An encoder layer checks like a decoder's, but every query's softmax row spans all keys."""
    from sim.functional.encoder import EncoderRun
    from sim.functional.layer import _LayerRun
    from xpusim.cli import main

    assert main(["check", "--model", "bert-base", "--arch", "h100", "--prompt", "8",
                 "--max-width", "256", "--quiet"]) == 0
    assert "softmax" in capsys.readouterr().out

    class Probe:
        s, n = 4, 4

    assert list(EncoderRun._limits(Probe(), 2)) == [4] * 8
    assert list(_LayerRun._limits(Probe(), 2)) == [1, 2, 3, 4] * 2


def test_models_list_shows_families(capsys):
    from xpusim.cli import main

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name, kind in (("bert-base", "encoder"), ("t5-small", "encoder_decoder"),
                       ("mamba-2.8b", "mamba"), ("gemma-7b", "decoder")):
        line = next(x for x in out.splitlines() if x.startswith(name + " "))
        assert kind in line


def test_xpusim_check_parallel_block_and_partial_rope(capsys):
    """GPT-J's layer (parallel block, RoPE on 64 of 256 channels) passes op by op; the rope row
    rotates only the first rotary_dim channels, the residual adds three terms."""
    from xpusim.cli import main

    assert main(["check", "--model", "gpt-j-6b", "--arch", "h100", "--prompt", "8",
                 "--max-width", "256", "--phase", "prefill", "--json"]) == 0
    import json
    rows = {r["op"]: r for r in json.loads(capsys.readouterr().out)["ops"]}
    assert rows["rope"]["detail"]["rotary_dim"] == 64
    assert {"residual_parallel", "ffn_up", "qkv_proj"} <= set(rows)
    assert "ln_ffn" not in rows and all(r["passed"] for r in rows.values())


def test_hf_config_encoder_t5_mamba_phi3():
    """BertConfig, T5Config (v1.0 and v1.1's gated GELU with an untied head), MambaConfig and
    Phi-3 keys as published; counts equal the presets, or the published figure (t5-v1_1-base
    "248M", Hugging Face google/t5-v1_1-base; Phi-3-mini "3.8B", Abdin et al. 2024)."""
    bert = {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522,
            "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu"}
    assert model_from_hf_dict(bert, "c.json").param_count() == EXACT["bert-base"]
    t5 = {"model_type": "t5", "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,
          "num_heads": 8, "vocab_size": 32128, "feed_forward_proj": "relu"}
    m = model_from_hf_dict(t5, "c.json")
    assert m.kind == "encoder_decoder" and m.param_count() == EXACT["t5-small"]
    v11 = {**t5, "d_model": 768, "num_layers": 12, "num_heads": 12,
           "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
    assert model_from_hf_dict(v11, "c.json").param_count() == pytest.approx(248e6, rel=5e-3)
    mamba = {"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 24,
             "vocab_size": 50280, "state_size": 16, "conv_kernel": 4, "expand": 2,
             "time_step_rank": "auto"}
    assert model_from_hf_dict(mamba, "c.json").param_count() == 129_135_360
    phi3 = {"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "vocab_size": 32064, "max_position_embeddings": 4096, "hidden_act": "silu",
            "tie_word_embeddings": False}
    assert model_from_hf_dict(phi3, "c.json").param_count() == pytest.approx(3.8e9, rel=6e-3)
    with pytest.raises(WorkloadError, match="c.json: feed_forward_proj: unknown activation"):
        model_from_hf_dict({**t5, "feed_forward_proj": "gated-swoosh"}, "c.json")


def test_fusemax_encoder_shapes():
    """The presets carry the FuseMax artifact's encoder shapes (hidden, head dim, heads, FFN)."""
    from mappings.fusemax import ENCODERS

    for key, name in (("BERT", "bert-base"), ("TrXL", "trxl"), ("T5", "t5-small"),
                      ("XLM", "xlm")):
        e, m = ENCODERS[key], get_model(name)
        assert (m.d_model, m.head_dim, m.n_heads, m.d_ff) == (e.d, e.e, e.h, e.s), key
