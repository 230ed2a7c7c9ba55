"""The bytes whole ``xpusim run`` commands hold at their peak, per op: the rows behind
``xpusim.heap.HEAP_PER_OP`` (what the CLI pre-touches per estimated op), measured so that
they can be measured again.

Each run is a fresh interpreter that sets the CLI's allocator (``tune_allocation``) but not
its pre-touch, then calls ``xpusim.cli.main(["run", ARGS..., "--quiet", "--out", TMP])``
while a thread samples glibc's ``mallinfo2`` every 0.5 ms: the peak of the bytes malloc
holds (``uordblks``, the heap in use, plus ``hblkhd``, blocks mapped on their own: without a
pre-touch, arrays over the map threshold leave the heap, and a pre-touched heap serves them
from its free space, so both count). The figure is bytes, not seconds: it does not move with
the host's minute (repeated runs agree within a few %). Per run: the ops it simulated,
the peak (GB), the peak per op (B) and that over ``HEAP_PER_OP``, the ratio the constant's
rule ("below all of them, so what is touched is used") needs at least 1. glibc on Linux
only.

    python benchmarks/bench_memory.py [--runs NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(arch: str, model: str, batch: int, gen: int, *more: str) -> list[str]:
    """``xpusim run`` options: ``arch``, ``model``, a 512-token prompt, ``batch``, ``gen``
    tokens, then ``more``."""
    return ["--arch", arch, "--model", model, "--prompt", "512", "--batch", str(batch),
            "--gen", str(gen), *more]


#: name -> ``xpusim run`` options: the rows ``HEAP_PER_OP`` names
RUNS: dict[str, list[str]] = {
    "70b-pp8-mb8-g2048": _run("dgx-h100", "llama2-70b", 8, 2048, "--pp", "8",
                              "--microbatches", "8"),
    "70b-tp2-pp4-mb4-g2048": _run("dgx-h100", "llama2-70b", 8, 2048, "--tp", "2", "--pp", "4",
                                  "--microbatches", "4"),
    "7b-g8192": _run("h100", "llama2-7b", 8, 8192),
    "70b-tp8-mb2-ovl-g2048": _run("dgx-h100", "llama2-70b", 32, 2048, "--tp", "8",
                                  "--microbatches", "2", "--overlap"),
    "70b-tp2-pp4-mb8-ovl-g2048": _run("dgx-h100", "llama2-70b", 8, 2048, "--tp", "2", "--pp",
                                      "4", "--microbatches", "8", "--overlap"),
    "70b-tp8-g2048": _run("dgx-h100", "llama2-70b", 8, 2048, "--tp", "8"),
    "70b-tp2-pp4-mb4-kv-host-g2048": _run("dgx-h100", "llama2-70b", 8, 2048, "--tp", "2",
                                          "--pp", "4", "--microbatches", "4", "--placement",
                                          "kv_cache=gpu.hbm:0.5,host_ddr:0.5"),
    "mixtral-tp4-ep4-g512": _run("dgx-a100", "mixtral-8x7b", 8, 512, "--tp", "4", "--ep", "4"),
    "13b-tp2-pp2-mb4-g512": _run("dgx-h100", "llama2-13b", 8, 512, "--tp", "2", "--pp", "2",
                                 "--microbatches", "4"),
    "7b-g512": _run("h100", "llama2-7b", 8, 512),
}

#: the child: the CLI's allocator without its pre-touch, a sampling thread, the command
PROBE = r"""
import json, sys, threading, time
from xpusim.heap import tune_allocation
tune_allocation()
import xpusim.heap as heap
heap.pretouch = lambda nbytes: False
info = heap.malloc_info()
if info is None:
    sys.exit("bench_memory: glibc's mallinfo2 is not here (glibc 2.33+ on Linux only)")
peak = [0]


def sample():
    while True:
        m = info()
        peak[0] = max(peak[0], m.uordblks + m.hblkhd)
        time.sleep(0.0005)


threading.Thread(target=sample, daemon=True).start()
import sim.run as run
ops = []
execute = run.execute


def counted(system, trace, plan, *a, **k):
    ops.append(len(trace.compact) if trace.is_compact else len(trace.ops))
    return execute(system, trace, plan, *a, **k)


run.execute = counted
from xpusim.cli import main
main(["run", *sys.argv[1:]])
m = info()
peak[0] = max(peak[0], m.uordblks + m.hblkhd)
print(json.dumps({"peak": peak[0], "ops": ops[-1]}))
"""


def measure(args: list[str], out: str) -> dict:
    """One run's peak bytes held and ops (module docstring)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    got = subprocess.run([sys.executable, "-c", PROBE, *args, "--quiet", "--force", "--out",
                          out], cwd=ROOT, env=env, capture_output=True, text=True)
    if got.returncode != 0:
        tail = got.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"bench_memory: xpusim run {' '.join(args)} failed: {tail[0]}")
    return json.loads(got.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    ap.add_argument("--json", action="store_true", help="one JSON object per run")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from xpusim.heap import HEAP_PER_OP

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.runs:
            got = measure(RUNS[name], str(Path(tmp, name)))
            per_op = got["peak"] / got["ops"]
            rows.append({"run": name, "ops": got["ops"], "peak_B": got["peak"],
                         "per_op_B": per_op, "over_heap_per_op": per_op / HEAP_PER_OP})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"{'run':32s} {'ops':>12s} {'peak GB':>8s} {'B/op':>6s} {'/HEAP_PER_OP':>12s}")
    for r in rows:
        print(f"{r['run']:32s} {r['ops']:12,d} {r['peak_B'] / 1e9:8.3f} {r['per_op_B']:6.0f} "
              f"{r['over_heap_per_op']:12.2f}")
    low = min(rows, key=lambda r: r["per_op_B"])
    print(f"peak bytes malloc holds (heap in use + mapped blocks, sampled every 0.5 ms, no "
          f"pre-touch) per op; HEAP_PER_OP = {HEAP_PER_OP} B is "
          f"{'below' if low['per_op_B'] >= HEAP_PER_OP else 'ABOVE'} the least, "
          f"{low['per_op_B']:.0f} B ({low['run']})")


if __name__ == "__main__":
    main()
