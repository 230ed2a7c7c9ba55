"""The run report's SVG figures (issue 18, item 5): every mark lands at the pixel its axes map
it to, counted by hand; roofs bend at peak / bandwidth; bars are as long as their values;
text is escaped; every figure is well-formed XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from sim.report.figures import (
    ROOFLINE_BOX,
    breakdown_svg,
    energy_svg,
    roof_line,
    roofline_svg,
    timeline_svg,
)
from sim.report.svg import LogScale, Panel, Scale, Svg, esc, legend, markers

NS = "{http://www.w3.org/2000/svg}"


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)   # raises on anything that is not well-formed XML


def _points(**cols) -> pd.DataFrame:
    base = {"op": ["a"], "op_class": ["gemm"], "phase": ["prefill"], "flops": [1e10],
            "bytes": [1e9], "shards": [1], "latency_s": [1e-2], "n": [1]}
    base.update(cols)
    return pd.DataFrame(base)


def _rects(root: ET.Element, fill: str) -> list[tuple[float, ...]]:
    out = []
    for g in root.iter(f"{NS}g"):
        if g.get("fill") == fill:
            out += [tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
                    for r in g.iter(f"{NS}rect")]
    return out


def test_log_scale_maps_decades_by_hand():
    s = LogScale(0.05, 2000.0, 80.0, 880.0)   # rounded out to 1e-2 .. 1e4: six decades
    assert (s.lo, s.hi) == pytest.approx((1e-2, 1e4))
    assert s.px(10.0) == pytest.approx(80 + 3 / 6 * 800)
    assert s.px(1e-2) == pytest.approx(80) and s.px(1e4) == pytest.approx(880)
    assert [lb for _, lb in s.ticks()] == ["10\u207b\u00b2", "10\u207b\u00b9", "10\u2070",
                                            "10\u00b9", "10\u00b2", "10\u00b3", "10\u2074"]
    lin = Scale(0.0, 4.2, 315.0, 35.0)          # y grows downwards
    assert lin.px(4.2) == pytest.approx(35.0) and lin.px(2.1) == pytest.approx(175.0)
    assert [v for v, _ in lin.ticks()] == [0, 1, 2, 3, 4]


def test_roofline_point_and_knee_land_where_the_axes_put_them():
    """One op at 10 FLOP/B and 1e12 FLOP/s; a 1 PFLOP/s peak and a 1 TB/s roof. x spans
    1e-2..1e4 FLOP/B (half of 0.1 and twice 1e3, rounded out to decades), y 1e11..1e16 FLOP/s
    (half the slowest point; twice the peak) in an 800 x 500 box at (80, 40)."""
    text = roofline_svg(_points(), {"HBM": 1e12}, {"tensor": 1e15}, "t")
    root = _parse(text)
    left, top, w, h = ROOFLINE_BOX
    assert (left, top, w, h) == (80, 40, 800, 500)
    x = left + (1 - -2) / 6 * w              # log10(10) in six decades
    y = top + h - (12 - 11) / 5 * h          # log10(1e12) in five decades, upwards
    circles = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{NS}circle")]
    assert (x, y) == (480, 440) and (x, y) in circles
    knee_x = left + (3 - -2) / 6 * w         # peak / bandwidth = 1e3 FLOP/B
    peak_y = top + h - (15 - 11) / 5 * h
    lines = [p.get("points") for p in root.iter(f"{NS}polyline")]
    assert f"80,{top + h + h / 5:g} {knee_x:.2f},{peak_y:g} 880,{peak_y:g}" in lines
    assert f"80,{peak_y:g} 880,{peak_y:g}" in lines      # the compute roof
    assert "HBM: 1,000 GB/s" in text and "tensor: 1,000.0 TFLOP/s" in text
    assert "a (prefill)" in text                         # the op with the most time


def test_roof_line_vertices():
    assert roof_line(1e15, 1e12, 1e-2, 1e4) == [(1e-2, 1e10), (1e3, 1e15), (1e4, 1e15)]
    assert roof_line(1e15, 1e18, 1e-2, 1e4) == [(1e-2, 1e15), (1e4, 1e15)]   # knee left


def test_markers_by_phase_and_duplicates_drawn_once():
    s = Svg(100, 100)
    assert markers(s, [10.0, 10.0, 20.0], [50.0, 50.0, 30.0], "^", 3.0, "C1", 0.5) == 2
    g = _parse(s.render()).find(f"{NS}g")
    assert g.get("fill") == "#ff7f0e" and g.get("fill-opacity") == "0.5"
    # an upward triangle: apex r above the centre, base r / 2 below, 2 r sin(60 deg) wide
    assert g[0].get("d") == "M10.00,50.00m0,-3l2.6,4.5h-5.2z"


def test_energy_bars_are_as_tall_as_their_joules():
    ops = pd.DataFrame({"op_class": ["gemm", "attention"], "energy_compute_J": [3.0, 1.0],
                        "energy_memory_J": [1.0, 0.0], "energy_link_J": [0.0, 0.0]})
    root = _parse(energy_svg(ops, 2.0, "t"))
    plot_h, top = 280.0, 4.0 * 1.05                       # y spans 0 .. 1.05 x tallest bar
    compute, memory = _rects(root, "#1f77b4"), _rects(root, "#ff7f0e")
    static = _rects(root, "#2ca02c")
    heights = [r[3] for r in compute]
    assert heights == pytest.approx([3 / top * plot_h, 1 / top * plot_h], abs=0.01)
    assert memory[0][3] == pytest.approx(1 / top * plot_h, abs=0.01)
    assert memory[0][1] + memory[0][3] == pytest.approx(compute[0][1], abs=0.01)  # stacked
    assert static[0][3] == pytest.approx(2 / top * plot_h, abs=0.01)
    assert compute[0][0] < compute[1][0] < static[0][0]    # gemm, attention, static


def test_breakdown_bars_sum_phases():
    ops = pd.DataFrame({"op_class": ["gemm", "gemm", "norm"], "layer": [0, 0, 1],
                        "phase": ["prefill", "decode", "decode"],
                        "latency_s": [0.002, 0.006, 0.001], "energy_J": [1.0, 1.0, 2.0]})
    root = _parse(breakdown_svg(ops, "t"))
    decode, prefill = _rects(root, "#1f77b4"), _rects(root, "#ff7f0e")   # C0, C1 by name
    # panel 1 (op time by class, 400 px wide, 0 .. 1.05 x 8 ms): norm 1 ms, gemm 6 + 2 ms
    width = 400 / (8 * 1.05)
    assert [r[2] for r in decode[:2]] == pytest.approx([1 * width, 6 * width], abs=0.01)
    assert prefill[0][2] == pytest.approx(2 * width, abs=0.01)
    assert prefill[0][0] == pytest.approx(decode[1][0] + decode[1][2], abs=0.01)


def test_timeline_bars_at_their_times():
    sel = pd.DataFrame({"id": [1, 2], "op": ["a", "b"], "op_class": ["gemm", "attention"],
                        "stream": ["gpu0.compute"] * 2, "start_s": [0.0, 1e-3],
                        "latency_s": [1e-3, 3e-3], "end_s": [1e-3, 4e-3]})
    root = _parse(timeline_svg(sel, 7, "t"))
    (g,), (a,) = _rects(root, "#1f77b4"), _rects(root, "#ff7f0e")
    assert a[2] == pytest.approx(3 * g[2], abs=0.01)       # 3 ms against 1 ms
    assert a[0] == pytest.approx(g[0] + g[2], abs=0.01)    # starts where the first ends
    assert "time within decode step 7 (ms)" in ET.tostring(root, encoding="unicode")


def test_text_is_escaped():
    assert esc("<&>'\"") == "&lt;&amp;&gt;&#x27;&quot;"
    text = roofline_svg(_points(op=["<b>&x"]), 1e12, {"f<&>": 1e15}, "m <&> a")
    root = _parse(text)   # still well-formed
    assert "Roofline - m <&> a" in [t.text for t in root.iter(f"{NS}text")]
    assert "m &lt;&amp;&gt; a" in text and "<b>" not in text


def test_legend_frame_holds_its_entries():
    s = Svg(400, 300)
    x, y, w, h = legend(s, [("line", {}, "abc"), ("box", {"fill": "C2"}, "de"),
                            ("marker", {"shape": "s"}, "f")], 390, 290, "bottom-right")
    assert (x + w, y + h) == (390, 290) and h == 3 * (9 + 5) + 8
    texts = [t.text for t in _parse(s.render()).iter(f"{NS}text")]
    assert texts == ["abc", "de", "f"]


def test_panel_ticks_and_clip_ids_are_per_figure():
    s = Svg(300, 200, "one")
    p = Panel.make(s, (40, 10, 200, 150), (0, 10), (1, 1000), ylog=True)
    p.clip()
    p.axes("x", "y", "t")
    text = s.render()
    assert "id='one-clip'" in text
    labels = [t.text for t in _parse(text).iter(f"{NS}text")]
    assert {"0", "10", "10\u2070", "10\u00b3"} <= set(labels)
    assert len(re.findall("<rect", text)) >= 2
