"""``xpusim import TOOL``: run a peer tool's own input files through xpusim."""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import print_json
from xpusim.plugins import add_plugin_parsers, discover

NAME = "import"
HELP = "run a peer tool's inputs (e.g. SCALE-Sim, DRAMsim3 files) and report its metrics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_plugin_parsers(p, "xpusim.importers", "tool")


def run(args: argparse.Namespace) -> int:
    mod = getattr(args, "_module", None)
    if mod is None:
        names = ", ".join(discover("xpusim.importers")) or "none yet"
        sys.stdout.write(f"available importers: {names}\n")
        return 0
    out = mod.run(args)
    if args.json:
        print_json(out)
    else:
        text = getattr(mod, "format_text", None)
        sys.stdout.write(text(out) if text else "\n".join(f"{k}: {v}" for k, v in out.items())
                         + "\n")
    return 0
