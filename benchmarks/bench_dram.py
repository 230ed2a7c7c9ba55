"""DRAM model speed vs DRAMsim3, measured side by side in the same run (shared/reference/dram).

For every case of ``dramsim3_trace_cases.csv`` (plus speed-only cases on the GDDR6, LPDDR4 and
DDR3 configs when the DRAMsim3 binary is here) the trace is regenerated with the reference
generator, then, alternating, ``--repeat`` times each:

* DRAMsim3: ``dramsim3main CONFIG -t TRACE -c CYCLES -o DIR`` (CPU of the process);
* our CLI: ``python -m xpusim import dramsim3 --config CONFIG --trace TRACE --cycles CYCLES
  --json`` (CPU of the process: interpreter, imports, kernel load, parsing, simulation);
* in process: INI + trace parsing + simulation through numpy (``e2e``), the cycle kernel alone
  (``kernel``), and the whole run through the C library the CLI calls (``lib``:
  :func:`sim.micro.dram_capi.run_trace_file`, parse + mapping + kernel; CPU).

Both use the kernel :func:`sim.micro.dram_aot.kernels` picks: the ahead-of-time build of the
numba source (built on first use) unless ``--jit`` (``XPUSIM_DRAM_AOT=0``) asks for numba's JIT.

Then, per config, one CLI call with all its traces (``--trace A B ... --cycles ...``: start-up
paid once). The CLI runs as a user's shell would, with bytecode caching on (into a scratch
``PYTHONPYCACHEPREFIX``) even where ``PYTHONDONTWRITEBYTECODE`` is set, after one warm-up run.
Figures are medians of CPU seconds (user + system), so other load on the machine matters less;
ratios are DRAMsim3 / ours (above 1: ours needs less CPU). The binary is found by ``--dramsim3``,
``$DRAMSIM3_BIN`` or ``dramsim3main`` on PATH; without it the CSV's wall time (measured where
the reference was made) stands in and says so.

    python benchmarks/bench_dram.py [--repeat 3] [--reference DIR] [--dramsim3 PATH] [--no-cli]
                                    [--jit] [--cases G1,S1]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_args import rounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: speed-only cases (no reference results): configs the CSV lacks, same generator and fields
EXTRA = [
    {"case": "S1", "config": "GDDR6_8Gb_x16.ini", "requests": "100000", "pattern": "seq",
     "every_cycles": "1", "write_fraction": "0.0", "stride_bytes": "64",
     "span_bytes": "2147483648", "seed": "11", "cycles": "100000"},
    {"case": "S2", "config": "GDDR6_8Gb_x16.ini", "requests": "100000", "pattern": "rand",
     "every_cycles": "1", "write_fraction": "0.0", "stride_bytes": "64",
     "span_bytes": "2147483648", "seed": "12", "cycles": "100000"},
    {"case": "S3", "config": "LPDDR4_8Gb_x16_2400.ini", "requests": "40000", "pattern": "seq",
     "every_cycles": "4", "write_fraction": "0.0", "stride_bytes": "64",
     "span_bytes": "2147483648", "seed": "13", "cycles": "160000"},
    {"case": "S4", "config": "DDR3_8Gb_x8_1600.ini", "requests": "40000", "pattern": "rand",
     "every_cycles": "4", "write_fraction": "0.33", "stride_bytes": "64",
     "span_bytes": "2147483648", "seed": "14", "cycles": "160000"},
]


def _child_cpu(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + system) of one child process running ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _find_dramsim3(given: str | None) -> str | None:
    for cand in (given, os.environ.get("DRAMSIM3_BIN"), shutil.which("dramsim3main")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=rounds, default=3)
    ap.add_argument("--reference", default=os.environ.get(
        "XPUSIM_REFERENCE_DIR", str(ROOT.parent / "shared" / "reference")))
    ap.add_argument("--dramsim3", default=None, help="path of the dramsim3main binary")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI runs (in process only)")
    ap.add_argument("--jit", action="store_true",
                    help="numba's JIT kernels, not the ahead-of-time build (XPUSIM_DRAM_AOT=0)")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args()
    if args.jit:
        os.environ["XPUSIM_DRAM_AOT"] = "0"  # this process and the CLI children
    ref = Path(args.reference) / "dram"
    if not ref.is_dir():
        print(f"reference data not found at {ref}", file=sys.stderr)
        return 2
    binary = _find_dramsim3(args.dramsim3)
    repeat = max(args.repeat, 1)

    t0 = time.process_time()
    import numpy as np

    from sim.micro.dram_aot import kernels
    from sim.micro.dram_capi import entry, run_trace_file
    from sim.micro.dram_config import DramConfig
    from sim.micro.dram_ini import load_dramsim3_ini
    from sim.micro.dram_run import simulate
    from sim.micro.dram_tracefile import read_trace

    simulate(DramConfig(), np.zeros(1, np.uint64), np.zeros(1), np.zeros(1), 10)
    with tempfile.NamedTemporaryFile("w", suffix=".trace") as f:  # loads the trace pass
        f.write("0x40 READ 0\n")
        f.flush()
        read_trace(f.name)
    lib = entry() is not None
    print(f"in process: imports + kernel load {time.process_time() - t0:.2f} CPU s (once); "
          f"kernel: {kernels().kind}; C library for the CLI: {'yes' if lib else 'no'}")
    rows = list(csv.DictReader(open(ref / "dramsim3_trace_cases.csv", newline="")))
    if binary:
        print(f"DRAMsim3: {binary}, measured here ({repeat} alternated runs, median CPU s)")
        rows += EXTRA
    else:
        print("DRAMsim3 binary not found (--dramsim3, $DRAMSIM3_BIN, PATH): its column is the "
              "CSV's wall time from the reference run, not measured here")
    if args.cases:
        rows = [r for r in rows if r["case"] in args.cases.split(",")]
    print(f"{'case':5s} {'config':24s} {'reqs':>6s} {'DRAMsim3':>8s} {'CLI':>6s} {'ratio':>6s} "
          f"{'e2e':>6s} {'ratio':>6s} {'kernel':>6s} {'ratio':>6s} {'lib':>6s} {'ratio':>6s}")
    totals = {"theirs": 0.0, "cli": 0.0, "e2e": 0.0, "kernel": 0.0, "lib": 0.0}
    worst = {k: float("inf") for k in ("cli", "e2e", "kernel", "lib")}
    groups: dict[str, list] = {}  # config -> [(trace, cycles, DRAMsim3 CPU s)]
    wins, startup = 0, []  # cases where the CLI needs less CPU; CLI minus its run in process
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
        warm = Path(tmp, "warm.trace")
        warm.write_text("0x40 READ 0\n")
        if not args.no_cli:  # bytecode written, numba cache checked
            _child_cpu([sys.executable, "-m", "xpusim", "import", "dramsim3", "--config",
                        str(ref / "dramsim3_configs" / rows[0]["config"]), "--trace", str(warm),
                        "--cycles", "100"], env)
        for r in rows:
            trace = Path(tmp) / f"{r['case']}.trace"
            subprocess.run([sys.executable, str(ref / "make_trace.py"), str(trace), r["requests"],
                            r["pattern"], r["every_cycles"], r["write_fraction"],
                            r["stride_bytes"], r["span_bytes"], r["seed"]], check=True)
            cfg_path = ref / "dramsim3_configs" / r["config"]
            cycles = int(r["cycles"])
            theirs_s, cli_s, e2e_s, kernel_s, lib_s = [], [], [], [], []
            for _ in range(repeat):
                if binary:
                    out = Path(tmp) / "out"
                    out.mkdir(exist_ok=True)
                    theirs_s.append(_child_cpu([binary, str(cfg_path), "-t", str(trace), "-c",
                                                str(cycles), "-o", str(out)]))
                if not args.no_cli:
                    cli_s.append(_child_cpu([sys.executable, "-m", "xpusim", "import", "dramsim3",
                                             "--config", str(cfg_path), "--trace", str(trace),
                                             "--cycles", str(cycles), "--json"], env))
                t = time.process_time()
                cfg = load_dramsim3_ini(cfg_path)
                tr = read_trace(trace)
                tk = time.process_time()
                simulate(cfg, tr.addrs, tr.writes, tr.times, cycles, frontend="dramsim3",
                         tail="newline" if tr.trailing_newline else "no_newline")
                te = time.process_time()
                kernel_s.append(te - tk)
                e2e_s.append(te - t)
                if lib:
                    t = time.process_time()
                    run_trace_file(load_dramsim3_ini(cfg_path), trace, cycles)
                    lib_s.append(time.process_time() - t)
            theirs = statistics.median(theirs_s) if binary else float(r["wall_s"])
            fig = {"cli": statistics.median(cli_s) if cli_s else float("nan"),
                   "e2e": statistics.median(e2e_s), "kernel": statistics.median(kernel_s),
                   "lib": statistics.median(lib_s) if lib_s else float("nan")}
            totals["theirs"] += theirs
            groups.setdefault(r["config"], []).append((str(trace), cycles, theirs))
            for k, v in fig.items():
                totals[k] += v
                worst[k] = min(worst[k], theirs / v) if v == v else worst[k]
            wins += fig["cli"] < theirs
            startup.append(fig["cli"] - fig["lib"])
            print(f"{r['case']:5s} {r['config']:24s} {int(r['requests']):6d} {theirs:8.3f} "
                  + " ".join(f"{fig[k]:6.3f} {theirs / fig[k]:5.2f}x" for k in fig))
        if not args.no_cli:  # the traces of one config in one call: start-up paid once
            batch = 0.0
            for cfg_name, runs in groups.items():
                cmd = [sys.executable, "-m", "xpusim", "import", "dramsim3", "--config",
                       str(ref / "dramsim3_configs" / cfg_name), "--trace",
                       *[t for t, _, _ in runs], "--cycles", *[str(c) for _, c, _ in runs],
                       "--json"]
                cpu = statistics.median(_child_cpu(cmd, env) for _ in range(repeat))
                th_g = sum(x for _, _, x in runs)
                batch += cpu
                print(f"one call, {len(runs)} trace(s) on {cfg_name}: CLI {cpu:.3f} s, DRAMsim3 "
                      f"{th_g:.3f} s ({th_g / cpu:.2f}x)")
            print(f"one call per config: CLI {batch:.3f} s, DRAMsim3 {totals['theirs']:.3f} s "
                  f"({totals['theirs'] / batch:.2f}x)")
    th = totals["theirs"]
    print(f"total: DRAMsim3 {th:.3f} s; CLI {totals['cli']:.3f} s ({th / totals['cli']:.2f}x), "
          f"in process {totals['e2e']:.3f} s ({th / totals['e2e']:.2f}x), kernel "
          f"{totals['kernel']:.3f} s ({th / totals['kernel']:.2f}x), C library "
          f"{totals['lib']:.3f} s ({th / totals['lib']:.2f}x)")
    print("worst case (DRAMsim3 / ours): " + ", ".join(f"{k} {v:.2f}x" for k, v in worst.items()))
    if not args.no_cli:
        print(f"CLI needs less CPU than DRAMsim3 on {wins} of {len(rows)} cases; CLI start-up "
              f"(CLI minus the same run in process through the C library): median "
              f"{statistics.median(startup):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
