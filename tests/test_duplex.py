"""Duplex: Op/B placement on xPU vs logic-die PIM, co-processing shares, the reproduction."""

from __future__ import annotations

import json

import pytest

from arch import load_arch
from sim.devices.xpu_pim import XpuPimDevice, pim_candidate
from sim.serving.layer_costs import LayerCosts
from workloads.models import get_model
from workloads.trace import Trace


@pytest.fixture(scope="module")
def duplex():
    return XpuPimDevice(load_arch("duplex"), "tile")


def test_placement_by_op_per_byte(duplex):
    m = get_model("mixtral-8x7b")
    lc = LayerCosts(duplex, m, 4)
    st = lc.stages(64, 1024)
    assert pim_candidate(next(o for o in lc.ops(64, 1024) if o.name == "ffn_up")) == "expert"
    assert pim_candidate(next(o for o in lc.ops(64, 1024) if o.name == "qk")) == "attention"
    assert pim_candidate(next(o for o in lc.ops(64, 1024) if o.name == "qkv_proj")) is None
    # prefill stays on the xPU
    assert all(pim_candidate(o) is None for o in lc.ops(1, 512, phase="prefill", s=512))
    up = st["post"].ops["ffn_up"]            # the xPU's share of a co-processed op
    assert up.detail["candidate"] == "expert" and 0 < up.detail["xpu_share"] < 1
    f, t_x, t_p = up.detail["xpu_share"], up.detail["t_xpu_alone"], up.detail["t_pim_alone"]
    # shares in proportion to rate: alone, both finish together, sooner than either side alone
    assert up.latency == pytest.approx(f * t_x) == pytest.approx((1 - f) * t_p)
    assert f == pytest.approx((1 / t_x) / (1 / t_x + 1 / t_p))
    op = next(o for o in lc.ops(64, 1024) if o.name == "ffn_up")
    twin = duplex.split_trace(Trace([op])).ops[1]
    assert twin.name == "ffn_up@pim" and duplex.unit_of(twin) == "pim"
    assert duplex.estimate(twin).latency == pytest.approx((1 - f) * t_p)
    assert twin.flops == pytest.approx((1 - f) * op.flops)


def test_split_ops_are_the_dataclass_replacements(duplex):
    """split_trace stores its ops' slots directly (workloads.trace.op_share): each op and twin
    equals ``dataclasses.replace`` of the original, every field, both waiting for every op and
    twin their original's dependencies became; the fraction memo gives each op of one shape
    the same split."""
    import dataclasses

    lc = LayerCosts(duplex, get_model("mixtral-8x7b"), 4)
    ops = lc.ops(64, 1024) + lc.ops(64, 1024)     # the same shapes twice: memo hits
    ops = [dataclasses.replace(o, id=i, deps=(i - 1,) if i else ()) for i, o in enumerate(ops)]
    split = duplex.split_trace(Trace(ops)).ops
    k = 0
    became: dict[int, tuple[int, ...]] = {}   # original id -> its op (and twin) in the split
    for op in ops:
        frac = duplex.xpu_fraction(op)
        deps = tuple(n for d in op.deps for n in became[d])   # its deps' ops and twins
        became[op.id] = (k,) if frac >= 1.0 else (k, k + 1)
        want = [dataclasses.replace(op, id=k, deps=deps, flops=op.flops * frac,
                                    bytes=op.bytes * frac)]
        if frac < 1.0:
            want.append(dataclasses.replace(op, id=k + 1, name=op.name + "@pim", deps=deps,
                                            flops=op.flops * (1.0 - frac),
                                            bytes=op.bytes * (1.0 - frac)))
        for got, exp in zip(split[k:k + len(want)], want, strict=True):
            assert [getattr(got, f.name) for f in dataclasses.fields(got)] == \
                [getattr(exp, f.name) for f in dataclasses.fields(exp)]
        k += len(want)
    assert k == len(split) > len(ops)
    half = len(ops) // 2
    assert [duplex.xpu_fraction(o) for o in ops[:half]] == \
        [duplex.xpu_fraction(o) for o in ops[half:]]


def test_logic_pim_rates_from_preset(duplex):
    lp = load_arch("duplex").logic_pim
    assert duplex.pim.flops == pytest.approx(5 * 21.3e12)
    ratio = duplex.pim.bandwidth / (3.35e12 * duplex.pim.efficiency)
    assert ratio == pytest.approx(lp.bandwidth_multiplier, rel=0.01)
    bank = XpuPimDevice(load_arch("duplex"), "tile", mode="bank")
    assert bank.pim.flops == pytest.approx(bank.pim.bandwidth * lp.bank_pim_op_per_byte)


def test_reproduce_duplex_quick(capsys):
    from xpusim.cli import main

    assert main(["reproduce", "duplex", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "duplex" and len(out["results"]) == 3
    for p in out["points"]:
        assert p["speedup"] > 1.0 and p["energy_ratio"] < 1.0 and p["fits"]
    # gains shrink as batch grows (more tokens per expert raises Op/B toward the xPU's)
    by_batch = {}
    for p in out["points"]:
        by_batch.setdefault(p["batch"], []).append(p["speedup"])
    assert min(by_batch[32]) > min(by_batch[128]) or max(by_batch[32]) > max(by_batch[128])
    sens = {v["variant"]: v["mean_energy_ratio"] for v in out["energy_sensitivity"]}
    base = sens["preset (assumed)"]
    assert base == pytest.approx(out["results"][2]["measured"])
    # more energy per in-stack bit or per logic-die FLOP can only raise Duplex's energy
    assert sens["in-stack access x0.5"] < base < sens["in-stack access x1.5"]
    assert sens["logic-die FLOP x0.5"] < base < sens["logic-die FLOP x1.5"]


@pytest.mark.parametrize("model", ["mixtral-8x7b", "llama2-7b"])
def test_split_of_arrays_equals_split_of_ops(duplex, model):
    """A trace held as arrays is split on its arrays (workloads.twins.twinned: fractions asked
    once per (kind, prefill or not)); its ops equal, every field, the split of the same ops
    as objects (fractions asked op by op), dependencies on experts' and attention's twins
    included."""
    import dataclasses

    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    sc = Scenario(batch=16, prompt_len=64, gen_len=5)
    compact = trace_model(get_model(model), sc, compact=True)
    ops = trace_model(get_model(model), sc, compact=True).ops
    split = duplex.split_trace(compact)
    ref = duplex.split_trace(Trace(ops)).ops
    assert split.is_compact
    got = split.ops
    assert len(got) == len(ref) > len(ops)
    for a, b in zip(got, ref, strict=True):
        assert [getattr(a, f.name) for f in dataclasses.fields(a)] == \
            [getattr(b, f.name) for f in dataclasses.fields(b)]
    twins = {op.id for op in got if op.name.endswith("@pim")}
    assert twins and all(got[i].phase == "decode" for i in twins)
    # the successors of a split op wait for both of its shares
    both = [op for op in got if any(d in twins and d - 1 in op.deps for d in op.deps)]
    assert len(both) >= len(twins) // 2


def test_split_prices_the_xpu_shares_at_once(monkeypatch):
    """Splitting a trace held as arrays hands the co-processed ops to the xPU's ``prefetch``
    first (their GEMMs over every KV length priced from arrays): the same split, field by
    field, as without it, and no GEMM of a decode step priced one by one."""
    import dataclasses

    import sim.gpu.gemm as gemm
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    sc = Scenario(batch=8, prompt_len=64, gen_len=24)
    model = get_model("llama2-7b")
    splits, scalar = [], []
    for at_once in (True, False):
        gemm.best_gemm.cache_clear()
        dev = XpuPimDevice(load_arch("duplex"), "tile")
        if not at_once:
            monkeypatch.setattr(dev.xpu, "prefetch", lambda ops: 0)
        before = gemm.best_gemm.cache_info().misses
        splits.append(dev.split_trace(trace_model(model, sc, compact=True)).ops)
        scalar.append(gemm.best_gemm.cache_info().misses - before)
    fast, slow = splits
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert [getattr(a, f.name) for f in dataclasses.fields(a)] == \
            [getattr(b, f.name) for f in dataclasses.fields(b)]
    # one by one: the decode attention GEMMs of every step (two per KV length at least)
    assert scalar[1] >= 2 * 23 and scalar[0] == 0
