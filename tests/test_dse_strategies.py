"""Strategies (deterministic, distinct points, NSGA-II and Bayes beat random) and the analysis
(Pareto fronts against brute force, sensitivity indices on known functions)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from dse.analysis import best_points, knee_point, pareto_front, pareto_mask, sensitivity
from dse.space import Axis, point_id
from dse.spec import Objective
from dse.strategies import STRATEGIES, _load_all

_load_all()
X = Axis("x", "arch", None, 0.0, 1.0, steps=5)
Y = Axis("y", "arch", None, 0.0, 1.0, steps=5)
LIST = Axis("n", "arch", (1, 2, 4, 8))
TWO = (Objective("f1", "min"), Objective("f2", "min"))


def zdt1(p: dict) -> dict:
    """ZDT1 with two variables: the front is f2 = 1 - sqrt(f1) at y = 0."""
    g = 1 + 9 * p["y"]
    f1 = p["x"]
    return {"f1": f1, "f2": g * (1 - math.sqrt(f1 / g))}


def drive(name: str, axes, objectives, seed: int, fn, **options) -> list[dict]:
    """Run a strategy against a cheap function; return every record in proposal order."""
    cls = STRATEGIES[name]
    opts = {k: d for k, (d, _) in cls.OPTIONS.items()} | options
    strategy = cls(tuple(axes), objectives, seed, opts)
    seen: dict[str, dict] = {}
    while batch := strategy.ask():
        records = []
        for p in batch:
            pid = point_id(p)
            if pid not in seen:
                seen[pid] = {"point_id": pid, "status": "ok", "params": p, "metrics": fn(p),
                             "seq": len(seen), "reason": ""}
            records.append(seen[pid])
        strategy.tell(records)
    return list(seen.values())


def front_quality(records: list[dict]) -> float:
    """Hypervolume of the (f1, f2) front against the reference point (1.1, 10)."""
    pts = np.array([[r["metrics"]["f1"], r["metrics"]["f2"]] for r in records])
    front = pts[pareto_mask(pts)]
    front = front[np.argsort(front[:, 0])]
    hv, prev = 0.0, 10.0
    for f1, f2 in front:
        hv += (1.1 - f1) * (prev - f2)
        prev = f2
    return hv


def test_grid_is_the_full_product_in_order():
    recs = drive("grid", [LIST, X], TWO, 0, lambda p: {"f1": 0.0, "f2": 0.0})
    assert len(recs) == 20
    assert [(r["params"]["n"], r["params"]["x"]) for r in recs] == \
        list(itertools.product((1, 2, 4, 8), X.grid_values()))


@pytest.mark.parametrize("name", ["random", "lhs", "nsga2", "bayes"])
def test_every_strategy_is_deterministic_for_a_seed(name):
    free = (Axis("x", "arch", None, 0.0, 1.0), Axis("y", "arch", None, 0.0, 1.0))
    opts = {"samples": 30} if name in ("random", "lhs") else \
        ({"population": 8, "generations": 3} if name == "nsga2" else
         {"samples": 16, "initial": 8, "candidates": 200})
    a = drive(name, free, TWO, 7, zdt1, **opts)
    b = drive(name, free, TWO, 7, zdt1, **opts)
    c = drive(name, free, TWO, 8, zdt1, **opts)
    assert [r["point_id"] for r in a] == [r["point_id"] for r in b]
    assert [r["point_id"] for r in a] != [r["point_id"] for r in c]


def test_random_gives_distinct_points_and_stops_at_the_space_size():
    recs = drive("random", [LIST], TWO, 0, lambda p: {"f1": 0, "f2": 0}, samples=50)
    assert sorted(r["params"]["n"] for r in recs) == [1, 2, 4, 8]


def test_lhs_is_stratified_on_each_axis():
    free = (Axis("x", "arch", None, 0.0, 1.0), Axis("y", "arch", None, 0.0, 1.0))
    recs = drive("lhs", free, TWO, 3, zdt1, samples=20)
    for name in ("x", "y"):
        bins = sorted(int(r["params"][name] * 20) for r in recs)
        assert bins == list(range(20))


def test_nsga2_front_beats_random_search_of_the_same_budget():
    free = (Axis("x", "arch", None, 0.0, 1.0), Axis("y", "arch", None, 0.0, 1.0))
    evo = drive("nsga2", free, TWO, 1, zdt1, population=20, generations=10)
    rnd = drive("random", free, TWO, 1, zdt1, samples=len(evo))
    assert len(evo) <= 200
    # exact: the area over f2 = 1 - sqrt(f1), 0 <= f1 <= 1, plus the strip 1 < f1 < 1.1
    true_hv = (10 - 1 + 2 / 3) + 0.1 * 10
    assert front_quality(evo) > front_quality(rnd)
    assert front_quality(evo) > 0.98 * true_hv


def test_nsga2_ranks_feasible_points_first():
    free = (Axis("x", "arch", None, 0.0, 1.0), Axis("y", "arch", None, 0.0, 1.0))
    cls = STRATEGIES["nsga2"]
    s = cls(free, TWO, 0, {k: d for k, (d, _) in cls.OPTIONS.items()} | {"population": 4})
    batch = s.ask()
    records = []
    for i, p in enumerate(batch):
        ok = i % 2 == 0
        records.append({"point_id": point_id(p), "status": "ok" if ok else "infeasible",
                        "params": p, "metrics": zdt1(p) if ok else {}})
    s.tell(records)
    kept = [rec["status"] for _, rec in s.parents]
    assert kept[:2] == ["ok", "ok"]


def test_bayes_finds_a_minimum_better_than_random():
    free = (Axis("x", "arch", None, 0.0, 1.0), Axis("y", "arch", None, 0.0, 1.0))

    def bowl(p):
        return {"f1": (p["x"] - 0.3) ** 2 + (p["y"] - 0.7) ** 2}

    one = (Objective("f1", "min"),)
    bo = drive("bayes", free, one, 2, bowl, samples=24, initial=8, batch=4, candidates=500)
    rnd = drive("random", free, one, 2, bowl, samples=24)
    best_bo = min(r["metrics"]["f1"] for r in bo)
    assert best_bo < min(r["metrics"]["f1"] for r in rnd)
    assert best_bo < 2e-3


# --- analysis -----------------------------------------------------------------------------------
def brute_force_front(v: np.ndarray) -> np.ndarray:
    return np.array([not any(np.all(w <= u) and np.any(w < u) for w in v) for u in v])


@pytest.mark.parametrize("seed", range(4))
def test_pareto_mask_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    for k in (2, 3):
        v = rng.integers(0, 6, size=(60, k)).astype(float)  # many ties and duplicates
        assert np.array_equal(pareto_mask(v), brute_force_front(v))


def test_pareto_front_respects_goals_and_feasibility():
    df = pd.DataFrame({"status": ["ok", "ok", "ok", "infeasible"], "lat": [1.0, 2.0, 3.0, 0.1],
                       "thr": [10.0, 30.0, 20.0, 99.0], "point_id": list("abcd")})
    front = pareto_front(df, [("lat", "min"), ("thr", "max")])
    assert front["point_id"].tolist() == ["a", "b"]
    assert knee_point(df, [("lat", "min"), ("thr", "max")]) is not None
    best = best_points(df, [("lat", "min"), ("thr", "max")], n=1)
    assert best["point_id"].tolist() == ["a", "b"]


def test_sensitivity_recovers_main_effects_on_a_grid():
    grid = list(itertools.product(range(5), range(5), range(5)))
    df = pd.DataFrame(grid, columns=["a", "b", "c"])
    df["status"] = "ok"
    df["y"] = 4.0 * df["a"] + 1.0 * df["b"]  # c plays no part; var shares 16:1
    s = sensitivity(df, ["a", "b", "c"], [("y", "min")])["y"]
    assert s["a"] == pytest.approx(16 / 17)
    assert s["b"] == pytest.approx(1 / 17)
    assert s["c"] == pytest.approx(0.0)
    df["z"] = df["a"] * df["b"]  # pure interaction leaves first-order shares below 1
    s = sensitivity(df, ["a", "b"], [("z", "min")])["z"]
    assert 0.3 < s.sum() < 0.99


def test_knee_point_is_the_front_point_nearest_the_utopia_point():
    # front (1, 10), (2, 2), (10, 1) scaled to [0, 1] per objective: (0, 1), (1/9, 1/9),
    # (1, 0); distances to the utopia (0, 0): 1, 0.157, 1 -> the knee is (2, 2). The
    # dominated point (5, 5) takes no part. With ``thr`` maximised the same holds mirrored.
    df = pd.DataFrame({"status": "ok", "lat": [1.0, 2.0, 10.0, 5.0],
                       "cost": [10.0, 2.0, 1.0, 5.0], "point_id": list("abcd")})
    assert knee_point(df, [("lat", "min"), ("cost", "min")])["point_id"] == "b"
    df["thr"] = -df["cost"]
    assert knee_point(df, [("lat", "min"), ("thr", "max")])["point_id"] == "b"
