"""One decode iteration of an NPU+PIM device as an event-driven run (SimPy), staged as the
NeuPIMs artifact stages it.

Per layer a sub-batch needs an NPU (systolic-array) program — QKV generation before its
attention, output projection and FFN after it — and a PIM program, multi-head attention: the
QK^T GEMV, softmax on the NPU's vector units, the PV GEMV (the artifact's
``NeuPIMSLogitSoftmax`` + ``NeuPIMSAttend`` ops; softmax is issued from the PIM program to the
vector units, not to the systolic arrays). As in the artifact's scheduler
(``src/scheduler/Scheduler.cc``, ``src/StageProgram.cc``), the iteration is a sequence of
*stages*; each stage runs one NPU program and one PIM program concurrently and ends when both
have finished (``Scheduler::cycle`` makes the next programs only when both are done):

* one sub-batch: ``QKV | -``, ``- | MHA``, ``Proj/FFN + next QKV | -``, ... — NPU and PIM
  alternate, nothing overlaps (the naive NPU+PIM and NeuPIMs below the interleaving batch);
* two sub-batches (NeuPIMs' sub-batch interleaving): ``A: QKV#1 | -``, ``B: QKV#2 | MHA#1``,
  then per layer ``C: Proj/FFN/QKV#1 | MHA#2`` and ``D: Proj/FFN/QKV#2 | MHA#1``, and finally
  ``E: Proj/FFN#1 | MHA#2``, ``F: Proj/FFN#2 | -``.

With single row buffers (``blocked``) a PIM program owns the banks, so a stage's NPU and PIM
programs run one after the other. With dual row buffers they overlap, and while the PIM program
runs the NPU program progresses at its command-bus-contended rate (``*_contended`` durations):
an NPU program of uncontended duration ``S`` and fully contended duration ``Sc`` that overlaps
a PIM program of duration ``P < Sc`` takes ``P + (1 - P/Sc) S``.

Events are per stage (two per stage), never per memory command; durations come from the device
models and the memoised PIM command schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy


@dataclass(frozen=True)
class StageTimes:
    """Per-layer durations (s) of one sub-batch's programs."""

    pre: float               # NPU: layer norm + QKV projection
    logit: float             # PIM: QK^T over the sub-batch's KV (slowest channel)
    softmax: float           # NPU vector units (issued by the PIM program)
    attend: float            # PIM: PV
    post: float              # NPU: output projection, residual, norm, FFN, residual
    pre_contended: float = 0.0
    post_contended: float = 0.0

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


def _npu_under_pim(s: float, s_contended: float, p: float) -> float:
    """Duration of an NPU program (``s`` alone, ``s_contended`` when PIM runs throughout)
    that overlaps a PIM program of ``p`` seconds started at the same time."""
    sc = max(s_contended, s)
    if p <= 0.0 or sc <= s:
        return s
    if p >= sc:
        return sc
    return p + (1.0 - p / sc) * s


def _stages(layers: int, subs: list[StageTimes],
            tail_npu: float) -> list[tuple[float, float, float]]:
    """The artifact's stage sequence as ``(npu s, npu contended s, pim s)`` triples."""
    out: list[tuple[float, float, float]] = []
    if len(subs) == 1:
        w = subs[0]
        out.append((w.pre, w.pre_contended, 0.0))
        for layer in range(layers):
            out.append((0.0, 0.0, w.mha))
            last = layer == layers - 1
            npu = w.post + (tail_npu if last else w.pre)
            npu_c = w.post_contended + (tail_npu if last else w.pre_contended)
            out.append((npu, npu_c, 0.0))
        return out
    a, b = subs
    out.append((a.pre, a.pre_contended, 0.0))                      # A
    out.append((b.pre, b.pre_contended, a.mha))                    # B
    for layer in range(layers):
        last = layer == layers - 1
        # C (E on the last layer): sub-batch 1's projection/FFN (+ next QKV) | MHA#2
        out.append((a.post + (tail_npu if last else a.pre),
                    a.post_contended + (tail_npu if last else a.pre_contended), b.mha))
        # D (F on the last layer): sub-batch 2's projection/FFN (+ next QKV) | MHA#1 (next)
        out.append((b.post + (tail_npu if last else b.pre),
                    b.post_contended + (tail_npu if last else b.pre_contended),
                    0.0 if last else a.mha))
    return out


def run_iteration(layers: int, subs: list[StageTimes], blocked: bool,
                  tail_npu: float = 0.0) -> IterationResult:
    """Simulate ``layers`` layers for one or two sub-batches in ``subs``; ``tail_npu`` (LM
    head ...) runs on the NPU once after the last layer of every sub-batch."""
    if len(subs) not in (1, 2):
        raise ValueError(f"one or two sub-batches, got {len(subs)}")
    env = simpy.Environment()
    busy = {"npu": 0.0, "pim": 0.0, "events": 0}

    def unit(kind: str, d: float):
        busy[kind] += d
        busy["events"] += 1
        yield env.timeout(d)

    def stages():
        for s, s_c, p in _stages(layers, subs, tail_npu):
            if blocked:
                yield env.process(unit("pim", p))
                yield env.process(unit("npu", s))
                continue
            d_npu = _npu_under_pim(s, s_c, p)
            jobs = [env.process(unit("npu", d_npu))] if d_npu > 0 else []
            if p > 0:
                jobs.append(env.process(unit("pim", p)))
            if jobs:
                yield env.all_of(jobs)

    env.process(stages())
    env.run()
    return IterationResult(seconds=float(env.now), npu_busy=busy["npu"], pim_busy=busy["pim"],
                           events=int(busy["events"]))
