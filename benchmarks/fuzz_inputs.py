"""Long hostile-input fuzzing profile of the CLI (issue 19): >= 10,000 inputs.

Usage: python benchmarks/fuzz_inputs.py [--inputs 10000] [--workers 2] [--seed 0]
       [--timeout 60] [--memory-gb 8] [--json] [--failures FILE]

Draws the inputs of the five campaigns of ``tests/fuzz_harness.py`` (arch YAML from every preset,
sweep specs, config.json families, CLI arguments, data files: serving traces, prompt lengths,
expert counts and the peer tools' inputs) from seeded ``random.Random`` streams, runs each
in a worker process (in-process CLI call, stdout/stderr captured, an address-space limit of
``--memory-gb`` + 4 GB so a runaway allocation ends as MemoryError) and prints one row per
campaign: inputs, tracebacks, hangs, over-memory, non-finite outputs, bad exits, extra stderr
lines, and the slowest input.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzz_harness import CAMPAIGNS, make_case, run_case  # noqa: E402

COLUMNS = ("traceback", "hang", "memory", "nonfinite", "exit", "lines", "harness")


def _init(memory_gb: float) -> None:
    limit = int((memory_gb + 4) * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.chdir(tempfile.mkdtemp(prefix="xpusim-fuzz-"))


def _one(job: tuple[int, int, str, float, float]) -> dict:
    index, seed, campaign, timeout_s, memory_mb = job
    rnd = random.Random(f"{seed}:{index}")
    try:
        case = make_case(campaign, rnd)
    except Exception as exc:  # noqa: BLE001 - a generator bug, not a CLI failure: report it
        return {"index": index, "campaign": campaign, "argv": [], "code": None, "seconds": 0.0,
                "rss_mb": 0.0, "problem": "harness", "detail": repr(exc)[:300], "files": {}}
    with tempfile.TemporaryDirectory(prefix="case-", dir=os.getcwd()) as tmp:
        o = run_case(case, Path(tmp), timeout_s=timeout_s, memory_mb=memory_mb)
    return {"index": index, "campaign": campaign, "argv": [a[:200] for a in o.argv],
            "code": o.code, "seconds": o.seconds, "rss_mb": o.rss_mb, "problem": o.problem,
            "detail": o.detail,
            "files": {k: v[:3000] for k, v in case.files.items()} if o.problem else {}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--memory-gb", type=float, default=8.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--failures", default="", help="write failing inputs as JSON lines here")
    ap.add_argument("--only", type=int, nargs="*", default=None,
                    help="run only these input indices (to replay a failure)")
    args = ap.parse_args()
    names = sorted(CAMPAIGNS)
    jobs = [(i, args.seed, names[i % len(names)], args.timeout, args.memory_gb * 1024)
            for i in range(args.inputs) if args.only is None or i in args.only]
    t0 = time.perf_counter()
    rows: dict[str, Counter] = defaultdict(Counter)
    slowest: dict[str, float] = defaultdict(float)
    failures = []
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init, initargs=(args.memory_gb,),
                  maxtasksperchild=200) as pool:
        for n, r in enumerate(pool.imap_unordered(_one, jobs, chunksize=4), 1):
            rows[r["campaign"]]["inputs"] += 1
            rows[r["campaign"]][f"exit {r['code']}"] += 1
            slowest[r["campaign"]] = max(slowest[r["campaign"]], r["seconds"])
            if r["problem"]:
                rows[r["campaign"]][r["problem"]] += 1
                failures.append(r)
            if n % 500 == 0:
                sys.stderr.write(f"{n}/{args.inputs} inputs, {len(failures)} failures, "
                                 f"{time.perf_counter() - t0:.0f} s\n")
    wall = time.perf_counter() - t0
    if args.failures:
        Path(args.failures).write_text("".join(json.dumps(f) + "\n" for f in failures))
    table = {c: {"inputs": rows[c]["inputs"], "exit 0": rows[c]["exit 0"],
                 "exit 2": rows[c]["exit 2"], **{k: rows[c][k] for k in COLUMNS},
                 "slowest_s": round(slowest[c], 2)} for c in names}
    if args.json:
        print(json.dumps({"wall_s": wall, "campaigns": table}, indent=2))
    else:
        print(f"| campaign | inputs | exit 0 | exit 2 | {' | '.join(COLUMNS)} | slowest input |")
        print("|---" * (len(COLUMNS) + 5) + "|")
        for c, t in table.items():
            print(f"| {c} | {t['inputs']:,} | {t['exit 0']:,} | {t['exit 2']:,} | "
                  + " | ".join(str(t[k]) for k in COLUMNS)
                  + f" | {t['slowest_s']} s |")
        total = sum(t["inputs"] for t in table.values())
        print(f"\n{total:,} inputs in {wall:.0f} s with {args.workers} workers; "
              f"{len(failures)} failures")
        for f in failures[:20]:
            print(f"- {f['campaign']} {f['problem']}: {f['detail'][:160]} argv={f['argv'][:8]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
