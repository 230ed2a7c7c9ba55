"""Run one decoder layer functionally on a device and compare every op with ``kernels_ref``.

The layer's ops come from the tracer (the same ops, shapes and datatypes the simulator times).
Data flows through the layer: each op reads the *device's* outputs of the ops before it, and the
float64 reference of that op runs on exactly those inputs, so every row of the error table is
the error of one op alone. Weights are N(0, 1/fan_in), activations N(0, 1), norm gains
1 + 0.1 N(0, 1), all rounded to the op's datatype; the KV cache of a decode step is random data
in the KV datatype. Attention is causal in prefill; scores are scaled by 1/sqrt(head_dim).

Semantics beyond the trace's Einsums, stated here: RoPE rotates halves (GPT-NeoX / Hugging Face
Llama layout); MoE layers route tokens as the tracer does (uniform, balanced: slot j of token t
goes to expert (t * top_k + j) mod active) with the router's probabilities of those experts,
renormalised, as combine weights; linear layers have no bias. The per-op allowance formulas
(first-order error bounds from the declared numerics) sit next to each handler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

import kernels_ref.attention as ref_attn
import kernels_ref.elementwise as ref_ew
import kernels_ref.gemm as ref_gemm
import kernels_ref.moe as ref_moe
from arch import Arch
from kernels_ref.dtypes import (
    IntFormat,
    dequantize_weights,
    get_format,
    quantize,
    quantize_weights,
)
from kernels_ref.lowbit import prune_n_m
from sim.devices.base import SimError
from sim.functional import cascade, vector
from sim.functional.base import FunctionalDevice, MatmulPlan, functional_for
from sim.functional.formats import Rounder
from sim.functional.tolerance import (
    TRANSCENDENTAL_ULPS,
    OpError,
    abs_gemm,
    compare,
    gamma,
)
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.trace import Op
from workloads.tracer import trace_model

PlanHook = Callable[[Op, MatmulPlan], MatmulPlan]
NOT_NUMERIC = ("allreduce_attn", "allreduce_ffn", "allgather_logits", "embedding",
               "pos_embedding")


@dataclass
class CheckSpec:
    """What to check: shapes, phases, datatypes and which ops."""

    batch: int = 1
    prompt: int = 64
    phases: tuple[str, ...] = ("prefill", "decode")
    dtype: str = "fp16"
    kv_dtype: str = ""
    attention: str = "unfused"
    ops: tuple[str, ...] = ()
    seed: int = 0
    full: bool = False
    max_width: int = 1024
    weights: str = ""
    group: int = 0
    attention_on: str | None = None  # a system's component for decode attention (None: auto)
    activations: str = ""  # "int8": per-token int8 activations into a low-bit datapath (FPGA)
    sparsity: str = ""  # "N:M": the linear weights pruned N:M (a sparse engine skips the rest)


@dataclass
class CheckReport:
    """The error table of one layer on one arch, and how it was obtained."""

    arch: str
    model: str
    rows: list[OpError]
    shapes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "arch": self.arch, "model": self.model,
                "shapes": self.shapes, "seconds": self.seconds,
                "ops": [r.as_dict() for r in self.rows]}


def reduced_model(model: ModelConfig, max_width: int) -> tuple[ModelConfig, int]:
    """``model`` with heads, KV heads and d_ff divided by the smallest power of two that brings
    d_model to at most ``max_width`` (head_dim, the GQA ratio and expert count kept)."""
    scale = 1
    while (model.d_model // (2 * scale) >= 1 and model.d_model // scale > max_width
           and model.n_kv_heads % (2 * scale) == 0 and model.n_heads % (2 * scale) == 0
           and model.d_ff % (2 * scale) == 0 and model.shared_ff % (2 * scale) == 0):
        scale *= 2
    if scale == 1:
        return model.with_layers(1), 1
    heads = model.n_heads // scale
    return replace(model.with_layers(1), n_heads=heads, n_kv_heads=model.n_kv_heads // scale,
                   d_model=heads * model.head_dim, d_ff=model.d_ff // scale,
                   shared_ff=model.shared_ff // scale, head_dim=model.head_dim), scale


def check_layer(arch: Arch, model: ModelConfig, spec: CheckSpec,
                plan_hook: PlanHook | None = None) -> CheckReport:
    """Run one layer of ``model`` on ``arch`` functionally; return the error table."""
    t0 = time.perf_counter()
    fx = functional_for(arch)
    if spec.attention_on is not None:
        fx = fx.with_attention_on(spec.attention_on)
    if model.is_mla:
        raise SimError(f"--model: {model.name}'s multi-head latent attention is priced but not "
                       "checked functionally (no reference for its absorbed projections yet)")
    if model.blocks and set(model.blocks) <= set("*-L") and {"*", "-"} <= set(model.blocks):
        model = model.first_layer()   # Llama-Nemotron, DeciLM: its first attention and MLP
    if (model.recurrent and not model.mamba1) or model.blocks:   # (Jamba's Mamba-1: ssm.py)
        raise SimError(f"--model: {model.name}'s recurrent (Mamba-2, Gated DeltaNet, short "
                       "convolution) layers are priced but not checked functionally (no "
                       "float64 run of a hybrid's layers yet)")
    if model.dense_layer(0):   # layer 0 of DeepSeekMoE, of Llama 4 Maverick: a dense one
        model = replace(model, n_experts=1, top_k=1, shared_ff=0, shared_gate=False,
                        router_bias=False, d_ff=model.dense_ff or model.d_ff, first_dense=0,
                        moe_every=0, dense_ff=0)
    m, scale = (model.with_layers(1), 1) if spec.full else reduced_model(model,
                                                                               spec.max_width)
    sc = Scenario(batch=spec.batch, prompt_len=spec.prompt, gen_len=2, dtype=spec.dtype,
                  kv_dtype=spec.kv_dtype, tp=1, attention=spec.attention)
    if spec.weights and spec.weights not in ("int8", "int4", "int2"):
        raise SimError(f"--weights: expected int8, int4 or int2, got '{spec.weights}'")
    if spec.activations not in ("", "int8"):
        raise SimError(f"--act-dtype: expected int8, got '{spec.activations}'")
    if spec.activations and not spec.weights:
        raise SimError("--act-dtype: int8 activations need integer --weights (int8, int4, int2)")
    if spec.sparsity:
        n_m = spec.sparsity.partition(":")
        if not (n_m[0].isdigit() and n_m[2].isdigit() and 0 < int(n_m[0]) < int(n_m[2]) <= 64
                and m.d_model % int(n_m[2]) == 0):
            raise SimError(f"--sparsity: expected N:M with 0 < N < M <= 64 and M dividing "
                           f"d_model {m.d_model} (e.g. 2:4), got '{spec.sparsity}'")
    trace = trace_model(m, sc, phases=tuple(spec.phases))
    known = {op.name for op in trace.ops if op.layer == 0}
    unknown = [o for o in spec.ops if o not in known]
    if unknown:
        raise SimError(f"--ops: {', '.join(unknown)} not in a {model.name} layer "
                       f"(ops: {', '.join(sorted(known))})")
    rows: list[OpError] = []
    weights: dict[str, dict[str, np.ndarray]] = {}
    for phase in spec.phases:
        ops = [op for op in trace.ops if op.layer == 0 and op.phase == phase
               and (phase == "prefill" or op.step == 1)]
        run = _runner(model)(fx, m, sc, spec, phase, plan_hook, weights)
        for op in ops:
            row = run.step(op)
            if row is not None:
                rows.append(row)
    shapes = {"d_model": m.d_model, "heads": m.n_heads, "kv_heads": m.n_kv_heads,
              "head_dim": m.head_dim, "d_ff": m.d_ff, "experts": m.n_experts,
              "batch": spec.batch, "prompt": spec.prompt, "width_scale": scale}
    return CheckReport(arch.name, model.name, rows, shapes, time.perf_counter() - t0)


def _runner(model: ModelConfig) -> type[_LayerRun]:
    """The handler class of a model's layer: decoder ops here, Mamba's in ``ssm.py``, parallel
    blocks and partial RoPE in ``parallel.py``, bidirectional attention in ``encoder.py``."""
    if model.kind == "mamba" or model.mamba1:   # Mamba-1, alone or Jamba's layer 0
        from sim.functional.ssm import MambaRun
        return MambaRun
    if model.kind == "encoder":
        from sim.functional.encoder import EncoderRun
        return EncoderRun
    if model.kind != "decoder":
        raise SimError(f"check: {model.kind} models ({model.name}) are not checked yet; "
                       "decoder, encoder and Mamba layers are")
    if model.block != "sequential" or model.rotary_dim:
        from sim.functional.parallel import ParallelRun
        return ParallelRun
    return _LayerRun


class _LayerRun:
    """Tensors of one phase of one layer, and a handler per op name."""

    def __init__(self, fx: FunctionalDevice, model: ModelConfig, sc: Scenario, spec: CheckSpec,
                 phase: str, plan_hook: PlanHook | None,
                 weights: dict[str, dict[str, np.ndarray]]):
        self.fx = fx
        self.weights = weights
        self.m = model
        self.sc = sc
        self.spec = spec
        self.phase = phase
        self.hook = plan_hook
        self.dt = sc.dtype
        self.kv_dt = sc.kv_dtype
        self.rng = np.random.default_rng([spec.seed, 0 if phase == "prefill" else 1])
        self.b = spec.batch
        self.s = spec.prompt if phase == "prefill" else 1
        self.n = spec.prompt if phase == "prefill" else spec.prompt + 1
        if model.windowed(0):   # layer 0 reads its last sliding_window keys
            if phase == "prefill" and self.n > model.sliding_window:
                raise SimError(f"--prompt: {spec.prompt} tokens exceed {model.name}'s "
                               f"{model.sliding_window}-key window, whose prefill is priced "
                               f"but not checked; use --prompt <= {model.sliding_window} "
                               f"or --phase decode")
            self.n = model.window_keys(self.s, self.n)
        self.t = self.b * self.s
        self.vec = fx.vector_numerics()
        self.cc = self.vec.rounder
        self.u_c = self.cc.unit_roundoff()
        self.env: dict[str, np.ndarray] = {"x": self._act((self.t, model.d_model))}
        self.selected = set(spec.ops)

    # --- data ---------------------------------------------------------------------------------
    def _act(self, shape: tuple[int, ...], dtype: str | None = None) -> np.ndarray:
        return quantize(self.rng.standard_normal(shape), dtype or self.dt)

    def _gain(self, n: int) -> np.ndarray:
        return quantize(1.0 + 0.1 * self.rng.standard_normal(n), self.dt)

    def _weight(self, name: str, k: int, n: int, experts: int = 0) -> dict[str, np.ndarray]:
        """The layer's weight ``name`` (shared by the prefill and decode runs)."""
        if name in self.weights:
            return self.weights[name]
        shape = (experts, k, n) if experts else (k, n)
        rng = np.random.default_rng([self.spec.seed, 2, len(self.weights)])
        w32 = rng.random(shape, dtype=np.float32)  # U(-a, a), variance 1/fan_in
        w32 -= np.float32(0.5)
        w32 *= np.float32(2.0 * math.sqrt(3.0 / k))
        if self.spec.sparsity:  # N:M pruning of the layer's weights (kernels_ref.lowbit)
            n_keep, _, m_group = self.spec.sparsity.partition(":")
            for wi in (w32 if experts else w32[None]):
                wi[...] = prune_n_m(wi, int(n_keep), int(m_group))
        if not self.spec.weights:
            if get_format(self.dt).bits <= 32:
                # round to the datatype in place, chunk by chunk: the values stay exact in
                # float32, which halves the memory (the kernels widen B as they pack it)
                w = w32
                flat = w.reshape(-1)
                for i in range(0, flat.size, 1 << 22):
                    flat[i:i + (1 << 22)] = quantize(flat[i:i + (1 << 22)], self.dt)
            else:
                w = quantize(w32, self.dt)
            a32 = np.abs(w, dtype=np.float32)
            self.weights[name] = {"w": w, "abs32": a32 if a32.ndim == 3 else a32[None]}
            return self.weights[name]
        w = w32.astype(np.float64)
        ws = w if experts else w[None]
        qs, scales = zip(*(quantize_weights(wi, self.spec.weights, self.spec.group)
                           for wi in ws), strict=True)
        q, s = np.stack(qs), quantize(np.stack(scales), self.dt)  # scales stored in dtype
        self.weights[name] = {"q": q if experts else q[0], "scales": s if experts else s[0]}
        return self.weights[name]

    # --- dispatch -----------------------------------------------------------------------------
    def step(self, op: Op) -> OpError | None:
        if op.name in NOT_NUMERIC:
            return None
        handler = getattr(self, "_op_" + op.name, None)
        if handler is None:
            raise SimError(f"check: no functional handler for op '{op.name}' "
                           f"({op.kind}) — cannot check this layer")
        checked = not self.selected or op.name in self.selected
        self.vec = self.fx.for_op(op).vector_numerics()  # a system: the op's component
        self.cc = self.vec.rounder
        self.u_c = self.cc.unit_roundoff()
        res = handler(op, checked)
        if not checked:
            return None
        y, r, allowance, out_dtype, detail = res
        stats = compare(y, r, out_dtype, allowance)
        if detail.get("order_mismatch"):
            stats["passed"] = False
        return OpError(op.name, f"{self.fx.arch.name}:{self.fx.unit_for(op)}", out_dtype,
                       phase=self.phase, detail=detail, **stats)

    # --- contractions -------------------------------------------------------------------------
    def _matmul(self, op: Op, a: np.ndarray, b: np.ndarray, checked: bool,
                b_exact: np.ndarray | None = None, b_abs: np.ndarray | None = None) -> tuple:
        """a [X, M, K], b [X, K, N] in the op's datatype; ``b_exact`` the float64 weights when
        the device dequantizes (weight-only integer weights)."""
        out_dtype = op.compute.output.dtype
        ref_b = b if b_exact is None else b_exact
        ref = (ref_gemm.batched_gemm(a, ref_b) if a.shape[0] > 1
               else ref_gemm.gemm(a[0], ref_b[0])[None])
        if not checked:
            return quantize(ref, out_dtype), None, None, out_dtype, {}
        shape = (a.shape[0], a.shape[1], b.shape[2], a.shape[2])
        if op.compute.gemm_shape != shape:
            raise SimError(f"check: {op.name} shape {shape} differs from the trace's "
                           f"{op.compute.gemm_shape}")
        fx = self.fx.for_op(op)
        plan = fx.plan_matmul(op, self.dt, shape)
        num = plan.declared
        if self.hook is not None:
            plan = self.hook(op, plan)
        # operands already hold values of the op's datatype; the MMA may take a narrower one
        a_in = a if num.inputs == self.dt else quantize(a, num.inputs)
        b_in = b if num.inputs == self.dt else quantize(b, num.inputs)
        raw = plan.execute(a_in, b_in)
        y = quantize(raw, out_dtype)
        declared = fx.replay(op, self.dt, shape, a_in, b_in)
        big_s = abs_gemm(a, ref_b, b_abs)
        # allowance: the declared reduction tree, plus rounding of the operands to the MMA's
        # input format (tf32 for fp32 GEMMs) and of dequantized weights to the op's datatype
        rel = gamma(plan.levels)
        if num.inputs != self.dt:
            rel += 2 * get_format(num.inputs).unit_roundoff()
        if b_exact is not None:
            rel += get_format(self.dt).unit_roundoff()
        detail = {k: v for k, v in plan.detail.items()}
        detail.update(acc=f"{plan.declared.acc.dtype}/{plan.declared.acc.rounding}",
                      block=plan.declared.block)
        if declared is not None:  # the declared reduction order, bit for bit
            same = (raw == declared) | (np.isnan(raw) & np.isnan(declared))
            detail["order_mismatch"] = int(same.size - np.count_nonzero(same))
        big_s *= rel
        return y, ref, big_s, out_dtype, detail

    def _linear(self, op: Op, x: np.ndarray, checked: bool) -> tuple:
        _, _, n, k = op.compute.gemm_shape
        w = self._weight(op.name, k, n)
        fx = self.fx.for_op(op)
        if "q" in w and self.spec.activations and hasattr(fx, "linear_lowbit"):
            return self._lowbit_linear(op, fx, x, w, checked)
        if "q" in w:
            if "exact" not in w:
                w["exact"] = dequantize_weights(w["q"], w["scales"], self.spec.group)[None]
                w["w"] = quantize(w["exact"], self.dt)
            return self._matmul(op, x[None], w["w"], checked, w["exact"], self._abs(w))
        return self._matmul(op, x[None], w["w"][None], checked, None, self._abs(w))

    def _lowbit_linear(self, op: Op, fx: Any, x: np.ndarray, w: dict[str, np.ndarray],
                       checked: bool) -> tuple:
        """Integer weights against per-token int8 activations on the device's low-bit datapath
        (FPGA W2A8 / W4A8, 2:4 blocks when --sparsity says so). The activation quantization is
        part of the A8 model: the float64 reference reads the same int8 values and scales."""
        out_dtype = op.compute.output.dtype
        xq, xs = fx.quantize_activations(x)
        group = self.spec.group or x.shape[1]
        if "exact_groups" not in w:  # q x scale, groups of ``group`` rows as quantized
            k = w["q"].shape[0]
            w["exact_groups"] = w["q"] * np.repeat(w["scales"], group, axis=0)[:k]
        ref = ref_gemm.gemm(xs[:, None] * xq, w["exact_groups"])
        if not checked:
            return quantize(ref, out_dtype)[None], None, None, out_dtype, {}
        raw, allow, detail = fx.linear_lowbit(xq, xs, w["q"], w["scales"], group,
                                              self.spec.sparsity)
        detail = {"unit": fx.unit_for(op), **detail, "weights": self.spec.weights}
        return quantize(raw, out_dtype)[None], ref[None], allow[None], out_dtype, detail

    @staticmethod
    def _abs(w: dict[str, np.ndarray]) -> np.ndarray:
        """|W| in float32 (for the allowance), kept with the weight."""
        if "abs32" not in w:
            src = w.get("exact", w["w"])
            a32 = src.astype(np.float32)
            np.abs(a32, out=a32)
            w["abs32"] = a32 if a32.ndim == 3 else a32[None]
        return w["abs32"]

    def _project(self, op: Op, src: str, dst: str, checked: bool) -> tuple:
        """A linear layer of ``env[src]`` into ``env[dst]``."""
        res = self._linear(op, self.env[src], checked)
        self.env[dst] = res[0][0]
        return res

    def _op_qkv_proj(self, op: Op, checked: bool) -> tuple:
        return self._project(op, "h_attn", "qkv", checked)

    def _op_o_proj(self, op: Op, checked: bool) -> tuple:
        return self._project(op, "attn", "o", checked)

    def _op_router(self, op: Op, checked: bool) -> tuple:
        return self._project(op, "h_ffn", "router_logits", checked)

    def _op_lm_head(self, op: Op, checked: bool) -> tuple:
        res = self._linear(op, self.env.get("h_final", self.env["x"]), checked)
        self.env["logits"] = res[0][0]
        return res

    def _op_ffn_up(self, op: Op, checked: bool) -> tuple:
        if self.m.is_moe:
            return self._moe_linear(op, "h_ffn", "up", checked)
        return self._project(op, "h_ffn", "up", checked)

    def _op_ffn_down(self, op: Op, checked: bool) -> tuple:
        if self.m.is_moe:
            return self._moe_linear(op, "act", "down", checked)
        return self._project(op, "act", "down", checked)

    # --- MoE ----------------------------------------------------------------------------------
    def _routing(self, experts: int, per_expert: int) -> None:
        """Uniform balanced routing as the tracer assumes (see module doc)."""
        if "slots" in self.env:
            return
        k = self.m.top_k
        slot_expert = (np.arange(self.t * k) % experts).reshape(self.t, k)
        gather = np.full((experts, per_expert), -1, dtype=np.int64)
        fill = np.zeros(experts, dtype=np.int64)
        for slot, e in enumerate(slot_expert.reshape(-1)):
            gather[e, fill[e]] = slot
            fill[e] += 1
        self.env["slots"] = gather  # type: ignore[assignment]
        self.env["slot_expert"] = slot_expert  # type: ignore[assignment]

    def _moe_linear(self, op: Op, src: str, dst: str, checked: bool) -> tuple:
        x_count, per, n, k = op.compute.gemm_shape
        self._routing(x_count, per)
        slots = self.env["slots"]
        data = self.env[src]
        a = np.zeros((x_count, per, k))
        valid = slots >= 0
        if src == "h_ffn":
            a[valid] = data[slots[valid] // self.m.top_k]
        else:  # activations are already laid out per expert
            a = data.reshape(x_count, per, k)
        # every expert's weights, made once; the step's active experts are the first x_count
        # (a decode step of few tokens loads fewer experts than the prefill)
        w = self._weight(op.name, k, n, experts=max(x_count, self.m.n_experts))
        if "q" in w:
            exact = np.stack([dequantize_weights(q, s, self.spec.group) for q, s in
                              zip(w["q"][:x_count], w["scales"][:x_count], strict=True)])
            res = self._matmul(op, a, quantize(exact, self.dt), checked, exact)
        else:
            res = self._matmul(op, a, w["w"][:x_count], checked, None,
                               self._abs(w)[:x_count])
        self.env[dst] = res[0]
        return res

    def _op_moe_combine(self, op: Op, checked: bool) -> tuple:
        k = self.m.top_k
        slots, slot_expert = self.env["slots"], self.env["slot_expert"]
        down = self.env["down"]
        x_count, per, d = down.shape
        expert_out = np.zeros((self.t * k, d))
        for e in range(x_count):
            for p in range(per):
                if slots[e, p] >= 0:
                    expert_out[slots[e, p]] = down[e, p]
        expert_out = expert_out.reshape(self.t, k, d)
        probs = self.env["router_probs"]
        w = np.take_along_axis(probs, slot_expert, axis=1)
        w = quantize(w / w.sum(axis=1, keepdims=True), self.dt)
        ref = ref_moe.moe_combine(expert_out, w)
        y = quantize(vector.combine(expert_out, w, self.cc.code), self.dt)
        self.env["moe_out"] = y
        # allowance: k products and k-1 sums in the compute format
        allow = 2 * k * self.u_c * np.einsum("tkd,tk->td", np.abs(expert_out), np.abs(w))
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute}

    # --- norms, activations, adds -------------------------------------------------------------
    def _norm(self, op: Op, src: str, dst: str, checked: bool) -> tuple:
        x = self.env[src]
        n = x.shape[1]
        gkey = f"g_{op.name}"
        if gkey not in self.env:
            self.env[gkey] = self._gain(n)
            self.env[f"b_{op.name}"] = quantize(0.1 * self.rng.standard_normal(n), self.dt) \
                if self.m.bias else np.zeros(n)
        g, beta = self.env[gkey], self.env[f"b_{op.name}"]
        rms = self.m.norm == "rmsnorm"
        eps = 1e-6 if rms else 1e-5
        ref = ref_ew.rmsnorm(x, g, eps) if rms else ref_ew.layernorm(x, g, beta, eps)
        if not checked:
            self.env[dst] = quantize(ref, self.dt)
            return (self.env[dst], None, None, self.dt, {})
        lanes, cc, u = self.vec.lanes, self.cc.code, self.u_c
        dev = vector.rmsnorm(x, g, eps, lanes, cc) if rms else \
            vector.layernorm(x, g, beta, eps, lanes, cc)
        y = quantize(dev, self.dt)
        self.env[dst] = y
        depth = vector.reduction_depth(n, lanes)
        t_ulps = TRANSCENDENTAL_ULPS
        if rms:
            # ms: squares (1), sum (depth), /n (1), +eps (1); rstd halves that, plus the
            # rsqrt; then x*rstd and *gamma (2)
            allow = ((depth + 3) / 2 + t_ulps + 2) * u * np.abs(ref) * 1.01
        else:
            mu = x.mean(axis=1, keepdims=True)
            d = x - mu
            var = (d * d).mean(axis=1, keepdims=True)
            rstd = 1.0 / np.sqrt(var + eps)
            d_mu = (depth + 1) * u * np.abs(x).mean(axis=1, keepdims=True) + u * np.abs(mu)
            eps_d = d_mu + u * np.abs(d)
            d_var = (depth + 3) * u * var + 2 * (np.abs(d) * eps_d).mean(axis=1, keepdims=True)
            rel_rstd = d_var / (2 * (var + eps)) + (t_ulps + 1) * u
            allow = (np.abs(g) * rstd * eps_d + np.abs(d * rstd * g) * (rel_rstd + 2 * u)
                     + u * np.abs(ref)) * 1.01
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute,
                                        "lanes": lanes}

    def _op_ln_attn(self, op: Op, checked: bool) -> tuple:
        return self._norm(op, "x", "h_attn", checked)

    def _op_ln_ffn(self, op: Op, checked: bool) -> tuple:
        return self._norm(op, "x2", "h_ffn", checked)

    def _op_final_norm(self, op: Op, checked: bool) -> tuple:
        return self._norm(op, "x", "h_final", checked)

    def _add(self, a: np.ndarray, b: np.ndarray, dst: str) -> tuple:
        ref = a + b  # exact in float64 for 16-bit and fp32 inputs of similar magnitude
        y = quantize(vector.add(a, b, self.cc.code), self.dt)
        self.env[dst] = y
        return y, ref, self.u_c * np.abs(ref), self.dt, {"unit": "vector",
                                                         "compute": self.vec.compute}

    def _op_residual_attn(self, op: Op, checked: bool) -> tuple:
        return self._add(self.env["x"], self.env["o"], "x2")

    def _op_residual_ffn(self, op: Op, checked: bool) -> tuple:
        other = self.env["moe_out"] if self.m.is_moe else self.env["down"]
        return self._add(self.env["x2"], other, "out")

    def _op_ffn_act(self, op: Op, checked: bool) -> tuple:
        return self._activate("up", "act")

    # --- shared experts (Qwen2-MoE, DeepSeekMoE) and post-norms (Gemma 2/3) ---------------
    def _op_shared_up(self, op: Op, checked: bool) -> tuple:
        return self._project(op, "h_ffn", "shared_up", checked)

    def _op_shared_act(self, op: Op, checked: bool) -> tuple:
        return self._activate("shared_up", "shared_act")

    def _op_shared_down(self, op: Op, checked: bool) -> tuple:
        return self._project(op, "shared_act", "shared_down", checked)

    def _op_shared_add(self, op: Op, checked: bool) -> tuple:
        return self._add(self.env["moe_out"], self.env["shared_down"], "moe_out")

    def _op_qk_norm(self, op: Op, checked: bool) -> tuple:
        """RMSNorm of every query and key head (its ``head_dim`` channels, one gain shared by
        the heads), in place in the QKV projection's output."""
        m = self.m
        width = (m.n_heads + m.n_kv_heads) * m.head_dim
        qkv = self.env["qkv"]
        self.env["qk_rows"] = np.ascontiguousarray(qkv[:, :width]).reshape(-1, m.head_dim)
        res = self._norm(op, "qk_rows", "qk_rows", checked)
        out = qkv.copy()
        out[:, :width] = self.env["qk_rows"].reshape(qkv.shape[0], width)
        self.env["qkv"] = out
        return res

    def _op_ln_attn_post(self, op: Op, checked: bool) -> tuple:
        return self._norm(op, "o", "o", checked)

    def _op_ln_ffn_post(self, op: Op, checked: bool) -> tuple:
        out = "moe_out" if self.m.is_moe else "down"
        return self._norm(op, out, out, checked)

    def _activate(self, src: str, dst: str) -> tuple:
        """The MLP's activation (SwiGLU: the two halves of ``src``) into ``dst``."""
        up = self.env[src]
        flat = up.reshape(-1, up.shape[-1])
        u, t_ulps = self.u_c, TRANSCENDENTAL_ULPS
        if self.m.activation == "swiglu":
            f = flat.shape[1] // 2
            gate, val = np.ascontiguousarray(flat[:, :f]), np.ascontiguousarray(flat[:, f:])
            ref = ref_ew.swiglu(gate, val)
            dev = vector.swiglu(gate, val, self.cc.code)
            allow = (t_ulps + 5) * u * np.abs(ref)
        else:
            x = np.ascontiguousarray(flat)
            ref = ref_ew.activation(self.m.activation, x)
            dev = vector.activation(x, vector.ACTIVATIONS[self.m.activation], self.cc.code)
            allow = (t_ulps + 8) * u * (np.abs(ref) + np.abs(x))
        y = quantize(dev, self.dt)
        shape = (*up.shape[:-1], ref.shape[-1])
        self.env[dst] = y.reshape(shape)
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute}

    def _op_router_softmax(self, op: Op, checked: bool) -> tuple:
        logits = self.env["router_logits"]
        limits = np.full(logits.shape[0], logits.shape[1], dtype=np.int64)
        y, ref, allow = self._softmax_rows(logits, 1.0, limits)
        self.env["router_probs"] = y
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute}

    # --- attention ----------------------------------------------------------------------------
    def _qkv(self) -> None:
        """Split the QKV projection, apply nothing else (RoPE is its own op)."""
        if "q" in self.env:
            return
        m = self.m
        hd, heads, groups = m.head_dim, m.n_heads, m.n_kv_heads
        qkv = self.env["qkv"]
        self.env["q_raw"] = qkv[:, :heads * hd].reshape(self.t, heads, hd)
        self.env["k_raw"] = qkv[:, heads * hd:(heads + groups) * hd].reshape(self.t, groups, hd)
        self.env["v_raw"] = qkv[:, (heads + groups) * hd:].reshape(self.t, groups, hd)
        if "q_rope" not in self.env:
            self.env["q_rope"] = self.env["q_raw"]
            self.env["k_rope"] = self.env["k_raw"]
        self._cache()

    def _cache(self) -> None:
        m = self.m
        b, s, n, hd, g = self.b, self.s, self.n, m.head_dim, m.n_kv_heads
        q = self.env["q_rope"].reshape(b, s, g, m.n_heads // g, hd)
        self.env["q"] = np.ascontiguousarray(q.transpose(0, 2, 3, 1, 4))  # b g r s e
        k_new = quantize(self.env["k_rope"].reshape(b, s, g, hd).transpose(0, 2, 1, 3),
                         self.kv_dt)
        v_new = quantize(self.env["v_raw"].reshape(b, s, g, hd).transpose(0, 2, 1, 3),
                         self.kv_dt)
        if n > s:  # decode: the cache holds n - s earlier positions
            k_old = self._act((b, g, n - s, hd), self.kv_dt)
            v_old = self._act((b, g, n - s, hd), self.kv_dt)
            k_new = np.concatenate([k_old, k_new], axis=2)
            v_new = np.concatenate([v_old, v_new], axis=2)
        self.env["k_cache"] = np.ascontiguousarray(k_new)
        self.env["v_cache"] = np.ascontiguousarray(v_new)

    def _op_rope(self, op: Op, checked: bool) -> tuple:
        m = self.m
        hd, heads, groups = m.head_dim, m.n_heads, m.n_kv_heads
        qkv = self.env["qkv"]
        x = np.ascontiguousarray(qkv[:, :(heads + groups) * hd].reshape(self.t, heads + groups,
                                                                         hd))
        pos = np.tile(np.arange(self.n - self.s, self.n), self.b)
        cos, sin = ref_ew.rope_tables(pos, hd)
        cos32, sin32 = quantize(cos, "fp32"), quantize(sin, "fp32")  # the fp32 tables (trace)
        ref = ref_ew.rope(x, cos32, sin32)
        y = quantize(vector.rope(x, cos32, sin32, self.cc.code), self.dt)
        half = hd // 2
        mag = np.concatenate([np.abs(x[..., :half] * cos32[:, None]) +
                              np.abs(x[..., half:] * sin32[:, None]),
                              np.abs(x[..., half:] * cos32[:, None]) +
                              np.abs(x[..., :half] * sin32[:, None])], axis=-1)
        allow = (2 * self.u_c * mag + self.u_c * np.abs(ref)) * 1.01
        self.env["q_rope"] = y[:, :heads]
        self.env["k_rope"] = y[:, heads:]
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute}

    def _kv_quantized(self, op: Op) -> Any:
        """The device when it runs decode attention over a quantized (integer) KV cache with
        per-token scales (FPGA KV4), else None."""
        fx = self.fx.for_op(op)
        if (self.phase == "decode" and hasattr(fx, "kv_cache")
                and isinstance(get_format(self.kv_dt), IntFormat)):
            return fx
        return None

    def _kv_float(self) -> tuple[np.ndarray, np.ndarray]:
        """The decode step's K and V [B, G, n, d] before quantization: earlier positions random
        in the activation datatype, then the new token's."""
        b, g, hd = self.b, self.m.n_kv_heads, self.m.head_dim
        if "k_float" not in self.env:
            old = (b, g, self.n - 1, hd)
            self.env["k_float"] = np.concatenate(
                [self._act(old), self.env["k_rope"].reshape(b, g, 1, hd)], axis=2)
            self.env["v_float"] = np.concatenate(
                [self._act(old), self.env["v_raw"].reshape(b, g, 1, hd)], axis=2)
        return self.env["k_float"], self.env["v_float"]

    def _kv_store(self, fx: Any) -> tuple[np.ndarray, ...]:
        if "kv_store" not in self.env:
            self.env["kv_store"] = fx.kv_cache(*self._kv_float(), self.kv_dt)
        return self.env["kv_store"]  # type: ignore[return-value]

    def _op_qk(self, op: Op, checked: bool) -> tuple:
        self._qkv()
        m = self.m
        fx = self._kv_quantized(op)
        if fx is not None:  # decode QK over the integer cache
            kq, ks, _, _, kd, _ = self._kv_store(fx)
            q = self.env["q"].reshape(self.b, m.n_heads, m.head_dim)
            raw, allow = fx.kv_qk(q, kq, ks)
            kd_h = np.repeat(kd, m.n_heads // m.n_kv_heads, axis=1)
            ref = np.einsum("bhe,bhje->bhj", q, kd_h)
            out_dtype = op.compute.output.dtype
            y = quantize(raw, out_dtype)
            self.env["scores"] = y.reshape(self.b, m.n_kv_heads, -1, 1, self.n)
            return y, ref, allow, out_dtype, {"unit": fx.unit_for(op), "mapping":
                                              f"{self.kv_dt} KV decode", "acc": "fp32"}
        b, g, hd = self.b, m.n_kv_heads, m.head_dim
        r = m.n_heads // g
        a = self.env["q"].reshape(b * g, r * self.s, hd)
        kt = np.ascontiguousarray(self.env["k_cache"].reshape(b * g, self.n, hd)
                                  .transpose(0, 2, 1))
        res = self._matmul(op, a, kt, checked)
        self.env["scores"] = res[0].reshape(b, g, r, self.s, self.n)
        return res

    def _limits(self, rows_per_query_block: int) -> np.ndarray:
        """Causal limits for rows laid out [..., s] (query index fastest)."""
        per_query = np.arange(self.s) + (self.n - self.s) + 1
        return np.tile(per_query, rows_per_query_block).astype(np.int64)

    def _softmax_rows(self, x: np.ndarray, scale: float, limits: np.ndarray) -> tuple:
        """Device softmax of rows of ``x`` with per-row limits; reference and allowance."""
        rows, n = x.shape
        cols = np.arange(n)[None, :]
        valid = cols < limits[:, None]
        z = np.where(valid, x * scale, -np.inf)
        ref = ref_ew.softmax_naive(z)
        y = quantize(vector.softmax(x, scale, limits, self.vec.lanes, self.cc.code), self.dt)
        # allowance: the scaled score and its difference from the max are rounded (error
        # u(|z| + |z - m|) in the exponent), exp (T ulps), a sum of depth D, a division
        u, t_ulps = self.u_c, TRANSCENDENTAL_ULPS
        zf = np.where(valid, np.abs(x * scale), 0.0)
        mrow = np.max(np.where(valid, x * scale, -np.inf), axis=1, keepdims=True)
        delta = u * np.max(np.where(valid, zf + np.abs(x * scale - mrow), 0.0), axis=1,
                           keepdims=True)
        depth = np.array([vector.reduction_depth(int(li), self.vec.lanes) for li in limits]
                         )[:, None]
        rel = 2 * delta + (2 * t_ulps + 2) * u + depth * u
        return y, ref, rel * ref * 1.01

    def _op_softmax(self, op: Op, checked: bool) -> tuple:
        m = self.m
        scores = self.env["scores"]
        rows = scores.reshape(-1, self.n)
        limits = self._limits(rows.shape[0] // self.s) if self.phase == "prefill" else \
            np.full(rows.shape[0], self.n, dtype=np.int64)
        y, ref, allow = self._softmax_rows(np.ascontiguousarray(rows), 1.0 / math.sqrt(m.head_dim),
                                           limits)
        self.env["probs"] = y.reshape(scores.shape)
        return y, ref, allow, self.dt, {"unit": "vector", "compute": self.vec.compute,
                                        "lanes": self.vec.lanes}

    def _op_av(self, op: Op, checked: bool) -> tuple:
        m = self.m
        fx = self._kv_quantized(op)
        if fx is not None:  # decode PV over the integer cache
            _, _, vq, vs, _, vd = self._kv_store(fx)
            p = self.env["probs"].reshape(self.b, m.n_heads, self.n)
            raw, allow = fx.kv_av(p, vq, vs)
            vd_h = np.repeat(vd, m.n_heads // m.n_kv_heads, axis=1)
            ref = np.einsum("bhj,bhje->bhe", p, vd_h)
            out_dtype = op.compute.output.dtype
            y = quantize(raw, out_dtype)
            self.env["attn"] = np.ascontiguousarray(y.reshape(self.t, m.n_heads * m.head_dim))
            return y, ref, allow, out_dtype, {"unit": fx.unit_for(op), "mapping":
                                              f"{self.kv_dt} KV decode", "acc": "fp32"}
        b, g, hd = self.b, m.n_kv_heads, m.head_dim
        r = m.n_heads // g
        p = self.env["probs"].reshape(b * g, r * self.s, self.n)
        v = self.env["v_cache"].reshape(b * g, self.n, hd)
        res = self._matmul(op, p, v, checked)
        out = res[0].reshape(b, g, r, self.s, hd).transpose(0, 3, 1, 2, 4)
        self.env["attn"] = np.ascontiguousarray(out.reshape(self.t, m.n_heads * hd))
        return res

    def _op_attention(self, op: Op, checked: bool) -> tuple:
        """The fused cascade: the device's 1-pass form against the 3-pass reference."""
        self._qkv()
        m = self.m
        b, g, hd, heads = self.b, m.n_kv_heads, m.head_dim, m.n_heads
        q = np.ascontiguousarray(self.env["q"].reshape(b * heads, self.s, hd))
        k = np.ascontiguousarray(self.env["k_cache"].reshape(b * g, self.n, hd))
        v = np.ascontiguousarray(self.env["v_cache"].reshape(b * g, self.n, hd))
        scale = 1.0 / math.sqrt(hd)
        causal = self.phase == "prefill"
        out_dtype = op.compute.einsums[-1].output.dtype
        fx = self._kv_quantized(op)
        if fx is not None:
            return self._kv_quantized_attention(op, fx, scale, out_dtype)
        if causal:
            ref = ref_attn.attention_3pass(q, k, v, scale, True)
        else:  # one new token per request over its KV cache
            ref = ref_attn.decode_attention(
                q.reshape(b, heads, hd), k.reshape(b, g, self.n, hd), v.reshape(b, g, self.n, hd),
                np.full(b, self.n), scale).reshape(b * heads, 1, hd)
        an = self.fx.for_op(op).attention_numerics(self.dt)
        qk, pv = an["qk"], an["pv"]
        block = int(an["block"])
        dev = cascade.attention_1pass(q, k, v, scale, causal, block, qk.acc.code, qk.block,
                                      self.cc.code, Rounder(an["p_dtype"]).code, pv.acc.code,
                                      pv.block, True)
        y = quantize(dev, out_dtype)
        self.env["attn"] = np.ascontiguousarray(
            y.reshape(b, heads, self.s, hd).transpose(0, 2, 1, 3).reshape(self.t, heads * hd))
        allow = attention_allowance(q, k, v, scale, causal, an, block, self.u_c)
        return y, ref, allow, out_dtype, {"unit": self.fx.unit_for(op), "mapping": "1-pass",
                                          "block": block, "p_dtype": an["p_dtype"],
                                          "acc": qk.acc.dtype}


    def _kv_quantized_attention(self, op: Op, fx: Any, scale: float, out_dtype: str) -> tuple:
        """Decode attention on the device's quantized-KV path (FPGA KV4): the cache (earlier
        positions random in the datatype, the new token's K and V) stored as integers with
        per-token scales; the float64 reference attends over the dequantized cache."""
        m = self.m
        b, hd, heads = self.b, m.head_dim, m.n_heads
        k, v = self._kv_float()
        q = self.env["q"].reshape(b, heads, hd)
        dev, kd, vd, allow, detail = fx.attention_kv_quantized(q, k, v, self.kv_dt, scale)
        ref = ref_attn.decode_attention(q, kd, vd, np.full(b, self.n), scale)
        y = quantize(dev, out_dtype)
        self.env["attn"] = np.ascontiguousarray(y.reshape(self.t, heads * hd))
        return y, ref, allow, out_dtype, {"unit": self.fx.unit_for(op), **detail}


def attention_allowance(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float,
                        causal: bool, an: dict[str, Any], block: int, u: float) -> np.ndarray:
    """First-order error bound of the 1-pass cascade (see ``cascade``), compute-format unit
    roundoff ``u``: an error delta in a score's exponent and (T + 2) u in each exp make each
    probability off by delta + (T + 2) u relative; every block's rescale by the correction
    factor adds (T + 3) u; the denominator sums ``block + blocks`` terms; P is rounded to
    ``p_dtype``; P.V accumulates with the declared accumulator. The output error is that
    relative error times sum_j p_j |v_j|."""
    heads, s_len, hd = q.shape
    groups, n_len, _ = k.shape
    rep = heads // groups
    kk = np.repeat(k, rep, axis=0)
    vv = np.repeat(v, rep, axis=0)
    z = np.matmul(q, kk.transpose(0, 2, 1)) * scale
    qk_abs = np.matmul(np.abs(q), np.abs(kk).transpose(0, 2, 1)) * scale
    if causal:
        i = np.arange(s_len)[:, None]
        j = np.arange(n_len)[None, :]
        mask = j <= i + n_len - s_len
    else:
        mask = np.ones((s_len, n_len), dtype=bool)
    z = np.where(mask, z, -np.inf)
    zmax = z.max(axis=2, keepdims=True)
    p = np.exp(z - zmax)
    p /= p.sum(axis=2, keepdims=True)
    qk, pv = an["qk"], an["pv"]
    t_ulps = TRANSCENDENTAL_ULPS
    g_qk = gamma([(math.ceil(hd / qk.block), qk.acc)])
    zf = np.where(mask, np.abs(z), 0.0)
    delta = np.max(np.where(mask, g_qk * qk_abs + u * (2 * zf + np.abs(zmax)), 0.0),
                   axis=2, keepdims=True)
    blocks = math.ceil(n_len / block)
    g_pv = gamma([(blocks * math.ceil(block / pv.block) + blocks, pv.acc)])
    u_p = get_format(an["p_dtype"]).unit_roundoff()
    rel = (2 * (delta + (t_ulps + 2) * u) + 2 * blocks * (t_ulps + 3) * u
           + (block + blocks + 2) * u + u_p + g_pv)
    return rel * np.matmul(p, np.abs(vv)) * 1.01
