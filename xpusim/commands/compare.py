"""``xpusim compare``: the same workload on several arches, as a table and an HTML report."""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import add_workload_args, load_workload, print_json, warn_emulated
from xpusim.progress import add_quiet_arg

NAME = "compare"
HELP = "run one workload on several arches (presets, files, --set overrides) side by side"
DEFAULT_OUT = "xpusim-compare"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arches", nargs="+", metavar="ARCH",
                   help="preset names or arch YAML files (the first is the baseline)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="sets",
                   help="add the first arch with this field changed, e.g. "
                        "memory.hbm.bandwidth=6.7TB/s (repeatable: all apply to one variant; "
                        "on a system arch device fields reach its primary device)")
    add_workload_args(p)
    p._option_string_actions["--arch"].help = argparse.SUPPRESS  # the positional ARCHes instead
    p.set_defaults(arch=None)
    p.add_argument("--out", default=None,
                   help=f"report directory (default {DEFAULT_OUT}; with --json, none unless given)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_quiet_arg(p)


def _table_text(df, names: list[str]) -> str:
    from sim.report.units import METRICS, readable

    cols = ["quantity", *names, *[c for c in df.columns if " / " in c]]
    rows = []
    for r in df.to_dict(orient="records"):
        label, unit = METRICS.get(r["metric"], (r["metric"], ""))
        rows.append([label, *[readable(r[n], unit) for n in names],
                     *[f"{r[c]:.3f}x" if r[c] == r[c] else "-" for c in cols[1 + len(names):]]])
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows, strict=True)]
    line = lambda cells: "  ".join(  # noqa: E731
        f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths,
                                                                             strict=True)))
    return "\n".join([line(cols), "  ".join("-" * w for w in widths), *map(line, rows)]) + "\n"


def run(args: argparse.Namespace) -> int:
    from dse.compare import arch_variants, bound_table, metrics_table, op_class_table
    from sim.run import simulate
    from sim.system.schedule import Policies
    from xpusim.commands._record import attach_record, estimate_run_s
    from xpusim.progress import bar, enabled

    arches = arch_variants(args.arches, args.sets)
    args.arch = args.arches[0]
    _, model, scenario = load_workload(args)
    names = [a.name for a in arches]
    progress = bar(len(arches) * max(estimate_run_s(model, scenario), 0.1), "compare", "s",
                   enabled(args))
    results = []
    for arch in arches:
        progress.set_description_str(f"compare: {arch.name}")
        warn_emulated(arch, scenario.dtype, scenario.kv_dtype)
        placement, policies = arch.sections.get("placement"), Policies()
        r = simulate(arch, model, scenario, fidelity=args.fidelity, seed=args.seed,
                     placement=placement, policies=policies)
        args.arch = arch.name
        attach_record(r, arch, model, scenario, args, placement, policies)
        results.append(r)
        progress.update(max(estimate_run_s(model, scenario), 0.1))
    progress.close()
    metrics, op_classes = metrics_table(names, results), op_class_table(names, results)
    bounds = bound_table(names, results)
    sc = scenario
    title = (f"{model.name}, batch {sc.batch}, prompt {sc.prompt_len}, generate {sc.gen_len}, "
             f"{sc.dtype}, TP {sc.tp}, {args.fidelity} fidelity")
    out = args.out or (None if args.json else DEFAULT_OUT)
    if out:
        from sim.report.compare import write_compare_report

        write_compare_report(out, title, names, results, metrics, op_classes, bounds)
    if args.json:
        print_json({"title": title, "arches": names,
                    "metrics": {n: r.metrics for n, r in zip(names, results, strict=True)},
                    "op_class_time_s": op_classes.to_dict(orient="records"),
                    "bounds": bounds.to_dict(orient="records"),
                    **({"report_dir": out} if out else {})})
    else:
        sys.stdout.write(f"{title}\n" + _table_text(metrics, names)
                         + f"report: {out}/report.html\n")
    return 0
