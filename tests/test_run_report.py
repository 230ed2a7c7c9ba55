"""The run report a researcher expects (issue 16, item 4): metrics with units, every roof,
phases and labels on the roofline, breakdowns by layer and op class, utilisation, a decode-step
timeline, bounds; rendered in a headless browser when one is installed."""

import json

import pandas as pd
import pytest

from sim.report.browser import dom, find_browser
from sim.report.roofs import bandwidth_roofs
from sim.report.units import readable
from sim.report.utilisation import bound_shares, utilisation_table
from xpusim.cli import main

RUN = ["run", "--model", "gpt2-small", "--batch", "2", "--prompt", "32", "--gen", "6", "--quiet"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "r"
    assert main([*RUN, "--arch", "h100", "--out", str(out)]) == 0
    return out


def test_readable_magnitudes():
    assert readable(0.08607, "s") == "86.07 ms"
    assert readable(13.48e9, "B") == "13.48 GB"
    assert readable(3.35e12, "B/s") == "3.35 TB/s"
    assert readable(1242.5, "token/s") == "1,242.5 token/s"
    assert readable(0.306, "%") == "30.6 %"
    assert readable(858112.0) == "858,112"


def test_metrics_have_units_not_raw_keys_first(report):
    page = (report / "report.html").read_text()
    assert "<td class='l'>time to first token</td>" in page
    assert " ms</td>" in page and "e+" not in page.split("<h2>Roofline")[0]
    summary = json.loads((report / "summary.json").read_text())
    assert 0 < summary["utilisation"]["mfu"] < 1


def test_page_has_every_section(report):
    page = (report / "report.html").read_text()
    for h in ("Metrics", "Roofline", "Where the time and energy go", "One decode step",
              "Utilisation", "What bounds each op class", "Energy", "Ops that take the time"):
        assert f"<h2>{h}</h2>" in page, h
    assert page.count("<svg ") == 4  # roofline, breakdown, decode step, energy (inline SVG)
    assert "memory accesses" in page  # energy component no longer named like the op class


def test_every_roof_of_h100():
    """HBM, L2 and the links of the preset (from the arch recorded with the run)."""
    from arch import load_arch
    from sim.record import run_record
    from workloads.models import get_model
    from workloads.scenario import Scenario

    class R:
        inputs = {"resolved": run_record(load_arch("h100"), get_model("gpt2-small"),
                                         Scenario(), fidelity="tile", seed=0)}
        resources = pd.DataFrame()
        device_info = {}

    roofs = bandwidth_roofs(R())
    assert roofs["HBM"] == 3.35e12 and roofs["L2"] > roofs["HBM"]  # h100.yaml values
    assert any(k.startswith("nvlink") for k in roofs)


def test_utilisation_against_hand_numbers():
    ops = pd.DataFrame({"phase": ["prefill", "decode"], "flops": [8e12, 1e12],
                        "dram_bytes": [1e9, 3e9], "latency_s": [1.0, 1.0],
                        "op_class": ["gemm", "gemm"], "bound": ["compute", "memory"]})
    summary = {"metrics": {"ttft_s": 1.0, "latency_s": 3.0},
               "device": {"devices_used": 2, "roofs": {"tensor": 1e13},
                          "peak_bandwidth_Bps": 2e9}}
    t = utilisation_table(summary, ops).set_index(["component", "phase"])
    assert t.loc[("compute (tensor)", "prefill"), "utilisation"] == pytest.approx(0.4)
    assert t.loc[("compute (tensor)", "decode"), "utilisation"] == pytest.approx(0.025)
    assert t.loc[("device memory", "decode"), "achieved"] == pytest.approx(0.75e9)
    b = bound_shares(ops).set_index("op_class")
    assert b.loc["gemm", "compute"] == 0.5 and b.loc["gemm", "time_s"] == 2.0


@pytest.mark.skipif(find_browser() is None,
                    reason="no Chromium on PATH: install chromium to render the report in CI")
def test_report_renders_in_a_headless_browser(report, tmp_path):
    from sim.report.browser import screenshot

    html = dom(report / "report.html")
    assert "xpusim run report" in html and "time per output token" in html
    png = screenshot(report / "report.html", tmp_path / "shot.png", height=1600)
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
