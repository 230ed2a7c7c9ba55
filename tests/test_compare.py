"""``xpusim compare`` (issue 16, item 3): presets, files and --set overrides side by side."""

import json

import pytest
import yaml

from dse.compare import arch_variants, parse_set
from xpusim.cli import main

WORK = ["--model", "gpt2-small", "--batch", "2", "--prompt", "32", "--gen", "4", "--quiet"]


def test_set_reaches_the_device_of_a_system_arch():
    from arch.topology_view import device_view

    base, changed = arch_variants(["dgx-h100"], ["memory.hbm.bandwidth=6.7TB/s"])
    assert device_view(base, "gpu").memory["hbm"].bandwidth == 3.35e12
    assert device_view(changed, "gpu").memory["hbm"].bandwidth == 6.7e12
    single = arch_variants(["h100"], ["gpu.sm_count=144"])[1]
    assert single.gpu.sm_count == 144 and single.name == "h100+sm_count=144"


def test_bad_set_is_one_line(capsys):
    assert main(["compare", "h100", "--set", "memory.hbm.bandwidth", *WORK]) == 2
    assert "PATH=VALUE" in capsys.readouterr().err
    assert parse_set("gpu.sm_count=132") == ("gpu.sm_count", 132)


def test_compare_table_json_and_report(tmp_path, capsys):
    f = tmp_path / "fast.yaml"
    f.write_text(yaml.safe_dump({"name": "fast", "type": "gpu", "extends": "h100",
                                 "memory": {"hbm": {"bandwidth": "6.7 TB/s"}}}))
    out = tmp_path / "cmp"
    assert main(["compare", "h100", "a100", str(f), *WORK, "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["arches"] == ["h100", "a100", "fast"]
    m = data["metrics"]
    # same workload: same work; twice the HBM bandwidth cannot be slower
    assert m["h100"]["flops"] == m["a100"]["flops"] == m["fast"]["flops"]
    assert m["fast"]["tpot_s"] < m["h100"]["tpot_s"] < m["a100"]["tpot_s"]
    classes = {(r["phase"], r["op_class"]): r for r in data["op_class_time_s"]}
    row = classes[("decode", "gemm")]
    assert row["a100 - h100"] == pytest.approx(row["a100"] - row["h100"])
    page = (out / "report.html").read_text()
    for h in ("Metrics", "Where the time goes", "Difference per op class",
              "What bounds each op class", "Rooflines overlaid"):
        assert f"<h2>{h}</h2>" in page
    assert " ms</td>" in page and page.count("<img") == 2


def test_compare_text_table(tmp_path, capsys):
    assert main(["compare", "h100", "--set", "memory.hbm.bandwidth=6.7TB/s", *WORK,
                 "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "time per output token" in out and "h100+bandwidth=6.7TB/s / h100" in out
