"""`xpusim import dramsim3` with several traces in one call: each run's figures are exactly those
of a separate call (start-up is paid once, nothing else is shared)."""

from __future__ import annotations

import json

from xpusim.cli import main


def _trace(path, n: int, step: int, every: int, writes_every: int = 0):
    path.write_text("".join(
        f"0x{(i * step) % (1 << 31):x} "
        f"{'WRITE' if writes_every and i % writes_every == 0 else 'READ'} {every * i}\n"
        for i in range(n)))
    return path


def _json(argv, capsys) -> dict:
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_batch_equals_separate_calls(ref_dir, tmp_path, capsys):
    cfgs = ref_dir / "dram" / "dramsim3_configs"
    ddr4, hbm = str(cfgs / "DDR4_8Gb_x8_3200.ini"), str(cfgs / "HBM2_8Gb_x128.ini")
    a = str(_trace(tmp_path / "a.trace", 1200, 64, 4))
    b = str(_trace(tmp_path / "b.trace", 1200, 8192 + 64, 2, writes_every=3))
    one = [_json(["import", "dramsim3", "--config", c, "--trace", t, "--cycles", n], capsys)
           for c, t, n in ((ddr4, a, "5000"), (hbm, b, "3000"), (ddr4, b, "5000"))]
    both = _json(["import", "dramsim3", "--config", ddr4, hbm, ddr4, "--trace", a, b, b,
                  "--cycles", "5000", "3000", "5000"], capsys)
    assert [r["trace"] for r in both["runs"]] == [a, b, b]
    assert [r["cycles"] for r in both["runs"]] == [5000, 3000, 5000]
    for single, run in zip(one, both["runs"], strict=True):
        assert {k: run[k] for k in single} == single
    # the same trace on two configs gives different figures (the config is not shared)
    assert one[1] != one[2]
    # trace a has reads only, b a write every third request
    assert one[0]["writes_done"] == 0 and 0 < one[0]["reads_done"] <= 1200
    assert one[2]["writes_done"] > 0
    # one config and one cycle count broadcast to every trace
    bc = _json(["import", "dramsim3", "--config", ddr4, "--trace", a, b, "--cycles", "5000"],
               capsys)
    assert [{k: r[k] for k in one[0]} for r in bc["runs"]] == [one[0], one[2]]
    # text output: one block per trace
    assert main(["import", "dramsim3", "--config", ddr4, "--trace", a, b, "--cycles",
                 "5000"]) == 0
    text = capsys.readouterr().out
    assert text.count("reads_done") == 2 and f"{a} on {ddr4}" in text


def test_batch_count_mismatch_is_one_line(ref_dir, tmp_path, capsys):
    ddr4 = str(ref_dir / "dram" / "dramsim3_configs" / "DDR4_8Gb_x8_3200.ini")
    a = str(_trace(tmp_path / "a.trace", 10, 64, 4))
    assert main(["import", "dramsim3", "--config", ddr4, "--trace", a, a, "--cycles", "10",
                 "20", "30"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cycles" in err and "one per trace (2), got 3" in err
    assert main(["import", "dramsim3", "--config", ddr4, ddr4, ddr4, "--trace", a, a,
                 "--cycles", "10"]) == 2
    assert "--config" in capsys.readouterr().err
