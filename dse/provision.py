"""Provisioning search: cluster mixes under a cost or power budget, and the highest request
rate a cluster sustains within its SLOs (Splitwise §VI's iso-cost / iso-power designs).

Generic over what a machine is: a mix is a tuple of machine counts; ``evaluate(mix)`` returns a
figure of merit (e.g. the rate at SLO); :func:`best_mix` keeps the best. :func:`max_rate`
bisects the request rate geometrically on a pass/fail run (the SLO check of one simulation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable


def mixes(unit_budget: list[float], budget: float, minimum: int = 1) -> list[tuple[int, ...]]:
    """Every maximal mix of machine counts (each >= ``minimum``) whose summed ``unit_budget``
    (cost or power per machine) stays within ``budget``: no further machine of any type fits."""
    out: list[tuple[int, ...]] = []
    eps = 1e-9 * max(budget, 1.0)

    def rec(i: int, left: float, acc: tuple[int, ...]) -> None:
        if i == len(unit_budget):
            if all(left + eps < u for u in unit_budget):
                out.append(acc)
            return
        n = minimum
        while n * unit_budget[i] <= left + eps:
            rec(i + 1, left - n * unit_budget[i], acc + (n,))
            n += 1

    rec(0, budget, ())
    return out


def max_rate(passes: Callable[[float], bool], lo: float, hi: float, steps: int = 7,
             grow: int = 6) -> float:
    """Highest rate (req/s) at which ``passes(rate)`` holds, by geometric bisection between
    ``lo`` and ``hi`` (``steps`` halvings of the log interval; 0 when even ``lo`` fails).
    When ``hi`` passes too, the bracket doubles upward (at most ``grow`` times; then ``hi``
    is returned as a lower bound)."""
    if not passes(lo):
        return 0.0
    for _ in range(grow + 1):
        if not passes(hi):
            break
        lo, hi = hi, hi * 2
    else:
        return lo
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return lo


def best_mix(candidates: Iterable[tuple[int, ...]],
             evaluate: Callable[[tuple[int, ...]], float]) -> tuple[tuple[int, ...], float,
                                                                     list[tuple]]:
    """(best mix, its value, every (mix, value)) over ``candidates``."""
    table = [(mix, float(evaluate(mix))) for mix in candidates]
    if not table:
        raise ValueError("no mix fits the budget")
    best = max(table, key=lambda row: row[1])
    return best[0], best[1], table
