"""Wall time of ``xpusim check`` on one full Llama-2-7B layer (batch 1, sequence 512: the
prefill layer and one decode step over a 513-token KV cache), goal under 30 s.

A small check first compiles (or loads) the numba kernels, so the timed run measures the check
itself; the error table of the timed run must pass. Also times the default small-shape check
on one preset of every device class.

    python benchmarks/bench_check.py [--arch a100] [--prompt 512] [--skip-small] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_S = 30.0
SMALL = ("a100", "neupims-npu", "fusemax", "pim-hbm-pim", "neupims", "duplex")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="a100")
    ap.add_argument("--model", default="llama2-7b")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--skip-small", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer
    from workloads.models import get_model

    model = get_model(args.model)
    t = time.perf_counter()
    check_layer(load_arch(args.arch), model, CheckSpec(prompt=16, max_width=256))
    warm = time.perf_counter() - t
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    full = check_layer(load_arch(args.arch), model, CheckSpec(prompt=args.prompt, full=True))
    wall = time.perf_counter() - t
    out = {"arch": args.arch, "model": args.model, "prompt": args.prompt,
           "full_layer_s": wall, "goal_s": GOAL_S, "passed": full.passed,
           "ops_checked": len(full.rows), "warmup_s": warm, "load_avg_1min": load_before,
           "small": {}}
    if not args.skip_small:
        for name in SMALL:
            t = time.perf_counter()
            rep = check_layer(load_arch(name), model, CheckSpec())
            out["small"][name] = {"seconds": time.perf_counter() - t, "passed": rep.passed}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.model} full layer (batch 1, prompt {args.prompt}, prefill + decode) on "
              f"{args.arch}: {wall:.1f} s (goal < {GOAL_S:.0f} s), {len(full.rows)} ops, "
              f"{'passed' if full.passed else 'FAILED'}; warm-up {warm:.1f} s; "
              f"load average {load_before:.2f}")
        for name, r in out["small"].items():
            print(f"  default check on {name:12}: {r['seconds']:5.1f} s "
                  f"{'passed' if r['passed'] else 'FAILED'}")
    ok = full.passed and wall < GOAL_S and all(r["passed"] for r in out["small"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
