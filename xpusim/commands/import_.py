"""``xpusim import TOOL``: run a peer tool's own input files through xpusim."""

from __future__ import annotations

import argparse
import importlib
import sys

from xpusim.cli import HelpFormatter as _Formatter
from xpusim.cli import _terminal_columns  # noqa: F401  (tests import it from here)

NAME = "import"
HELP = "run a peer tool's inputs (e.g. SCALE-Sim, DRAMsim3 files) and report its metrics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from xpusim.plugins import add_plugin_parsers

    add_plugin_parsers(p, "xpusim.importers", "tool")


def single_importer_parser(parser_class: type, tool: str) -> argparse.ArgumentParser | None:
    """An ``xpusim`` parser that knows only ``import TOOL`` (None when TOOL names no importer):
    it parses ``xpusim import TOOL ...`` as the full parser does (same options, sub-parser
    structure and ``args``), without importing every command and importer first, which costs
    a short ``xpusim import dramsim3`` more CPU than its simulation. ``xpusim import --help``
    and unknown tools go through the full parser (its list and "did you mean")."""
    if not tool.isidentifier() or tool.startswith("_"):
        return None
    try:
        mod = importlib.import_module(f"xpusim.importers.{tool}")
    except ImportError:
        return None
    if getattr(mod, "NAME", None) != tool:
        return None
    fmt = {"formatter_class": _Formatter}
    parser = parser_class(prog="xpusim", **fmt)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    p = sub.add_parser(NAME, help=HELP, description=HELP, **fmt)
    p.set_defaults(_run=run)
    tools = p.add_subparsers(dest="tool", metavar="TOOL", parser_class=parser_class)
    sp = tools.add_parser(tool, help=getattr(mod, "DESCRIPTION", ""), **fmt)
    # as xpusim.plugins.add_plugin_parsers gives each importer
    if hasattr(mod, "add_arguments"):
        mod.add_arguments(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    sp.set_defaults(_module=mod)
    return parser


def run(args: argparse.Namespace) -> int:
    mod = getattr(args, "_module", None)
    if mod is None:
        from xpusim.plugins import discover

        names = ", ".join(discover("xpusim.importers")) or "none yet"
        sys.stdout.write(f"available importers: {names}\n")
        return 0
    out = mod.run(args)
    if args.json:
        from xpusim.commands._common import print_json

        print_json(out)
    else:
        text = getattr(mod, "format_text", None)
        sys.stdout.write(text(out) if text else "\n".join(f"{k}: {v}" for k, v in out.items())
                         + "\n")
    return 0
