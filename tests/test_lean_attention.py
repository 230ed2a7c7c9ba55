"""``xpusim reproduce lean-attention``: the three partitionings on the A100 model."""

import json

import pytest

from xpusim.cli import main


@pytest.fixture(scope="module")
def out():
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["reproduce", "lean-attention", "--json"]) == 0
    return json.loads(buf.getvalue())


def test_shape_and_targets(out, capsys):
    assert out["name"] == "lean-attention"
    claims = {r["target"]: r for r in out["results"]}
    assert set(claims) == {2.6, 8.33, 1.73}
    for r in out["results"]:
        assert r["measured"] > 1.0 and r["rel_error"] == pytest.approx(
            r["measured"] / r["target"] - 1)
    with capsys.disabled():
        print("\n[lean-attention] " + "; ".join(
            f"{r['claim']}: {r['measured']:.2f} (target {r['target']})" for r in out["results"]))
    assert len(out["points"]) == 2 * 2 * 10 and out["assumptions"]


def test_mechanism_properties(out):
    for p in out["points"]:
        # LeanAttention keeps every SM slot busy; it is never slower than either baseline
        assert p["lean_s"] <= p["fd_s"] * 1.0001 and p["lean_s"] <= p["fa2_s"]
        assert p["fa2_ctas"] == p["heads"]                 # batch 1: one CTA per head
    long = [p for p in out["points"] if p["context"] == 512 * 1024]
    # fewer heads leave more SMs idle under FA-2, so the speedup is larger
    by_heads = {h: max(p["speedup_vs_fa2"] for p in long if p["heads"] == h) for h in (32, 64)}
    assert by_heads[32] > by_heads[64]


def test_deterministic_and_text(capsys):
    assert main(["reproduce", "lean-attention", "--heads", "40", "--head-dims", "64",
                 "--max-context", "4096"]) == 0
    text = capsys.readouterr().out
    assert "speedup vs FlashAttention-2" in text and "assumptions:" in text
