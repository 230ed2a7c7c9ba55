"""Splitwise's DGX-A100 characterisation: prompt time and per-token time per configuration.

``perf_model.csv`` holds five repeats of each (model, TP, prompt size, batch size, tokens)
configuration; a configuration's measured value is their mean. The prediction runs our tracer and
event engine on ``--arch dgx-a100 --software vllm`` (the GPU preset, unchanged, under the
vLLM-like stack preset ``arch/stacks/vllm.yaml``, whose host costs are fitted on the even A100
configurations) with fused attention: prompt time is the end of the prefill pass (``batch``
prompts of ``prompt`` tokens), token time is one decode step at the mean KV length of the generation
(``prompt + tokens / 2``; a step's time grows linearly with the KV length, so this is the mean
over the ``tokens`` steps).

A configuration whose KV cache does not fit is not a batch of ``batch`` prompts: when the
batch's KV at its last step (``batch x (prompt + tokens - 1)`` tokens, in 16-token blocks)
exceeds the cache that vLLM leaves on a device (``sim.serve.Replica.kv_capacity_blocks``:
``gpu_memory_utilization`` 0.9 of memory, less the weights and the activations of a
``max(batch x prompt, max_model_len)``-token pass, the budget that prefills the batch at once),
the engine must preempt and re-prefill requests, and the published prompt and token times
measure that schedule, not the batch. Such a configuration gets split ``excluded``, its points
a NaN prediction (not in MAPE or bias) and a note with the batch prediction, the KV figures
and the prefill's roofline bound; the host fit (``xpusim validate --fit``) leaves it out too
(the stack's committed host costs were fitted before, with it among the train rows). Of the
A100 rows only Llama2-70B TP2 batch 64 overflows (40,960 tokens of KV, 26,272 fit per device); its
published prompt time, 0.80 s, is a tenth of the roofline bound of a 64 x 512-token prefill
on two A100s (7.9 s), and its e2e time (160 s, vs 18 s at batch 32) shows the preemptions.
"""

from __future__ import annotations

import math
from functools import lru_cache

from xpusim.validation import Point, SuiteSkipped, ValidationContext, alternate_split
from xpusim.validation._steps import phase_trace, step_time
from xpusim.validation._table import read_rows

FILE = ("serving", "splitwise_perf_model_a100.csv")
#: Splitwise's DGX-H100 rows (same columns, ``hardware`` h100-80gb), where a user has them
H100_FILE = ("serving", "splitwise_perf_model_h100.csv")
#: the harness: a GPU preset under a software-stack preset (``--arch X --software Y``)
ARCH, SOFTWARE = "dgx-a100", "vllm"
H100_ARCH = "dgx-h100"
HARDWARE = {"dgx-a100": "a100-80gb", "dgx-h100": "h100-80gb"}
KEY = ("model", "tensor_parallel", "prompt_size", "batch_size", "token_size")
#: the split of a configuration whose KV cache overflows (see the module docstring)
EXCLUDED = "excluded"


def _rows(ctx: ValidationContext, hardware: str) -> list[dict]:
    """The measured rows of one GPU type (``hardware`` column; rows without it count as A100)."""
    if hardware == "a100-80gb":
        return [r for r in read_rows(ctx.ref(*FILE))
                if r.get("hardware", hardware) in ("", hardware)]
    rows: list[dict] = []
    for parts in (H100_FILE, FILE):
        path = ctx.reference_dir.joinpath(*parts)
        if path.is_file():
            rows += [r for r in read_rows(path) if r.get("hardware") == hardware]
    if not rows:
        raise SuiteSkipped(f"no Splitwise rows with hardware={hardware} under "
                           f"{ctx.reference_dir / 'serving'} (the published file's A100 rows only "
                           f"are in the reference set)")
    return rows


def configs(ctx: ValidationContext, hardware: str = "a100-80gb") -> list[dict]:
    """Configurations in file order with mean measured times (s), their KV need and the KV
    cache per device (tokens, :func:`kv_tokens`) and their split (A100: the documented
    alternate split; other GPUs: all ``test``, nothing is fitted there; ``excluded`` where the
    KV overflows)."""
    groups: dict[tuple, list[dict]] = {}
    for row in _rows(ctx, hardware):
        groups.setdefault(tuple(row[k] for k in KEY), []).append(row)
    out = []
    for key, rows in groups.items():
        out.append({"model": key[0], "tp": int(key[1]), "prompt": int(key[2]),
                    "batch": int(key[3]), "tokens": int(key[4]),
                    "prompt_s": sum(float(r["prompt_time"]) for r in rows) / len(rows) * 1e-3,
                    "token_s": sum(float(r["token_time"]) for r in rows) / len(rows) * 1e-3,
                    "repeats": len(rows)})
    splits = alternate_split(len(out)) if hardware == "a100-80gb" else ["test"] * len(out)
    arch = next((a for a, h in HARDWARE.items() if h == hardware), ARCH)
    for cfg, split in zip(out, splits, strict=True):
        cfg["kv_need"], cfg["kv_capacity"] = kv_tokens(cfg, arch)
        cfg["split"] = EXCLUDED if cfg["kv_need"] > cfg["kv_capacity"] else split
    return out


@lru_cache(maxsize=64)
def _kv_capacity(model_name: str, tp: int, budget: int, arch: str, software: str) -> int:
    """Tokens of KV cache per device vLLM leaves for a ``budget``-token pass (sim/serve)."""
    from arch import arch_from_dict, load_arch_data
    from arch.software import with_software
    from sim.serve import EngineConfig, IterationModel, Replica
    from workloads.models import get_model

    data, label = load_arch_data(arch)
    system = arch_from_dict(with_software(data, software, label), label)
    model = IterationModel(system, get_model(model_name), tp=tp,
                           device=_default_device(arch, software))
    cfg = EngineConfig(max_num_batched_tokens=budget)
    return Replica(0, model, cfg).kv_capacity_blocks() * cfg.block_size


def kv_tokens(cfg: dict, arch: str = ARCH, software: str = SOFTWARE) -> tuple[int, int]:
    """(KV tokens the batch holds at its last step, in whole blocks; KV tokens the cache holds)
    for the vLLM engine whose token budget prefills the whole batch in one pass."""
    from sim.serve import EngineConfig
    from workloads.models import get_model

    block = EngineConfig().block_size
    need = cfg["batch"] * -(-(cfg["prompt"] + cfg["tokens"] - 1) // block) * block
    budget = max(cfg["batch"] * cfg["prompt"], get_model(cfg["model"]).max_positions)
    return need, _kv_capacity(cfg["model"], cfg["tp"], budget, arch, software)


def prefill_bound(cfg: dict, arch: str = ARCH, software: str = SOFTWARE) -> float:
    """Roofline lower bound (s) of the batch's prefill pass (``--fidelity roofline``)."""
    from sim.devices.base import device_for

    dev = device_for(_default_device(arch, software).arch, "roofline")
    trace = phase_trace(cfg["model"], cfg["tp"], cfg["batch"], cfg["prompt"], "prefill")
    return sum(dev.estimate(op).latency for op in trace.ops)


def _excluded_note(cfg: dict, predicted: float, arch: str, software: str) -> str:
    return (f"excluded: KV of the batch {cfg['kv_need']:,} tokens > cache {cfg['kv_capacity']:,} "
            f"per device (vLLM preempts); batch prediction {predicted:.4g} s; prefill roofline "
            f"bound {prefill_bound(cfg, arch, software):.4g} s")


def harness_device(overrides: dict | None = None, arch: str = ARCH, software: str = SOFTWARE):
    """The GPU model of ``--arch arch --software software``; ``overrides`` (raw GPU arch data,
    e.g. ``{"software": ...}``) go to the system's GPU component (``components.gpu.overrides``)."""
    from arch import arch_from_dict, deep_merge, load_arch_data
    from arch.software import with_software
    from sim.devices.base import device_for

    data, label = load_arch_data(arch)
    data = with_software(data, software, label)
    if overrides:
        data = deep_merge(data, {"components": {"gpu": {"overrides": overrides}}})
    return device_for(arch_from_dict(data, label), "tile")


@lru_cache(maxsize=4)
def _default_device(arch: str = ARCH, software: str = SOFTWARE):
    return harness_device(arch=arch, software=software)


def _shapes(cfg: dict) -> list[tuple]:
    """(model, tp, batch, prompt, phase) of the prefill pass and of the mean decode step."""
    mid = cfg["prompt"] + max(cfg["tokens"] // 2, 1) - 1   # decode step at the mean KV length
    return [(cfg["model"], cfg["tp"], cfg["batch"], cfg["prompt"], "prefill"),
            (cfg["model"], cfg["tp"], cfg["batch"], mid, "decode")]


def predict(device, cfg: dict) -> tuple[float, float]:
    """(prompt time, token time) in s for one configuration, from the event engine."""
    out = [step_time(device, phase_trace(*shape)) for shape in _shapes(cfg)]
    return out[0], out[1]


def replay_inputs(device, cfg: dict) -> list[tuple]:
    """Per-op GPU latencies, op families, step starts and requests of both traces (for fits)."""
    from sim.gpu.host import op_family

    out = []
    for shape in _shapes(cfg):
        trace = phase_trace(*shape)
        lat = [device.estimate(op).latency for op in trace.ops]
        fams = [op_family(op) for op in trace.ops]
        steps = [i == 0 or (op.phase, op.step) != (trace.ops[i - 1].phase, trace.ops[i - 1].step)
                 for i, op in enumerate(trace.ops)]
        reqs = [op.requests for op in trace.ops]
        out.append((lat, fams, steps, reqs))
    return out


def replay(inputs: tuple, software) -> float:
    """Makespan (s) of one cached trace under an async software stack (no engine)."""
    from sim.gpu.host import async_makespan, lookup

    lat, fams, steps, reqs = inputs
    disp = [lookup(software.dispatch, f) for f in fams]
    cost = [software.per_step + software.per_request * r if s else 0.0
            for s, r in zip(steps, reqs, strict=True)]
    return async_makespan(lat, disp, steps, cost)


def points(ctx: ValidationContext, overrides: dict | None = None, only_split: str = "",
           metric: str = "both", arch: str = ARCH, software: str = SOFTWARE) -> list[Point]:
    """Prompt and/or token points of ``arch``'s rows under ``software``."""
    cfgs = configs(ctx, HARDWARE.get(arch, "a100-80gb"))
    dev = harness_device(overrides, arch, software) if overrides else \
        _default_device(arch, software)
    out = []
    for cfg in cfgs:
        if only_split and cfg["split"] != only_split:
            continue
        p, t = predict(dev, cfg)
        case = f"{cfg['model']} tp{cfg['tp']} b{cfg['batch']} p{cfg['prompt']} t{cfg['tokens']}"
        pairs = []
        if metric in ("both", "prompt"):
            pairs.append((f"prompt {case}", cfg["prompt_s"], p))
        if metric in ("both", "token"):
            pairs.append((f"token {case}", cfg["token_s"], t))
        for name, measured, predicted in pairs:
            if cfg["split"] == EXCLUDED:
                note = _excluded_note(cfg, predicted, arch, software)
                out.append(Point(name, measured, math.nan, EXCLUDED, note=note))
            else:
                out.append(Point(name, measured, predicted, cfg["split"]))
    return out
