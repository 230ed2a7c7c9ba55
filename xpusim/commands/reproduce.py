"""``xpusim reproduce NAME``: rerun a seed system's headline result from the mechanism."""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import print_json
from xpusim.plugins import add_plugin_parsers, discover

NAME = "reproduce"
HELP = "reproduce a seed system's headline figures (`xpusim reproduce` lists them)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_plugin_parsers(p, "xpusim.reproductions", "name")


def format_table(out: dict) -> str:
    lines = [f"== {out['name']} =="]
    width = max([len(r["claim"]) for r in out["results"]] + [5])
    lines.append(f"{'claim':{width}s}  {'measured':>10s}  {'target':>10s}  {'error':>8s}")
    for r in out["results"]:
        lines.append(f"{r['claim']:{width}s}  {r['measured']:10.4g}  {r['target']:10.4g}  "
                     f"{r['rel_error']:+8.1%}")
    if out.get("assumptions"):
        lines.append("assumptions:")
        lines += [f"  - {a}" for a in out["assumptions"]]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    mod = getattr(args, "_module", None)
    if mod is None:
        names = ", ".join(discover("xpusim.reproductions")) or "none yet"
        sys.stdout.write(f"available reproductions: {names}\n")
        return 0
    from xpusim.progress import enabled, timed

    name = getattr(mod, "NAME", "")
    quick = "-quick" if getattr(args, "quick", False) else ""
    with timed(f"reproduce {name}", 0.0, enabled(args), key=f"reproduce:{name}{quick}"):
        out = mod.reproduce(args)
    if args.json:
        print_json(out)
    else:
        text = getattr(mod, "format_text", None)
        sys.stdout.write(text(out) if text else format_table(out))
    return 0
