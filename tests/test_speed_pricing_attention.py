"""Pricing a decode run's fused attention as one family (issue 18): the kernels of every KV
length from arrays (``attention_time_many``) equal ``attention_time``'s bit for bit, for every
decode kernel kind on the GPU presets, and the costs ``GpuDevice.prefetch`` settles for the
attention ops straight into the estimate memo equal those ``estimate`` forms op by op (repr:
exact floats, types and detail), whole runs included."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from test_speed_pricing_family import (
    _first_ops,
    assert_int_flops_left_to_estimate,
    assert_same_run,
)

from arch import load_arch
from arch.software import load_arch_with_software
from sim.devices import gpu as gpu_mod
from sim.devices.base import device_for
from sim.gpu import attention as att
from sim.gpu.attention import (
    DECODE_POLICIES,
    AttentionShape,
    attention_time,
    attention_time_many,
    fa2_blocks,
)
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import ATTENTION


def _exact(d: dict) -> tuple:
    """A result dict with every value's type and exact repr."""
    return tuple((k, type(v), repr(v)) for k, v in d.items())


def _clear() -> None:
    for fn in (att.flash2, att.flash_decoding, att.lean_attention, att.paged_attention,
               att.masked_mha):
        fn.cache_clear()


def _shapes(rng: random.Random, n: int, decode: bool) -> list[AttentionShape]:
    out = []
    for _ in range(n):
        kvh = rng.choice([1, 2, 8, 32, 40, 64])
        group = rng.choice([1, 1, 4, 8])
        out.append(AttentionShape(
            batch=rng.choice([1, 2, 8, 16, 64, 256]), q_heads=kvh * group, kv_heads=kvh,
            q_len=1 if decode else rng.choice([2, 128, 512, 3000]), kv_len=1,
            head_dim=rng.choice([64, 80, 128, 256]), kv_elem=rng.choice([2, 1, 2.0, 0.5]),
            q_elem=rng.choice([2, 2.0, 1])))
    return out


def _kv_lens(rng: random.Random, head_dim: int) -> list[int]:
    bcs = {fa2_blocks(head_dim, s)[1] for s in (False, True)}
    edges = [n for bc in bcs for n in (bc - 1, bc, bc + 1, 7 * bc, 7 * bc + 1)]
    return [1, *edges, *(rng.randint(1, 40000) for _ in range(40)),
            *range(4000, 4000 + 3 * max(bcs))]


@pytest.mark.parametrize("arch", ["h100", "a100", "mi210"])
@pytest.mark.parametrize("policy", [*DECODE_POLICIES, "prefill"])
def test_attention_time_many_equals_scalar(arch, policy):
    """Hundreds of shapes x lengths per kernel kind: every figure equal, types included."""
    dev = device_for(load_arch(arch), "tile")
    ahw = dev._attn_hw("fp16")
    rng = random.Random(f"{arch}-{policy}")   # the same shapes in every process
    decode = policy != "prefill"
    seen: set[int] = set()
    _clear()
    for sh in _shapes(rng, 12 if decode else 5, decode):
        kvs = _kv_lens(rng, sh.head_dim)
        many = attention_time_many(ahw, sh, kvs, policy if decode else "flashdecoding")
        one = [attention_time(ahw, dataclasses.replace(sh, kv_len=n),
                              policy if decode else "flashdecoding") for n in kvs]
        assert [_exact(d) for d in many] == [_exact(d) for d in one]
        seen |= {d["splits"] for d in many}
        assert all(a is not b for a, b in zip(many, one, strict=True))   # fresh dicts
    if policy in ("flashdecoding", "lean"):
        assert len(seen) > 2     # KV splits of several counts exercised


def test_attention_time_many_odd_inputs_and_zero_latency():
    """Lengths that are not Python ints go one by one; a zero-latency memory (no Little's-law
    cap) in the per-head kernels; an empty list."""
    ahw = device_for(load_arch("h100"), "tile")._attn_hw("fp16")
    sh = AttentionShape(batch=8, q_heads=32, kv_heads=8, q_len=1, kv_len=1, head_dim=128)
    assert attention_time_many(ahw, sh, [], "paged") == []
    odd = [np.int64(300), 301.0, 302]
    assert [_exact(d) for d in attention_time_many(ahw, sh, odd, "mmha")] == \
        [_exact(attention_time(ahw, dataclasses.replace(sh, kv_len=n), "mmha")) for n in odd]
    zero = dataclasses.replace(ahw, gpu=dataclasses.replace(ahw.gpu, l2_latency=0.0,
                                                            hbm_latency=0.0))
    for policy in ("paged", "mmha"):
        for s in (sh, dataclasses.replace(sh, q_heads=8)):
            kvs = list(range(1, 3000, 7))
            assert [_exact(d) for d in attention_time_many(zero, s, kvs, policy)] == \
                [_exact(attention_time(zero, dataclasses.replace(s, kv_len=n), policy))
                 for n in kvs]


def _device(arch: str, software: str | None, policy: str | None):
    dev = device_for(load_arch_with_software(arch, software) if software else load_arch(arch),
                     "tile")
    if policy is not None:
        dev.decode_policy = policy
    return dev


CASES = [   # (arch, --software, decode kernel override, model, scenario)
    ("h100", None, None, "llama2-7b", dict(batch=4, prompt_len=64, gen_len=48,
                                            attention="flash", sparse_kv=0.5)),
    ("h100", "trtllm", None, "llama2-7b", dict(batch=8, prompt_len=128, gen_len=40,
                                                attention="flash", kv_dtype="fp8")),
    ("a100", "validation/trtllm/gptsession-v0.9.yaml", None, "llama3-8b",
     dict(batch=8, prompt_len=128, gen_len=40, attention="flash", kv_dtype="fp8")),
    ("h100", "vllm", None, "llama3-8b", dict(batch=16, prompt_len=100, gen_len=40,
                                              attention="flash")),
    ("mi210", None, "lean", "llama2-7b", dict(batch=2, prompt_len=100, gen_len=40,
                                              attention="flash", dtype="fp32")),
    ("a100", None, "flash2", "llama3-8b", dict(batch=1, prompt_len=100, gen_len=40,
                                               attention="flash")),
    ("dgx-h100", None, None, "llama2-70b", dict(batch=8, prompt_len=128, gen_len=40,
                                                attention="flash", tp=8)),
]


@pytest.mark.parametrize("arch,software,policy,model,scenario", CASES)
def test_settled_attention_costs_equal_estimate(monkeypatch, arch, software, policy, model,
                                                scenario):
    ops = _first_ops(arch, model, **scenario)
    _clear()
    dev = _device(arch, software, policy)
    dev.prefetch(ops)
    settled = {k[0] for k in dev._memo if k[3] == ATTENTION}
    policies = {hit[2].detail["policy"] for k, hit in dev._memo.items() if k[3] == ATTENTION}
    assert policies == {policy or dev.decode_policy}
    fast = [repr(dev.estimate(op)) for op in ops]
    monkeypatch.setattr(gpu_mod.GpuDevice, "_settle_attention", lambda self, ops: None)
    _clear()
    ref = _device(arch, software, policy)
    ref.prefetch(ops)
    assert not any(k[3] == ATTENTION for k in ref._memo)
    slow = [repr(ref.estimate(op)) for op in ops]
    assert fast == slow
    # the family path did the work: every decode step's attention but the template's
    n_att = sum(1 for op in ops if op.kind == ATTENTION and id(op.compute) in settled)
    assert n_att >= scenario["gen_len"] - 2


def test_settle_leaves_odd_ops_and_overrides_to_estimate(monkeypatch):
    """A FLOP count that is not a float, and a subclass that prices attention itself, are left
    to estimate (same costs)."""
    scenario = dict(batch=2, prompt_len=32, gen_len=40, attention="flash")
    ops = _first_ops("h100", "llama2-7b", **scenario)
    assert_int_flops_left_to_estimate(ops, ATTENTION)

    class Own(gpu_mod.GpuDevice):
        def _attention_cost(self, *a, **k):
            return super()._attention_cost(*a, **k)

    own = Own(load_arch("h100"), "tile")
    own.prefetch(ops)
    assert not any(k[3] == ATTENTION for k in own._memo)


@pytest.mark.parametrize("arch,software,model,scenario", [
    ("h100", "validation/trtllm/gptsession-v0.9.yaml", "llama2-7b",
     dict(batch=8, prompt_len=128, gen_len=64, attention="flash", kv_dtype="fp8")),
    ("h100", None, "llama2-7b", dict(batch=4, prompt_len=64, gen_len=64, attention="flash",
                                     sparse_kv=0.25)),
])
def test_whole_run_unchanged(monkeypatch, arch, software, model, scenario):
    """Metrics and the whole op table with the settled attention equal the op-by-op run."""
    def run():
        a = load_arch_with_software(arch, software) if software else load_arch(arch)
        return simulate(a, get_model(model), Scenario(**scenario))

    a = run()
    monkeypatch.setattr(gpu_mod.GpuDevice, "_settle_attention", lambda self, ops: None)
    b = run()
    assert_same_run(a, b)
