"""Per-layer decode op costs of a model shard on a device, grouped into serving stages.

Builds one decoder layer's ops with the tracer's :class:`workloads.tracer.LayerBuilder` for ``b``
requests at KV length ``n`` under tensor parallelism ``tp`` and asks the device model for each
op's cost. Collectives are left out (see the callers' assumptions). Results are memoised per
(device, b, n) so an iteration loop pays once per distinct shape. :meth:`LayerCosts.layer` runs
the layer's ops on the event engine instead, as ``xpusim run`` does: a device that co-processes
ops (Duplex) or runs some on a unit of its own gets them on concurrent streams sharing its
memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sim.devices.base import Cost, Device, SimError
from sim.engine import Engine
from sim.system.plan import Plan
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.trace import COLLECTIVE, Op, Trace
from workloads.tracer import LayerBuilder

PRE = ("ln_attn", "qkv_proj", "qk_norm", "rope", "q_a_proj", "q_a_norm", "q_b_proj",
       "q_proj", "kv_a_proj", "kv_a_norm", "index_q", "index_k", "index_k_norm", "index_w")
ATTN = ("qk", "softmax", "av", "attention", "q_absorb", "v_absorb", "kv_b_proj",
        "index_scores", "index_topk")
POST = ("o_proj", "residual_attn", "ln_ffn", "ffn_up", "ffn_act", "ffn_down", "residual_ffn",
        "router", "router_softmax", "moe_combine")


@dataclass
class StageCost:
    """Seconds, joules, FLOPs and DRAM bytes of a group of ops (one shard)."""

    seconds: float = 0.0
    energy_J: float = 0.0
    flops: float = 0.0
    dram_bytes: float = 0.0
    ops: dict[str, Cost] = field(default_factory=dict)

    def add(self, name: str, op: Op, cost: Cost) -> None:
        shards = max(op.shards, 1)
        self.seconds += cost.latency
        self.energy_J += cost.energy_total
        self.flops += op.flops / shards
        self.dram_bytes += cost.dram_bytes
        self.ops[name] = cost


class LayerCosts:
    """Memoised per-layer stage costs of ``model`` on ``device`` (tensor parallel ``tp``)."""

    def __init__(self, device: Device, model: ModelConfig, tp: int, dtype: str = "fp16"):
        if model.recurrent or model.blocks:
            what = "has layers of different widths" if model.block_widths else \
                "mixes recurrent (Mamba, Gated DeltaNet) and attention layers"
            raise SimError(f"--model: {model.name} {what}: this decode model's stages know "
                           "attention layers only, all alike")
        self.device = device
        self.model = model
        self.tp = tp
        self.dtype = dtype
        self._memo: dict[tuple, dict[str, StageCost]] = {}

    def ops(self, b: int, n: int, phase: str = "decode", s: int = 1) -> list[Op]:
        """One layer's ops: ``b`` requests, ``s`` new tokens each, KV length ``n``."""
        sc = Scenario(batch=b, prompt_len=max(n - 1, 1), gen_len=2, dtype=self.dtype,
                      tp=self.tp)
        builder = LayerBuilder(self.model, sc)
        out = []
        for i, tpl in enumerate(builder.layer(b, s, n)):
            if tpl.kind == COLLECTIVE:
                continue
            out.append(Op(i, tpl.name, tpl.kind, phase, 0, 1, tpl.compute, shards=self.tp,
                          op_class=tpl.op_class))
        return out

    def head_ops(self, b: int) -> list[Op]:
        sc = Scenario(batch=b, prompt_len=1, gen_len=2, dtype=self.dtype, tp=self.tp)
        builder = LayerBuilder(self.model, sc)
        return [Op(i, t.name, t.kind, "decode", self.model.n_layers, 1, t.compute,
                   shards=self.tp, op_class=t.op_class)
                for i, t in enumerate(builder.head(b)) if t.kind != COLLECTIVE]

    def stages(self, b: int, n: int, s: int = 1, phase: str = "decode") -> dict[str, StageCost]:
        """``{"pre", "attn", "post", "head"}`` costs for ``b`` requests at KV length ``n``
        (``s`` new tokens per request; ``phase='prefill'`` for prompt processing)."""
        key = (b, n, s, phase)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        out = {k: StageCost() for k in ("pre", "attn", "post", "head")}
        for op in self.ops(b, n, phase, s):
            group = "pre" if op.name in PRE else "attn" if op.name in ATTN else "post"
            out[group].add(op.name, op, self.device.estimate(op))
        for op in self.head_ops(b):
            out["head"].add(op.name, op, self.device.estimate(op))
        self._memo[key] = out
        return out

    def layer(self, b: int, n: int, s: int = 1, phase: str = "decode") -> StageCost:
        """One layer's ops (``b`` requests, ``s`` new tokens each, KV length ``n``) run as one
        dependency chain on the event engine: ``seconds`` is the layer's makespan; energy,
        FLOPs and DRAM bytes sum over its tasks (``ops`` maps each task's name to its cost).

        The device's ``split_trace`` (co-processing: an op and its PIM-share twin) and
        ``unit_of`` (a unit's own stream) apply as in ``xpusim run``; when more than one stream
        runs, they share the device's memory (its ``unit_memory_bandwidth`` when it has one,
        else its sustained bandwidth) as a contended resource. Layers follow one another in a
        chain, so a stack of ``L`` layers takes ``L`` times this."""
        key = ("engine", b, n, s, phase)
        hit = self._memo.get(key)
        if hit is not None:
            return hit["layer"]
        ops = [dataclasses.replace(op, id=i, deps=(i - 1,) if i else ())
               for i, op in enumerate(self.ops(b, n, phase, s))]
        trace = Trace(ops)
        split = getattr(self.device, "split_trace", None)
        if split is not None:
            trace = split(trace)
        for op in trace.ops:
            op.device = self.device.unit_of(op) or "compute"
        plan = Plan(streams={op.device: self.device for op in trace.ops})
        if len(plan.streams) > 1:
            inner = getattr(self.device, "unit_memory_bandwidth", None)
            plan.resources["memory"] = inner() if inner else self.device.sustained_bandwidth()
            plan.memory_of = {name: "memory" for name in plan.streams}
        tl = Engine(plan.streams).run(trace, plan)
        out = StageCost()
        for op, cost in zip(trace.ops, tl.costs, strict=True):
            out.add(op.name, op, cost)
        out.seconds = float(tl.end.max())
        self._memo[key] = {"layer": out}
        return out
