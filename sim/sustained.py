"""Work run back to back under its GPU's power limit: its cost at the clock the limit allows.

``xpusim op --duty D``, the fits of ``xpusim validate --fit`` and the suites over our measured
rows price work that runs a ``D`` fraction of the time, back to back, for longer than the limiter
takes to react (``gpu.power_reaction``; ``xpusim op`` without ``--duty`` also prices one call
that outlasts it this way): :func:`sim.gpu.power_cap.solve_speed` over the work on
:func:`sim.gpu.power_cap.at_speed`'s arch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from arch import Arch
from sim.devices.base import Cost, Device, SimError, device_for
from sim.gpu.power_cap import CapState, PowerLimitError, at_speed, limits, solve_speed
from workloads.trace import Op


def at_limit(arch: Arch, work: Callable[[Device], tuple], duty: float = 1.0,
             fidelity: str = "tile") -> tuple[tuple, CapState | None]:
    """``work``'s result on ``arch`` at the speed its power limit allows at ``duty``, and where
    the limiter settles (None, and the boost result, for a device whose limit the model does
    not apply). ``work(device)`` gives ``(seconds, compute J, other dynamic J, ...)``."""
    seen: dict[float, tuple] = {}

    def result(c: float) -> tuple:
        if c not in seen:
            seen[c] = work(device_for(at_speed(arch, c), fidelity))
        return seen[c]

    if not limits(arch):
        return result(1.0), None
    try:
        state = solve_speed(arch, lambda c: result(c)[:3], duty)
    except PowerLimitError as exc:
        raise SimError(f"{arch.origin or arch.name}: {exc}") from None
    return result(state.speed), state


def ops_work(ops: Sequence[Op]) -> Callable[[Device], tuple[float, float, float, list[Cost]]]:
    """:func:`at_limit`'s ``work`` for ops run one after another (a benchmark's iteration:
    a cache flush, a reset, the timed kernel): their seconds, compute J and other J summed,
    and each op's cost."""
    def work(dev: Device) -> tuple[float, float, float, list[Cost]]:
        costs = [dev.estimate(op) for op in ops]
        compute = sum(c.energy.get("compute", 0.0) for c in costs)
        return (sum(c.latency for c in costs), compute,
                sum(sum(c.energy.values()) for c in costs) - compute, costs)
    return work


def op_work(op: Op) -> Callable[[Device], tuple[float, float, float, Cost]]:
    """:func:`at_limit`'s ``work`` for one op: seconds, compute J, other J and the cost
    (:func:`ops_work` of the one op: the same sums)."""
    of_ops = ops_work((op,))

    def work(dev: Device) -> tuple[float, float, float, Cost]:
        seconds, compute, other, costs = of_ops(dev)
        return seconds, compute, other, costs[0]
    return work


def sustained_cost(arch: Arch, op: Op, duty: float = 1.0,
                   fidelity: str = "tile") -> tuple[Cost, CapState | None]:
    """``op``'s cost run back to back a ``duty`` fraction of the time on ``arch``, and where the
    limiter settles (:func:`at_limit`)."""
    got: Any
    got, state = at_limit(arch, op_work(op), duty, fidelity)
    return got[3], state
