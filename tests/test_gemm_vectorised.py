"""best_gemm_many / prefill_best_gemm: GEMMs priced over arrays equal best_gemm bit for bit
(values, Python types, key order), and a run with the prefill equals one without it."""

from __future__ import annotations

import dataclasses
import random

import pytest

import sim.devices.gpu as gpu_mod
import sim.engine as engine_mod
from arch import load_arch
from sim.devices.base import device_for
from sim.gpu import gemm as G
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario

H100_PEAK = 989.4e12


def _hw(name: str, **kw):
    return dataclasses.replace(device_for(load_arch(name), "tile").hw, **kw)


def _identical(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(type(a[k]) is type(b[k]) and a[k] == b[k] for k in a)


def _check(hw, shapes, elem, peak) -> list[dict]:
    """best_gemm_many over ``shapes`` (batch, m, n, k, a, b, c) equals best_gemm one by one."""
    many = G.best_gemm_many(hw, *zip(*(s[:4] for s in shapes), strict=True), elem,
                            *zip(*(s[4:] for s in shapes), strict=True), peak)
    G.best_gemm.cache_clear()
    for s, got in zip(shapes, many, strict=True):
        ref = G.best_gemm(hw, *s[:4], elem, *s[4:], peak)
        assert got is not None and _identical(got, ref), (s, got, ref)
    return many


def _random_shapes(rng: random.Random, count: int, elem: float, kinds: tuple) -> list[tuple]:
    out = []
    for _ in range(count):
        b = rng.choice([1, 1, 4, 32, 256, 512])
        m = rng.choice([1, 4, 8, 100, 128, 512, 4096, rng.randint(1, 9000)])
        n = rng.choice([128, 4096, 11008, 32000, rng.randint(1, 20000)])
        k = rng.choice([64, 128, 4096, rng.randint(1, 30000)])
        sizes = (b * m * k * elem, b * k * n * elem, b * m * n * 2)
        out.append((b, m, n, k, *(kind(x) if kind is float or float(x).is_integer() else x
                                  for kind, x in zip(kinds, sizes, strict=True))))
    return [s for s in out if all(type(x) is kind for x, kind in zip(s[4:], kinds,
                                                                      strict=True))]


@pytest.mark.parametrize("name", ["h100", "a100", "t4", "mi210"])
@pytest.mark.parametrize("elem", [2, 1, 0.5, 2.0])
def test_random_shapes_equal_scalar(name, elem):
    rng = random.Random(f"{name}-{elem}")   # str seeds are hashed stably (sha512)
    hw = _hw(name)
    winners = set()
    for kinds in ((int, int, int), (float, int, float)):
        shapes = _random_shapes(rng, 150, elem, kinds)
        assert len(shapes) > 100
        for r in _check(hw, shapes, elem, H100_PEAK):
            winners.add((r["tile"], r["split_k"], r["bound"], type(r["dram_bytes"]),
                         r["stream_k"]))
    # the sample reaches several tiles, split-K, both bounds and both DRAM branches' types,
    # and stream-K where the preset has it
    assert {w[4] for w in winners} == ({False, True} if hw.gemm_stream_k else {False})
    assert len({w[0] for w in winners}) >= 3
    assert len({w[1] for w in winners}) >= 2
    assert {"compute", "memory"} <= {w[2] for w in winners}
    assert {int, float} <= {w[3] for w in winners}


@pytest.mark.parametrize("name", ["h100", "a100"])
def test_decode_attention_families_over_every_kv_length(name):
    """A decode run's qk and av GEMMs (batch x heads = 32 or 256; MHA: 1 query row, GQA: 8) at
    every KV length 1..2048: the best tile and the bound switch with the length."""
    hw = _hw(name)
    tiles = set()
    for bh, rows in ((32, 1), (256, 8)):
        qk = [(bh, rows, kv, 128, 2 * bh * rows * 128, 2 * bh * kv * 128, 2 * bh * rows * kv)
              for kv in range(1, 2049)]
        av = [(bh, rows, 128, kv, 2 * bh * rows * kv, 2 * bh * kv * 128, 2 * bh * rows * 128)
              for kv in range(1, 2049)]
        for family in (qk, av):
            many = _check(hw, family, 2, H100_PEAK)
            assert len({(r["tile"], r["bound"]) for r in many}) >= 2
            tiles |= {r["tile"] for r in many}
    assert len(tiles) >= 2


@pytest.mark.parametrize("change", [dict(gemm_overlap_p=0.0), dict(gemm_overlap_p=2.0),
                                    dict(persistent_gemm=False, ctas_per_sm=1),
                                    dict(ctas_per_sm=2, persistent_gemm=False),
                                    dict(gemm_cluster=1, gemm_fixed=3e-6),
                                    dict(gemm_stream_k=False),
                                    dict(gemm_stream_k=True, persistent_gemm=False,
                                         ctas_per_sm=2)])
def test_mechanism_variants_equal_scalar(change):
    hw = _hw("h100", **change)
    rng = random.Random(7)
    _check(hw, _random_shapes(rng, 120, 2, (int, int, int)), 2, H100_PEAK)


def test_prefill_fills_best_gemm_cache_without_scalar_pricing(monkeypatch):
    hw = _hw("h100")
    calls = [(256, 1, kv, 128, 2, 65536, 65536 * kv, 512 * kv, H100_PEAK)
             for kv in range(500, 600)]
    G.best_gemm.cache_clear()
    cached = G.best_gemm(hw, *calls[0])            # one already priced the scalar way
    got: dict = {}
    assert G.prefill_best_gemm(hw, calls + calls[:5], results=got) == len(calls) - 1
    assert G.best_gemm(hw, *calls[0]) is cached    # the cache keeps the entry it had
    assert got[calls[0]] is cached and all(got[c] is G.best_gemm(hw, *c) for c in calls)
    assert not G._handoff
    info = G.best_gemm.cache_info()
    assert info.currsize == len(calls)

    def boom(*a, **k):
        raise AssertionError("priced again")

    monkeypatch.setattr(G, "gemm_candidate", boom)
    for c in calls:                                # every call a cache hit now
        G.best_gemm(hw, *c)
    assert G.best_gemm.cache_info().hits == info.hits + len(calls)
    # too few calls to be worth arrays: left to the scalar path
    assert G.prefill_best_gemm(hw, [(1, 8, 4096, 4096, 2, 1, 2, 3, H100_PEAK)]) == 0


def test_unsupported_input_left_to_scalar_path():
    hw = _hw("h100")
    huge = G.best_gemm_many(hw, [1, 1], [2 ** 26, 64], [2 ** 26, 64], [2 ** 20, 64], 2,
                            [2 ** 47, 8192], [2 ** 47, 8192], [2 ** 53, 8192], H100_PEAK)
    assert huge[0] is None and huge[1] is not None
    with pytest.raises(ValueError, match="all ints or all floats"):
        G.best_gemm_many(hw, [1, 1], [8, 8], [8, 8], [8, 8], 2, [128, 128.0], [1, 1], [1, 1],
                         H100_PEAK)
    with pytest.raises(ValueError, match=">= 1"):
        G.best_gemm_many(hw, [1], [0], [8], [8], 2, [1], [1], [1], H100_PEAK)
    tiny = dataclasses.replace(hw, smem_per_sm=1024.0)
    with pytest.raises(ValueError, match="no GEMM tile"):
        G.best_gemm_many(tiny, [1], [8], [8], [8], 2, [128], [128], [128], H100_PEAK)


def _run_costs(monkeypatch, arch: str, model: str, prefill: bool, **scenario):
    """Every op's cost (repr: exact floats and types, detail included) and the op table."""
    G.best_gemm.cache_clear()
    real = G.prefill_best_gemm
    counted = []

    def prefill_fn(hw, calls, **kw):
        counted.append(real(hw, calls, **kw) if prefill else 0)
        return counted[-1]

    monkeypatch.setattr(gpu_mod, "prefill_best_gemm", prefill_fn)
    timelines = []
    run = engine_mod.Engine.run

    def capture(self, *a, **k):
        timelines.append(run(self, *a, **k))
        return timelines[-1]

    monkeypatch.setattr(engine_mod.Engine, "run", capture)
    res = simulate(load_arch(arch), get_model(model), Scenario(**scenario))
    monkeypatch.undo()
    return [repr(c) for tl in timelines for c in tl.costs], res.ops, sum(counted)


@pytest.mark.parametrize("arch,model,scenario", [
    ("h100", "llama2-7b", dict(batch=8, prompt_len=512, gen_len=96)),
    ("a100", "llama3-8b", dict(batch=4, prompt_len=300, gen_len=80, kv_dtype="fp8")),
])
def test_whole_run_identical_with_prefill(monkeypatch, arch, model, scenario):
    costs0, table0, n0 = _run_costs(monkeypatch, arch, model, False, **scenario)
    costs1, table1, n1 = _run_costs(monkeypatch, arch, model, True, **scenario)
    assert n0 == 0 and n1 >= 2 * (scenario["gen_len"] - 1)   # qk and av of every decode step
    assert costs1 == costs0
    assert table1.equals(table0)
