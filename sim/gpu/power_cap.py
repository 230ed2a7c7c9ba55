"""Clocks under a board power limit (DVFS): how far a power-limited GPU slows down.

A GPU's power limiter lowers the SM clock, and its voltage, until the board's average power is
at most ``gpu.power_limit``. The model runs the work at speed ``c``, the fraction of the boost
clock: the SM clock, every tensor rate and the CUDA-core rates scale with ``c``. :func:`at_speed`
builds that arch, and the same engine runs on it. The work then takes ``T(c)``, and the board
draws

    P(c) = static + duty x (E_compute(c) + E_other) / T(c),   E_compute(c) = E_compute(1) c^x

* ``E_compute`` is the compute energy, at the boost clock for ``c = 1``.
* ``E_other`` is the memory and link energy: the HBM and the links keep their clocks (a slower
  SM clock can still pick other GEMM tiles, which move other bytes: each run's own is used).
* ``x`` is ``gpu.dvfs_energy_exponent``: the energy per FLOP falls with the voltage.
* ``duty`` is the fraction of wall time the work runs: 1 for a run, or for kernels back to back.

If ``P(1)`` is at most the limit, the GPU keeps its boost clock. Otherwise :func:`solve_speed`
finds the ``c`` at which ``P(c)`` equals the limit.

The model holds the whole run to its average power. NVIDIA's limiter reacts in ~0.13 s (our H200
trace, validation/h200/h200_power_trace.csv: the clock falls 120-140 ms into a load). A run whose
phases differ in power for longer than that, such as a long compute-bound prefill before a
memory-bound decode, is slowed evenly here; the GPU would slow the prefill more.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from arch import Arch

#: the search stops when the power is within this many watts of the limit
TOLERANCE_W = 0.1
#: the lowest speed searched (a fraction of the boost clock)
MIN_SPEED = 0.2


@dataclass(frozen=True)
class CapState:
    """Where the limiter settles: ``speed`` (1.0: the boost clock), the average board power at
    the boost clock and at ``speed`` (W), and how many runs the search took."""

    speed: float
    boost_power: float
    power: float
    runs: int


def gpu_arch(arch: Arch) -> Arch:
    """The arch of the device that runs the model: ``arch`` itself, or a system's primary
    device component."""
    if arch.type != "system":
        return arch
    from arch.topology_view import primary_component

    return arch.sections["components"][primary_component(arch)].device


def limits(arch: Arch) -> bool:
    """Whether the device running the model on ``arch`` (one GPU, or a system's GPUs) is a GPU
    whose power limit the model applies."""
    dev = gpu_arch(arch)
    return dev is not None and dev.type == "gpu" and dev.has("energy") and \
        dev.gpu.power_limit > 0


def on_gpu(arch: Arch, change: Callable[[Arch], Arch]) -> Arch:
    """``arch`` with ``change`` applied to the device that runs the model (a system's primary
    device component, or ``arch`` itself); ``arch`` is left as it was."""
    if arch.type != "system":
        return change(arch)
    from arch.topology_view import primary_component

    name = primary_component(arch)
    comps = dict(arch.sections["components"])
    comp = copy.copy(comps[name])
    comp.device = change(comp.device)
    comps[name] = comp
    return arch.replace(components=comps)


def with_power_limit(arch: Arch, watts: float) -> Arch:
    """``arch`` with its GPU's power limit set to ``watts`` (0: the boost clock always)."""
    return on_gpu(arch, lambda a: a.replace(gpu=dataclasses.replace(a.gpu, power_limit=watts)))


def at_speed(arch: Arch, speed: float) -> Arch:
    """``arch`` with its GPU's SM clock, tensor rates (through ``tensor_efficiency``, the peaks
    stay the datasheet's) and CUDA-core rates at ``speed`` x boost, and its energy per FLOP at
    ``speed ** gpu.dvfs_energy_exponent`` x the boost value (memories and links unchanged); for
    a system, its primary device component's GPUs."""
    if speed == 1.0:
        return arch

    def slow(a: Arch) -> Arch:
        g, e = a.gpu, a.energy
        gpu = dataclasses.replace(
            g, clock=g.clock * speed, tensor_efficiency=g.tensor_efficiency * speed,
            tensor_efficiency_by_dtype={k: v * speed
                                        for k, v in g.tensor_efficiency_by_dtype.items()},
            vector_flops={k: v * speed for k, v in g.vector_flops.items()})
        scale = speed ** g.dvfs_energy_exponent
        energy = dataclasses.replace(e, compute={k: v * scale for k, v in e.compute.items()})
        return a.replace(gpu=gpu, energy=energy)
    return on_gpu(arch, slow)


def board_power(static: float, duty: float, seconds: float, dynamic_j: float) -> float:
    """Average board power (W) of work taking ``seconds`` and ``dynamic_j`` joules beyond the
    static power, run a ``duty`` fraction of the time."""
    return static + duty * dynamic_j / seconds


def solve_speed(arch: Arch, run: Callable[[float], tuple[float, float, float]],
                duty: float = 1.0) -> CapState:
    """The speed at which a board's power meets the limit of ``arch``'s GPU (1.0 where it is
    below).

    ``run(c)`` gives ``(seconds, compute J, other J)`` of the work on ``at_speed(arch, c)``. The
    search guesses the time as ``A + B / c`` (a part that does not scale with the SM clock, and
    a part that does), fitted to the boost run and the latest one, the compute energy as the
    boost run's x ``c ** x`` and the rest as the latest run's. It solves the power equation on
    those forms, runs there, and refits. It stops within :data:`TOLERANCE_W` of the limit, or
    bisects the bracket it has where the guess falls outside it."""
    dev = gpu_arch(arch)
    static, limit, x = dev.energy.static_power, dev.gpu.power_limit, dev.gpu.dvfs_energy_exponent
    t1, compute1, other = run(1.0)
    boost = board_power(static, duty, t1, compute1 + other)
    if boost <= limit:
        return CapState(1.0, boost, boost, 1)
    lo, hi = MIN_SPEED, 1.0          # power(lo) <= limit < power(hi), as far as known
    a, b = 0.0, t1                   # time = a + b / c: all of it at the SM clock, at first
    c, p, runs = 1.0, boost, 1
    while runs < 40 and hi - lo > 1e-9:
        guess = _root(lambda s, a=a, b=b, o=other: board_power(
            static, duty, a + b / s, compute1 * s ** x + o) - limit, lo, hi)
        c = guess if lo < guess < hi else (lo + hi) / 2
        seconds, compute, other = run(c)     # a slower clock may pick other tiles: other bytes
        p, runs = board_power(static, duty, seconds, compute + other), runs + 1
        if abs(p - limit) <= TOLERANCE_W:
            break
        if p > limit:
            hi = c
        else:
            lo = c
        b = (seconds - t1) / (1.0 / c - 1.0)
        a = t1 - b
    return CapState(c, boost, p, runs)


def _root(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Where the increasing ``f`` crosses 0 in ``[lo, hi]`` (an end if it does not)."""
    if f(lo) >= 0:
        return lo
    if f(hi) <= 0:
        return hi
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2
