"""H100 fused attention and one Llama-style decode step (our measurements) vs the h100 preset."""

from __future__ import annotations

from xpusim.validation import Point, ValidationContext
from xpusim.validation._h100 import device, rows

NAME = "h100-llm"
DESCRIPTION = ("H100 FlashAttention prefill/decode and a Llama decode step (CUDA graph), "
               "validation/h100/*.csv from measure_h100.py")
THRESHOLD = 0.10


def _attention_op(r: dict):
    from workloads.einsum import Cascade
    from workloads.models import ModelConfig
    from workloads.scenario import Scenario
    from workloads.trace import ATTENTION, Op
    from workloads.tracer import LayerBuilder

    h, g, d = int(r["heads"]), int(r["kv_heads"]), int(r["head_dim"])
    model = ModelConfig(name="probe", family="llama", n_layers=1, d_model=h * d, n_heads=h,
                        n_kv_heads=g, d_ff=4 * h * d, vocab_size=32000, max_positions=1 << 20,
                        head_dim=d, position="rope")
    sc = Scenario(batch=int(r["batch"]), prompt_len=int(r["kv_len"]), gen_len=2,
                  dtype=r.get("dtype", "bf16"), attention="flash")
    tpl = LayerBuilder(model, sc).attention(int(r["batch"]), int(r["q_len"]), int(r["kv_len"]))
    comp = tpl[0].compute
    assert isinstance(comp, Cascade)
    return Op(0, "attention", ATTENTION, r["phase"], 0, 0, comp, op_class="attention")


def _decode_step_time(r: dict) -> float:
    from sim.engine import Engine
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    model = get_model(r["model"])
    sc = Scenario(batch=int(r["batch"]), prompt_len=int(r["context"]) - 1, gen_len=2,
                  dtype=r.get("dtype", "bf16"), attention="flash")
    trace = trace_model(model, sc, phases=("decode",))
    return float(Engine({"device0": device()}).run(trace).end.max())


def run(ctx: ValidationContext) -> list[Point]:
    dev = device()
    out = []
    for r in rows(ctx, "h100_attention.csv"):
        case = (f"{r['phase']} {r['impl']} b{r['batch']} h{r['heads']}/{r['kv_heads']} "
                f"q{r['q_len']} kv{r['kv_len']} d{r['head_dim']}")
        out.append(Point(case, float(r["latency_s"]), dev.estimate(_attention_op(r)).latency))
    for r in rows(ctx, "h100_decode_step.csv"):
        if r.get("mode") != "cuda-graph":
            continue  # eager timings include host costs the ideal stack does not model
        case = f"decode-step {r['model']} b{r['batch']} ctx{r['context']}"
        out.append(Point(case, float(r["latency_s"]), _decode_step_time(r)))
    return out
