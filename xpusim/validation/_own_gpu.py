"""Shared helpers of the suites over our own GPU measurements (``validation/<tag>/*.csv``, written
by ``validation/measure_gpu.py --tag <tag>`` on that GPU): GEMMs, fused attention, memory-bound
vector kernels and Llama decode steps, each compared with the GPU's preset (ideal stack)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from xpusim.validation import Point, SuiteSkipped, ValidationContext
from xpusim.validation._table import read_rows


def missing(tag: str) -> str:
    """Why a suite over ``tag``'s measurements is skipped."""
    return (f"no {tag.upper()} measurements yet: run validation/measure_gpu.py --tag {tag} on an "
            f"{tag.upper()} (blocked on hardware so far)")


def rows(ctx: ValidationContext, name: str, tag: str = "h100") -> list[dict[str, str]]:
    """The rows of ``validation/<tag>/<name>``; :class:`SuiteSkipped` when absent."""
    path: Path = ctx.project_data / tag / name
    if not path.is_file():
        raise SuiteSkipped(missing(tag))
    return read_rows(path)


@lru_cache(maxsize=4)
def device(arch: str = "h100", software: str | None = None):
    """The tile-fidelity device of ``--arch arch [--software software]`` (a stack preset, e.g.
    ``ideal`` for CUDA-graph rows, ``eager`` for eager-PyTorch rows)."""
    from arch.software import load_arch_with_software
    from sim.devices.base import device_for

    return device_for(load_arch_with_software(arch, software), "tile")


def gemm_points(ctx: ValidationContext, tag: str, arch: str, model=None,
                split: bool = False) -> list[Point]:
    """``<tag>_gemm.csv``: each GEMM's device time (CUDA graph) vs the device ``model`` (default
    ``arch``'s); ``split``: its rows alternate train / test (even positions train), for a preset
    whose GEMM values are fitted on them. Then, where measured, the GEMMs of the power files
    (``<tag>_power.csv``, ``<tag>_power_sweep.csv``): the time per call of each run back to back
    for 2 s, at the power limit (cases ``sustained ...``; test rows when ``split``)."""
    from xpusim.commands.op import gemm_op
    from xpusim.validation import alternate_split

    dev = model or device(arch)
    data = rows(ctx, f"{tag}_gemm.csv", tag)
    splits = alternate_split(len(data)) if split else [""] * len(data)
    out = []
    for r, s in zip(data, splits, strict=True):
        m, n, k = int(r["M"]), int(r["N"]), int(r["K"])
        out.append(Point(f"{r['dtype']} {m}x{n}x{k}", float(r["latency_s"]),
                         dev.estimate(gemm_op(m, n, k, 1, r["dtype"])).latency, s))
    for r in _optional(ctx, f"{tag}_power.csv", tag) + \
            _optional(ctx, f"{tag}_power_sweep.csv", tag):
        if r["workload"] in ("gemm", "gemv"):
            m, n, k = (int(x) for x in r["shape"].split("x"))
            out.append(Point(f"sustained {r['dtype']} {r['shape']}", float(r["time_per_call_s"]),
                             dev.estimate(gemm_op(m, n, k, 1, r["dtype"])).latency,
                             "test" if split else ""))
    return out


def attention_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_attention.csv``: fused attention vs the model (causal prefill rows are left out:
    the model's attention computes every query-key pair)."""
    from xpusim.commands.op import attention_op

    dev = device(arch)
    out = []
    for r in rows(ctx, f"{tag}_attention.csv", tag) + _optional(ctx, f"{tag}_attention_sweep.csv",
                                                               tag):
        if int(r.get("causal") or 0):
            continue
        h, g = int(r["heads"]), int(r["kv_heads"])
        op = attention_op(int(r["batch"]), h, g, int(r["q_len"]), int(r["kv_len"]),
                          int(r["head_dim"]), r.get("dtype", "bf16"))
        case = (f"{r['phase']} {r['impl']} b{r['batch']} h{h}/{g} "
                f"q{r['q_len']} kv{r['kv_len']} d{r['head_dim']}")
        out.append(Point(case, float(r["latency_s"]), dev.estimate(op).latency))
    return out


def _step_time(arch: str, model: str, batch: int, prompt: int, dtype: str, phase: str) -> float:
    """Seconds the engine gives one ``phase`` step of ``model`` on ``arch`` (ideal stack)."""
    from sim.engine import Engine
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    sc = Scenario(batch=batch, prompt_len=prompt, gen_len=2, dtype=dtype, attention="flash")
    trace = trace_model(get_model(model), sc, phases=(phase,))
    return float(Engine({"device0": device(arch)}).run(trace).end.max())


def decode_step_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_decode_step.csv``: CUDA-graph decode steps vs the engine on the ideal stack (eager
    rows hold host costs of the measuring machine and are not compared)."""
    out = []
    for r in rows(ctx, f"{tag}_decode_step.csv", tag):
        if r.get("mode") != "cuda-graph":
            continue
        t = _step_time(arch, r["model"], int(r["batch"]), int(r["context"]) - 1,
                       r.get("dtype", "bf16"), "decode")
        out.append(Point(f"decode-step {r['model']} b{r['batch']} ctx{r['context']}",
                         float(r["latency_s"]), t))
    return out


def prefill_step_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_prefill_step.csv`` (where measured): causal CUDA-graph prefills vs the engine's
    prefill phase (the model's attention computes every query-key pair, the kernel about half)."""
    if not (ctx.project_data / tag / f"{tag}_prefill_step.csv").is_file():
        return []
    return [Point(f"prefill-step {r['model']} b{r['batch']} p{r['prompt']}", float(r["latency_s"]),
                  _step_time(arch, r["model"], int(r["batch"]), int(r["prompt"]),
                             r.get("dtype", "bf16"), "prefill"))
            for r in rows(ctx, f"{tag}_prefill_step.csv", tag) if r.get("mode") == "cuda-graph"]


def _optional(ctx: ValidationContext, name: str, tag: str) -> list[dict[str, str]]:
    """The rows of ``validation/<tag>/<name>`` where it was measured, else none."""
    return rows(ctx, name, tag) if (ctx.project_data / tag / name).is_file() else []


def _copy_op(rows_: int, width: int, dtype: str):
    """``y.copy_(x)`` of a [rows, width] tensor: one read and one write of each element."""
    from workloads.einsum import TensorRef, elementwise
    from workloads.trace import VECTOR, Op

    e = elementwise("copy", TensorRef("y", ("t", "c"), dtype),
                    (TensorRef("x", ("t", "c"), dtype),), {"t": rows_, "c": width}, "copy")
    return Op(0, "copy", VECTOR, "prefill", 0, 0, e, op_class="elementwise")


def vector_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_vector.csv``: memory-bound kernels (copy, GELU, norms, softmax) vs the model."""
    from workloads.einsum import TensorRef, elementwise
    from workloads.trace import VECTOR, Op
    from xpusim.commands.op import vector_op

    dev = device(arch)
    out = []
    for r in rows(ctx, f"{tag}_vector.csv", tag):
        n_rows, width, dt = int(r["rows"]), int(r["width"]), r.get("dtype", "fp16")
        if r["op"] == "copy":
            sizes = {"t": n_rows, "c": width}
            e = elementwise("copy", TensorRef("y", ("t", "c"), dt),
                            (TensorRef("x", ("t", "c"), dt),), sizes, "copy")
            op = Op(0, "copy", VECTOR, "prefill", 0, 0, e, op_class="elementwise")
        else:
            op = vector_op(r["op"], n_rows, width, dt)
        out.append(Point(f"{r['op']} {n_rows}x{width}", float(r["latency_s"]),
                         dev.estimate(op).latency))
    return out


#: rows of ``<tag>_power.csv`` the energy values of a preset are derived from (train); the
#: others test them
ENERGY_TRAIN = ("idle", "gemm bf16 8192x8192x8192", "gemv bf16")


def _power_op(r: dict):
    """The one-op estimate a ``<tag>_power.csv`` GEMM / GEMV / copy row ran."""
    from xpusim.commands.op import gemm_op

    if r["workload"] == "copy":
        n = int(r["shape"])
        width = 8192 if n % 8192 == 0 else 1
        return _copy_op(n // width, width, r["dtype"])
    m, n, k = (int(x) for x in r["shape"].split("x"))
    return gemm_op(m, n, k, 1, r["dtype"])


def _step_energy(dev, r: dict) -> tuple[float, float]:
    """(dynamic J, seconds) the engine gives one decode / prefill step of a power row."""
    from sim.engine import Engine
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    name, b, length = r["shape"].split()
    batch = int(b[1:])
    phase = r["workload"].split("-")[0]
    prompt = int(length[3:]) - 1 if phase == "decode" else int(length[1:])
    sc = Scenario(batch=batch, prompt_len=prompt, gen_len=2, dtype=r["dtype"], attention="flash")
    trace = trace_model(get_model(name), sc, phases=(phase,))
    t = float(Engine({"device0": dev}).run(trace).end.max())
    return sum(sum(dev.estimate(op).energy.values()) for op in trace.ops), t


def energy_case(r: dict) -> str:
    """A power row's case name."""
    return " ".join(x for x in (r["workload"], r["dtype"], r["shape"]) if x)


def energy_points(ctx: ValidationContext, tag: str, arch: str, model=None) -> list[Point]:
    """``<tag>_power.csv``: joules per call (NVML board power x time per call, each workload back
    to back from a CUDA graph) vs the model's op energy plus its static power over the model's
    time; the idle row compares the static power itself (W). Train rows: :data:`ENERGY_TRAIN`."""
    dev = model or device(arch)
    out = []
    train_rows = rows(ctx, f"{tag}_power.csv", tag)
    for r in train_rows + _optional(ctx, f"{tag}_power_sweep.csv", tag):
        case = energy_case(r)
        split = "train" if any(case == t or case.startswith(t + " ") for t in ENERGY_TRAIN) \
            and r in train_rows else "test"
        if r["workload"] == "idle":
            out.append(Point(case, float(r["power_w_median"]), dev.static_power(), split,
                             unit="W"))
            continue
        if r["workload"].endswith("-step"):
            dynamic, t = _step_energy(dev, r)
        else:
            cost = dev.estimate(_power_op(r))
            dynamic, t = sum(cost.energy.values()), cost.latency
        measured = float(r["power_w_median"]) * float(r["time_per_call_s"])
        out.append(Point(case, measured, dynamic + dev.static_power() * t, split, unit="J"))
    return out
