"""Bayesian optimisation, ParEGO style (Knowles, IEEE TEVC 2006), with a small numpy GP.

Start with a Latin hypercube of ``initial`` points. Then, round by round until ``samples``
points are known: normalise every objective to [0, 1] over the feasible points, scalarise them
with a random weight vector (augmented Chebyshev, rho = 0.05; infeasible points score worse than
every feasible one), fit a Gaussian process (squared-exponential kernel, length scale picked by
marginal likelihood from a fixed ladder) in the unit cube, and propose the ``batch`` candidates
with the highest expected improvement among ``candidates`` random points and perturbations of
the best ones. Deterministic for the seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.stats import norm

from dse.space import decode, encode, point_id
from dse.strategies import Strategy
from dse.strategies.nsga2 import objective_matrix
from dse.strategies.sampling import latin_hypercube

LENGTH_SCALES = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 2.0)
NOISE = 1e-4
RHO = 0.05


def _kernel(a: np.ndarray, b: np.ndarray, ell: float) -> np.ndarray:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-0.5 * d2 / ell**2)


def gp_posterior(X: np.ndarray, y: np.ndarray, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation at ``Xs`` of a GP fit to standardised ``y``."""
    best: tuple[float, float] | None = None
    for ell in LENGTH_SCALES:
        K = _kernel(X, X, ell) + NOISE * np.eye(len(X))
        try:
            c = cho_factor(K, lower=True)
        except np.linalg.LinAlgError:
            continue
        alpha = cho_solve(c, y)
        lml = -0.5 * y @ alpha - np.log(np.diag(c[0])).sum()
        if best is None or lml > best[0]:
            best = (lml, ell)
    ell = best[1] if best else 1.0
    K = _kernel(X, X, ell) + NOISE * np.eye(len(X))
    c = cho_factor(K, lower=True)
    Ks = _kernel(Xs, X, ell)
    mean = Ks @ cho_solve(c, y)
    var = 1.0 - np.einsum("ij,ji->i", Ks, cho_solve(c, Ks.T))
    return mean, np.sqrt(np.maximum(var, 1e-12))


class Bayes(Strategy):
    """ParEGO: expected improvement on a random scalarisation of the objectives per round."""

    name = "bayes"
    adaptive = True
    OPTIONS = {"samples": (40, 2), "initial": (10, 2), "batch": (4, 1), "candidates": (2000, 10)}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(self.seed)
        self.records: list[dict] = []
        self.known: set[str] = set()
        self.started = False

    def planned(self) -> int:
        return int(self.options["samples"])

    def ask(self) -> list[dict[str, Any]]:
        samples = int(self.options["samples"])
        if not self.started:
            self.started = True
            n = min(int(self.options["initial"]), samples)
            points = [decode(self.axes, x) for x in latin_hypercube(len(self.axes), n,
                                                                    self.seed)]
        else:
            room = samples - len(self.known)
            if room <= 0:
                return []
            points = self._propose(min(int(self.options["batch"]), room))
        out = []
        for p in points:
            pid = point_id(p)
            if pid not in self.known:
                self.known.add(pid)
                out.append(p)
        return out

    def tell(self, records: list[dict]) -> None:
        have = {r["point_id"] for r in self.records}
        self.records += [r for r in records if r["point_id"] not in have]

    def _scalarised(self) -> np.ndarray:
        F, feasible = objective_matrix(self.records, self.objectives)
        s = np.ones(len(F))
        if feasible.any():
            lo, hi = F[feasible].min(axis=0), F[feasible].max(axis=0)
            Fn = (F[feasible] - lo) / np.where(hi > lo, hi - lo, 1.0)
            lam = self.rng.dirichlet(np.ones(F.shape[1]))
            s[feasible] = (Fn * lam).max(axis=1) + RHO * (Fn * lam).sum(axis=1)
            s[~feasible] = s[feasible].max() + 1.0
        return s

    def _propose(self, q: int) -> list[dict[str, Any]]:
        X = np.array([encode(self.axes, r["params"]) for r in self.records])
        s = self._scalarised()
        y = (s - s.mean()) / (s.std() or 1.0)
        d = len(self.axes)
        n_cand = int(self.options["candidates"])
        best = X[np.argsort(y, kind="stable")[:5]]
        local = np.clip(np.repeat(best, 20, axis=0) +
                        self.rng.normal(0, 0.08, (len(best) * 20, d)), 0, 1)
        cand = np.vstack([self.rng.random((n_cand, d)), local])
        mean, sd = gp_posterior(X, y, cand)
        imp = y.min() - mean
        z = imp / sd
        ei = imp * norm.cdf(z) + sd * norm.pdf(z)
        out: list[dict[str, Any]] = []
        chosen: set[str] = set()
        for i in np.argsort(-ei, kind="stable"):
            p = decode(self.axes, cand[i])
            pid = point_id(p)
            if pid in self.known or pid in chosen:
                continue
            chosen.add(pid)
            out.append(p)
            if len(out) >= q:
                break
        return out
