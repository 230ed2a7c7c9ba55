"""Decode-phase serving of one device under iteration-level batching, for four system kinds.

* ``gpu`` / ``npu`` — every op on the device (GPU model / NPU model), one after another; the
  attention ops read the KV cache at the batch's mean context length (attention is linear in
  the summed context, so the mean reproduces the total).
* ``naive`` — NPU + single-row-buffer PIM: attention GEMVs in PIM, round-robin channel
  placement, no sub-batches, NPU and PIM blocked while the other works.
* ``neupims`` — NPU + dual-row-buffer PIM: greedy min-load channel placement and, from
  ``interleave_min_batch`` requests, two sub-batches interleaved on NPU and PIM.

Per iteration the batcher gives each active request's context and channel; PIM stage time is
the slowest channel's sum of per-request GEMV times (memoised command schedules); NPU/GPU stage
times come from the device models; :func:`sim.serving.interleave.run_iteration` runs the
programs on the event engine (NPU and PIM streams sharing the DRAM). Throughput counts decode
tokens per second of one device's share of the model (``layers / pp`` layers, ``1/tp`` of
each): pipeline stages are assumed balanced and kept busy by ``pp`` micro-batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.devices.base import Device, SimError
from sim.devices.npu_pim import npu_share
from sim.devices.pim import PimModel
from sim.micro.dram_pim import gemv_cost
from sim.serving.batching import BatchingConfig, IterationBatcher
from sim.serving.interleave import IterationResult, StageTimes, run_iteration
from sim.serving.layer_costs import LayerCosts
from workloads.models import ModelConfig
from workloads.tracer import kv_bytes_per_token, weight_bytes_per_device

KINDS = ("gpu", "npu", "naive", "neupims")


@dataclass
class DecodeResult:
    """Steady-state decode metrics of one device."""

    kind: str
    tokens_per_s: float
    iteration_s: float
    mean_batch: float
    mean_context: float
    npu_utilization: float      # busy fraction of the NPU / GPU
    pim_utilization: float      # busy fraction of the PIM (slowest channel)
    compute_utilization: float  # achieved FLOP/s / peak of the NPU/GPU
    energy_per_token_J: float
    energy_breakdown_J: dict = field(default_factory=dict)
    events: int = 0
    iterations: int = 0
    admissions_blocked: int = 0


class PimAttention:
    """Per-request PIM attention time and energy as a function of context length."""

    def __init__(self, pim: PimModel, heads: int, head_dim: int, kv_groups: int):
        self.pim = pim
        self.heads = heads
        self.head_dim = head_dim
        self.kv_groups = kv_groups
        self._table: dict[int, tuple[float, float, float, float, float]] = {}
        self._rows = np.zeros((0, 5))              # cost(L) at row L, where _known[L]
        self._known = np.zeros(0, dtype=bool)

    def cost(self, L: int) -> tuple[float, float, float, float, float]:
        """(logit s, attend s, energy J, MAC utilization, command-bus share) of one request."""
        hit = self._table.get(L)
        if hit is None:
            g = self.kv_groups
            r = self.heads // g
            lo = gemv_cost(self.pim.cfg1, self.pim.pim, L * r, self.head_dim, r)
            at = gemv_cost(self.pim.cfg1, self.pim.pim, self.head_dim * r, L, r)
            hit = (g * lo.seconds, g * at.seconds, g * (lo.energy_J + at.energy_J),
                   (lo.useful_macs + at.useful_macs) / max(lo.macs + at.macs, 1),
                   max(lo.bus_busy, at.bus_busy))
            self._table[L] = hit
        return hit

    def costs(self, ctx: np.ndarray) -> np.ndarray:
        """:meth:`cost` of each context length in ``ctx`` (ints >= 0), a row each."""
        ctx = np.asarray(ctx, dtype=np.int64)
        top = int(ctx.max()) + 1
        if top > len(self._known):
            size = max(top, 2 * len(self._known))
            rows, known = np.zeros((size, 5)), np.zeros(size, dtype=bool)
            rows[:len(self._rows)], known[:len(self._known)] = self._rows, self._known
            self._rows, self._known = rows, known
        for L in np.unique(ctx[~self._known[ctx]]).tolist():
            self._rows[L] = self.cost(L)
            self._known[L] = True
        return self._rows[ctx]

    def stage(self, ctx: np.ndarray, chan: np.ndarray, channels: int) -> tuple[float, float,
                                                                              float, float,
                                                                              float]:
        """Slowest channel's logit and attend seconds, total energy, mean MAC utilization and
        command-bus share for the requests ``ctx`` placed on channels ``chan``."""
        if ctx.size == 0:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        c = self.costs(ctx)
        lo = np.bincount(chan, weights=c[:, 0], minlength=channels)
        at = np.bincount(chan, weights=c[:, 1], minlength=channels)
        return (float(lo.max()), float(at.max()), float(c[:, 2].sum()), float(c[:, 3].mean()),
                float(c[:, 4].mean()))


@dataclass
class DecodeSystem:
    """What runs where: the compute device and, for NPU+PIM kinds, its PIM."""

    kind: str
    device: Device
    pim: PimModel | None = None
    capacity_bytes: float = 0.0
    static_power_W: float = 0.0
    interleave_min_batch: int = 256
    sub_batch_split: str = "halves"


def split_halves(chan: np.ndarray) -> np.ndarray:
    """Sub-batch label (0/1) per request as the NeuPIMs artifact partitions (``Scheduler::
    group_sub_batches`` with ``_partition_alg_simple``): each channel's requests, in batch
    order, the first half to sub-batch 0, the rest to 1; odd counts alternate rounding up and
    down from channel to channel."""
    label = np.zeros(chan.shape[0], np.int64)
    ceil_turn = True
    for c in np.unique(chan):
        idx = np.flatnonzero(chan == c)
        n = idx.shape[0]
        first = n // 2
        if n % 2:
            first = (n + 1) // 2 if ceil_turn else n // 2
            ceil_turn = not ceil_turn
        label[idx[first:]] = 1
    return label


def split_balanced(ctx: np.ndarray, chan: np.ndarray) -> np.ndarray:
    """Sub-batch label (0/1) per request: each channel's requests, longest first, alternate,
    so both sub-batches load every channel about equally."""
    label = np.zeros(ctx.shape[0], np.int64)
    order = np.lexsort((-ctx, chan))
    prev, k = -1, 0
    for i in order:
        if chan[i] != prev:
            prev, k = chan[i], 0
        label[i] = k % 2
        k += 1
    return label


_SHARED: dict[tuple, object] = {}


def _shared(key: tuple, make):
    """One LayerCosts / PimAttention per (device, model, tp), reused across batch sizes."""
    obj = _SHARED.get(key)
    if obj is None or obj[0] is not key[0]:
        obj = (key[0], make())
        _SHARED[key] = obj
    return obj[1]


def run_decode(system: DecodeSystem, model: ModelConfig, tp: int, pp: int, in_lens: np.ndarray,
               out_lens: np.ndarray, batch: int, iterations: int, warmup: int,
               page_tokens: int = 16, n_bucket: int = 8, dtype: str = "fp16") -> DecodeResult:
    """Simulate ``warmup + iterations`` decode iterations; metrics over the last ``iterations``.

    ``page_tokens`` is the KV page size (vLLM's default block of 16 tokens); attention op
    shapes use the mean context rounded up to ``n_bucket`` tokens (memoisation)."""
    if system.kind not in KINDS:
        raise SimError(f"decode system kind: expected one of {', '.join(KINDS)}")
    if model.n_layers % pp:
        raise SimError(f"--pp: {model.n_layers} layers are not divisible by {pp}")
    layers = model.n_layers // pp
    costs = _shared((system.device, model.name, tp, dtype, "costs"),
                    lambda: LayerCosts(system.device, model, tp, dtype))
    heads = model.n_heads // tp
    kv_groups = max(1, model.n_kv_heads // tp)
    kv_per_token = kv_bytes_per_token(model, dtype, tp, pp)
    weights = weight_bytes_per_device(model, dtype, tp, pp)
    kv_budget = system.capacity_bytes - weights
    if kv_budget <= 0:
        raise SimError(f"{model.name} shard ({weights / 2**30:.1f} GiB) does not fit the "
                       f"{system.capacity_bytes / 2**30:.1f} GiB device")
    channels = system.pim.channels if system.pim else 1
    placement = "greedy" if system.kind == "neupims" else "round_robin"
    bcfg = BatchingConfig(batch=batch, channels=channels, page_tokens=page_tokens,
                          kv_bytes_per_token=kv_per_token, kv_capacity_bytes=kv_budget,
                          placement=placement)
    batcher = IterationBatcher(bcfg, in_lens, out_lens)
    attn = _shared((system.pim, model.name, tp, "attn"),
                   lambda: PimAttention(system.pim, heads, model.head_dim, kv_groups)) \
        if system.pim else None
    peak = system.device.peak_flops(costs.ops(1, 2)[1])  # the QKV GEMM's compute roof
    tot = {"t": 0.0, "tokens": 0, "npu": 0.0, "pim": 0.0, "flops": 0.0, "b": 0.0, "ctx": 0.0,
           "events": 0, "e_dev": 0.0, "e_pim": 0.0, "n": 0}
    for it in range(warmup + iterations):
        batcher.admit()
        ctx, chan = batcher.snapshot()
        b = int(ctx.size)
        if b == 0:
            break
        n = int(math.ceil(ctx.mean() / n_bucket) * n_bucket)
        res, e_dev, e_pim, flops = _iteration(system, costs, attn, layers, ctx, chan, b, n,
                                              channels)
        batcher.step()
        if it >= warmup:
            tot["t"] += res.seconds
            tot["tokens"] += b
            tot["npu"] += res.npu_busy
            tot["pim"] += res.pim_busy
            tot["flops"] += flops
            tot["b"] += b
            tot["ctx"] += float(ctx.mean())
            tot["events"] += res.events
            tot["e_dev"] += e_dev
            tot["e_pim"] += e_pim
            tot["n"] += 1
    batcher.invariant()
    if tot["n"] == 0 or tot["t"] <= 0:
        raise SimError("no decode iteration was measured (too few requests for the warm-up?)")
    e_static = system.static_power_W * tot["t"]
    energy = tot["e_dev"] + tot["e_pim"] + e_static
    return DecodeResult(
        kind=system.kind, tokens_per_s=tot["tokens"] / tot["t"], iteration_s=tot["t"] / tot["n"],
        mean_batch=tot["b"] / tot["n"], mean_context=tot["ctx"] / tot["n"],
        npu_utilization=tot["npu"] / tot["t"], pim_utilization=tot["pim"] / tot["t"],
        compute_utilization=tot["flops"] / (tot["t"] * peak),
        energy_per_token_J=energy / tot["tokens"],
        energy_breakdown_J={"device": tot["e_dev"], "pim": tot["e_pim"], "static": e_static},
        events=tot["events"], iterations=tot["n"], admissions_blocked=batcher.blocked)


def _iteration(system, costs, attn, layers, ctx, chan, b, n, channels):
    kind = system.kind
    if kind in ("gpu", "npu"):
        st = costs.stages(b, n)
        per_layer = st["pre"].seconds + st["attn"].seconds + st["post"].seconds
        t = layers * per_layer + st["head"].seconds
        e = layers * (st["pre"].energy_J + st["attn"].energy_J + st["post"].energy_J) \
            + st["head"].energy_J
        flops = layers * (st["pre"].flops + st["attn"].flops + st["post"].flops) \
            + st["head"].flops
        return IterationResult(t, t, 0.0, 0), e, 0.0, flops
    interleave = kind == "neupims" and b >= system.interleave_min_batch
    if not interleave:
        labels = np.zeros(b, np.int64)
    elif system.sub_batch_split == "balanced":
        labels = split_balanced(ctx, chan)
    else:
        labels = split_halves(chan)
    subs, e_dev, e_pim, flops = [], 0.0, 0.0, 0.0
    head = costs.stages(b, n)["head"]
    for s in range(2 if interleave else 1):
        sel = labels == s
        bs = int(sel.sum())
        if bs == 0:
            continue
        ns = int(math.ceil(ctx[sel].mean() / 8) * 8)
        st = costs.stages(bs, ns)
        lo, at, e_attn, _util, bus = attn.stage(ctx[sel], chan[sel], channels)
        soft = st["attn"].ops.get("softmax")
        t_soft = soft.latency if soft is not None else 0.0
        subs.append(StageTimes(pre=st["pre"].seconds, logit=lo, softmax=t_soft, attend=at,
                               post=st["post"].seconds, pre_bytes=st["pre"].dram_bytes,
                               post_bytes=st["post"].dram_bytes,
                               pim_share=1.0 - npu_share(bus, system.pim.cfg1.burst_cycle)))
        e_dev += layers * (st["pre"].energy_J + st["post"].energy_J
                           + (soft.energy_total if soft is not None else 0.0))
        e_pim += layers * e_attn
        flops += layers * (st["pre"].flops + st["post"].flops)
    dram = system.device.arch.memory["dram"]
    res = run_iteration(layers, subs, blocked=(system.pim.pim.row_buffers < 2),
                        tail_npu=head.seconds / max(len(subs), 1),
                        bandwidth=dram.bandwidth * dram.efficiency)
    e_dev += head.energy_J
    flops += head.flops
    return res, e_dev, e_pim, flops

