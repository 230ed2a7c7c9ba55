"""Iteration time of a serving replica from the device models, memoised by batch composition.

One iteration (a forward pass of a mixed batch) runs, per device of a ``tp`` x ``pp`` replica:

* the token-linear ops of every layer (norms, QKV/O/FFN GEMMs, RoPE, residuals, the tensor-
  parallel all-reduces) on ``T`` = all new tokens of the batch (decode tokens + prefill chunk
  tokens), built by the tracer's :class:`~workloads.tracer.LayerBuilder` exactly as
  ``xpusim run`` builds them, plus the embedding of ``T`` tokens, ``pp - 1`` activation sends,
  and the final norm, LM head (and logits all-gather) on the ``n_logits`` sequences sampled;
* decode attention as one batched kernel of the ``b`` decoding requests at their mean KV
  length (the kernel's time is set by its total KV bytes and its grid; equal lengths are the
  simplification, as Vidur makes);
* prefill attention per prefill chunk: ``s`` new queries over the chunk's KV length ``n``
  (chunks of equal shape run as one batched kernel, as ``xpusim run`` runs a static batch);
* a hybrid's recurrent layers (Mamba-1, Mamba-2, Gated DeltaNet): their state-carrying ops
  (the convolution, the scan or its chunked products, the state update: op class ``ssm``, and
  the conv state's shift) per decoding request and per prefill chunk, as those layers run
  them; the rest of their layers (projections, norms, MLPs) is token-linear like any layer's.
  Attention runs in the layers that have it only (``kv_layers``).

Each cost is the device model's ``estimate`` (the same ``Cost`` ``xpusim run`` uses; latency
per shard), times the layer count. Memoisation: token-linear costs and decode attention are
exact up to ``exact_tokens`` tokens (resp. KV length); above, they are interpolated linearly
between grid points spaced 1/``per_octave`` of an octave (32 by default: points <= 3.1 %
apart), so a 100,000-request run asks the device model for a few hundred shapes, not millions.

Host cost comes from the arch's ``software`` section (sim/gpu/host.py): ``ideal`` adds none;
``timed`` is inside each op's latency already; ``async`` ends every iteration with
``per_step + per_request x sequences`` of CPU work and the GPU can run no faster than the host
issues (``max(GPU time, summed dispatch)``; this is :func:`sim.gpu.host.async_makespan` with
the host either always ahead or always behind for a whole iteration).

Pipeline parallelism: the stages of one iteration run one after another (``L`` layers in all,
plus ``pp - 1`` sends); a replica does not overlap different iterations across stages. The
stages split the layers as evenly as they go (``pp`` need not divide ``L``, as vLLM's default
partition), and each device's memory is sized by the largest stage: ``ceil(L / pp)`` of the
``L`` layers' weights, KV cache and states.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from arch import Arch
from sim.devices.base import Device, SimError, device_for
from sim.gpu.host import lookup, op_family
from sim.serving.layer_costs import ATTN
from sim.system.schedule import stages_for
from sim.system.topology import build_system
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.trace import Op
from workloads.tracer import (
    LayerBuilder,
    OpTemplate,
    kv_bytes_per_token,
    state_bytes_per_request,
    weight_bytes_per_device,
)
from workloads.tracer_families import require_decoder_layers

#: a spec-sheet-free reserve: activation bytes per batched token per device are
#: ``ACT_WIDTHS x d_model + 2 x d_ff/tp`` elements (the widest live tensors of a layer)
ACT_WIDTHS = 4
#: iterations :meth:`IterationModel.iteration` keeps (cleared when full)
ITERATION_MEMO_SIZE = 1 << 16


@dataclass(frozen=True)
class Part:
    """Seconds (GPU, per device), dynamic joules (all devices of the replica) and host CPU
    seconds (async dispatch) of a group of ops."""

    seconds: float = 0.0
    energy_J: float = 0.0
    host_s: float = 0.0

    def __add__(self, other: Part) -> Part:
        return Part(self.seconds + other.seconds, self.energy_J + other.energy_J,
                    self.host_s + other.host_s)

    def scale(self, k: float) -> Part:
        return Part(self.seconds * k, self.energy_J * k, self.host_s * k)

    @staticmethod
    def lerp(a: Part, b: Part, f: float) -> Part:
        return Part(a.seconds + (b.seconds - a.seconds) * f,
                    a.energy_J + (b.energy_J - a.energy_J) * f,
                    a.host_s + (b.host_s - a.host_s) * f)


@dataclass(frozen=True)
class Iteration:
    """One iteration's wall time (s), dynamic energy (J), and its GPU and host parts (s)."""

    seconds: float
    energy_J: float
    gpu_s: float
    host_s: float


class IterationModel:
    """Iteration times of ``model`` on a replica of ``tp`` x ``pp`` devices of ``arch``."""

    def __init__(self, arch: Arch, model: ModelConfig, tp: int = 1, pp: int = 1,
                 dtype: str = "fp16", kv_dtype: str = "", attention: str = "flash",
                 fidelity: str = "tile", exact_tokens: int = 256, per_octave: int = 32,
                 device: Device | None = None):
        self.arch, self.model, self.tp, self.pp = arch, model, tp, pp
        require_decoder_layers(model)   # (before the cache is sized by its layers' bytes)
        self.scenario = Scenario(batch=1, prompt_len=1, gen_len=2, dtype=dtype,
                                 kv_dtype=kv_dtype, tp=tp, pp=pp, attention=attention)
        if pp > model.n_layers:
            what = "blocks (layers of one kind each)" if model.blocks else "layers"
            raise SimError(f"--pp: {model.name} has {model.n_layers} {what}, fewer than {pp} "
                           "pipeline stages")
        # each device holds its stage's share of the layers' weights, KV and states; stages
        # split the layers as evenly as they go (vLLM's default partition), the largest one
        # sizing the memory: n / ceil(n / pp) stages' worth (pp itself where pp divides n)
        self.stage_divisor = model.n_layers / math.ceil(model.n_layers / pp)
        stages_for(build_system(arch), tp, pp)
        self.device = device or device_for(arch, fidelity)
        self.builder = LayerBuilder(model, self.scenario)
        self.software = self.device.arch.sections.get("software")
        self.exact = max(1, int(exact_tokens))
        self.per_octave = max(1, int(per_octave))
        self.layers = model.n_layers
        self.attn_layers = model.kv_layers()   # layers with attention (a hybrid's fewer)
        # each layer's token-linear templates by what makes them differ (as the tracer keys
        # its layers, less the routing rotation and RoPE): dense, recurrent, block kind and
        # width (Llama-Nemotron's blocks: their own key/value heads and MLP widths)
        self.variants = Counter((model.dense_layer(i), model.mamba(i), model.block_kind(i),
                                 model.block_width(i)) for i in range(model.n_layers))
        self._recurrent: dict[tuple[int, int], Part] = {}
        self._linear: dict[int, Part] = {}
        self._head: dict[int, Part] = {}
        self._dec: dict[tuple[int, int], Part] = {}
        self._pre: dict[tuple[int, int, int], Part] = {}
        self._iterations: dict[tuple, Iteration] = {}

    # --- memory -------------------------------------------------------------------------------
    @property
    def devices(self) -> int:
        return self.tp * self.pp

    def weight_bytes(self) -> float:
        """Weight bytes one device holds."""
        return weight_bytes_per_device(self.model, self.scenario.dtype, self.tp,
                                       self.stage_divisor)

    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes one device holds per token of context."""
        return kv_bytes_per_token(self.model, self.scenario.kv_dtype, self.tp,
                                  self.stage_divisor)

    def state_bytes_per_request(self) -> float:
        """Bytes one device holds per running request for its recurrent layers' states."""
        return state_bytes_per_request(self.model, self.scenario.dtype, self.tp,
                                       self.stage_divisor)

    def activation_bytes(self, tokens: int) -> float:
        """Reserved activation bytes per device for a forward pass of ``tokens`` tokens."""
        sh = self.builder.shape
        elem = 2 if self.scenario.dtype in ("fp16", "bf16") else 4
        return tokens * (ACT_WIDTHS * sh.d + 2 * sh.ff) * elem

    def memory_capacity(self) -> float:
        """Bytes of memory of one device."""
        return self.device.memory_capacity()

    def static_power(self) -> float:
        """Static power (W) of one device."""
        return self.device.static_power()

    def host_link(self) -> tuple[str, float]:
        """(name, achievable bytes/s) of the device's host (PCIe) link, for KV swapping."""
        links = self.device.arch.sections.get("interconnect", {})
        for name, link in links.items():
            if "pcie" in name.lower():
                return name, link.bandwidth * link.efficiency
        raise SimError(f"--preemption swap: arch '{self.arch.name}' has no PCIe link to the "
                       "host in its interconnect")

    # --- op costs -----------------------------------------------------------------------------
    def _ops_cost(self, templates, phase: str) -> Part:
        dev, sw = self.device, self.software
        async_host = sw is not None and sw.mode == "async"
        total = Part()
        for i, tpl in enumerate(templates):
            op = Op(i, tpl.name, tpl.kind, phase, 0, 1, tpl.compute, shards=self.tp,
                    collective=tpl.collective, op_class=tpl.op_class)
            c = dev.estimate(op)
            host = lookup(sw.dispatch, op_family(op)) if async_host else 0.0
            total = total + Part(c.latency, c.energy_total * self.tp, host)
        return total

    def _grid(self, x: int, memo: dict, fn) -> Part:
        """``fn(x)`` memoised exactly up to ``exact``, interpolated on a log grid above."""
        if x <= self.exact:
            hit = memo.get(x)
            if hit is None:
                hit = memo[x] = fn(x)
            return hit
        q = 2 ** max(0, int(math.floor(math.log2(x))) - int(math.log2(self.per_octave)))
        lo = (x // q) * q
        if lo == x:
            hit = memo.get(x)
            if hit is None:
                hit = memo[x] = fn(x)
            return hit
        a = memo.get(lo)
        if a is None:
            a = memo[lo] = fn(lo)
        hi = lo + q
        b = memo.get(hi)
        if b is None:
            b = memo[hi] = fn(hi)
        return Part.lerp(a, b, (x - lo) / q)

    def _linear_exact(self, t: int) -> Part:
        bld, part = self.builder, Part()
        for (dense, mamba, kind, width), count in self.variants.items():   # DeepSeekMoE's
            # first layers, Llama 4 Maverick's odd ones: a dense MLP; a hybrid's recurrent ones
            layer = [tpl for tpl in bld.layer(1, t, 1, dense=dense, mamba=mamba, kind=kind,
                                              width=width)
                     if tpl.name not in ATTN and not _recurrent(tpl)]
            part = part + self._ops_cost(layer, "prefill").scale(count)
        part = part + self._ops_cost(bld.embedding(t), "prefill")
        if self.pp > 1:
            part = part + self._ops_cost(bld.stage_send(t), "prefill").scale(self.pp - 1)
        return part

    def linear(self, tokens: int) -> Part:
        """Token-linear ops of all layers, the embedding and the stage sends for ``tokens``."""
        return self._grid(tokens, self._linear, self._linear_exact)

    def head(self, n_logits: int) -> Part:
        """Final norm, LM head and logits gather for ``n_logits`` sampled sequences."""
        hit = self._head.get(n_logits)
        if hit is None:
            hit = self._head[n_logits] = self._ops_cost(self.builder.head(n_logits), "decode")
        return hit

    def decode_attention(self, b: int, mean_ctx: int) -> Part:
        """One batched decode attention of ``b`` requests at KV length ``mean_ctx``, all
        layers."""
        memo = self._dec.setdefault(b, {})  # type: ignore[arg-type]
        return self._grid(mean_ctx, memo, lambda n: self._all_layers(b, 1, n, "decode"))

    def _all_layers(self, b: int, s: int, n: int, phase: str) -> Part:
        """Attention of every layer: the global layers' and, where windowed layers alternate
        with them (Gemma 2/3), the windowed layers' over at most ``sliding_window`` keys."""
        m = self.builder.m
        if not self.attn_layers:   # a model without attention (Mamba-Codestral)
            return Part()
        local = m.windowed_layers() if m.sliding_window and m.global_every else 0
        if m.block_widths:   # each attention block with its own key/value heads
            return sum((self._ops_cost(self.builder.block_builder("*", width).attention(b, s, n),
                                       phase).scale(count)
                        for (_, _, kind, width), count in self.variants.items() if kind == "*"),
                       Part())
        part = self._ops_cost(self.builder.attention(b, s, n), phase).scale(
            self.attn_layers - local)
        if local:
            part = part + self._ops_cost(self.builder.attention(b, s, n, True),
                                         phase).scale(local)
        return part

    def prefill_attention(self, s: int, n: int, count: int = 1) -> Part:
        """Attention of ``count`` requests with ``s`` new tokens each over KV length ``n``
        (one batched kernel), all layers."""
        key = (count, s, n)
        hit = self._pre.get(key)
        if hit is None:
            hit = self._pre[key] = self._all_layers(count, s, n, "prefill")
        return hit

    def recurrent(self, b: int, s: int) -> Part:
        """The recurrent layers' state-carrying ops of ``b`` requests of ``s`` new tokens each
        (a decode step: ``s`` 1; a prefill chunk), all such layers (none: zero)."""
        key = (b, s)
        hit = self._recurrent.get(key)
        if hit is None:
            hit, phase = Part(), "decode" if s == 1 else "prefill"
            for (dense, mamba, kind, _), count in self.variants.items():
                if mamba:
                    ops = [tpl for tpl in self.builder.layer(b, s, s + 1, dense=dense,
                                                             mamba=True, kind=kind)
                           if _recurrent(tpl)]
                    hit = hit + self._ops_cost(ops, phase).scale(count)
            self._recurrent[key] = hit
        return hit

    # --- one iteration ------------------------------------------------------------------------
    def iteration(self, n_decode: int, decode_ctx: int, prefills: list[tuple[int, int]],
                  n_logits: int) -> Iteration:
        """An iteration of ``n_decode`` decoding requests whose KV lengths (after this step)
        sum to ``decode_ctx``, prefill chunks ``[(new tokens, KV length after)]``, and
        ``n_logits`` sequences sampled. An iteration depends on the decodes' KV lengths
        through their mean only, so iterations of equal (decodes, mean KV length, prefill
        chunks, samples) are one (memoised, up to :data:`ITERATION_MEMO_SIZE` of them)."""
        key = (n_decode, -(-decode_ctx // n_decode) if n_decode else 0, *prefills, n_logits)
        hit = self._iterations.get(key)
        if hit is None:
            if len(self._iterations) >= ITERATION_MEMO_SIZE:
                self._iterations.clear()
            hit = self._iterations[key] = self._iteration(n_decode, decode_ctx, prefills,
                                                          n_logits)
        return hit

    def _iteration(self, n_decode: int, decode_ctx: int, prefills: list[tuple[int, int]],
                   n_logits: int) -> Iteration:
        """:meth:`iteration`, worked out."""
        tokens = n_decode + sum(s for s, _ in prefills)
        if tokens == 0:
            return Iteration(0.0, 0.0, 0.0, 0.0)
        part = self.linear(tokens)
        if n_logits:
            part = part + self.head(n_logits)
        if n_decode:
            part = part + self.decode_attention(n_decode, -(-decode_ctx // n_decode))
        if len(prefills) == 1:
            part = part + self.prefill_attention(*prefills[0])
        elif prefills:
            for (s, n), count in Counter(prefills).items():
                part = part + self.prefill_attention(s, n, count)
        if self.model.recurrent:
            if n_decode:
                part = part + self.recurrent(n_decode, 1)
            if len(prefills) == 1:   # (most iterations: no Counter to build)
                part = part + self.recurrent(1, prefills[0][0])
            elif prefills:
                for s, count in Counter(s for s, _ in prefills).items():
                    part = part + self.recurrent(count, s)
        gpu = part.seconds
        sw = self.software
        if sw is not None and sw.mode == "async":
            seqs = n_decode + len(prefills)
            wall = max(gpu, part.host_s) + sw.per_step + sw.per_request * seqs
        else:
            wall = gpu
        return Iteration(wall, part.energy_J, gpu, wall - gpu)

    def prefill_alone(self, prompt: int) -> float:
        """Seconds of one request's whole prompt as a batch of its own (unloaded TTFT)."""
        return self.iteration(0, 0, [(prompt, prompt)], 1).seconds

    def decode_alone(self, ctx: int) -> float:
        """Seconds of one decode step of a lone request at KV length ``ctx`` (unloaded TBT)."""
        return self.iteration(1, ctx, [], 1).seconds


def _recurrent(tpl: OpTemplate) -> bool:
    """An op of a recurrent mixer that carries its state (priced per request, not per token):
    its convolution, scan, chunked products or state update (op class ``ssm``), the conv
    state's shift."""
    return tpl.op_class == "ssm" or tpl.name == "conv_state"
