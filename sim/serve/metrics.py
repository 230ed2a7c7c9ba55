"""Serving metrics (latency percentiles, throughput, goodput under SLOs, utilisation, energy,
cost), the per-request table, and the invariants every serving run checks.

SLOs: absolute per-request limits (``ttft=2s,tbt=100ms,e2e=60s``; TBT is the request's mean
time between tokens), or Splitwise's slowdown SLOs (Patel et al., ISCA 2024, Table/Sec. VI:
slowdown against the same request served alone on the reference machine; TTFT P50/P90/P99
<= 2x/3x/6x, TBT and E2E <= 1.25x/1.5x/5x). Goodput counts finished requests within the
per-request limits (for the slowdown SLOs: within the P99 factors) per second; ``slo_met``
says whether every percentile condition holds over the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.devices.base import SimError
from sim.serve.costs import IterationModel
from sim.serve.loop import Simulation
from sim.serve.replica import ITER_COLUMNS
from sim.serve.request import DONE, FAILED, REJECTED
from workloads.requests import parse_duration

#: Splitwise (ISCA 2024) slowdown SLOs: metric -> {percentile: max slowdown}
SPLITWISE_SLO = {"ttft": {50: 2.0, 90: 3.0, 99: 6.0},
                 "tbt": {50: 1.25, 90: 1.5, 99: 5.0},
                 "e2e": {50: 1.25, 90: 1.5, 99: 5.0}}
SPLITWISE_SOURCE = "Patel et al., Splitwise, ISCA 2024: SLOs as slowdown vs an unloaded DGX-A100"


@dataclass
class SLO:
    """Per-request limits (s) or slowdown factors; ``percentiles`` for the run-wide check."""

    kind: str = "absolute"          # absolute | slowdown
    ttft: float = math.inf
    tbt: float = math.inf
    e2e: float = math.inf
    percentiles: dict[str, dict[int, float]] = field(default_factory=dict)
    source: str = ""

    @staticmethod
    def splitwise() -> SLO:
        p = SPLITWISE_SLO
        return SLO("slowdown", p["ttft"][99], p["tbt"][99], p["e2e"][99], p, SPLITWISE_SOURCE)


def parse_slo(text: str) -> SLO:
    """``splitwise`` or ``ttft=2s,tbt=100ms,e2e=60s`` (any subset)."""
    text = (text or "").strip()
    if not text:
        return SLO()
    if text == "splitwise":
        return SLO.splitwise()
    slo = SLO(source="--slo")
    for part in text.split(","):
        key, _, val = part.partition("=")
        key = key.strip()
        if key not in ("ttft", "tbt", "e2e") or not val:
            raise SimError(f"--slo: expected 'splitwise' or ttft=DUR,tbt=DUR,e2e=DUR, got "
                           f"'{part[:40]}'")
        setattr(slo, key, parse_duration(val, "--slo"))
    return slo


def _pct(x: np.ndarray, prefix: str) -> dict[str, float]:
    if not len(x):
        return {f"{prefix}_mean_s": math.nan, f"{prefix}_p50_s": math.nan,
                f"{prefix}_p90_s": math.nan, f"{prefix}_p99_s": math.nan}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {f"{prefix}_mean_s": float(x.mean()), f"{prefix}_p50_s": float(p50),
            f"{prefix}_p90_s": float(p90), f"{prefix}_p99_s": float(p99)}


def request_table(sim: Simulation) -> pd.DataFrame:
    """One row per request: lengths, replica, state and latencies (seconds)."""
    rs = sim.reqs
    col = {
        "id": [r.id for r in rs], "arrival_s": [r.arrival for r in rs],
        "prompt_tokens": [r.prompt for r in rs], "output_tokens": [r.output for r in rs],
        "generated_tokens": [r.generated for r in rs], "prefix_group": [r.group for r in rs],
        "replica": [r.replica for r in rs], "state": [r.state for r in rs],
        "scheduled_s": [r.scheduled_s for r in rs],
        "first_token_s": [r.first_token_s for r in rs], "finish_s": [r.finish_s for r in rs],
        "tbt_sum_s": [r.tbt_sum for r in rs], "tbt_max_s": [r.tbt_max for r in rs],
        "preemptions": [r.preemptions for r in rs], "cached_tokens": [r.cached_tokens for r in rs],
        "prefill_tokens": [r.prefill_tokens for r in rs],
    }
    df = pd.DataFrame(col)
    df["queue_s"] = df["scheduled_s"] - df["arrival_s"]
    df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
    df["e2e_s"] = df["finish_s"] - df["arrival_s"]
    gaps = (df["generated_tokens"] - 1).clip(lower=1)
    df["tbt_mean_s"] = np.where(df["generated_tokens"] > 1, df["tbt_sum_s"] / gaps, np.nan)
    return df.drop(columns=["tbt_sum_s"])


def iteration_table(sim: Simulation) -> pd.DataFrame:
    """One row per iteration of every replica (ITER_COLUMNS plus the replica index)."""
    frames = []
    for rep in sim.replicas:
        df = pd.DataFrame(rep.log, columns=list(ITER_COLUMNS))
        df.insert(0, "replica", rep.index)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def slowdowns(table: pd.DataFrame, ref: IterationModel) -> pd.DataFrame:
    """Per-request slowdown of TTFT, mean TBT and E2E against the request alone on ``ref``."""
    ttft_ref = {p: ref.prefill_alone(int(p)) for p in table["prompt_tokens"].unique()}
    t0 = table["prompt_tokens"].map(ttft_ref).to_numpy(float)
    mid = (table["prompt_tokens"] + table["output_tokens"] // 2).to_numpy(int)
    tbt_ref = np.array([ref.decode_alone(int(c)) for c in mid]) if len(mid) else np.zeros(0)
    e2e_ref = t0 + (table["output_tokens"].to_numpy(float) - 1) * tbt_ref
    return pd.DataFrame({"ttft": table["ttft_s"].to_numpy(float) / t0,
                         "tbt": table["tbt_mean_s"].to_numpy(float) / tbt_ref,
                         "e2e": table["e2e_s"].to_numpy(float) / e2e_ref})


def summarise(sim: Simulation, slo: SLO | None = None, ref: IterationModel | None = None,
              price_per_hour: float = 0.0, price_source: str = "") -> tuple[dict, pd.DataFrame]:
    """Run metrics (``--json`` keys) and the per-request table."""
    slo = slo or SLO()
    table = request_table(sim)
    done = table[table["state"] == DONE]
    duration = max(sim.makespan, max((r.log[-1][1] for r in sim.replicas if r.log),
                                     default=0.0))
    tbts = sim.tbts()
    m: dict[str, float | int | str | bool] = {}
    m.update(_pct(done["ttft_s"].to_numpy(float), "ttft"))
    m.update(_pct(tbts, "tbt"))
    m.update(_pct(done["e2e_s"].to_numpy(float), "e2e"))
    m.update(_pct(done["queue_s"].to_numpy(float), "queue"))
    out_tokens = int(done["output_tokens"].sum())
    m.update({
        "requests": len(table), "requests_completed": len(done),
        "requests_failed": int((table["state"] == FAILED).sum()),
        "requests_rejected": int((table["state"] == REJECTED).sum()),
        "duration_s": duration,
        "throughput_req_s": len(done) / duration if duration > 0 else 0.0,
        "throughput_tok_s": out_tokens / duration if duration > 0 else 0.0,
        "input_tok_s": float(done["prompt_tokens"].sum()) / duration if duration > 0 else 0.0,
        "preemptions": int(table["preemptions"].sum()),
        "cached_prompt_tokens": int(table["cached_tokens"].sum()),
        "prefill_tokens": int(table["prefill_tokens"].sum()),
    })
    good = np.ones(len(done), bool)
    if slo.kind == "slowdown":
        ref = ref or sim.replicas[0].model
        sd = slowdowns(done, ref)
        good &= (sd["ttft"].to_numpy() <= slo.ttft) & (sd["e2e"].to_numpy() <= slo.e2e)
        good &= ~(sd["tbt"].to_numpy() > slo.tbt)   # one-token requests have no TBT
        met = True
        for metric, pcts in slo.percentiles.items():
            vals = sd[metric].dropna().to_numpy()
            for p, bound in pcts.items():
                v = float(np.percentile(vals, p)) if len(vals) else math.nan
                m[f"slowdown_{metric}_p{p}"] = v
                met &= bool(v <= bound) if len(vals) else True
        m["slo_met"] = met
    else:
        good &= done["ttft_s"].to_numpy(float) <= slo.ttft
        good &= done["e2e_s"].to_numpy(float) <= slo.e2e
        good &= ~(done["tbt_mean_s"].to_numpy(float) > slo.tbt)
    m["slo"] = slo.kind if slo.source else "none"
    m["goodput_req_s"] = float(good.sum()) / duration if duration > 0 else 0.0
    m["requests_within_slo"] = int(good.sum())
    devices = sum(r.model.devices for r in sim.replicas)
    busy = [r.busy_s / duration if duration > 0 else 0.0 for r in sim.replicas]
    m["utilisation"] = float(np.mean(busy)) if busy else 0.0
    m["kv_peak_fraction"] = max(r.kv.peak / r.kv.capacity for r in sim.replicas)
    dynamic = sum(r.energy_J for r in sim.replicas)
    static = sum(r.model.static_power() * r.model.devices * duration for r in sim.replicas)
    m["energy_J"] = dynamic + static
    m["dynamic_energy_J"] = dynamic
    m["static_energy_J"] = static
    m["energy_per_token_J"] = m["energy_J"] / out_tokens if out_tokens else math.nan
    m["devices"] = devices
    m["replicas"] = len(sim.replicas)
    if price_per_hour > 0:
        m["cost_usd"] = price_per_hour * len(sim.replicas) * duration / 3600.0
        m["cost_per_million_tokens_usd"] = m["cost_usd"] / out_tokens * 1e6 if out_tokens \
            else math.nan
        m["price_per_hour_usd"] = price_per_hour
        m["price_source"] = price_source
    m["events"] = sim.events
    return m, table


def check_invariants(sim: Simulation) -> dict[str, bool]:
    """The serving invariants; raise AssertionError naming the first violation."""
    for r in sim.reqs:
        ev = r.events
        if ev.count("arrive") != 1:
            raise AssertionError(f"request {r.id} arrived {ev.count('arrive')} times")
        ends = sum(ev.count(k) for k in ("finish", "fail", "reject"))
        if ends != 1:
            raise AssertionError(f"request {r.id} ended {ends} times ({ev})")
        if ev.count("admit") > 1 + ev.count("accept"):
            raise AssertionError(f"request {r.id} admitted more than once per replica ({ev})")
        if r.state == DONE:
            if r.generated != r.output:
                raise AssertionError(f"request {r.id} generated {r.generated} of {r.output} "
                                     "tokens")
            if "admit" not in ev:
                raise AssertionError(f"request {r.id} finished without being admitted")
        if r.tokens is not None and len(r.tokens):
            t = np.asarray(r.tokens)
            if (np.diff(t) < 0).any() or t[0] < r.arrival or len(t) != r.generated:
                raise AssertionError(f"request {r.id}: token times out of order or before "
                                     "arrival")
    for rep in sim.replicas:
        if rep.kv.peak > rep.kv.capacity or rep.kv.violations:
            raise AssertionError(f"{rep.name}: KV blocks above capacity")
        if rep.log:
            log = np.asarray([(s, e) for s, e, *_ in rep.log])
            if (log[1:, 0] < log[:-1, 1] - 1e-12).any():
                raise AssertionError(f"{rep.name}: iterations overlap")
    return {"requests_once": True, "tokens_complete": True, "kv_within_capacity": True,
            "tokens_in_order": True, "iterations_serial": True}
