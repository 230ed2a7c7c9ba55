"""The DRAM model against DRAMsim3 runs of the same configs and traces (shared/reference/dram).

Tolerances from the issue: requests done and bandwidth within 5%, average read latency within
10%. The traces are regenerated with the reference folder's own generator into a temp dir.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.micro.dram import simulate
from sim.micro.dram_ini import load_dramsim3_ini
from sim.micro.dram_trace import read_trace


def _cases(ref_dir: Path) -> list[dict]:
    with open(ref_dir / "dram" / "dramsim3_trace_cases.csv", newline="") as f:
        return list(csv.DictReader(f))


def _make_trace(ref_dir: Path, case: dict, out: Path) -> Path:
    path = out / f"{case['case']}.trace"
    if not path.exists():
        subprocess.run([sys.executable, str(ref_dir / "dram" / "make_trace.py"), str(path),
                        case["requests"], case["pattern"], case["every_cycles"],
                        case["write_fraction"], case["stride_bytes"], case["span_bytes"],
                        case["seed"]], check=True)
    return path


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dramsim3_traces")


def test_reference_cases_within_tolerance(ref_dir, trace_dir):
    rows = []
    for case in _cases(ref_dir):
        cfg = load_dramsim3_ini(ref_dir / "dram" / "dramsim3_configs" / case["config"])
        trace = read_trace(_make_trace(ref_dir, case, trace_dir))
        s = simulate(cfg, trace.addrs, trace.writes, trace.times, int(case["cycles"]),
                     tail="newline" if trace.trailing_newline else "no_newline")
        done = s.reads_done + s.writes_done
        ref_done = float(case["num_reads_done"]) + float(case["num_writes_done"])
        rows.append((case["case"], done / ref_done - 1,
                     s.bandwidth_GBps / float(case["average_bandwidth"]) - 1,
                     s.avg_read_latency_cycles / float(case["average_read_latency"]) - 1))
        assert s.activates == pytest.approx(float(case["num_act_cmds"]), rel=0.05)
        assert s.refreshes == pytest.approx(float(case["num_ref_cmds"]), rel=0.05)
        assert s.energy_pJ == pytest.approx(float(case["total_energy"]), rel=0.05)
    for name, d_done, d_bw, d_lat in rows:
        assert abs(d_done) <= 0.05, (name, d_done)
        assert abs(d_bw) <= 0.05, (name, d_bw)
        assert abs(d_lat) <= 0.10, (name, d_lat)


def test_cli_json_keys(ref_dir, trace_dir, capsys):
    from xpusim.cli import main

    case = _cases(ref_dir)[0]
    trace = _make_trace(ref_dir, case, trace_dir)
    cfg = ref_dir / "dram" / "dramsim3_configs" / case["config"]
    rc = main(["import", "dramsim3", "--config", str(cfg), "--trace", str(trace),
               "--cycles", case["cycles"], "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["reads_done", "writes_done", "avg_read_latency_cycles", "activates",
                         "read_row_hits", "refreshes", "bandwidth_GBps", "energy_pJ"]
    assert out["reads_done"] == pytest.approx(float(case["num_reads_done"]), rel=0.05)


def test_cli_bad_inputs(tmp_path, capsys):
    from xpusim.cli import main

    ini = tmp_path / "x.ini"
    ini.write_text("[dram_structure]\nprotocol = DDR9\n")
    trace = tmp_path / "t.trace"
    trace.write_text("0x40 READ 0\n")
    assert main(["import", "dramsim3", "--config", str(ini), "--trace", str(trace),
                 "--cycles", "10"]) == 2
    err = capsys.readouterr().err
    assert "protocol" in err and "x.ini" in err
    ini.write_text("[timing]\ntCK = fast\n")
    assert main(["import", "dramsim3", "--config", str(ini), "--trace", str(trace),
                 "--cycles", "10"]) == 2
    assert "tCK" in capsys.readouterr().err
    trace.write_text("0x40 READ 0\n0x80 READ\n")
    ini.write_text("[system]\nchannels = 1\n")
    assert main(["import", "dramsim3", "--config", str(ini), "--trace", str(trace),
                 "--cycles", "10"]) == 2
    assert "line 2" in capsys.readouterr().err


def test_cli_refuses_an_ini_integer_past_32_bits(tmp_path, capsys):
    # found by benchmarks/fuzz_inputs.py: 23 digits overflowed the C library's int64 parameters
    from xpusim.cli import main

    ini = tmp_path / "x.ini"
    ini.write_text("[dram_structure]\nprotocol = HBM2\n[timing]\ntRCDWR = " + "9" * 23 + "\n")
    trace = tmp_path / "t.trace"
    trace.write_text("0x40 READ 0\n")
    assert main(["import", "dramsim3", "--config", str(ini), "--trace", str(trace),
                 "--cycles", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.ini: [timing] tRCDWR: expected an integer of at most" \
        in err, err
