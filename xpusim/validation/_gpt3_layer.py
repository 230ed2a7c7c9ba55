"""One GPT-3 175B layer on 4x A100 (tensor parallel 4, batch 8), per op, as LLMCompass measured it.

LLMCompass (ae/figure5/ijkl, software_model/transformer.py) timed each op of one layer alone
with the host-timed harness: prefill at sequence 2048, decode at KV length 3072 (+1 new token).
The ops come from our tracer (``trace_model`` of ``gpt3-175b`` with ``tp=4``); two differences of
LLMCompass's layer are reproduced here, not in the tracer: Q, K and V are three separate
``[t, 12288] x [12288, 3072]`` GEMMs (LLMCompass times ``Q_proj`` and multiplies by 3), and the
layernorm time is the harness's measurement minus a reference call on a 1x1x1 tensor
(``layer_norm0.run_on_gpu() - layer_norm0.gpu_kernel_launch_overhead()``). The decode row
(48 us, the whole host floor of the compiled call) shows that the reference did not cost the
compiled function's host time, so the reference is modelled as a bare kernel launch
(``gpu.launch_overhead``) — an assumption about the harness, stated in docs/validation.md.
All-reduce times in the file are device times of NCCL collectives (no host harness).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from xpusim.validation import Point, ValidationContext
from xpusim.validation._llmcompass import harness_device
from xpusim.validation._table import read_rows

FILE = ("gpu", "a100x4_gpt3_layer_llmcompass.csv")
BATCH, PROMPT, DECODE_KV, TP = 8, 2048, 3072, 4
# LLMCompass op name -> tracer op name
OP_MAP = {"qkv_proj": "qkv_proj", "q_mul_k": "qk", "a_mul_v": "av", "wo_proj": "o_proj",
          "w1_proj": "ffn_up", "w2_proj": "ffn_down", "softmax": "softmax",
          "layernorm_mha": "ln_attn", "layernorm_ffn": "ln_ffn", "gelu": "ffn_act",
          "allreduce_mha": "allreduce_attn", "allreduce_ffn": "allreduce_ffn"}


@lru_cache(maxsize=4)
def layer_ops(phase: str) -> dict:
    """Tracer ops of layer 0 by name, and the tracer's builder, for one phase."""
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import LayerBuilder, trace_model

    # LLMCompass decodes at KV 3072, beyond GPT-3's 2048 learned positions; the layer's shapes
    # do not depend on the position table, so it is enlarged for this comparison
    model = replace(get_model("gpt3-175b"), max_positions=4096)
    if phase == "prefill":
        sc = Scenario(batch=BATCH, prompt_len=PROMPT, gen_len=1, tp=TP)
    else:  # one decode step whose KV length is 3072 cached + 1 new token
        sc = Scenario(batch=BATCH, prompt_len=DECODE_KV, gen_len=2, tp=TP)
    trace = trace_model(model, sc, phases=(phase,))
    ops = {op.name: op for op in trace.ops if op.layer == 0}
    return {"ops": ops, "builder": LayerBuilder(model, sc), "tokens": ops["qkv_proj"].tokens}


def predict(device, phase: str, llmcompass_op: str) -> float:
    """Predicted time (s) of one LLMCompass op in ``phase``."""
    from workloads.trace import Op

    info = layer_ops(phase)
    op = info["ops"][OP_MAP[llmcompass_op]]
    if llmcompass_op == "qkv_proj":
        b = info["builder"]
        tpl = b._linear("q_proj", info["tokens"], b.shape.d, b.shape.heads * b.shape.head_dim)
        q = Op(0, "q_proj", tpl.kind, phase, 0, 0, tpl.compute, op.shards, op_class="gemm")
        return 3.0 * device.estimate(q).latency
    if llmcompass_op.startswith("layernorm"):
        t = device.estimate(op).latency
        return max(t - device.arch.gpu.launch_overhead, 0.0)
    return device.estimate(op).latency


def points(ctx: ValidationContext, phase: str, device=None) -> list[Point]:
    dev = device or harness_device()
    col = "prefill_s" if phase == "prefill" else "decode_s"
    out = []
    for row in read_rows(ctx.ref(*FILE)):
        name = row["op"]
        if name not in OP_MAP:
            continue
        out.append(Point(f"{phase}:{name}", float(row[col]), predict(dev, phase, name),
                         split="test"))
    return out
