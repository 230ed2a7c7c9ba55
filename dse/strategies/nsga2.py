"""NSGA-II (Deb et al., IEEE TEVC 2002) over the unit-cube encoding of the axes.

Generation 1 is a Latin hypercube of ``population`` points; each later generation breeds
``population`` children by binary tournament (rank, then crowding distance), simulated binary
crossover (SBX, ``crossover_eta``) and polynomial mutation (``mutation_eta``, rate 1/d), and keeps
the best ``population`` of parents and children by non-dominated rank and crowding distance.
Constraints follow Deb's feasibility rule: every feasible point ranks before every infeasible one.
Genotypes stay continuous (so mutation can drift across the bins of a list axis); a child's
point takes the axes' values, and a child equal to a known point reuses its record instead of
being simulated again. Deterministic for the seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dse.space import decode
from dse.strategies import Strategy
from dse.strategies.sampling import latin_hypercube


def objective_matrix(records: list[dict], objectives) -> tuple[np.ndarray, np.ndarray]:
    """(F: n x k values to minimise, feasible: n bools) from point records."""
    F = np.full((len(records), len(objectives)), np.inf)
    feasible = np.zeros(len(records), dtype=bool)
    for i, rec in enumerate(records):
        if rec["status"] != "ok":
            continue
        row = []
        for o in objectives:
            v = rec["metrics"].get(o.metric, rec["params"].get(o.metric))
            row.append(o.sign * float(v) if v is not None else np.inf)
        F[i] = row
        feasible[i] = bool(np.all(np.isfinite(F[i])))
    return F, feasible


def non_dominated_sort(F: np.ndarray) -> np.ndarray:
    """Front index of each row of ``F`` (0 = non-dominated), minimising every column."""
    n = len(F)
    rank = np.full(n, -1)
    if n == 0:
        return rank
    le = np.all(F[:, None, :] <= F[None, :, :], axis=2)
    lt = np.any(F[:, None, :] < F[None, :, :], axis=2)
    dominates = le & lt  # dominates[i, j]: i dominates j
    count = dominates.sum(axis=0)
    front = np.flatnonzero(count == 0)
    r = 0
    while front.size:
        rank[front] = r
        count = count - dominates[front].sum(axis=0)
        count[rank >= 0] = -1
        front = np.flatnonzero(count == 0)
        r += 1
    return rank


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """Crowding distance of each row within one front (boundary points get infinity)."""
    n, k = F.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        order = np.argsort(F[:, j], kind="stable")
        span = F[order[-1], j] - F[order[0], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (F[order[2:], j] - F[order[:-2], j]) / span
    return dist


def rank_and_crowd(F: np.ndarray, feasible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (infeasible after every feasible front) and crowding distance of every row."""
    rank = np.zeros(len(F), dtype=int)
    crowd = np.zeros(len(F))
    ok = np.flatnonzero(feasible)
    if ok.size:
        rank[ok] = non_dominated_sort(F[ok])
        for r in np.unique(rank[ok]):
            members = ok[rank[ok] == r]
            crowd[members] = crowding_distance(F[members])
    bad = np.flatnonzero(~feasible)
    rank[bad] = (rank[ok].max() + 1) if ok.size else 0
    return rank, crowd


class NSGA2(Strategy):
    """Multi-objective evolutionary search over all objectives of the spec."""

    name = "nsga2"
    adaptive = True
    OPTIONS = {"population": (24, 4), "generations": (8, 1), "crossover_eta": (15.0, 0),
               "mutation_eta": (20.0, 0), "crossover_prob": (0.9, 0)}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pop = int(self.options["population"])
        self.generations = int(self.options["generations"])
        self.rng = np.random.default_rng(self.seed)
        self.generation = 0
        self.parents: list[tuple[np.ndarray, dict]] = []
        self._batch: list[np.ndarray] = []

    def planned(self) -> int:
        return self.pop * self.generations

    def _phenotype(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """(genotype, point): the genotype stays continuous, the point takes axis values."""
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        return x, decode(self.axes, x)

    def ask(self) -> list[dict[str, Any]]:
        if self.generation >= self.generations:
            return []
        if self.generation == 0:
            xs = list(latin_hypercube(len(self.axes), self.pop, self.seed))
        else:
            xs = self._offspring()
        snapped = [self._phenotype(x) for x in xs]
        self._batch = [x for x, _ in snapped]
        self.generation += 1
        return [p for _, p in snapped]

    def tell(self, records: list[dict]) -> None:
        pool = self.parents + list(zip(self._batch, records, strict=True))
        unique: dict[str, tuple[np.ndarray, dict]] = {}
        for x, rec in pool:  # a point bred twice counts once
            unique.setdefault(rec["point_id"], (x, rec))
        pool = list(unique.values())
        F, feasible = objective_matrix([r for _, r in pool], self.objectives)
        rank, crowd = rank_and_crowd(F, feasible)
        order = np.lexsort((-crowd, rank))[: self.pop]
        self.parents = [pool[i] for i in order]
        self._rank, self._crowd = rank[order], crowd[order]

    # --- variation ---------------------------------------------------------------------------
    def _tournament(self) -> np.ndarray:
        i, j = self.rng.integers(0, len(self.parents), size=2)
        if (self._rank[i], -self._crowd[i]) <= (self._rank[j], -self._crowd[j]):
            return self.parents[i][0]
        return self.parents[j][0]

    def _offspring(self) -> list[np.ndarray]:
        children: list[np.ndarray] = []
        while len(children) < self.pop:
            a, b = self._tournament(), self._tournament()
            c1, c2 = self._sbx(a, b)
            children += [self._mutate(c1), self._mutate(c2)]
        return children[: self.pop]

    def _sbx(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c1, c2 = a.copy(), b.copy()
        if self.rng.random() > self.options["crossover_prob"]:
            return c1, c2
        eta = self.options["crossover_eta"]
        for k in range(len(a)):
            if self.rng.random() > 0.5 or abs(a[k] - b[k]) < 1e-12:
                continue
            u = self.rng.random()
            base = 2 * u if u <= 0.5 else 1 / (2 * (1 - u))
            beta = base ** (1 / (eta + 1))
            mean, half = (a[k] + b[k]) / 2, abs(a[k] - b[k]) / 2
            c1[k], c2[k] = mean - beta * half, mean + beta * half
        return np.clip(c1, 0, 1), np.clip(c2, 0, 1)

    def _mutate(self, x: np.ndarray) -> np.ndarray:
        eta = self.options["mutation_eta"]
        x = x.copy()
        rate = 1.0 / len(x)
        for k in range(len(x)):
            if self.rng.random() >= rate:
                continue
            u = self.rng.random()
            if u < 0.5:
                delta = (2 * u + (1 - 2 * u) * (1 - x[k]) ** (eta + 1)) ** (1 / (eta + 1)) - 1
            else:
                delta = 1 - (2 * (1 - u) + 2 * (u - 0.5) * x[k] ** (eta + 1)) ** (1 / (eta + 1))
            x[k] = x[k] + delta
        return np.clip(x, 0, 1)

