"""FuseMax vs FLAT reproduction: shape, per-point latencies, averages."""

from __future__ import annotations

import argparse

import pytest

from arch import load_arch
from mappings.fusemax import ENCODERS, compare
from xpusim.reproductions import fusemax


@pytest.fixture
def out(ref_dir):
    return fusemax.reproduce(argparse.Namespace(
        reference=str(ref_dir / "seeds" / "fusemax_vs_flat.csv")))


def test_shape(out):
    assert out["name"] == "fusemax"
    assert len(out["points"]) == 24
    keys = {"model", "seq_len", "attn_speedup", "attn_energy_ratio", "e2e_speedup",
            "e2e_energy_ratio", "util2d_fusemax", "util2d_flat"}
    assert all(keys <= set(p) for p in out["points"])
    for r in out["results"]:
        assert set(r) == {"claim", "measured", "target", "rel_error"}


def test_averages_within_15_percent(out):
    for r in out["results"][:4]:
        assert abs(r["rel_error"]) <= 0.15, r


def test_per_point_latency_against_artifact(out):
    rows = [p for p in out["points"] if "target" in p]
    assert len(rows) == 12
    for p in rows:
        t = p["target"]
        assert p["attn_latency_fusemax_s"] == pytest.approx(t["attn_latency_fusemax_s"],
                                                            rel=0.02)
        assert p["attn_latency_flat_s"] == pytest.approx(t["attn_latency_flat_s"], rel=0.10)
        assert p["util2d_fusemax"] == pytest.approx(t["util2d_fusemax"], abs=0.01)


def test_fusemax_never_slower():
    fm, fl = load_arch("fusemax"), load_arch("flat")
    for enc in ENCODERS.values():
        c = compare(enc, 2048, fm, fl)
        assert c["attn_speedup"] > 1 and c["attn_energy_ratio"] < 1
