"""Start-up stays light: commands that run no numba kernel never import numba (issue 18).

Each case runs in a fresh interpreter and reports which heavy packages ended up in
``sys.modules``; a module-level ``import numba`` (or scipy, pandas, ...) slipped into any command,
importer, reproduction or validation plugin on these paths fails here. Timing lives in
``benchmarks/bench_startup.py``; this is a regression test of what loads, not of how fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("numba", "llvmlite", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "simpy")
#: packages each path may not load (numpy is allowed where the command computes with it)
NOT_CLI = set(HEAVY)
NOT_KERNEL = {"numba", "llvmlite", "scipy", "pandas", "pyarrow", "matplotlib", "simpy"}

_PROBE = r"""
import contextlib, io, json, sys
code = sys.argv[1]
sink = io.StringIO()
with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
    exec(code)
print(json.dumps({"loaded": [m for m in json.loads(sys.argv[2]) if m in sys.modules],
                  "rc": globals().get("rc"), "extra": globals().get("extra")}))
"""


def _loaded(code: str, cwd) -> tuple[set[str], object]:
    """Heavy packages in ``sys.modules`` after running ``code`` in a fresh interpreter, and the
    exit code it left in ``rc``."""
    res = _probe(code, cwd)
    return set(res["loaded"]), res["rc"]


def _probe(code: str, cwd) -> dict:
    """Run ``code`` in a fresh interpreter: heavy packages loaded, ``rc`` and ``extra``."""
    out = subprocess.run([sys.executable, "-c", _PROBE, code, json.dumps(HEAVY)], cwd=cwd,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _main(argv: list[str]) -> str:
    return f"from xpusim.cli import main\nrc = main({argv!r})"


CLI_CASES = {
    "--help": (_main(["--help"]), NOT_CLI),
    "arch list": (_main(["arch", "list"]), NOT_CLI),
    "models list": (_main(["models", "list"]), NOT_CLI),
    "op gemm": (_main(["op", "gemm", "--m", "4096", "--n", "4096", "--k", "4096",
                       "--json"]), NOT_CLI),   # the GPU model prices one GEMM without numpy
    "op gemm tile on an NPU": (_main(["op", "gemm", "--m", "512", "--n", "512", "--k", "512",
                                      "--arch", "fusemax", "--json"]), NOT_KERNEL),
    # the run command's parser, as `xpusim run ...` builds it, and parsing its defaults
    "run parser": ("from xpusim.cli import build_parser\n"
                   "args = build_parser('run').parse_args(['run'])\nrc = 0", NOT_CLI),
    # every command's parser with all importer, reproduction and validation plugins
    "full parser": ("from xpusim.cli import build_parser\n"
                    "build_parser().parse_args(['run'])\nrc = 0", NOT_CLI),
    # the report package's light helpers (atomic writes for `validate` and sweeps, units for
    # `compare`): the run report's writer, pandas and matplotlib load only when it is used
    "report helpers": ("import sim.report, sim.report.atomic, sim.report.units\nrc = 0",
                       NOT_CLI),
}


def test_report_writer_loads_on_first_use(tmp_path):
    """Control for the "report helpers" case: ``sim.report.write_run_report`` still resolves
    (to the writer); its tables are numpy columns (pandas is not loaded: issue 18; the
    pandas-free write itself is checked in tests/test_report_no_pandas.py) and its figures
    SVG written directly, so not matplotlib (the compare, sweep and serving reports load
    it)."""
    res = _probe("import sim.report\nfrom sim.report import write_run_report\n"
                 "extra = write_run_report.__module__\nrc = 0", tmp_path)
    assert res["extra"] == "sim.report.writer"
    assert "pandas" not in res["loaded"] and "matplotlib" not in res["loaded"]


def test_run_report_loads_no_matplotlib(tmp_path):
    """``xpusim run --out DIR`` writes every figure of its report without matplotlib (~0.5 s
    of imports on the CLI path before the figures were SVG)."""
    out = tmp_path / "rep"
    loaded, rc = _loaded(_main(["run", "--gen", "2", "--prompt", "16", "--quiet", "--out",
                                str(out)]), tmp_path)
    assert rc == 0 and (out / "roofline.svg").is_file() and (out / "report.html").is_file()
    assert not loaded & {"matplotlib", "numba", "scipy"}, sorted(loaded)


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_command_loads_no_heavy_package(case, tmp_path):
    code, forbidden = CLI_CASES[case]
    loaded, rc = _loaded(code, tmp_path)
    assert rc == 0, f"{case}: exit {rc}"
    assert not loaded & forbidden, f"{case} imported {sorted(loaded & forbidden)}"


def test_run_on_defaults_loads_no_numba(tmp_path):
    """A GPU run needs the event engine (simpy), not numba/scipy/matplotlib (plots load only
    when a report directory is written), nor pandas/pyarrow (its tables are numpy columns
    until a DataFrame is asked for)."""
    loaded, rc = _loaded(_main(["run", "--gen", "2", "--prompt", "16", "--json", "--quiet"]),
                         tmp_path)
    assert rc == 0
    assert "simpy" in loaded  # the probe sees what a run really loads
    assert not loaded & {"numba", "llvmlite", "scipy", "matplotlib", "pandas", "pyarrow"}, \
        sorted(loaded)


RUN_JSON = {
    "defaults": ["run", "--json", "--quiet"],
    "tp 2 on dgx-h100": ["run", "--arch", "dgx-h100", "--tp", "2", "--gen", "3", "--prompt",
                         "32", "--json", "--quiet"],
    # a system run with offloaded weights: transfer and resource tables, system invariants
    "offload": ["run", "--arch", "a6000-offload", "--model", "opt-30b", "--batch", "1",
                "--prompt", "32", "--gen", "3", "--placement",
                "weights=gpu.hbm:0.5,host_ddr:0.5", "--json", "--quiet"],
}


@pytest.mark.parametrize("case", sorted(RUN_JSON))
def test_run_json_loads_no_pandas(case, tmp_path):
    """`xpusim run --json` (no --out) computes its metrics, invariants and JSON from numpy
    columns: the modules it imports and the run itself leave pandas, pyarrow, matplotlib and
    numba out of ``sys.modules``. (A run that times its tasks with the engine's compiled
    loops, the offload case's transfers, builds their extension on first use, once per
    kernel version and directory (sim/engine_aot.py), with numba: a first run here may build
    it beside the sources the probe imports; the second is the one checked.)"""
    code = ("import sim.run, sim.result, sim.invariants, sim.plausibility, sim.system.execute\n"
            "import xpusim.commands.run, xpusim.commands._record\n" + _main(RUN_JSON[case]))
    if case == "offload":
        _loaded("from sim.engine_aot import kernels\nkernels()\nrc = 0", tmp_path)
    loaded, rc = _loaded(code, tmp_path)
    assert rc == 0
    assert not loaded & {"pandas", "pyarrow", "matplotlib", "numba", "llvmlite", "scipy"}, \
        sorted(loaded)


def test_run_tables_build_dataframes_on_first_use(tmp_path):
    """Control for the cases above: the same run's ``Result.ops`` / ``transfers`` /
    ``resources`` are still DataFrames, and asking for one is what loads pandas."""
    code = ("import sys\nfrom arch import load_arch\nfrom sim.run import simulate\n"
            "from sim.system.placement import parse_placement\n"
            "from workloads.models import get_model\nfrom workloads.scenario import Scenario\n"
            "r = simulate(load_arch('a6000-offload'), get_model('opt-30b'), Scenario(batch=1, "
            "prompt_len=32, gen_len=3), placement=parse_placement('weights=gpu.hbm:0.5,"
            "host_ddr:0.5'))\nbefore = 'pandas' in sys.modules\n"
            "extra = [before, type(r.ops).__name__, type(r.transfers).__name__, "
            "type(r.resources).__name__, len(r.ops) == r.metrics['ops'], "
            "len(r.transfers) == r.metrics['transfers']]\nrc = 0")
    res = _probe(code, tmp_path)
    assert res["extra"] == [False, "DataFrame", "DataFrame", "DataFrame", True, True]
    assert "pandas" in res["loaded"]


def test_light_validation_suite_loads_no_report_writer(ref_dir, tmp_path):
    """`xpusim validate` writes its CSV through sim.report.atomic: a suite that needs neither
    pandas nor matplotlib loads neither (the package's writer is imported on first use)."""
    loaded, rc = _loaded(_main(["validate", "--suite", "a100-gelu", "--reference-dir",
                                str(ref_dir), "--out", str(tmp_path / "val"), "--json"]),
                         tmp_path)
    assert rc == 0
    assert not loaded & {"pandas", "matplotlib", "pyarrow", "numba", "scipy"}, sorted(loaded)
    assert (tmp_path / "val" / "validation.csv").is_file()


def test_probe_detects_numba(tmp_path):
    """Control: a path that does run a DRAM kernel module shows up as loading numba."""
    loaded, _ = _loaded("import sim.micro.dram\nrc = 0", tmp_path)
    assert "numba" in loaded


_DRAM_PROBE = """
from xpusim.cli import main
rc = main(["import", "dramsim3", "--config", {cfg!r}, "--trace", {trace!r}, "--cycles", "4000",
           "--json"])
import gc
from numba.core.registry import CPUDispatcher
kernels = sorted(f"{{d.py_func.__module__}}.{{d.__name__}}" for d in gc.get_objects()
                 if isinstance(d, CPUDispatcher) and d.overloads)
no_linalg = "scipy.linalg" not in sys.modules
import numpy as np
from numba import njit
dot = njit(cache=False)(lambda a, b: np.dot(a, b))
a, b = np.arange(12.0).reshape(3, 4), np.arange(8.0).reshape(4, 2)
extra = {{"kernels": kernels, "no_linalg": no_linalg,
          "dot": dot(a, b).tolist() == (a @ b).tolist()}}
"""


def test_dram_import_loads_only_its_kernels(ref_dir, tmp_path, monkeypatch):
    """`xpusim import dramsim3` loads from numba's cache only the DRAM kernels it runs, without
    numba's scipy.linalg BLAS probe; a kernel compiled afterwards still gets BLAS for np.dot.
    (The JIT path; with the ahead-of-time build numba is not imported at all:
    tests/test_dram_aot.py.)"""
    monkeypatch.setenv("XPUSIM_DRAM_AOT", "0")
    trace = tmp_path / "t.trace"
    trace.write_text("".join(f"0x{64 * i:x} {'WRITE' if i % 3 else 'READ'} {4 * i}\n"
                             for i in range(500)))
    cfg = ref_dir / "dram" / "dramsim3_configs" / "GDDR6_8Gb_x16.ini"
    res = _probe(_DRAM_PROBE.format(cfg=str(cfg), trace=str(trace)), tmp_path)
    assert res["rc"] == 0 and "numba" in res["loaded"]
    ours = [k for k in res["extra"]["kernels"] if not k.startswith("numba.")]  # a cold cache
    assert "sim.micro.dram.run_kernel" in ours, ours  # also compiles numba's own helpers
    assert {k.rsplit(".", 1)[0] for k in ours} <= {"sim.micro.dram", "sim.micro.dram_trace"}
    assert res["extra"]["no_linalg"] and res["extra"]["dot"]


# --- `xpusim import dramsim3`: the compiled trace pass gives what the Python reader gives ----

def _same(a, b) -> None:
    assert a.addrs.dtype == b.addrs.dtype and a.writes.dtype == b.writes.dtype
    assert a.times.dtype == b.times.dtype
    assert a.addrs.tolist() == b.addrs.tolist() and a.writes.tolist() == b.writes.tolist()
    assert a.times.tolist() == b.times.tolist() and a.trailing_newline == b.trailing_newline


def test_fast_trace_pass_equals_python_reader(tmp_path):
    import random

    import numpy as np

    from sim.micro.dram_trace import _parse_plain, _read_text, read_trace

    rng = random.Random(7)
    ops = ["READ", "WRITE", "write", "P_MEM_WR", "BOFF", "read", "Write", "WRITES", "P_MEM_RD"]
    seps = [" ", "\t", "  ", "\x0b", "\x0c", "\x1c"]
    lines = []
    for i in range(3000):
        addr = rng.getrandbits(rng.choice((8, 33, 64)))
        text = rng.choice([f"0x{addr:x}", f"0X{addr:X}", f"{addr:x}", f"0x{addr:016x}"])
        lines.append(f"{text}{rng.choice(seps)}{rng.choice(ops)}{rng.choice(seps)}"
                     f"{rng.choice(['', '00'])}{i * rng.randint(0, 10**9)}")
    lines.append(f"0x{2**64 - 1:x} WRITE {10**18 - 1}")  # the largest values the pass takes
    body = "".join(line + rng.choice(["\n", "\r\n", "\r"]) for line in lines)
    for name, text in (("nl", body), ("no_nl", body.rstrip())):
        path = tmp_path / f"{name}.trace"
        path.write_bytes(text.encode("ascii"))
        ok, n, *_ = _parse_plain(np.frombuffer(path.read_bytes(), np.uint8))
        assert ok and n == len(lines)
        _same(read_trace(path), _read_text(path, text))
    fast = read_trace(tmp_path / "nl.trace")
    assert fast.addrs[-1] == 2**64 - 1 and fast.times[-1] == 10**18 - 1
    assert fast.writes.sum() == sum(1 for line in lines if line.split()[1] in
                                    {"WRITE", "write", "P_MEM_WR", "BOFF"})


@pytest.mark.parametrize("text", [
    "0x40 READ +5\n",  # signed cycle: Python's int takes it
    "0x_40 READ 5\n",  # underscore after the prefix
    f"0x{2**64:x} READ 5\n",  # 17 hex digits (too large for uint64: a bad line)
    f"0x40 READ {10**19}\n",  # 20-digit cycle (too large for int64)
    "0x40 READ -3\n",  # negative cycle
    "0x40 READ\n0x80 WRITE 3\n",  # a missing field
    "0xZZ READ 1\n",  # not hex
    "0x40 R\xe9AD 1\n",  # a non-ASCII byte
    "", "\n\n",  # empty
])
def test_declined_traces_take_the_python_reader(tmp_path, text):
    from sim.devices.base import SimError
    from sim.micro.dram_trace import _read_text, read_trace

    path = tmp_path / "t.trace"
    path.write_bytes(text.encode("latin-1"))
    try:
        want = _read_text(path, path.read_bytes().decode("ascii", errors="replace"))
    except SimError as exc:
        with pytest.raises(SimError) as got:
            read_trace(path)
        assert str(got.value) == str(exc)
    else:
        _same(read_trace(path), want)
