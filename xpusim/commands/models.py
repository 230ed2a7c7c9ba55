"""``xpusim models``: list and show model presets."""

from __future__ import annotations

import argparse
import sys

NAME = "models"
HELP = "list model presets or show one"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                           parser_class=type(p))
    sub.add_parser("list", help="list model presets with parameter counts")
    show = sub.add_parser("show", help="show one model's shape (preset or config.json)")
    show.add_argument("name")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from workloads.models import MODEL_PRESETS
    from xpusim.commands._common import load_model, print_json

    if args.action == "list":
        w = max(len(m.name) for m in MODEL_PRESETS.values())
        sys.stdout.write(f"{'name':{w}s} {'kind':15s} {'params':>9s} {'layers':>7s} "
                         f"{'d_model':>7s} {'heads':>5s} {'kv':>3s} {'experts':>7s}  source\n")
        for m in MODEL_PRESETS.values():
            layers = f"{m.n_layers}+{m.n_decoder_layers}" if m.n_decoder_layers else \
                str(m.n_layers)
            heads, kv = ("-", "-") if m.kind == "mamba" else (str(m.n_heads), str(m.n_kv_heads))
            sys.stdout.write(f"{m.name:{w}s} {m.kind:15s} {m.param_count() / 1e9:8.3f}B "
                             f"{layers:>7s} {m.d_model:7d} {heads:>5s} {kv:>3s} "
                             f"{m.n_experts:7d}  {m.source}\n")
        return 0
    m = load_model(args.name)
    print_json({**asdict(m), "param_count": m.param_count(),
                "active_param_count": m.active_param_count()})
    return 0
