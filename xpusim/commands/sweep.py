"""``xpusim sweep``: run a design-space sweep from a YAML spec into a crash-safe store."""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import positive_int, print_json
from xpusim.progress import add_quiet_arg

NAME = "sweep"
HELP = "run a design-space sweep (grid, random, lhs, nsga2, bayes) and report its Pareto front"
DEFAULT_OUT = "xpusim-sweep"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep spec (see docs/dse.md)")
    p.add_argument("--out", default=None, help=f"result directory (default {DEFAULT_OUT})")
    p.add_argument("--resume", action="store_true",
                   help="continue a sweep in --out, skipping the points already stored")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="parallel worker processes (default 1)")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local process pool (default) or ray (pip install 'xpusim[ray]')")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the spec and print what would run, without running")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--no-report", action="store_true",
                   help="skip the HTML report and plots (results.csv is still written)")
    add_quiet_arg(p)


def run(args: argparse.Namespace) -> int:
    from dse import load_sweep, plan, run_sweep
    from xpusim.progress import SweepProgress, enabled

    spec = load_sweep(args.spec)
    out = args.out or DEFAULT_OUT
    if args.dry_run:
        info = plan(spec)
        if args.json:
            print_json(info)
        else:
            sys.stdout.write(f"{spec.name}: {info['n_points']} points "
                             f"({'up to, ' if info['adaptive'] else ''}strategy "
                             f"{info['strategy']}, fidelity {info['fidelity']}); axes: "
                             + ", ".join(f"{k} ({v})" for k, v in info["axes"].items()) + "\n")
        return 0
    bar = SweepProgress(spec.name, enabled(args))
    try:
        summary = run_sweep(spec, out, resume=args.resume, workers=args.workers,
                            executor=args.executor, address=args.address, progress=bar,
                            report=not args.no_report)
    finally:
        bar.close()
    if args.json:
        print_json(summary)
    else:
        s = summary["status"]
        sys.stdout.write(
            f"{spec.name}: {summary['n_points']} points ({summary['evaluated']} evaluated, "
            f"{summary['resumed']} resumed; {s['ok']} ok, {s['infeasible']} infeasible, "
            f"{s['error']} errors) in {summary['wall_s']:.1f} s "
            f"({summary['points_per_min']:.0f} points/min)\n")
        if "pareto" in summary:
            sys.stdout.write(f"Pareto front: {len(summary['pareto'])} points; "
                             f"report: {out}/report.html\n")
        else:
            sys.stdout.write(f"results: {out}/results.csv\n")
    if s_err := summary["status"]["error"]:
        sys.stderr.write(f"xpusim: error: {s_err} points failed with internal errors (see the "
                         f"reason column of {out}/results.csv; please report this)\n")
        return 3
    return 0
