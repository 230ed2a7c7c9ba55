"""Splitwise's DGX-A100 characterisation: prompt time and per-token time per configuration.

``perf_model.csv`` holds five repeats of each (model, TP, prompt size, batch size, tokens)
configuration; a configuration's measured value is their mean. The prediction runs our tracer and
event engine on ``--arch dgx-a100 --software vllm`` (the GPU preset, unchanged, under the
vLLM-like stack preset ``arch/stacks/vllm.yaml``, whose host costs are fitted on the even A100
configurations) with fused attention: prompt time is the end of the prefill pass (``batch``
prompts of ``prompt`` tokens), token time is one decode step at the mean KV length of the generation
(``prompt + tokens / 2``; a step's time grows linearly with the KV length, so this is the mean
over the ``tokens`` steps).
"""

from __future__ import annotations

from functools import lru_cache

from xpusim.validation import Point, SuiteSkipped, ValidationContext, alternate_split
from xpusim.validation._table import read_rows

FILE = ("serving", "splitwise_perf_model_a100.csv")
#: Splitwise's DGX-H100 rows (same columns, ``hardware`` h100-80gb), where a user has them
H100_FILE = ("serving", "splitwise_perf_model_h100.csv")
#: the harness: a GPU preset under a software-stack preset (``--arch X --software Y``)
ARCH, SOFTWARE = "dgx-a100", "vllm"
H100_ARCH = "dgx-h100"
HARDWARE = {"dgx-a100": "a100-80gb", "dgx-h100": "h100-80gb"}
KEY = ("model", "tensor_parallel", "prompt_size", "batch_size", "token_size")


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
    """Configurations in file order with mean measured times (s) and their train/test split
    (A100: the documented alternate split; other GPUs: all ``test``, nothing is fitted there)."""
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
    for cfg, split in zip(out, splits, strict=True):
        cfg["split"] = split
    return out


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


def _trace(model_name: str, tp: int, batch: int, prompt: int, phase: str):
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    gen = 1 if phase == "prefill" else 2
    sc = Scenario(batch=batch, prompt_len=prompt, gen_len=gen, tp=tp, attention="flash")
    return trace_model(get_model(model_name), sc, phases=(phase,))


def _shapes(cfg: dict) -> list[tuple]:
    """(model, tp, batch, prompt, phase) of the prefill pass and of the mean decode step."""
    mid = cfg["prompt"] + max(cfg["tokens"] // 2, 1) - 1   # decode step at the mean KV length
    return [(cfg["model"], cfg["tp"], cfg["batch"], cfg["prompt"], "prefill"),
            (cfg["model"], cfg["tp"], cfg["batch"], mid, "decode")]


def predict(device, cfg: dict) -> tuple[float, float]:
    """(prompt time, token time) in s for one configuration, from the event engine."""
    from sim.engine import Engine

    out = []
    for shape in _shapes(cfg):
        timeline = Engine({"device0": device}).run(_trace(*shape))
        out.append(float(timeline.end.max()))
    return out[0], out[1]


def replay_inputs(device, cfg: dict) -> list[tuple]:
    """Per-op GPU latencies, op families, step starts and requests of both traces (for fits)."""
    from sim.gpu.host import op_family

    out = []
    for shape in _shapes(cfg):
        trace = _trace(*shape)
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
        if metric in ("both", "prompt"):
            out.append(Point(f"prompt {case}", cfg["prompt_s"], p, cfg["split"]))
        if metric in ("both", "token"):
            out.append(Point(f"token {case}", cfg["token_s"], t, cfg["split"]))
    return out
