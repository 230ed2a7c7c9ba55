"""A long run's op events of the Chrome trace by the compiled loops
(sim/report/trace_text.py, text_kernel.trace_events): the text the Python path writes, op by
op, with each start as ``_num(round(t, 4))`` (ties of the fourth decimal, their neighbours,
negatives and signed zeros included) and each op's link events (a new track's metadata first)
after it; a whole run's timeline.json byte for byte, through the build and the JIT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.report import text_aot, timeline, trace_text


def _starts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Microsecond times: random magnitudes below 1e11, exact ties of the fourth decimal and
    their neighbours, whole numbers, negatives and signed zeros."""
    k = rng.integers(0, 10**12, n)
    ties = (k + 0.5) / 1e4
    return np.concatenate([rng.random(n) * 10.0 ** rng.integers(-6, 11, n), ties,
                           np.nextafter(ties, 0), np.nextafter(ties, np.inf),
                           k.astype(np.float64), -rng.random(50) * 10, [0.0, -0.0, -1e-5,
                                                                       0.00005, 99999.99995]])


@pytest.mark.parametrize("seed", range(3))
def test_op_events_are_the_python_texts(seed):
    rng = np.random.default_rng(seed)
    start = _starts(rng, 3000)
    n = len(start)
    head_text = ['{"name":"a","ph":"X","ts":', '{"name":"b\\u00fc","ph":"X","ts":']
    dur_text = [',"dur":1.5,"args":{"layer":', ',"dur":0.0001,"args":{"layer":']
    dur_num, tail_text = ["1.5", "0.0001"], [',"k":1}}', ',"k":"x"}}']
    prefix = ['{"name":"a","cat":"collective","ph":"X","pid":7',
              '{"name":"b\\u00fc","cat":"collective","ph":"X","pid":7']
    head_c, dur_c, tail_c = (rng.integers(0, 2, n) for _ in range(3))
    layer, step = rng.integers(-1, 80, n), rng.integers(0, 5000, n)
    linked = sorted(rng.choice(n, 40, replace=False).tolist())
    names = [tuple(rng.choice(["nvlink0", "nvlink1", "pcie"], int(rng.integers(1, 3)),
                              replace=False).tolist()) for _ in linked]
    tracks: dict[str, int] = {}

    def link_tid(name: str, metas: list | None = None) -> int:
        if name not in tracks:
            tracks[name] = len(tracks)
            metas.append({"name": "thread_name", "ph": "M", "tid": tracks[name]})
        return tracks[name]

    got = trace_text.op_events_text(head_c, head_text, start, dur_c, dur_text, dur_num, layer,
                                    step, tail_c, tail_text, linked, names, link_tid, prefix)
    ts = [timeline._num(round(t, 4)) for t in start.tolist()]
    want, seen, at = [], set(), dict(zip(linked, names, strict=True))
    for i in range(n):
        want.append(f"{head_text[head_c[i]]}{ts[i]}{dur_text[dur_c[i]]}{layer[i]},"
                    f'"step":{step[i]}{tail_text[tail_c[i]]}')
        for name in at.get(i, ()):
            if name not in seen:
                seen.add(name)
                want.append(json.dumps({"name": "thread_name", "ph": "M", "tid": tracks[name]},
                                       separators=(",", ":")))
            want.append(f'{prefix[head_c[i]]},"tid":{tracks[name]},"ts":{ts[i]},'
                        f'"dur":{dur_num[dur_c[i]]}}}')
    assert got == ",".join(want)


@pytest.fixture(scope="module")
def long_run():
    """A run of over 32,768 ops whose collectives load links."""
    from arch import load_arch
    from sim.run import simulate
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    res = simulate(load_arch("dgx-h100"), get_model("gpt2-small"),
                   Scenario(batch=4, prompt_len=32, gen_len=100, tp=2, pp=2, microbatches=2),
                   policies=Policies(overlap=True))
    ops = res.columns("ops")
    assert len(ops) >= trace_text.COMPILED_EVENTS and res.op_links
    return ops, res.op_links


@pytest.mark.parametrize("jit", [False, True])
def test_timeline_of_a_long_run_is_the_python_one(long_run, jit, monkeypatch):
    ops, links = long_run
    if jit:
        monkeypatch.setattr(text_aot, "_CACHE", [text_aot.jit_kernels()])
    got = timeline.chrome_trace(ops, "t", None, links)
    monkeypatch.setattr(trace_text, "COMPILED_EVENTS", 1 << 62)
    assert got == timeline.chrome_trace(ops, "t", None, links)
    events = json.loads(got)["traceEvents"]
    assert sum(e.get("cat") == "collective" for e in events) > 0


@pytest.fixture(scope="module")
def system_runs():
    """Runs whose transfers cross PCIe, a switch and a drive (new copy streams, new link
    tracks), or host memory: (ops, transfers, op links) of each."""
    from arch import load_arch
    from sim.run import simulate
    from sim.system.placement import parse_placement
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    sc = Scenario(batch=4, prompt_len=64, gen_len=24)
    runs = [simulate(load_arch("a6000-storage"), get_model("llama2-7b"), sc,
                     policies=Policies(attention_on="csd")),
            simulate(load_arch("a6000-offload"), get_model("llama2-7b"), sc,
                     placement=parse_placement("weights=gpu.hbm:0.5,host_ddr:0.5"))]
    return [(r.columns("ops"), r.columns("transfers"), r.op_links) for r in runs]


@pytest.mark.parametrize("jit", [False, True])
def test_transfer_events_are_the_python_loops(system_runs, jit, monkeypatch):
    """Every op and transfer event through the compiled loops (threshold lowered to one row)
    equals the Python path's text, byte for byte."""
    if jit:
        monkeypatch.setattr(text_aot, "_CACHE", [text_aot.jit_kernels()])
    for ops, transfers, links in system_runs:
        assert transfers is not None and len(transfers) > 100
        monkeypatch.setattr(trace_text, "COMPILED_EVENTS", 1)
        got = timeline.chrome_trace(ops, "t", transfers, links)
        monkeypatch.setattr(trace_text, "COMPILED_EVENTS", 1 << 62)
        want = timeline.chrome_trace(ops, "t", transfers, links)
        assert got == want
        events = json.loads(got)["traceEvents"]
        assert sum(e.get("cat") == "transfer" for e in events) > len(transfers)


def test_transfers_the_loops_do_not_take_change_nothing(system_runs):
    """A transfer table with a -0.0 byte count, a float count or an infinite time is left to
    the Python loop, with the tracks untouched."""
    from sim.columns import Columns

    _, transfers, _ = system_runs[0]
    cols = {c: np.asarray(transfers[c]) for c in transfers.order}
    n = len(transfers)
    for change in ({"bytes": np.where(np.arange(n) == 3, -0.0, cols["bytes"])},
                   {"layer": cols["layer"].astype(np.float64)},
                   {"start_s": np.where(np.arange(n) == 5, np.inf, cols["start_s"])}):
        table = Columns({**cols, **change}, list(cols), n)
        pids, tids, tracks = {}, {}, []
        got = trace_text.transfer_events_text(
            table, "t", pids, tids, 9, lambda name, metas, seen=tracks: seen.append(name),
            timeline._meta, timeline._num, json.dumps, timeline._FAST_US)
        assert got is None and not pids and not tids and not tracks
