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

The limiter reacts after ``gpu.power_reaction``: NVIDIA's in ~0.13 s (the h100 / h200
presets; our H200 trace, validation/h200/h200_power_trace.csv: the clock falls 120-140 ms
into a load), AMD's MI300's within microseconds, "even during the execution of a GPU
kernel" (AMD ROCm blogs, "Understanding Peak, Max-Achievable & Delivered FLOPs, Part 1"). So
a run whose prefill and decode each last longer than that holds each phase to the limit on
its own (:func:`solve_speeds`; a long compute-bound prefill slows, the memory-bound decode
after it may keep its boost clock); a run with a shorter phase is held to the limit as a
whole. One op call longer than it runs at the clock the limit allows for that call
(:func:`reacts_within`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from arch import Arch

#: the search stops when the power is within this many watts of the limit (1 W: 0.14% of
#: 700 W, a speed within ~0.1%, well under the model's error; 2-3 runs)
TOLERANCE_W = 1.0
#: the lowest speed searched (a fraction of the boost clock): a search floor, not a model value.
#: Under load our H200's SM clock never went below 885 MHz (0.45 of boost;
#: validation/h200/h200_gemm_sustained.csv); a limit the work cannot meet at 0.2 of boost is
#: refused (:class:`PowerLimitError`)
MIN_SPEED = 0.2
#: runs one search may take before it settles for the last (2-4 in practice)
MAX_RUNS = 40


class PowerLimitError(ValueError):
    """The work draws more than the power limit even at :data:`MIN_SPEED` of the boost clock."""


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


def reacts_within(arch: Arch, seconds: float) -> bool:
    """Whether the power limit of ``arch``'s GPU applies to work lasting ``seconds``: the model
    applies one (:func:`limits`) and the load outlasts the limiter's reaction
    (``gpu.power_reaction``)."""
    return limits(arch) and seconds > gpu_arch(arch).gpu.power_reaction


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


class _Search:
    """The speed search of one stretch of work (a run, or one phase of it): the time is guessed
    as ``A + B / c`` (a part that does not scale with the SM clock, and a part that does),
    fitted to the boost run and the latest one, the compute energy as the boost run's x
    ``c ** x`` and the rest as the latest run's; the power equation is solved on those forms,
    the work runs there, and the forms are refitted. It stops within :data:`TOLERANCE_W` of
    the limit, or bisects the bracket it has where the guess falls outside it."""

    def __init__(self, dev: Arch, duty: float, boost_run: tuple[float, float, float]):
        self.static, self.limit = dev.energy.static_power, dev.gpu.power_limit
        self.x, self.duty = dev.gpu.dvfs_energy_exponent, duty
        self.t1, self.compute1, self.other = boost_run
        self.boost = board_power(self.static, duty, self.t1, self.compute1 + self.other)
        self.lo, self.hi = MIN_SPEED, 1.0   # power(lo) <= limit < power(hi), as far as known
        self.a, self.b = 0.0, self.t1       # all of the time at the SM clock, at first
        self.c, self.p, self.runs = 1.0, self.boost, 1
        self.done = self.boost <= self.limit

    def guess(self) -> float:
        """The next speed to run at."""
        a, b, o = self.a, self.b, self.other
        c = _root(lambda s: board_power(self.static, self.duty, a + b / s,
                                        self.compute1 * s ** self.x + o) - self.limit,
                  self.lo, self.hi)
        if c <= MIN_SPEED:   # the forms say even the floor is over the limit: try the floor
            return MIN_SPEED
        return c if self.lo < c < self.hi else (self.lo + self.hi) / 2

    def update(self, c: float, seconds: float, compute: float, other: float) -> None:
        """Take in the run at speed ``c`` (a slower clock may pick other tiles: other bytes)."""
        self.c, self.other, self.runs = c, other, self.runs + 1
        self.p = board_power(self.static, self.duty, seconds, compute + other)
        if c <= MIN_SPEED and self.p > self.limit + TOLERANCE_W:
            raise PowerLimitError(
                f"gpu.power_limit: the work draws {self.p:.0f} W even at {MIN_SPEED:.0%} of the "
                f"boost clock (static power {self.static:g} W), over the {self.limit:g} W limit")
        if abs(self.p - self.limit) <= TOLERANCE_W or self.runs >= MAX_RUNS or \
                self.hi - self.lo <= 1e-9:
            self.done = True
            return
        if self.p > self.limit:
            self.hi = c
        else:
            self.lo = c
        self.b = (seconds - self.t1) / (1.0 / c - 1.0)
        self.a = self.t1 - self.b

    def state(self) -> CapState:
        return CapState(self.c, self.boost, self.p, self.runs)


def solve_speed(arch: Arch, run: Callable[[float], tuple[float, float, float]],
                duty: float = 1.0) -> CapState:
    """The speed at which a board's power meets the limit of ``arch``'s GPU (1.0 where it is
    below): ``run(c)`` gives ``(seconds, compute J, other J)`` of the work on
    ``at_speed(arch, c)`` (:class:`_Search`; a handful of runs)."""
    search = _Search(gpu_arch(arch), duty, run(1.0))
    while not search.done:
        c = search.guess()
        search.update(c, *run(c))
    return search.state()


def solve_speeds(arch: Arch, run: Callable[[dict[str, float]], dict[str, tuple]],
                 phases: tuple[str, ...]) -> dict[str, CapState]:
    """:func:`solve_speed` for several phases of one run at once, each held to the limit on
    its own (phases that follow each other, each longer than the limiter's reaction):
    ``run(speeds)`` gives each phase's ``(seconds, compute J, other J)`` with phase ``p`` at
    ``speeds[p]``. Every run moves each unsettled phase to its next guess."""
    dev = gpu_arch(arch)
    speeds = {p: 1.0 for p in phases}
    first = run(dict(speeds))
    searches = {p: _Search(dev, 1.0, first[p]) for p in phases}
    while not all(s.done for s in searches.values()):
        for p, s in searches.items():
            if not s.done:
                speeds[p] = s.guess()
        got = run(dict(speeds))
        for p, s in searches.items():
            if not s.done:
                s.update(speeds[p], *got[p])
    return {p: s.state() for p, s in searches.items()}


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
