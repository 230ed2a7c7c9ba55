"""One decode iteration of an NPU+PIM device, run by the event engine (:mod:`sim.engine`) as the
NeuPIMs artifact stages it.

Per layer a sub-batch needs an NPU (systolic-array) program — QKV generation before its
attention, output projection and FFN after it — and a PIM program, multi-head attention: the
QK^T GEMV, softmax on the NPU's vector units, the PV GEMV (the artifact's
``NeuPIMSLogitSoftmax`` + ``NeuPIMSAttend`` ops; softmax is issued from the PIM program to the
vector units, not to the systolic arrays). Each program is one task of a small trace: NPU
programs on stream ``npu``, PIM programs on stream ``pim``, each sub-batch a dependency chain
``QKV, MHA, Proj/FFN + next QKV, MHA, ...``, tasks in the artifact's stage order
(``src/scheduler/Scheduler.cc``, ``src/StageProgram.cc``):

* one sub-batch: ``QKV | -``, ``- | MHA``, ``Proj/FFN + next QKV | -``, ... — NPU and PIM
  alternate, nothing overlaps (the naive NPU+PIM and NeuPIMs below the interleaving batch);
* two sub-batches (NeuPIMs' sub-batch interleaving): NPU ``QKV#1, QKV#2, Proj/FFN/QKV#1,
  Proj/FFN/QKV#2, ...`` and PIM ``MHA#1, MHA#2, MHA#1, ...``; the chains and the in-order
  streams reproduce the artifact's stage barriers (a stage's two programs depend on exactly
  the previous stage's two).

With single row buffers (``blocked``) a PIM program owns the banks: all tasks run on one
stream, one after another. With dual row buffers the streams share the DRAM as a contended
resource (:class:`sim.resources.SharedBandwidth`): an NPU program moves its DRAM bytes through
it (double-buffered scratchpad: the program's traffic streams under its compute) and a PIM
program reserves the command-bus share it takes (``pim_share``), so an NPU program that
overlaps a PIM program slows to the bandwidth left. Events are per program, never per memory
command; durations come from the device models and the memoised PIM command schedules.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim.devices.base import Cost, Device
from sim.engine import Engine
from sim.system.plan import Plan
from workloads.trace import Op, Trace


@dataclass(frozen=True)
class StageTimes:
    """Per-layer durations (s) and DRAM bytes of one sub-batch's programs."""

    pre: float               # NPU: layer norm + QKV projection
    logit: float             # PIM: QK^T over the sub-batch's KV (slowest channel)
    softmax: float           # NPU vector units (issued by the PIM program)
    attend: float            # PIM: PV
    post: float              # NPU: output projection, residual, norm, FFN, residual
    pre_bytes: float = 0.0   # DRAM bytes the NPU's ``pre`` program moves
    post_bytes: float = 0.0
    pim_share: float = 0.0   # share of the DRAM bandwidth PIM commands take while MHA runs

    @property
    def mha(self) -> float:
        """The PIM program of one layer: logits, softmax, attend."""
        return self.logit + self.softmax + self.attend


@dataclass
class IterationResult:
    """Makespan and busy times of one iteration (s)."""

    seconds: float
    npu_busy: float
    pim_busy: float
    events: int


class ProgramCosts(Device):
    """The 'device' of an iteration's tasks: each task's precomputed cost, by op id."""

    def __init__(self, costs: list[Cost]):  # no arch: costs come from the real device models
        self.costs = costs
        self.fidelity = "tile"
        self._memo = {}

    def estimate(self, op: Op) -> Cost:
        return self.costs[op.id]


@lru_cache(maxsize=64)
def program_trace(layers: int, n_subs: int, blocked: bool) -> tuple[Trace, np.ndarray]:
    """The programs of an iteration of ``layers`` layers and ``n_subs`` sub-batches as ops in
    stage order, and which are PIM programs (bool per op). Their order and dependencies do not
    depend on the durations, so one trace serves every iteration of that shape (the engine
    reads it, never changes it; a serving run makes thousands of iterations)."""
    ops: list[Op] = []
    last: dict[int, int] = {}

    def task(name: str, unit: str, layer: int, sub: int) -> None:
        i = len(ops)
        prev = last.get(sub)
        ops.append(Op(i, name, "program", "decode", layer, 1, None, 1,
                      (prev,) if prev is not None else (), device="npu" if blocked else unit,
                      microbatch=sub, flops=0.0, bytes=0.0))
        last[sub] = i

    for k in range(n_subs):
        task("qkv", "npu", 0, k)
    for layer in range(layers):
        for k in range(n_subs):
            task("mha", "pim", layer, k)
        end = layer == layers - 1
        for k in range(n_subs):
            task("proj_ffn" if end else "proj_ffn_qkv", "npu", layer, k)
    return Trace(ops), np.array([op.name == "mha" for op in ops], dtype=bool)


def _program_costs(layers: int, subs: list[StageTimes], tail_npu: float) -> list[Cost]:
    """Each program's cost, in :func:`program_trace`'s order."""
    costs = [Cost(w.pre, 0.0, "npu", dram_bytes=w.pre_bytes) for w in subs]
    mha = [Cost(w.mha, 0.0, "pim", detail={"memory_share": w.pim_share}) for w in subs]
    mid = [Cost(w.post + w.pre, 0.0, "npu", dram_bytes=w.post_bytes + w.pre_bytes)
           for w in subs]
    for layer in range(layers):
        costs += mha
        costs += mid if layer < layers - 1 else \
            [Cost(w.post + tail_npu, 0.0, "npu", dram_bytes=w.post_bytes) for w in subs]
    return costs


def run_iteration(layers: int, subs: list[StageTimes], blocked: bool, tail_npu: float = 0.0,
                  bandwidth: float = 0.0) -> IterationResult:
    """Simulate ``layers`` layers for one or two sub-batches in ``subs`` on the engine;
    ``tail_npu`` (LM head ...) runs on the NPU once after the last layer of every sub-batch;
    ``bandwidth`` (B/s) is the DRAM's streaming rate the NPU and PIM programs share (needed
    when a sub-batch's ``pim_share`` is positive)."""
    if len(subs) not in (1, 2):
        raise ValueError(f"one or two sub-batches, got {len(subs)}")
    (trace, pim), costs = program_trace(layers, len(subs), blocked), \
        _program_costs(layers, subs, tail_npu)
    dev = ProgramCosts(costs)
    plan = Plan(streams={"npu": dev} if blocked else {"npu": dev, "pim": dev})
    if not blocked and any(w.pim_share > 0 for w in subs):
        if bandwidth <= 0:
            raise ValueError("run_iteration: a PIM share needs the DRAM bandwidth (B/s)")
        plan.resources["dram"] = bandwidth
        plan.memory_of = {"npu": "dram", "pim": "dram"}
    tl = Engine(plan.streams).run(trace, plan)
    busy = tl.end - tl.start
    return IterationResult(seconds=float(tl.end.max()), npu_busy=float(busy[~pim].sum()),
                           pim_busy=float(busy[pim].sum()), events=tl.events)
