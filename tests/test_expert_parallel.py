"""Expert parallelism with skewed routing: whole experts per device, stragglers emerge."""

import pytest

from arch import load_arch
from sim.run import simulate
from workloads.errors import WorkloadError
from workloads.models import get_model
from workloads.routing import expert_token_counts
from workloads.scenario import Scenario


def test_routing_counts_by_hand():
    assert expert_token_counts(8, 8, 2) == [2] * 8
    # 16 assignments over weights 1, 1/2, ..., 1/8 (sum 2.718): 5.89 2.94 1.96 1.47 1.18 0.98
    # 0.84 0.74 -> floors 5 2 1 1 1 0 0 0, six more by largest remainder
    assert expert_token_counts(8, 8, 2, 1.0) == [6, 3, 2, 1, 1, 1, 1, 1]
    # skew 3: the hottest expert would take 13.3 > 8 tokens: capped at 8, the rest re-shared
    assert expert_token_counts(8, 8, 2, 3.0) == [8, 5, 2, 1, 0, 0, 0, 0]
    assert expert_token_counts(8, 8, 2, 3.0, rotation=3) == [0, 0, 0, 8, 5, 2, 1, 0]
    for skew in (0.0, 0.7, 1.5, 4.0):
        c = expert_token_counts(1000, 8, 2, skew, rotation=5)
        assert sum(c) == 2000 and max(c) <= 1000


def test_ep_must_match_tp():
    with pytest.raises(WorkloadError, match="--ep"):
        Scenario(batch=4, tp=4, ep=2)


@pytest.fixture(scope="module")
def ep_runs():
    model = get_model("mixtral-8x7b")
    out = {}
    for skew in (0.0, 2.0):
        sc = Scenario(batch=16, prompt_len=512, gen_len=1, tp=8, ep=8, expert_skew=skew)
        out[skew] = simulate(load_arch("dgx-h100"), model, sc)
    return out


def test_expert_flops_do_not_depend_on_routing(ep_runs):
    m = get_model("mixtral-8x7b")
    tokens = 16 * 512
    # every token visits top_k experts: up (d x 2 ff) and down (ff x d) GEMMs, 2 FLOPs per MAC
    per_layer = 2 * tokens * m.top_k * (m.d_model * 2 * m.d_ff + m.d_ff * m.d_model)
    for run in ep_runs.values():
        ops = run.ops
        gemms = ops[ops["op"].str.match(r"expert\d+_(up|down)")]
        assert gemms["flops"].sum() == pytest.approx(per_layer * m.n_layers, rel=1e-12)
        assert set(gemms["stream"]) == {f"gpu{r}.compute" for r in range(8)}
        assert set(run.invariants.values()) == {"passed"}


def test_combine_waits_for_the_slowest_rank(ep_runs):
    for skew, run in ep_runs.items():
        ops = run.ops
        layer = ops[(ops["layer"] == 3) & (ops["phase"] == "prefill")]
        dispatch = layer[layer["op"] == "alltoall_dispatch"]["end_s"].item()
        combine = layer[layer["op"] == "alltoall_combine"]["start_s"].item()
        experts = layer[layer["op"].str.startswith("expert")]
        per_rank = experts.groupby("stream")["latency_s"].sum()
        assert combine - dispatch == pytest.approx(per_rank.max(), rel=1e-9)
        spread = per_rank.max() / per_rank.min()
        if skew == 0.0:
            assert spread == pytest.approx(1.0, rel=1e-9)
        else:
            assert spread > 2.0          # a straggler: the hot experts' device
    assert ep_runs[2.0].metrics["ttft_s"] > 1.2 * ep_runs[0.0].metrics["ttft_s"]
