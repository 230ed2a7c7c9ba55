"""Decoders whose layers differ in width: NVIDIA's Llama-Nemotron (``nemotron-nas``: Super-49B,
Ultra-253B, 51B) and DeciLM-7B (``deci``). Parameter counts against the published ones, each
block's ops and the KV cache by hand, the folded and served traces against the op-by-op one."""

from __future__ import annotations

import pytest

from workloads.errors import WorkloadError
from workloads.hf_config import model_from_hf_dict
from workloads.hf_heterogeneous import ffn_width
from workloads.scenario import Scenario
from workloads.tracer import kv_bytes_per_token, trace_model

# block_configs as (n_heads_in_group | noop | lin, ffn_mult | noop) runs, layer by layer:
# Llama-3_3-Nemotron-Super-49B-v1's and Llama-3_1-Nemotron-Ultra-253B-v1's config.json as
# NVIDIA-NeMo/Megatron-Bridge (llama_nemotron_config.py @ 2cec89e) and NVIDIA/NeMo (@ 8cfedd7)
# copy them from the hub, identical; Llama-3.1-Nemotron-51B-Instruct's from a third-party
# transcription (GenZ), its layer totals as an independent note gives them
SUPER = ("0:8,2.625 1-5:8,5.25 6-7:noop,2.625 8-10:8,5.25 11:noop,3.28125 12-41:8,5.25 "
         "42:noop,1.3125 43-44:noop,2.625 45:noop,1.3125 46:noop,5.25 47:noop,1.3125 "
         "48:noop,2.625 49-51:noop,1.3125 52:8,5.25 53:noop,1.3125 54-55:noop,1.0 "
         "56:noop,1.3125 57-59:noop,1.0 60-61:noop,1.3125 62-63:noop,0.5 64-65:noop,1.0 "
         "66-67:noop,0.5 68:noop,1.0 69-70:noop,0.5 71-79:8,5.25")
ULTRA = ("0:16,0.4875 1:16,0.975 2-7:16,1.4625 8:16,1.95 9-12:noop,noop 13-15:16,1.95 "
         "16-17:16,4.875 18-23:noop,noop 24-26:16,4.875 27-31:noop,noop 32-34:16,4.875 "
         "35:16,2.4375 36-38:noop,noop 39-41:16,1.95 42:noop,1.95 43:16,4.875 44:noop,4.875 "
         "45-49:noop,noop 50-53:16,4.875 54-58:noop,noop 59-62:16,4.875 63-67:noop,noop "
         "68-71:16,4.875 72-76:noop,noop 77-80:16,4.875 81-85:noop,noop 86:16,4.875 "
         "87-89:16,3.4125 90-91:noop,noop 92:16,2.925 93-95:16,2.4375 96-97:noop,2.4375 "
         "98:16,2.4375 99:noop,noop 100-106:noop,2.4375 107:16,2.4375 108-112:noop,noop "
         "113:16,2.925 114:16,4.875 115:noop,4.875 116:16,4.875 117-124:noop,noop "
         "125:noop,36.5625 126-133:noop,noop 134:noop,39.0 135-142:noop,noop "
         "143:noop,31.40625 144-148:noop,noop 149:noop,27.5625 150:noop,1.95 151:16,1.95 "
         "152:16,2.4375 153:noop,noop 154-155:16,2.4375 156:16,3.4125 157-160:16,4.875 "
         "161:16,2.4375")
NEMOTRON_51B = ("0:8,1.3125 1:16,2.625 2-4:8,5.25 5-6:32,2.625 7-8:64,2.625 9-10:32,2.625 "
                "11:lin,2.625 12:64,2.625 13-14:32,2.625 15:lin,1.3125 16-34:8,5.25 "
                "35:lin,2.625 36-37:8,5.25 38:lin,2.625 39:lin,5.25 40-42:lin,2.625 "
                "43:noop,1.3125 44:lin,1.3125 45:8,5.25 46:noop,1.3125 47:lin,1.3125 "
                "48:noop,1.3125 49:8,5.25 50:lin,1.3125 51:noop,1.3125 52-53:lin,1.3125 "
                "54-55:noop,1.3125 56:lin,1.3125 57-58:noop,1.3125 59-62:lin,1.3125 "
                "63-79:8,5.25")


def layers(runs: str) -> list[tuple[str, str]]:
    """(attention, ffn) of each layer from ``a-b:attention,ffn`` runs."""
    out = []
    for run in runs.split():
        span, value = run.split(":")
        first, _, last = span.partition("-")
        out += [tuple(value.split(","))] * (int(last or first) - int(first) + 1)
    return out


def block_configs(runs: str) -> list[dict]:
    """Llama-Nemotron ``block_configs`` entries, with every key the releases write."""
    out = []
    for attention, ffn in layers(runs):
        att = {"n_heads_in_group": None, "no_op": attention == "noop", "num_sink_tokens": None,
               "replace_with_linear": attention == "lin", "sparsify": None,
               "unshifted_sink": False, "use_prefill_window_in_sink_attention": False,
               "window_length": None}
        if attention not in ("noop", "lin"):
            att["n_heads_in_group"] = int(attention)
        out.append({"attention": att, "ffn": {
            "ffn_mult": None if ffn == "noop" else float(ffn), "no_op": ffn == "noop",
            "replace_with_linear": False, "sparsify": None}})
    return out


def nas(runs: str, hidden: int, heads: int) -> dict:
    n = len(layers(runs))
    return {"model_type": "nemotron-nas", "architectures": ["DeciLMForCausalLM"],
            "hidden_size": hidden, "intermediate_size": None, "num_hidden_layers": n,
            "num_attention_heads": heads, "num_key_value_heads": None, "vocab_size": 128256,
            "max_position_embeddings": 131072, "tie_word_embeddings": False,
            "hidden_act": "silu", "rms_norm_eps": 1e-05, "attention_bias": False,
            "mlp_bias": False, "block_configs": block_configs(runs)}


# Deci/DeciLM-7B-instruct's config.json (HF @ b0b6c53; DeciLM-7B's the same 831 bytes)
DECILM_7B = {
    "model_type": "deci", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 32000,
    "max_position_embeddings": 8192, "rope_scaling": {"type": "dynamic", "factor": 2.0},
    "tie_word_embeddings": False, "rms_norm_eps": 1e-05, "hidden_act": "silu",
    "num_key_value_heads_per_layer": [4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 4, 2, 2, 2, 2, 2, 2, 2,
                                      2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4]}


def _read(config: dict):
    return model_from_hf_dict(config, "m/config.json")


@pytest.mark.parametrize("mult,d,width", [
    # vLLM's _ffn_mult_to_intermediate_size at the releases' multipliers, worked by hand
    (0.5, 8192, 2816), (1.0, 8192, 5632), (1.3125, 8192, 7168), (2.625, 8192, 14336),
    (3.28125, 8192, 17920), (5.25, 8192, 28672), (0.4875, 16384, 5376),
    (1.4625, 16384, 16128), (2.925, 16384, 32000), (39.0, 16384, 425984)])
def test_ffn_width(mult, d, width):
    assert ffn_width(mult, d) == width


@pytest.mark.parametrize("config,total,published,rel", [
    # exactly a PEFT log's 51,676,962,816 less its 175,947,776 LoRA parameters
    (nas(NEMOTRON_51B, 8192, 64), 51_501_015_040, 51_501_015_040, 0),
    (nas(SUPER, 8192, 64), 49_867_145_216, 49.9e9, 0.001),     # the GGUF page's "49.9B"
    (nas(ULTRA, 16384, 128), 253_401_268_224, 253e9, 0.002),   # the card's "253B"
    (DECILM_7B, 7_043_551_232, 7.04e9, 0.001),                  # the card's "7.04 billion"
])
def test_parameter_counts(config, total, published, rel):
    m = _read(config)
    assert m.param_count() == total
    assert total == pytest.approx(published, rel=rel)


def test_super_by_hand():
    """Super-49B: 49 attention layers (64 query and 8 key/value heads of 128, norm), 80 MLPs of
    their own widths (gated SiLU, norm), none in the no-op halves; untied 128,256-token
    tables; 129 blocks, the first layer's 14,336-wide MLP after its attention."""
    m = _read(nas(SUPER, 8192, 64))
    d = 8192
    attention = d * d + 2 * d * 1024 + d * d + d
    widths = {"0.5": 2816, "1.0": 5632, "1.3125": 7168, "2.625": 14336, "3.28125": 17920,
              "5.25": 28672}
    mlps = sum(3 * d * widths[f] + d for _, f in layers(SUPER))
    attended = sum(a != "noop" for a, _ in layers(SUPER))
    assert attended == 49 and m.n_layers == 49 + 80
    assert m.param_count() == attended * attention + mlps + 2 * 128256 * d + d
    assert m.blocks[:3] == "*-*" and m.block_widths[:3] == (8, 14336, 8)
    assert m.kv_layers() == 49
    # the KV cache: 49 layers x K and V x 8 heads x 128 x 2 B; under TP 8 one head each
    assert kv_bytes_per_token(m, "fp16") == 49 * 2 * 8 * 128 * 2
    assert kv_bytes_per_token(m, "fp16", tp=8) == 49 * 2 * 1 * 128 * 2


def test_decilm_heads_per_layer():
    """DeciLM-7B: layer i's K/V projections and cache with its own heads (67 over 32 layers);
    under TP 4 a layer of fewer than 4 heads keeps one on each rank."""
    m = _read(DECILM_7B)
    heads = DECILM_7B["num_key_value_heads_per_layer"]
    assert kv_bytes_per_token(m, "fp16") == sum(heads) * 2 * 128 * 2
    assert kv_bytes_per_token(m, "fp16", tp=4) == sum(max(1, h // 4) for h in heads) * 2 * 128 * 2
    ops = trace_model(m.with_layers(12), Scenario(batch=1, prompt_len=8, gen_len=2)).ops
    qkv = [op.flops for op in ops if op.name == "qkv_proj" and op.phase == "prefill"]
    d = 4096
    assert qkv == [2 * 8 * d * (4096 + 2 * 128 * h) for h in heads[:6]]


def _tiny() -> dict:
    """A small Llama-Nemotron: attention of 2 KV heads + MLP x1; no attention + MLP x0.5;
    attention of 4 KV heads + a linear in place of the MLP; a linear + no MLP."""
    config = {**nas("0:4,1.0 1:noop,0.5 2:2,noop 3:lin,noop", 256, 8), "vocab_size": 1000}
    config["block_configs"][2]["ffn"] = {"ffn_mult": None, "no_op": False,
                                         "replace_with_linear": True, "sparsify": None}
    return config


def test_blocks_traced_by_hand():
    """Each block's ops (TP 2): attention with its own K/V heads, MLPs of their own widths
    (x1 and x0.5 of 256: int(170.7) and int(85.3) rounded up to 256), a linear block's norm,
    its d x d GEMM split over output columns, the all-gather of each rank's half, the
    residual; no block for a no-op half."""
    m = _read(_tiny())
    assert (m.blocks, m.block_widths) == ("*--*LL", (2, 256, 256, 4, 0, 0))
    sc = Scenario(batch=1, prompt_len=8, gen_len=2, tp=2)
    ops = [op for op in trace_model(m, sc).ops if op.phase == "prefill" and op.layer >= 0]
    by_layer: dict[int, list] = {}
    for op in ops:
        by_layer.setdefault(op.layer, []).append(op)
    qkv = [op.flops for op in ops if op.name == "qkv_proj"]
    # (all ranks' FLOPs) 8 query heads of 32 and K and V of 2 or 4 heads
    assert qkv == [2 * 8 * 256 * (8 + 2 * 2) * 32, 2 * 8 * 256 * (8 + 2 * 4) * 32]
    up = [(op.flops, op.shards) for op in ops if op.name == "ffn_up"]
    assert up == [(2 * 8 * 256 * 2 * 256, 2)] * 2   # 256-wide gated MLPs over 2 ranks
    linear = by_layer[4]
    assert [op.name for op in linear] == ["ln_linear", "linear_proj", "allgather_linear",
                                          "residual_linear"]
    assert linear[1].flops == 2 * 8 * 256 * 256
    assert linear[2].collective.bytes_per_rank == 8 * 128 * 2   # each rank's half
    assert m.param_count() == (256 * 256 * 2 + 2 * 256 * 64 + 256)        \
        + (256 * 256 * 2 + 2 * 256 * 128 + 256) \
        + 2 * (3 * 256 * 256 + 256) + 2 * (256 * 256 + 256) + 2 * 1000 * 256 + 256


def test_folds_and_serves_like_its_run(monkeypatch):
    """A long decode of a heterogeneous model folds as op-by-op; a serving iteration prices
    the ops ``xpusim run`` traces (TP 2), each attention block with its own heads."""
    from test_hf_windows_shared import _folds_like_op_by_op
    from test_serve_hybrid import iteration_and_run

    m = _read(_tiny())
    _folds_like_op_by_op(m, Scenario(batch=2, prompt_len=6, gen_len=20), monkeypatch)
    im, run_sum = iteration_and_run(m, exact_tokens=1 << 16)   # every length priced, no grid

    assert im.iteration(0, 0, [(128, 128)], 1).gpu_s == pytest.approx(
        run_sum(1, 128, "prefill"), rel=1e-12)
    assert im.iteration(3, 3 * 133, [], 3).gpu_s == pytest.approx(
        run_sum(3, 132, "decode"), rel=1e-12)
    # at a long context the decode attention reads each block's own K/V heads
    assert im.iteration(4, 4 * 32769, [], 4).gpu_s == pytest.approx(
        run_sum(4, 32768, "decode"), rel=1e-12)


def test_check_and_finetune():
    """``xpusim check`` runs the first attention and MLP blocks as one layer; fine-tuning and
    the NPU+PIM decode stages refuse in one line, naming what they do not model."""
    from arch import load_arch
    from sim.devices.base import SimError
    from sim.functional.layer import CheckSpec, check_layer
    from sim.serving.layer_costs import LayerCosts
    from workloads.training import Training, trace_training

    m = _read(nas(SUPER, 8192, 64))
    first = m.first_layer()
    assert (first.n_layers, first.n_kv_heads, first.d_ff, first.blocks) == (1, 8, 14336, "")
    report = check_layer(load_arch("h100"), m, CheckSpec(batch=1, prompt=8))
    shapes = report.shapes   # (the check narrows every width by one factor)
    assert report.passed and shapes["d_ff"] * shapes["width_scale"] == 14336
    assert shapes["kv_heads"] * shapes["width_scale"] == 8
    with pytest.raises(WorkloadError, match="layers of different widths"):
        trace_training(m, Scenario(batch=1, prompt_len=8, gen_len=1), Training())
    with pytest.raises(SimError, match="layers of different widths"):
        LayerCosts(None, m, 1)   # the NPU+PIM decode stages' per-layer model


@pytest.mark.parametrize("change,field", [
    (lambda c: c["block_configs"][3]["attention"].update(window_length=4096),
     "block_configs[3].attention.window_length"),
    (lambda c: c["block_configs"][0]["attention"].update(n_heads_in_group=5),
     "block_configs[0].attention.n_heads_in_group"),
    (lambda c: c["block_configs"][2]["ffn"].update(ffn_mult="1.0"),
     "block_configs[2].ffn.ffn_mult"),
    # an integer past any float (was an OverflowError), a width past LIMITS' d_ff, none at all
    (lambda c: c["block_configs"][2]["ffn"].update(ffn_mult=10**400),
     "block_configs[2].ffn.ffn_mult"),
    (lambda c: c["block_configs"][2]["ffn"].update(ffn_mult=1e300),
     "block_configs[2].ffn.ffn_mult"),
    (lambda c: c["block_configs"][2]["ffn"].update(ffn_mult=1e-9),
     "block_configs[2].ffn.ffn_mult"),
    (lambda c: c["block_configs"].pop(), "block_configs"),
    (lambda c: c["block_configs"].__setitem__(1, {"attention": {"no_op": True}}),
     "block_configs[1].ffn"),
])
def test_refusals(change, field):
    config = nas(SUPER, 8192, 64)
    change(config)
    with pytest.raises(WorkloadError) as err:
        _read(config)
    assert err.value.path == field


def test_decilm_refusals():
    with pytest.raises(WorkloadError) as err:
        _read({**DECILM_7B, "num_key_value_heads_per_layer": [4] * 31})
    assert err.value.path == "num_key_value_heads_per_layer"


def test_serving_stages_split_unevenly():
    """``xpusim serve --pp`` need not divide the layers (vLLM splits them as evenly as they go):
    Super-49B's 129 blocks in 2 stages of 65 and 64, each device sized by the larger, 65 / 129
    of the weights and KV cache over its 4 TP ranks; 80 layers in 4 stages are 4 stages'
    worth exactly; more stages than blocks are refused in one line."""
    from arch import load_arch
    from sim.devices.base import SimError
    from sim.serve.costs import IterationModel
    from workloads.models import get_model

    m = _read(nas(SUPER, 8192, 64))
    im = IterationModel(load_arch("dgx-h100"), m, tp=4, pp=2)
    assert im.weight_bytes() == pytest.approx(m.param_count() * 2 * 65 / 129 / 4, rel=1e-15)
    assert im.kv_bytes_per_token() == pytest.approx(49 * 2 * 2 * 128 * 2 * 65 / 129,
                                                    rel=1e-15)
    llama = get_model("llama2-70b")
    even = IterationModel(load_arch("dgx-h100"), llama, tp=2, pp=4)
    assert even.stage_divisor == 4
    assert even.weight_bytes() == llama.param_count() * 2 / (2 * 4)
    with pytest.raises(SimError, match="129 blocks .* fewer than 130 pipeline stages"):
        IterationModel(load_arch("dgx-h100"), m, tp=1, pp=130)
