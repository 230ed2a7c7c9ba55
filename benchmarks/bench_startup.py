"""Start-up CPU time of CLI commands, next to the bare interpreter measured in the same run.

For each command a fresh interpreter calls ``xpusim.cli.main(argv)`` twice and reads its own
CPU clock (``time.process_time``, user + system of the process since it started):

* ``cold``: CPU from process start to the end of the first call (interpreter, imports, numba
  cache loads, the command's work);
* ``warm``: CPU of the second call in the same process (the command's own work, everything
  already imported and loaded; memoised costs make it a lower bound);
* ``start-up`` = cold - warm: what the command pays before and besides its own work;
* ``imports``: CPU of a fresh interpreter that only imports, in the same order, the modules the
  command left in ``sys.modules`` (the import share of start-up).

The peer is ``python -c pass`` (the interpreter alone), measured in the same run; ratios are to
it and to the issue's 0.25 s goal. CPU, not wall time, so other load on the machine matters
less; each figure is the median of ``--repeat`` runs, alternating commands, after one warm-up
run of each (numba caches and bytecode written). Children run as a user's shell would: with
bytecode caching on (into a scratch ``PYTHONPYCACHEPREFIX``, so nothing is written in the tree)
even where ``PYTHONDONTWRITEBYTECODE`` is set; ``--no-bytecode`` keeps the environment as is.
The parsed-preset cache (``arch/preset_cache.py``) lives in a scratch ``XPUSIM_CACHE_DIR`` that
the warm-up run fills, as a user's first command fills theirs. ``imports`` applies the CLI's
one-thread BLAS setting first, as ``main`` does.

``--instructions`` adds a figure that does not move with the machine's state (CPU seconds
of the same start-up varied 0.16-0.32 s over a day on this project's build machine): the
instructions the process executes, counted by valgrind's cachegrind (``I refs``, one run each,
``PYTHONHASHSEED=0``) for the bare interpreter, a process calling the command once and one
calling it twice; start-up = once - (twice - once). About 50x slower than a native run.

    python benchmarks/bench_startup.py [--repeat 5] [--json] [--no-bytecode] [--only NAME ...]
                                       [--instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_args import rounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 0.25  # issue 18, item 1: start-up CPU of --help, arch list, models list, op gemm, run
HEAVY = ("numba", "llvmlite", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "simpy",
         "yaml")

#: (label, argv); ``{tmp}`` is a scratch directory, ``{ref}`` the reference data (commands
#: that need it are skipped without it)
COMMANDS: list[tuple[str, list[str]]] = [
    ("--help", ["--help"]),
    ("arch list", ["arch", "list"]),
    ("models list", ["models", "list"]),
    ("op gemm", ["op", "gemm", "--m", "4096", "--n", "4096", "--k", "4096"]),
    ("op gemm neupims", ["op", "gemm", "--m", "512", "--n", "512", "--k", "512",
                         "--arch", "neupims"]),  # a PIM arch: the DRAM kernel runs
    ("run (defaults, --json)", ["run", "--json", "--quiet"]),
    # a light validation suite: atomic CSV writes, no report writer (pandas, matplotlib)
    ("validate a100-gelu", ["validate", "--suite", "a100-gelu", "--reference-dir", "{ref}",
                            "--out", "{tmp}/val", "--json"]),
    # a kernel command: numba and the two kernels it runs (trace pass, DRAM cycle model)
    ("import dramsim3", ["import", "dramsim3", "--config", "{ref}/dram/dramsim3_configs/"
                         "GDDR6_8Gb_x16.ini", "--trace", "{tmp}/small.trace", "--cycles", "4000",
                         "--json"]),
]
REFERENCE = Path(os.environ.get("XPUSIM_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))

_PROBE = r"""
import io, json, sys, time, contextlib
argv = json.loads(sys.argv[1])
from xpusim.cli import main
sink = io.StringIO()
with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
    rc = main(argv)
cold = time.process_time()
with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
    main(argv)
warm = time.process_time() - cold
mods = [m for m in sys.modules if not m.startswith("__")]
print(json.dumps({"rc": rc, "cold": cold, "warm": warm, "modules": mods}))
"""

_REPLAY = r"""
import importlib, json, sys, time
from xpusim.cli import single_thread_blas
single_thread_blas()  # as main() does before anything imports numpy
for name in json.loads(open(sys.argv[1]).read()):
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass
print(time.process_time())
"""


_IPROBE = r"""
import contextlib, io, json, sys
argv, times = json.loads(sys.argv[1]), int(sys.argv[2])
from xpusim.cli import main
sink = io.StringIO()
for _ in range(times):
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        main(argv)
"""

ENV = dict(os.environ)


def _child_cpu(cmd: list[str], cwd: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _probe(argv: list[str], cwd: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], cwd=cwd,
                         capture_output=True, text=True, check=True, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _replay(modules: list[str], cwd: str) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(modules, f)
    try:
        out = subprocess.run([sys.executable, "-c", _REPLAY, f.name], cwd=cwd,
                             capture_output=True, text=True, check=True, env=ENV)
    finally:
        os.unlink(f.name)
    return float(out.stdout.strip().splitlines()[-1])


def _instructions(cmd: list[str], cwd: str) -> int:
    """Instructions ``cmd`` executes (cachegrind's ``I refs``; hash seed fixed)."""
    log = Path(cwd, "cachegrind.log")
    subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                    "--cachegrind-out-file=/dev/null", f"--log-file={log}", *cmd], cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={**ENV, "PYTHONHASHSEED": "0"})
    found = re.search(r"I\s+refs:\s+([\d,]+)", log.read_text())
    if found is None:
        raise RuntimeError(f"no instruction count in {log}")
    return int(found.group(1).replace(",", ""))


def _instruction_rows(commands: list[tuple[str, list[str]]], tmp: str) -> dict:
    """Instruction counts: the bare interpreter, and per command once / start-up."""
    rows = {}
    for label, argv in commands:
        once = _instructions([sys.executable, "-c", _IPROBE, json.dumps(argv), "1"], tmp)
        twice = _instructions([sys.executable, "-c", _IPROBE, json.dumps(argv), "2"], tmp)
        rows[label] = {"once": once, "startup": once - (twice - once)}
    return {"python": _instructions([sys.executable, "-c", "pass"], tmp), "commands": rows}


def measure(commands: list[tuple[str, list[str]]], repeat: int, bytecode: bool = True,
            instructions: bool = False) -> dict:
    """Median figures per command and for the bare interpreter (CPU seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        if bytecode:
            ENV.pop("PYTHONDONTWRITEBYTECODE", None)
            ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp, "pycache"))
        ENV["XPUSIM_CACHE_DIR"] = str(Path(tmp, "cache"))
        Path(tmp, "small.trace").write_text("".join(f"0x{64 * i:x} READ {4 * i}\n"
                                                    for i in range(1000)))
        if not REFERENCE.is_dir():
            commands = [c for c in commands if not any("{ref}" in a for a in c[1])]
        commands = [(label, [a.replace("{tmp}", tmp).replace("{ref}", str(REFERENCE))
                             for a in argv]) for label, argv in commands]
        for _, argv in commands:  # warm-up: bytecode and numba caches
            _probe(argv, tmp)
        bare: list[float] = []
        runs: dict[str, list[dict]] = {label: [] for label, _ in commands}
        for _ in range(repeat):  # alternate commands so slow phases of the machine spread out
            bare.append(_child_cpu([sys.executable, "-c", "pass"], tmp))
            for label, argv in commands:
                runs[label].append(_probe(argv, tmp))
        python = statistics.median(bare)
        rows = []
        for label, argv in commands:
            probes = runs[label]
            cold = statistics.median(p["cold"] for p in probes)
            warm = statistics.median(p["warm"] for p in probes)
            modules = probes[-1]["modules"]
            imports = statistics.median(_replay(modules, tmp) for _ in range(repeat))
            rows.append({
                "command": label, "argv": argv, "rc": probes[-1]["rc"], "cold_s": cold,
                "warm_s": warm, "startup_s": max(cold - warm, 0.0), "imports_s": imports,
                "heavy": [m for m in HEAVY if m in modules],
            })
        counts = _instruction_rows(commands, tmp) if instructions else None
    return {"python_s": python, "goal_s": GOAL_S, "repeat": repeat, "bytecode": bytecode,
            "commands": rows, "instructions": counts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=rounds, default=5)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--only", nargs="*", default=None, help="labels of commands to measure")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE as the environment has it")
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions with valgrind (cachegrind): machine-state "
                         "independent start-up figures")
    args = ap.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        print("bench_startup: --instructions needs valgrind on PATH", file=sys.stderr)
        return 2
    commands = [c for c in COMMANDS if args.only is None or c[0] in args.only]
    res = measure(commands, max(args.repeat, 1), bytecode=not args.no_bytecode,
                  instructions=args.instructions)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    py = res["python_s"]
    print(f"CPU seconds, median of {res['repeat']}; bytecode caching "
          f"{'on' if res['bytecode'] else 'as the environment has it'}; peer: bare interpreter "
          f"(python -c pass) {py:.3f} s")
    print(f"{'command':24s} {'cold':>6s} {'warm':>6s} {'start-up':>8s} {'x python':>8s} "
          f"{'/ goal':>6s} {'imports':>7s}  heavy modules loaded")
    for r in res["commands"]:
        print(f"{r['command']:24s} {r['cold_s']:6.3f} {r['warm_s']:6.3f} {r['startup_s']:8.3f} "
              f"{r['startup_s'] / py:7.1f}x {r['startup_s'] / GOAL_S:6.2f} "
              f"{r['imports_s']:7.3f}  {', '.join(r['heavy']) or '-'}"
              + ("" if r["rc"] == 0 else f"  (exit {r['rc']})"))
    counts = res["instructions"]
    if counts:
        bare = counts["python"]
        print(f"instructions (cachegrind, millions); peer: bare interpreter {bare / 1e6:.1f} M")
        print(f"{'command':24s} {'once':>8s} {'start-up':>8s} {'x python':>8s}")
        for label, c in counts["commands"].items():
            print(f"{label:24s} {c['once'] / 1e6:8.1f} {c['startup'] / 1e6:8.1f} "
                  f"{c['startup'] / bare:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
