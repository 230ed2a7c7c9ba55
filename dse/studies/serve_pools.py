"""Phase splitting across prompt and token machine pools (``splitwise`` experiment).

A design's throughput is the highest request rate at which every SLO holds, found by geometric
bisection (:func:`dse.provision.max_rate`) over cluster runs (:func:`sim.serve.pools.run_cluster`);
provisioning (:func:`dse.provision.mixes`) enumerates every maximal (prompt, token) machine mix
within a budget and keeps the best.
"""

from __future__ import annotations

from typing import Any

from sim.studies import study


def trace_lengths(model_name: str, n: int, reference_dir=None):
    """Prompt and output lengths of the Azure conv trace's first ``n`` requests (or a fixed
    conv-like mix when the reference data is absent: 1,020 / 129 tokens, the trace's medians)."""
    import numpy as np

    from workloads.models import get_model
    from workloads.requests import check_context, read_trace, trace_path

    try:
        req = read_trace(trace_path("azure-conv", reference_dir), limit=n)
        req = check_context(req, get_model(model_name).max_positions, model_name, "truncate")
        return req.prompt, req.output, ("Azure LLM inference trace 2023 (conv), requests "
                                        "longer than the 4,096-token context truncated")
    except Exception:  # noqa: BLE001 - the study still runs without the reference data
        return np.full(n, 1020), np.full(n, 129), "fixed 1,020 / 129 tokens (no trace found)"


class PoolStudy:
    """Shared state of one study: lengths, arrival gaps, engine, memoised models."""

    def __init__(self, model: str, n: int, steps: int, seed: int = 0, ref_machine: str =
                 "dgx-a100", stack: str = "vllm", reference_dir=None):
        import numpy as np

        from arch.software import load_arch_with_software
        from sim.serve.costs import IterationModel
        from sim.serve.metrics import SLO
        from sim.serve.replica import EngineConfig
        from workloads.models import get_model

        self.model = model
        self.prompt, self.output, self.trace = trace_lengths(model, n, reference_dir)
        self.gaps = np.random.default_rng(seed).exponential(1.0, len(self.prompt))
        self.cfg = EngineConfig()
        self.slo = SLO.splitwise()
        self.models: dict = {}
        self.ref = IterationModel(load_arch_with_software(ref_machine, stack),
                                  get_model(model), tp=8, attention="flash")
        self.steps, self.seed = steps, seed
        self.points: list[dict] = []

    def passes(self, pools, rate: float) -> bool:
        import numpy as np

        from sim.serve.pools import Cluster, run_cluster
        from workloads.requests import Requests

        req = Requests.build(np.cumsum(self.gaps / rate), self.prompt, self.output)
        cluster = Cluster(pools, self.model, self.cfg, models=self.models)
        m = run_cluster(cluster, req, self.slo, self.ref).metrics
        ok = bool(m.get("slo_met", False)) and m["requests_completed"] == len(req)
        self.points.append({"design": "+".join(f"{p.count}x{p.machine}:{p.role}"
                                               for p in pools if p.count),
                            "rate_req_s": rate, "slo_met": ok,
                            "ttft_p99_slowdown": m.get("slowdown_ttft_p99"),
                            "tbt_p99_slowdown": m.get("slowdown_tbt_p99")})
        return ok

    def rate_at_slo(self, pools) -> float:
        from dse.provision import max_rate

        n = sum(p.count for p in pools)
        return max_rate(lambda r: self.passes(pools, r), 0.05 * n, 4.0 * n, self.steps)


@study("phase-split-pools")
def phase_split_pools(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Machines ``high`` (the iso-cost prompt pool and baseline) and ``low`` (token pools, the
    iso-power baseline) - names in :data:`sim.serve.pools.MACHINES`; params ``model``,
    ``machines`` (baseline size), ``requests``, ``steps``, ``seed``, ``cost_fraction``,
    ``reference_dir`` (the reference folder holding the trace, given by the runner)."""
    from dse.provision import best_mix, mixes
    from sim.serve.pools import MACHINES, Pool, cluster_cost, cluster_power
    from workloads.errors import WorkloadError

    for label in ("high", "low"):
        if systems[label] not in MACHINES:
            raise WorkloadError(f"systems.{label}: expected one of {', '.join(MACHINES)}, got "
                                f"'{systems[label]}'")
    hi_name, lo_name = systems["high"], systems["low"]
    k = max(2, int(params["machines"]))
    st = PoolStudy(params["model"], int(params["requests"]), int(params["steps"]),
                   int(params["seed"]), lo_name, reference_dir=params.get("reference_dir") or None)
    lo, hi = MACHINES[lo_name], MACHINES[hi_name]

    base_h = [Pool(hi_name, k, "mixed")]
    base_h_rate = st.rate_at_slo(base_h)
    budget = float(params["cost_fraction"]) * cluster_cost(base_h)
    ha = mixes([hi.price_per_hour, lo.price_per_hour], budget)
    (hp, ht), ha_rate, ha_table = best_mix(
        ha, lambda m: st.rate_at_slo([Pool(hi_name, m[0], "prompt"),
                                      Pool(lo_name, m[1], "token")]))
    ha_pools = [Pool(hi_name, hp, "prompt"), Pool(lo_name, ht, "token")]

    base_a = [Pool(lo_name, k, "mixed")]
    base_a_rate = st.rate_at_slo(base_a)
    aa = mixes([lo.power_W, lo.power_W], cluster_power(base_a))
    (ap, at), aa_rate, aa_table = best_mix(
        aa, lambda m: st.rate_at_slo([Pool(lo_name, m[0], "prompt"),
                                      Pool(lo_name, m[1], "token")]))
    values = {"k": k, "hp": hp, "ht": ht, "ap": ap, "at": at, "trace": st.trace,
              "n_requests": len(st.prompt),
              "resolution": (4.0 / 0.05) ** (0.5 ** st.steps),
              "ha_vs_high": ha_rate / base_h_rate if base_h_rate else float("nan"),
              "ha_cost_fraction": cluster_cost(ha_pools) / cluster_cost(base_h),
              "aa_vs_low": aa_rate / base_a_rate if base_a_rate else float("nan")}
    extra = {"designs": {"baseline_h100_rate": base_h_rate, "ha_table": ha_table,
                         "baseline_a100_rate": base_a_rate, "aa_table": aa_table}}
    return {"points": st.points, "values": values, "extra": extra}
