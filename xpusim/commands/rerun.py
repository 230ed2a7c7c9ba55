"""``xpusim rerun DIR/summary.json``: run again from the resolved inputs a summary recorded."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from xpusim.commands._common import print_json
from xpusim.progress import add_quiet_arg

NAME = "rerun"
HELP = "rerun a recorded run from its summary.json (resolved arch, model config, scenario)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("summary", metavar="SUMMARY",
                   help="a run's summary.json, or the report folder holding it")
    p.add_argument("--out", default=None, help="write the new run's report here (default: none)")
    p.add_argument("--json", action="store_true", help="print the new summary as JSON")
    add_quiet_arg(p)


def read_summary(path: str) -> tuple[dict, str]:
    """The summary's data and its file name; one-line errors for a missing or old summary."""
    from workloads.errors import WorkloadError

    file = Path(path)
    if file.is_dir():
        file = file / "summary.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkloadError(str(file), "", f"not a JSON summary ({str(exc)[:80]})") from None
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, dict) or "resolved" not in inputs:
        raise WorkloadError(str(file), "inputs.resolved",
                            "no resolved inputs recorded (written by an older xpusim); rerun "
                            "it with the options in 'inputs'")
    return data, str(file)


def differences(old: dict, new: dict) -> list[str]:
    """Metrics that are not bit-for-bit equal (NaN equals NaN)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        same = a == b or (isinstance(a, float) and isinstance(b, float)
                          and math.isnan(a) and math.isnan(b))
        if not same:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def rerun_result(rec: dict, file: str, progress: bool = False):
    """The :class:`sim.result.Result` of running a recorded run's resolved inputs again."""
    from sim.record import load_record
    from sim.system.schedule import Policies

    inp = load_record(rec, file)
    policies = Policies(**(inp["policies"] or {}))
    if inp["mode"] == "finetune":
        from sim.finetune import simulate_training
        from workloads.training import Training

        return simulate_training(inp["arch"], inp["model"], inp["scenario"],
                                 Training(**inp["training"]), fidelity=inp["fidelity"],
                                 seed=inp["seed"], placement=inp["placement"],
                                 policies=policies)
    from sim.run import simulate
    from xpusim.commands._record import estimate_run_s
    from xpusim.progress import timed

    with timed("rerun", estimate_run_s(inp["model"], inp["scenario"]), progress):
        return simulate(inp["arch"], inp["model"], inp["scenario"], fidelity=inp["fidelity"],
                        seed=inp["seed"], placement=inp["placement"], policies=policies)


def run(args: argparse.Namespace) -> int:
    from xpusim.progress import enabled

    data, file = read_summary(args.summary)
    rec = data["inputs"]["resolved"]
    result = rerun_result(rec, file, enabled(args))
    result.inputs["resolved"] = rec
    for key in ("model_origin",):
        if key in data["inputs"]:
            result.inputs[key] = data["inputs"][key]
    if args.out:
        from sim.report import write_run_report

        write_run_report(result, args.out)
    diff = differences(data.get("metrics", {}), json.loads(json.dumps(result.metrics)))
    if args.json:
        print_json({**result.metrics, "identical": not diff, "differences": diff,
                    **({"report_dir": args.out} if args.out else {})})
    else:
        m = result.metrics
        sys.stdout.write(f"reran {file}: latency {m['latency_s']:.6g} s, "
                         f"{m['tokens_per_s']:.6g} tokens/s; "
                         + ("metrics identical to the recorded run\n" if not diff else
                            f"{len(diff)} metrics differ: {'; '.join(diff[:5])}\n"))
    return 0 if not diff else 1
