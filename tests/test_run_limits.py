"""Run-size limits by engine path (workloads/limits.py): 2,048-token Llama-2-70B decodes at
TP8 and pipelined with up to 8 micro-batches (issue 18: runs of a few seconds) start without
``--force``; twice that is refused with the path's own costs (workloads.limits.COST_PER_OP)
in the message, and so is a run that may need more memory than is available. The op count
is the trace's."""

from __future__ import annotations

import re

import pytest

from workloads import limits
from workloads.errors import WorkloadError
from workloads.limits import COST_PER_OP, MAX_OPS, check_run_size, engine_path, estimate_ops
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.mark.parametrize("kw, path", [
    ({"tp": 8}, "one-stream"), ({}, "one-stream"),
    ({"pp": 2}, "streams"), ({"microbatches": 2}, "streams"), ({"tp": 2, "ep": 2}, "streams")])
def test_engine_path(kw, path):
    assert engine_path(Scenario(batch=8, prompt_len=16, gen_len=4, **kw)) == path


@pytest.fixture
def ample_memory(monkeypatch):
    """A machine with 64 GiB available: the op limit alone decides."""
    monkeypatch.setattr(limits, "available_memory", lambda: 64 << 30)


def test_70b_tp8_2048_tokens_needs_no_force(ample_memory):
    sc = Scenario(batch=8, prompt_len=512, gen_len=2048, tp=8)
    n = check_run_size(get_model("llama2-70b"), sc)
    assert n == 2_465_792   # the ops bench_run.py's 70b-tp8-g2048 case runs


def test_one_stream_limit_refuses_with_its_own_costs(ample_memory):
    # 128 + 16,000 tokens: 19,264,000 ops (measured: 2.35-2.40 s) start; 28,000 do not
    model = get_model("llama3-70b")
    assert check_run_size(model, Scenario(batch=8, prompt_len=128, gen_len=16000, tp=8)) \
        == 19_264_000
    sc = Scenario(batch=8, prompt_len=128, gen_len=28000, tp=8)
    n = estimate_ops(model, sc)
    assert n == 33_712_000 > MAX_OPS["one-stream"]
    with pytest.raises(WorkloadError, match=r"limit 30,000,000 with one stream per device, "
                                            r"~4-15 s and 8.1 GB"):   # 0.12, 0.45 us, 240 B
        check_run_size(model, sc)


@pytest.mark.parametrize("kw, ops", [
    ({"tp": 2, "pp": 4, "microbatches": 4}, 9_887_744),
    ({"tp": 2, "pp": 4, "microbatches": 8}, 19_775_488),
    ({"tp": 1, "pp": 8, "microbatches": 8}, 17_203_200)])
def test_70b_pipelined_2048_tokens_needs_no_force(ample_memory, kw, ops):
    sc = Scenario(batch=8, prompt_len=512, gen_len=2048, **kw)
    assert engine_path(sc) == "streams"
    # the ops bench_cli_run.py's tp2-pp4-mb4(-overlap) runs: the estimate is exact here
    assert check_run_size(get_model("llama2-70b"), sc) == ops


def test_streams_limit_refuses_with_its_own_costs(ample_memory):
    sc = Scenario(batch=16, prompt_len=512, gen_len=2048, tp=2, pp=4, microbatches=16)
    model = get_model("llama2-70b")
    n = estimate_ops(model, sc)
    assert n == 39_550_976 > MAX_OPS["streams"]   # twice the ops of 8 micro-batches
    low, high, nbytes = COST_PER_OP["streams"]
    want = (f"limit {MAX_OPS['streams']:,} with several streams per device, "
            f"~{n * low:,.0f}-{n * high:,.0f} s and {n * nbytes / 1e9:,.1f} GB")
    with pytest.raises(WorkloadError, match=re.escape(want)) as err:
        check_run_size(model, sc)
    assert "~5-24 s and 9.6 GB" in str(err.value)   # by hand: 39.6M x 0.13, 0.60 us, 243 B
    assert check_run_size(model, sc, force=True) == n


def test_a_run_is_refused_where_its_memory_is_not_available(monkeypatch):
    """9,887,744 ops x 243 B = 2.40 GB: refused with 2 GB available, run with 3 GB, and with
    --force whatever the memory; no check where the memory cannot be read (0)."""
    model = get_model("llama2-70b")
    sc = Scenario(batch=8, prompt_len=512, gen_len=2048, tp=2, pp=4, microbatches=4)
    monkeypatch.setattr(limits, "available_memory", lambda: 2_000_000_000)
    with pytest.raises(WorkloadError, match=r"about 9,887,744 ops \(~1-6 s and 2.4 GB at "
                                            r"most\), more memory than the 2.0 GB available"):
        check_run_size(model, sc)
    assert check_run_size(model, sc, force=True) == 9_887_744
    for free in (3_000_000_000, 0):
        monkeypatch.setattr(limits, "available_memory", lambda free=free: free)
        assert check_run_size(model, sc) == 9_887_744


@pytest.mark.parametrize("limit, want", [("max\n", 8 << 30), ("2147483648\n", 2 << 30),
                                          ("9223372036854771712\n", 8 << 30), (None, 8 << 30)])
def test_available_memory_is_capped_by_the_containers_limit(tmp_path, monkeypatch, limit, want):
    """MemAvailable (8 GiB here), at most a cgroup's memory limit; "max", an unlimited v1
    value or no cgroup file leave it as it is."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: 33554432 kB\nMemAvailable: {8 << 20} kB\n")
    cgroup = tmp_path / "memory.max"
    if limit is not None:
        cgroup.write_text(limit)
    monkeypatch.setattr(limits, "MEMINFO", str(meminfo))
    monkeypatch.setattr(limits, "CGROUP_LIMITS", (str(cgroup), str(tmp_path / "v1")))
    assert limits.available_memory() == want


@pytest.mark.parametrize("v2", [True, False])
def test_available_memory_is_what_the_container_has_left(tmp_path, monkeypatch, v2):
    """A 6 GiB limit with 5 GiB used, 2 GiB of it page cache: 3 GiB left (under the 8 GiB
    MemAvailable); cgroup v2 files (memory.current, 'file') or v1 (memory.usage_in_bytes,
    'total_cache')."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: 33554432 kB\nMemAvailable: {8 << 20} kB\n")
    names = ("memory.max", "memory.current", "file") if v2 else \
        ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache")
    (tmp_path / names[0]).write_text(f"{6 << 30}\n")
    (tmp_path / names[1]).write_text(f"{5 << 30}\n")
    (tmp_path / "memory.stat").write_text(f"anon {3 << 30}\n{names[2]} {2 << 30}\nshmem 0\n")
    monkeypatch.setattr(limits, "MEMINFO", str(meminfo))
    monkeypatch.setattr(limits, "CGROUP_LIMITS", (str(tmp_path / names[0]),))
    assert limits.available_memory() == 3 << 30
    (tmp_path / names[1]).write_text(f"{7 << 30}\n")      # over the limit: 1 B, not 0 (no check)
    (tmp_path / "memory.stat").write_text(f"{names[2]} 0\n")
    assert limits.available_memory() == 1


def test_available_memory_reads_meminfo(monkeypatch):
    """The machine's MemAvailable, as the kernel gives it (kB -> B), where it has one (no
    cgroup limit read)."""
    monkeypatch.setattr(limits, "CGROUP_LIMITS", ())
    try:
        with open("/proc/meminfo") as info:
            kb = next(int(line.split()[1]) for line in info
                      if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        assert limits.available_memory() == 0
        return
    assert abs(limits.available_memory() - kb * 1024) < 0.05 * kb * 1024


@pytest.mark.parametrize("name, kw", [
    ("deepseek-v3", {}),                                        # 3 dense layers, then MoE
    ("deepseek-v3", {"tp": 2, "ep": 2}),
    ("deepseek-v3", {"tp": 2, "ep": 2, "pp": 2, "microbatches": 3, "batch": 5}),
    ("llama4-maverick", {"tp": 2, "ep": 2}),                    # MoE on odd layers only
    ("llama4-scout", {"pp": 2, "microbatches": 2}),             # every 4th layer without RoPE
    ("gemma3-1b", {"prompt_len": 500, "gen_len": 24}),          # windows crossed in decode
    ("glm-4.5-air", {"tp": 4, "ep": 4, "expert_skew": 1.2}),
    ("llama-3.3-nemotron-super-49b", {"microbatches": 2}),      # blocks of six widths
])
def test_estimate_is_the_traces_op_count(name, kw):
    """The count from templates equals the ops the trace stamps (it took DeepSeek-V3's 58
    mixture-of-experts layers for dense ones: 6,364 of 63,784 ops at TP2 EP2)."""
    from workloads.tracer import trace_model

    model = get_model(name)
    sc = Scenario(**{"batch": 2, "prompt_len": 32, "gen_len": 5, **kw})
    assert estimate_ops(model, sc) == len(trace_model(model, sc).ops)


def test_2_billion_micro_batches_are_counted_without_a_list():
    sc = Scenario(batch=2**31 - 1, microbatches=2**31 - 1, prompt_len=8, gen_len=2)
    per_request = estimate_ops(get_model("gpt2-small"), Scenario(batch=1, prompt_len=8,
                                                                 gen_len=2))
    assert estimate_ops(get_model("gpt2-small"), sc) == (2**31 - 1) * per_request
