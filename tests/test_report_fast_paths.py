"""The run report's fast paths write what the plain ones did (issue 18, item 5).

* ``timeline.json``: op events are serialised once per distinct name / track / shape and
  joined per op; every event must still be the ``json.dumps`` text of the event a plain loop
  over the op table builds, in the same order, each op followed by its events on the links it
  loads (a system run with collectives on links and host transfers).
* PNGs of the run report's fixed-layout figures are encoded from the Agg buffer as RGB: the
  same pixels and dpi as matplotlib's ``savefig`` (RGBA) of the same figure.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from arch import load_arch
from sim.report.plots import _png, new_figure
from sim.report.timeline import chrome_trace
from sim.run import simulate
from sim.system.placement import parse_placement
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.fixture(scope="module")
def hosted():
    """Decode attention on the host CPU with the KV cache in host DDR: ops that load links
    (``op_links``) and transfers between tiers."""
    res = simulate(load_arch("a6000-offload"), get_model("opt-13b"),
                   Scenario(batch=4, prompt_len=64, gen_len=3),
                   placement=parse_placement("kv_cache=host_ddr"),
                   policies=Policies(attention_on="cpu"))
    assert res.op_links and len(res.transfers)   # the case exercises both
    return res


def _expected_op_events(ops, op_links, meta) -> list[dict]:
    """Op events (and the link events after each op) built row by row, as the trace format
    says: pid of the op's device process, tid of its stream's thread, times in us."""
    pid_of = {e["args"]["name"]: e["pid"] for e in meta if e["name"] == "process_name"}
    tid_of = {(e["pid"], e["args"]["name"]): e["tid"] for e in meta
              if e["name"] == "thread_name"}
    link_pid = pid_of["links and memory tiers"]
    out = []
    for row in ops.itertuples(index=False):
        pid = pid_of[f"{row.device} - t"]
        ts, dur = round(row.start_s * 1e6, 4), round(row.latency_s * 1e6, 4)
        out.append({"name": row.op, "cat": f"{row.op_class},{row.phase}", "ph": "X",
                    "pid": pid, "tid": tid_of[(pid, row.stream.rsplit(".", 1)[-1])],
                    "ts": ts, "dur": dur,
                    "args": {"layer": int(row.layer), "step": int(row.step),
                             "phase": row.phase, "flops": float(row.flops),
                             "bytes": float(row.bytes), "bound": row.bound}})
        for res in op_links.get(int(row.id), ()):
            out.append({"name": row.op, "cat": "collective", "ph": "X", "pid": link_pid,
                        "tid": tid_of[(link_pid, res)], "ts": ts, "dur": dur})
    return out


def test_trace_events_are_the_json_of_each_op_in_order(hosted):
    text = chrome_trace(hosted.ops, "t", hosted.transfers, hosted.op_links)
    events = json.loads(text)["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    got = [e for e in events if e["ph"] == "X" and not e["cat"].startswith("transfer")]
    want = _expected_op_events(hosted.ops, hosted.op_links, meta)
    assert len(got) == len(want) == len(hosted.ops) + sum(map(len, hosted.op_links.values()))
    compact = (",", ":")
    assert [json.dumps(e, separators=compact) for e in got] == \
        [json.dumps(e, separators=compact) for e in want]
    pos = 0
    for e in want:   # byte for byte and in order: each event is json.dumps of it
        pos = text.index(json.dumps(e, separators=compact), pos) + 1
    # transfers keep their events: one on the copy stream and one per resource of the route
    tr = [e for e in events if e["ph"] == "X" and e["cat"].startswith("transfer")]
    assert len(tr) == sum(1 + len([r for r in (t.src, *t.route.split(), t.dst) if r])
                          for t in hosted.transfers.itertuples())
    # each the json.dumps text of its event built from the transfer's row, in order
    k, pos = 0, 0
    for t in hosted.transfers.itertuples():
        hops = [r for r in (t.src, *t.route.split(), t.dst) if r]
        for cat in [f"transfer,{t.tensor}"] + ["transfer"] * len(hops):
            e = tr[k]
            k += 1
            want = {"name": t.name, "cat": cat, "ph": "X", "pid": e["pid"], "tid": e["tid"],
                    "ts": round(t.start_s * 1e6, 4), "dur": round(t.latency_s * 1e6, 4),
                    "args": {"bytes": float(t.bytes), "replicas": int(t.replicas),
                             "layer": int(t.layer), "step": int(t.step)}}
            pos = text.index(json.dumps(want, separators=compact), pos) + 1


def test_trace_links_of_the_first_and_last_ops_from_a_plain_dict(hosted):
    """Op links given as a plain dict, on the table's first and last ops only (the ends of
    the runs of ops written as one chunk): each op's event, then its link events, in order."""
    ids = hosted.ops["id"].tolist()
    links = {link for names in hosted.op_links.values() for link in names}
    first, last = sorted(links)[:1], sorted(links)[-2:]
    op_links = {int(ids[0]): tuple(first), int(ids[-1]): tuple(last)}
    # one op after the last linked op: the chunk after it holds that op alone
    near = {int(ids[0]): tuple(first), int(ids[-2]): tuple(last)}
    events = json.loads(chrome_trace(hosted.ops, "t", None, near))["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    assert [e for e in events if e["ph"] == "X"] == _expected_op_events(hosted.ops, near, meta)
    text = chrome_trace(hosted.ops, "t", None, op_links)
    events = json.loads(text)["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    got = [e for e in events if e["ph"] == "X"]
    want = _expected_op_events(hosted.ops, op_links, meta)
    assert len(got) == len(hosted.ops) + len(first) + len(last)
    assert [e["cat"] for e in got[:2]] != ["collective"] * 2 and got[1]["cat"] == "collective"
    assert got[-1]["cat"] == got[-2]["cat"] == "collective" != got[-3]["cat"]
    assert got == want


def test_trace_without_stream_column_or_links(hosted):
    """An op table without ``stream`` puts each device's ops on one track; without links or
    transfers there is no links process."""
    ops = hosted.ops.drop(columns=["stream"])
    events = json.loads(chrome_trace(ops, "t"))["traceEvents"]
    assert not any(e["ph"] == "M" and e["args"]["name"] == "links and memory tiers"
                   for e in events)
    xs = [e for e in events if e["ph"] == "X"]
    assert len(xs) == len(ops)
    tracks = {(e["pid"], e["tid"]) for e in xs}
    assert len(tracks) == ops["device"].nunique()
    assert [e["name"] for e in xs] == ops["op"].tolist()
    assert chrome_trace(ops.iloc[:0], "t") == \
        '{"traceEvents":[],"displayTimeUnit":"ms"}'


def _figure():
    fig = new_figure((4, 3))
    ax = fig.subplots()
    x = np.linspace(0.0, 1.0, 50)
    ax.plot(x, x ** 2, label="square")
    ax.bar([0.2, 0.5], [0.3, 0.6], width=0.1, color="tab:orange", label="bars")
    ax.set_title("pixels")
    ax.legend(loc="upper left")
    fig.subplots_adjust(left=0.15, right=0.95, bottom=0.15, top=0.9)
    return fig


def test_rgb_png_has_savefigs_pixels():
    fast = Image.open(io.BytesIO(_png(_figure(), tight=False)))
    buf = io.BytesIO()
    _figure().savefig(buf, format="png", dpi=110)
    plain = Image.open(io.BytesIO(buf.getvalue()))
    assert fast.mode == "RGB" and plain.mode == "RGBA"
    assert fast.size == plain.size == (440, 330)   # 4 x 3 in at 110 dpi
    assert np.array_equal(np.asarray(fast), np.asarray(plain.convert("RGB")))
    assert fast.info["dpi"] == pytest.approx((110, 110), abs=0.01)


def test_fixed_point_times_are_the_rounded_reprs():
    """Trace times as ``'%.4f'`` stripped of zeros are the text ``round(t, 4)`` gives (the
    same correctly rounded digits) below 1e11 us; beyond it, and for inf/nan, the plain form."""
    from sim.report.timeline import _num, _us_texts

    rng = np.random.default_rng(0)
    us = np.concatenate([rng.uniform(0, 2e7, 20_000), rng.uniform(0, 1, 2_000) * 1e-3,
                         [0.0, -0.0, 1e-5, -1e-5, 5e-5, 12.5, 3.00005, 2.00015, 0.00015,
                          9.99995e10, 123456789.12345]])
    assert list(_us_texts(us)) == [_num(round(t, 4)) for t in us.tolist()]
    big = np.array([1e12 + 0.123456, 2.5e16, 1.0])
    assert list(_us_texts(big)) == [_num(round(t, 4)) for t in big.tolist()]
    odd = np.array([1.0, np.inf, np.nan])
    assert list(_us_texts(odd)) == ["1.0", "Infinity", "NaN"]


def test_sum_table_is_pivot_table():
    from sim.report.rollups import sum_table

    df = pd.DataFrame({"op_class": ["gemm", "norm", "gemm", "attention"],
                       "phase": ["decode", "decode", "prefill", "decode"],
                       "latency_s": [1.0, 2.0, 4.0, 8.0]})
    want = df.pivot_table(index="op_class", columns="phase", values="latency_s",
                          aggfunc="sum", fill_value=0.0)
    got = sum_table(df, "op_class", "phase", "latency_s")
    missing = pd.concat([df, pd.DataFrame({"op_class": [None], "phase": ["decode"],
                                           "latency_s": [16.0]})], ignore_index=True)
    assert sum_table(missing, "op_class", "phase", "latency_s").to_dict() == got.to_dict()
    assert got.to_dict() == want.to_dict() == {"decode": {"attention": 8.0, "gemm": 1.0,
                                                          "norm": 2.0},
                                               "prefill": {"attention": 0.0, "gemm": 4.0,
                                                           "norm": 0.0}}
