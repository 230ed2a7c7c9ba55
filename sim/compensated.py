"""pandas' compensated group sums as one plain loop: run as it is on Python lists (a report's
small tables, :func:`sim.report.tables.group_sum`) and compiled by numba on arrays
(:data:`sim.group_kernel.compensated_sums`, built ahead of time with the engine's loops) - the
same float operations in the same order either way."""

from __future__ import annotations


def compensated_sums(ids, values, sums, comp) -> None:
    """``sums[g]`` += each ``values[i]`` of group ``g = ids[i]`` (``-1``: left out; NaN values
    skipped), row by row, Kahan-compensated as pandas' ``groupby(...).sum()`` adds (``comp``:
    each group's compensation, zeros to start). ``ids`` and ``values`` of one length; lists or
    arrays."""
    for i in range(len(ids)):
        g = ids[i]
        x = values[i]
        if g < 0 or x != x:
            continue
        s = sums[g]
        y = x - comp[g]
        t = s + y
        c = t - s - y
        comp[g] = 0.0 if c != c else c
        sums[g] = t
