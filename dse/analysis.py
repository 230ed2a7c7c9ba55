"""Analysis of sweep results: Pareto fronts, best points and sensitivities.

Objectives are given as ``[(metric, "min"|"max"), ...]`` (or :class:`dse.spec.Objective`s).
Only feasible points (``status == "ok"``) take part.

Sensitivity is a variance decomposition: the first-order index of parameter ``x`` for objective
``y`` is ``S = Var(E[y | x]) / Var(y)``, the share of the variance of ``y`` explained by ``x``
alone (Sobol's first-order index). ``E[y | x]`` is the mean of ``y`` over the points that share a
value of ``x`` (continuous parameters with more than ``bins`` distinct values are cut into
``bins`` quantile bins). On a full grid this is exactly the main-effect share of a functional
ANOVA; on random or Latin-hypercube samples it is the usual binned estimator. ``1 - sum(S)`` is
the share left to interactions between parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd


def _objectives(objectives: Iterable[Any]) -> list[tuple[str, str]]:
    out = []
    for o in objectives:
        if hasattr(o, "metric"):
            out.append((o.metric, o.goal))
        elif isinstance(o, str):
            out.append((o, "min"))
        else:
            out.append((str(o[0]), str(o[1])))
    return out


def feasible(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose status is ``ok``."""
    return df[df["status"] == "ok"] if "status" in df else df


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """True for the rows of ``values`` (n x k, all minimised) that no other row dominates."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.lexsort(values.T[::-1])  # lexicographic: an earlier row is never dominated
    front: list[int] = []              # by a later one
    for i in order:
        v = values[i]
        if front:
            f = values[front]
            if np.any(np.all(f <= v, axis=1) & np.any(f < v, axis=1)):
                continue
        front.append(i)
    mask[front] = True
    return mask


def pareto_front(df: pd.DataFrame, objectives: Sequence[Any]) -> pd.DataFrame:
    """Feasible non-dominated points over the objectives, sorted by the first objective."""
    objs = _objectives(objectives)
    ok = feasible(df).dropna(subset=[m for m, _ in objs])
    signs = np.array([1.0 if g == "min" else -1.0 for _, g in objs])
    mask = pareto_mask(ok[[m for m, _ in objs]].to_numpy(dtype=float) * signs)
    front = ok[mask]
    return front.sort_values([m for m, _ in objs], ascending=[g == "min" for _, g in objs],
                             kind="stable")


def best_points(df: pd.DataFrame, objectives: Sequence[Any], n: int = 5) -> pd.DataFrame:
    """The ``n`` best feasible points for each objective, with a column naming the objective."""
    parts = []
    for metric, goal in _objectives(objectives):
        ok = feasible(df).dropna(subset=[metric])
        top = ok.sort_values(metric, ascending=goal == "min", kind="stable").head(n).copy()
        top.insert(0, "best_for", f"{goal} {metric}")
        parts.append(top)
    return pd.concat(parts, ignore_index=True) if parts else df.head(0)


def knee_point(df: pd.DataFrame, objectives: Sequence[Any]) -> pd.Series | None:
    """The Pareto point closest to the utopia point after scaling each objective to [0, 1]."""
    objs = _objectives(objectives)
    front = pareto_front(df, objs)
    if front.empty:
        return None
    vals = front[[m for m, _ in objs]].to_numpy(dtype=float)
    signs = np.array([1.0 if g == "min" else -1.0 for _, g in objs])
    vals = vals * signs
    lo, hi = vals.min(axis=0), vals.max(axis=0)
    scaled = (vals - lo) / np.where(hi > lo, hi - lo, 1.0)
    return front.iloc[int(np.argmin(np.linalg.norm(scaled, axis=1)))]


def first_order_index(x: pd.Series, y: pd.Series, bins: int = 10) -> float:
    """``Var(E[y|x]) / Var(y)`` with ``x`` grouped by value (or quantile bins)."""
    y = y.astype(float)
    total = float(y.var(ddof=0))
    if not np.isfinite(total) or total <= 0 or len(y) < 2:
        return 0.0
    groups = x
    if x.nunique() > bins and pd.api.types.is_numeric_dtype(x):
        groups = pd.qcut(x.astype(float), q=bins, duplicates="drop")
    stats = y.groupby(groups, observed=True).agg(["mean", "size"])
    between = float((stats["size"] * (stats["mean"] - y.mean()) ** 2).sum() / len(y))
    return min(max(between / total, 0.0), 1.0)


def sensitivity(df: pd.DataFrame, params: Sequence[str], objectives: Sequence[Any],
                bins: int = 10) -> pd.DataFrame:
    """First-order indices: one row per parameter, one column per objective metric."""
    ok = feasible(df)
    out = {}
    for metric, _ in _objectives(objectives):
        sub = ok.dropna(subset=[metric])
        out[metric] = [first_order_index(sub[p], sub[metric], bins) if p in sub and
                       sub[p].nunique() > 1 else 0.0 for p in params]
    return pd.DataFrame(out, index=list(params))
