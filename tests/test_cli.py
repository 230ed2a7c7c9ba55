"""The xpusim command: reports, JSON, presets, and one-line errors for every bad input."""

import json
import subprocess
import sys

import pytest

from xpusim.cli import main

RUN = ["run", "--model", "gpt2-small", "--batch", "2", "--prompt", "32", "--gen", "4"]


def test_run_writes_every_report_file(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main([*RUN, "--arch", "h100", "--out", str(out)]) == 0
    files = {p.name for p in out.iterdir()}
    assert {"summary.json", "roofline.svg", "energy.svg", "breakdown.svg", "timeline.svg",
            "timeline.json", "report.html"} <= files
    assert files & {"ops.parquet", "ops.csv"}  # parquet when pyarrow is installed
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    html = (out / "report.html").read_text()
    assert html.count("<svg ") == 4 and "<img" not in html  # + breakdown, step; inline
    trace = json.loads((out / "timeline.json").read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert events and all({"name", "ts", "dur", "pid", "tid"} <= e.keys() for e in events)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["invariants"] and summary["inputs"]["model"] == "gpt2-small"
    roofline = (out / "roofline.svg").read_text()
    assert roofline.startswith("<svg xmlns='http://www.w3.org/2000/svg'") and \
        roofline in html


def test_run_json(capsys):
    assert main([*RUN, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("ttft_s", "tpot_s", "latency_s", "tokens_per_s", "energy_J", "energy_per_token_J"):
        assert data[key] > 0
    assert data["inputs"]["scenario"]["batch"] == 2


def test_run_tp_on_dgx(capsys):
    assert main(["run", "--arch", "dgx-h100", "--model", "llama2-70b", "--tp", "8", "--batch",
                 "4", "--prompt", "64", "--gen", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ttft_s"] > 0 and data["tpot_s"] > 0


def test_op_gemm_json(capsys):
    assert main(["op", "gemm", "--arch", "a100", "--m", "1024", "--n", "1024", "--k", "1024",
                 "--dtype", "fp16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["flops"] == 2 * 1024**3
    assert {"latency_s", "bytes", "energy_J", "bound"} <= data.keys()


def test_arch_commands(tmp_path, capsys):
    assert main(["arch", "list"]) == 0
    assert "h100" in capsys.readouterr().out
    assert main(["arch", "show", "h100"]) == 0
    shown = capsys.readouterr().out
    path = tmp_path / "h100.yaml"
    path.write_text(shown)
    assert main(["arch", "validate", str(path)]) == 0
    assert "valid gpu arch 'h100'" in capsys.readouterr().out


def test_models_commands(capsys):
    assert main(["models", "list"]) == 0
    assert "llama2-70b" in capsys.readouterr().out
    assert main(["models", "show", "mixtral-8x7b"]) == 0
    assert json.loads(capsys.readouterr().out)["n_experts"] == 8


H100 = "name: x\ntype: gpu\nextends: h100\n"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


BAD_INPUTS = {
    "unknown preset": (lambda t: ["--arch", "h1000"], "unknown preset 'h1000'"),
    "missing file": (lambda t: ["--arch", str(t / "none.yaml")], "file not found"),
    "YAML syntax error": (lambda t: ["--arch", _write(t, "a.yaml", "name: [x\n")],
                          "YAML syntax error"),
    "unknown key": (lambda t: ["--arch", _write(t, "b.yaml", H100 + "gpu:\n  sm_cuont: 4\n")],
                    "did you mean 'sm_count'"),
    "wrong type": (lambda t: ["--arch", _write(t, "c.yaml", H100 + "gpu:\n  sm_count: lots\n")],
                   "gpu.sm_count: expected an integer"),
    "negative size": (lambda t: ["--arch", _write(t, "d.yaml", H100 + "memory:\n  hbm:\n"
                                                                      "    capacity: -1 GiB\n")],
                      "memory.hbm.capacity: expected a value > 0"),
    "bad unit string": (lambda t: ["--arch", _write(t, "e.yaml", H100 + "memory:\n  hbm:\n"
                                                                        "    bandwidth: 3 TB\n")],
                        "memory.hbm.bandwidth: '3 TB' is not in B/s"),
    "model does not fit": (lambda t: ["--arch", "a100-40gb", "--model", "llama2-70b"],
                           "does not fit"),
    "batch of 0": (lambda t: ["--batch", "0"], "--batch: expected a positive integer"),
    "prompt of 0": (lambda t: ["--prompt", "0"], "--prompt: expected a positive integer"),
    "malformed config.json": (lambda t: ["--model", _write(t, "config.json",
                                                           '{"model_type": "llama", "hidden')],
                              "malformed JSON"),
    "unknown model": (lambda t: ["--model", "lama2-7b"], "did you mean 'llama2-7b'"),
    "unknown dtype": (lambda t: ["--dtype", "fp12"], "--dtype: unknown dtype 'fp12'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_exit_2(case, tmp_path, capsys):
    args, needle = BAD_INPUTS[case]
    out_dir = tmp_path / "never"
    code = main(["run", *args(tmp_path), "--gen", "2", "--out", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("xpusim: error:"), err
    assert needle in err, err
    assert "Traceback" not in err
    assert not out_dir.exists(), "nothing may be written on bad input"


def test_bad_input_via_console_script(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xpusim", "run", "--batch", "-3"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "xpusim-report").exists()


def test_unknown_subcommand_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "xpusim", "frobnicate"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
