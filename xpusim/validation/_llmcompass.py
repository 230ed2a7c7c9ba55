"""Shared helpers of the LLMCompass suites: the harness arch and the ops LLMCompass timed."""

from __future__ import annotations

from functools import lru_cache

from xpusim.validation import HARNESS_DIR

HARNESS = HARNESS_DIR / "llmcompass-a100.yaml"


def harness_arch(overrides: dict | None = None):
    """The LLMCompass machine + measurement harness (optionally with dict overrides)."""
    from arch import arch_from_dict, deep_merge, load_arch_data

    data, label = load_arch_data(HARNESS)
    if overrides:
        data = deep_merge(data, overrides)
    return arch_from_dict(data, label)


@lru_cache(maxsize=8)
def harness_device():
    """The harness device model at tile fidelity (built once per process)."""
    from sim.devices.base import device_for

    return device_for(harness_arch(), "tile")


def matrix_cases(ctx, file: tuple[str, ...]) -> list[tuple[str, tuple[int, int], float, str]]:
    """(case, (M, N), measured seconds, split) of an LLMCompass M x N throughput table."""
    from xpusim.validation import alternate_split
    from xpusim.validation._table import read_rows

    rows = read_rows(ctx.ref(*file))
    out = []
    for r, s in zip(rows, alternate_split(len(rows)), strict=True):
        m, n = int(r["M"]), int(r["N"])
        out.append((f"{m}x{n}", (m, n), m * n / (float(r["gelem_per_s"]) * 1e9), s))
    return out


def gemm(m: int, n: int, k: int, batch: int = 1, dtype: str = "fp16"):
    """``torch.matmul`` / ``torch.bmm`` of [batch, m, k] x [batch, k, n]."""
    from xpusim.commands.op import gemm_op

    return gemm_op(m, n, k, batch, dtype)


def softmax_op(rows: int, width: int, dtype: str = "fp16"):
    """``torch.softmax(x, dim=-1)`` of an fp16 [rows, width] tensor."""
    from workloads.einsum import TensorRef
    from workloads.trace import VECTOR, Op
    from workloads.tracer import softmax

    sizes = {"t": rows, "n": width}
    casc = softmax("softmax", TensorRef("x", ("t", "n"), dtype), sizes, "n")
    return Op(0, "softmax", VECTOR, "prefill", 0, 0, casc, op_class="attention")


def layernorm_op(rows: int, width: int, dtype: str = "fp16"):
    """``torch.layer_norm(x, [width])`` of an fp16 [rows, width] tensor."""
    from workloads.trace import VECTOR, Op
    from workloads.tracer import layernorm

    casc = layernorm("layernorm", "x", rows, width, dtype, rms=False)
    return Op(0, "layernorm", VECTOR, "prefill", 0, 0, casc, op_class="norm")


def gelu_op(numel: int, dtype: str = "fp16"):
    """``F.gelu(x, approximate='tanh')`` of ``numel`` fp16 elements."""
    from workloads.einsum import TensorRef, elementwise
    from workloads.trace import VECTOR, Op

    e = elementwise("gelu", TensorRef("y", ("t",), dtype), (TensorRef("x", ("t",), dtype),),
                    {"t": numel}, "copy", unary="gelu")
    return Op(0, "gelu", VECTOR, "prefill", 0, 0, e, op_class="activation")


def latency(device, op) -> float:
    """Predicted host-timed latency (s) of one op."""
    return device.estimate(op).latency
