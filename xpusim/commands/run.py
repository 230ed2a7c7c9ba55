"""``xpusim run``: simulate a model on an arch and write the report."""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import add_workload_args, load_workload, print_json

NAME = "run"
HELP = "simulate prefill and decode of a model on an arch; write a report"
DEFAULT_OUT = "xpusim-report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workload_args(p)
    p.add_argument("--out", default=None,
                   help=f"report directory (default {DEFAULT_OUT}; with --json, none unless given)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    arch, model, scenario = load_workload(args)
    from sim.run import simulate

    result = simulate(arch, model, scenario, fidelity=args.fidelity, seed=args.seed)
    out = args.out or (None if args.json else DEFAULT_OUT)
    if out:
        from sim.report import write_run_report

        write_run_report(result, out)
    if args.json:
        print_json({**result.metrics, "energy_by_component_J": result.energy_by_component,
                    "invariants": result.invariants, "inputs": result.inputs,
                    **({"report_dir": out} if out else {})})
    else:
        m = result.metrics
        sys.stdout.write(
            f"{model.name} on {arch.name} ({args.fidelity}): TTFT {m['ttft_s'] * 1e3:.2f} ms, "
            f"TPOT {m['tpot_s'] * 1e3:.3f} ms, {m['tokens_per_s']:.1f} tokens/s, "
            f"{m['energy_per_token_J']:.4f} J/token; invariants passed\n"
            f"report: {out}/report.html\n")
    return 0
