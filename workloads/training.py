"""Trace one training (fine-tuning) step: forward, backward, optional recompute, optimizer step.

The forward pass is the tracer's prefill layer over ``batch x seq`` tokens (every token's logits
and loss). The backward pass visits the layers in reverse; each contraction ``Z = A * B`` gives
two contractions of the same FLOPs, ``dA = dZ * B`` and ``dB = A * dZ`` (for a weight ``B`` the
second is the weight gradient); a vector op's backward reads its inputs and the output gradient
and writes the input gradient (counted as its forward's work again); a tensor-parallel
all-reduce has its conjugate in the backward pass. With activation checkpointing
(``recompute``) a layer's forward ops run again right before its backward. After a layer's
backward its gradients are complete and its parameters' optimizer step (AdamW,
:func:`workloads.optimizer.adam_step`) may run — on the GPU, or on the host CPU
(``where="cpu"``) under ZeRO-Offload, streaming the fp32 master weights, momentum and variance
(``tensors=("optimizer", "gradients")``) from wherever the placement put them. The step's ops
form one dependency chain on the device; optimizer steps hang off it, so the next layer's
backward does not wait for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workloads.einsum import Cascade, Einsum, TensorRef, contraction
from workloads.errors import WorkloadError
from workloads.models import ModelConfig
from workloads.optimizer import adam_step
from workloads.scenario import Scenario
from workloads.trace import COLLECTIVE, MATMUL, Op, Trace, op_work
from workloads.tracer import LayerBuilder, OpTemplate

OFFLOADS = ("none", "optimizer", "full")


@dataclass(frozen=True)
class Training:
    """How the step runs. ``offload``: ``none`` (everything on the GPU), ``optimizer``
    (ZeRO-Offload: fp32 optimizer states and the optimizer step on the host CPU, gradients to
    the host, updated fp16 weights back) or ``full`` (ZeRO-3-Offload: also the fp16 weights live
    on the host and are fetched per layer). ``grad_dtype`` is the gradients' datatype."""

    recompute: bool = False
    offload: str = "optimizer"
    grad_dtype: str = "fp16"
    overlap_optimizer: bool = False

    def __post_init__(self) -> None:
        if self.offload not in OFFLOADS:
            raise WorkloadError("", "--offload", f"expected one of {', '.join(OFFLOADS)}, got "
                                                 f"'{self.offload}'")


def _grad(t: TensorRef) -> TensorRef:
    role = "gradient" if t.role == "weight" else "activation"
    return TensorRef(f"d{t.name}", t.ranks, t.dtype, role)


def _backward(tpl: OpTemplate) -> list[OpTemplate]:
    """The backward ops of one forward op (see the module docstring)."""
    comp = tpl.compute
    if tpl.kind == COLLECTIVE:
        return [OpTemplate(f"{tpl.name}.bwd", tpl.kind, tpl.op_class, None, tpl.collective)]
    if tpl.kind == MATMUL and isinstance(comp, Einsum) and comp.is_contraction:
        a, b = comp.inputs
        dz = _grad(comp.output)
        sizes = comp.size
        da = contraction(f"{comp.name}.da", _grad(a), dz, b, sizes)
        db = contraction(f"{comp.name}.db", _grad(b), a, dz, sizes)
        wgrad = b.role == "weight"
        return [OpTemplate(f"{tpl.name}.dx" if wgrad else f"{tpl.name}.da", MATMUL,
                           tpl.op_class, da),
                OpTemplate(f"{tpl.name}.dw" if wgrad else f"{tpl.name}.db", MATMUL,
                           tpl.op_class, db)]
    return [OpTemplate(f"{tpl.name}.bwd", tpl.kind, tpl.op_class, comp)]


def layer_params(templates: list[OpTemplate]) -> int:
    """Parameters (weight elements) one device holds for the ops of ``templates``."""
    seen: dict[str, int] = {}
    for tpl in templates:
        comp = tpl.compute
        if comp is None:
            continue
        for e in (comp.einsums if isinstance(comp, Cascade) else (comp,)):
            for t in e.inputs:
                if t.role == "weight":
                    seen.setdefault(t.name, t.elements(e.size))
    return sum(seen.values())


class _Chain:
    """Ops with ids: a main dependency chain and side ops that hang off it."""

    def __init__(self, tp: int):
        self.ops: list[Op] = []
        self.tp = tp
        self.prev = -1

    def add(self, tpl: OpTemplate, phase: str, layer: int, tokens: int, requests: int,
            side: bool = False, where: str = "", tensors: tuple[str, ...] = (),
            deps: tuple[int, ...] | None = None) -> int:
        shards = 1 if tpl.kind == COLLECTIVE or where else self.tp
        flops, nbytes = op_work(tpl.compute, tpl.collective, shards)
        i = len(self.ops)
        if deps is None:
            deps = (self.prev,) if self.prev >= 0 else ()
        self.ops.append(Op(i, tpl.name, tpl.kind, phase, layer, 0, tpl.compute, shards, deps,
                           tpl.collective, tokens, requests, "", tpl.op_class, flops, nbytes,
                           0, -1, where, tensors))
        if not side:
            self.prev = i
        return i


def trace_training(model: ModelConfig, scenario: Scenario, training: Training) -> Trace:
    """One training step on ``scenario.batch`` sequences of ``scenario.prompt_len`` tokens."""
    if scenario.attention != "unfused":
        raise WorkloadError("", "--attention", "training traces use unfused attention (the "
                                               "backward of a fused kernel is not modelled)")
    if scenario.pp > 1 or scenario.microbatches > 1 or scenario.ep > 1:
        raise WorkloadError("", "--mode", "finetune runs one device group: --pp, "
                                          "--microbatches and --ep must be 1")
    if model.recurrent or model.blocks:
        what = "has layers of different widths" if model.block_widths else \
            "mixes recurrent (Mamba, Gated DeltaNet) and attention layers"
        raise WorkloadError("", "--model", f"{model.name} {what}: fine-tuning traces "
                                           "attention layers only, all alike")
    builder = LayerBuilder(model, scenario)
    b, s = scenario.batch, scenario.prompt_len
    t = b * s
    layer = builder.layer(b, s, s)
    embed = builder.embedding(t)
    head = builder.head(t)            # logits of every token: the loss needs them all
    chain = _Chain(scenario.tp)
    where = "cpu" if training.offload in ("optimizer", "full") else ""
    for tpl in embed:
        chain.add(tpl, "forward", -1, t, b)
    for i in range(model.n_layers):
        for tpl in layer:
            chain.add(tpl, "forward", i, t, b)
    for tpl in head:
        chain.add(tpl, "forward", model.n_layers, t, b)
    ready: list[tuple[list[OpTemplate], int, int]] = []   # (templates, layer, grads ready)
    for tpl in reversed(head):
        for bwd in _backward(tpl):
            chain.add(bwd, "backward", model.n_layers, t, b)
    ready.append((head, model.n_layers, chain.prev))
    for i in reversed(range(model.n_layers)):
        if training.recompute:
            for tpl in layer:
                chain.add(tpl, "recompute", i, t, b)
        for tpl in reversed(layer):
            for bwd in _backward(tpl):
                chain.add(bwd, "backward", i, t, b)
        ready.append((layer, i, chain.prev))
    for tpl in embed:
        for bwd in _backward(tpl):
            chain.add(bwd, "backward", -1, t, b)
    ready.append((embed, -1, chain.prev))
    # the embedding gathers rows of its table: its parameters are the whole table, split over
    # the tensor-parallel devices like the vocabulary
    table = math.ceil(model.embedding_params() / scenario.tp)
    for templates, i, grads in ready:
        # deps[0]: the op after which this layer's gradients are complete
        deps = (grads,) if training.overlap_optimizer else (grads, chain.prev)
        n = table if i == -1 else layer_params(templates)
        if where:   # the host updates every tensor-parallel device's shard
            n *= scenario.tp
        _optimizer(chain, n, i, where, training, tuple(dict.fromkeys(deps)))
    return Trace(chain.ops, model, scenario, {"phases": ("training",), "training": training})


def _optimizer(chain: _Chain, n: int, layer: int, where: str, training: Training,
               deps: tuple[int, ...]) -> None:
    if n == 0:
        return
    step = adam_step(f"adamw.L{layer}", n, grad_dtype=training.grad_dtype)
    tpl = OpTemplate("optimizer_step", "vector", "optimizer", step)
    chain.add(tpl, "optimizer", layer, 0, 0, side=True, where=where,
              tensors=("optimizer", "gradients"), deps=deps)


def training_memory(model: ModelConfig, scenario: Scenario, training: Training) -> dict[str,
                                                                                      float]:
    """Bytes per device of each tensor class a step needs: fp16 ``weights``, ``gradients``,
    fp32 ``optimizer`` states (master weights, momentum, variance: 12 B per parameter) and
    ``activations`` kept for the backward pass (every forward output of a layer, or with
    recompute only each layer's input)."""
    builder = LayerBuilder(model, scenario)
    b, s = scenario.batch, scenario.prompt_len
    params = model.param_count() / scenario.tp
    w = TensorRef("w", (), scenario.dtype).nbytes({})
    g = TensorRef("g", (), training.grad_dtype).nbytes({})
    layer = builder.layer(b, s, s)
    if training.recompute:
        act = model.n_layers * b * s * model.d_model * w
    else:
        per_layer = 0.0
        for tpl in layer:
            comp = tpl.compute
            if comp is None:
                continue
            outs = comp.einsums if isinstance(comp, Cascade) else (comp,)
            per_layer += sum(e.output.nbytes(e.size) for e in outs
                             if e.output.role != "intermediate")
        act = model.n_layers * per_layer
    return {"weights": params * w, "gradients": params * g, "optimizer": params * 12.0,
            "activations": act}
