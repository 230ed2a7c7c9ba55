"""``xpusim reproduce NAME|FILE.yaml``: rerun a seed system's headline result from the mechanism.

NAME is a shipped experiment (``xpusim/reproductions/experiments/NAME.yaml``) or a reproduction
module not yet converted; FILE.yaml is a user's experiment file (docs/experiments.md).
"""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import print_json

NAME = "reproduce"
HELP = "reproduce a seed system's headline figures (`xpusim reproduce` lists them)"
FILE = "file"


class _Choices(dict):
    """Subcommand table that also accepts an experiment file path (routed to ``FILE``)."""

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (
            isinstance(key, str) and key.endswith((".yaml", ".yml")))


class _SubParsers(argparse._SubParsersAction):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._name_parser_map = _Choices()
        self.choices = self._name_parser_map

    def __call__(self, parser, namespace, values, option_string=None):
        name = values[0]
        if not dict.__contains__(self._name_parser_map, name):
            values = [FILE, "--file", name, *values[1:]]
        super().__call__(parser, namespace, values, option_string)


def _literal(text: str) -> str:
    """``text`` as argparse help shows it verbatim (help strings are %-format templates: a
    description saying "20%" broke ``xpusim reproduce --help``)."""
    return text.replace("%", "%%")


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from xpusim.experiments import add_experiment_arguments, load_experiment, shipped
    from xpusim.plugins import discover

    p.add_argument("--list", action="store_true", help="list the reproductions (the default "
                   "without NAME)")
    sub = p.add_subparsers(dest="name", metavar="NAME", parser_class=type(p),
                           action=_SubParsers)
    files = shipped()
    for name, path in files.items():
        exp = load_experiment(path)
        sp = sub.add_parser(name, help=_literal(exp.description), description=_describe(exp, path))
        add_experiment_arguments(sp, exp)
        _common(sp)
        sp.set_defaults(_experiment=exp)
    for name, mod in discover("xpusim.reproductions").items():
        if name in files:
            continue
        sp = sub.add_parser(name, help=_literal(getattr(mod, "DESCRIPTION", "")))
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(sp)
        _common(sp)
        sp.set_defaults(_module=mod)
    sp = sub.add_parser(FILE, help="run an experiment file (a copy of a shipped one, edited)")
    sp.add_argument("--file", required=True, help=argparse.SUPPRESS)
    add_experiment_arguments(sp, None)
    _common(sp)
    sp.set_defaults(_experiment_file=True)


def _describe(exp, path) -> str:
    """--help text: what the experiment is and what --set can change."""
    systems = ", ".join(f"{k}={v}" for k, v in exp.systems.items())
    return (f"{exp.description}. Study {exp.study}; systems (--set systems.LABEL=ARCH): "
            f"{systems}; parameters (--set NAME=VALUE): {', '.join(exp.params)}. "
            f"File: {path} (copy, edit, run with `xpusim reproduce FILE.yaml`).")


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


def _list() -> str:
    from xpusim.experiments import shipped
    from xpusim.plugins import discover

    names = sorted(set(shipped()) | set(discover("xpusim.reproductions")))
    return f"available reproductions: {', '.join(names) or 'none yet'}\n"


def run(args: argparse.Namespace) -> int:
    from xpusim.progress import enabled, timed

    exp = getattr(args, "_experiment", None)
    mod = getattr(args, "_module", None)
    if getattr(args, "_experiment_file", False):
        from xpusim.experiments import load_experiment

        exp = load_experiment(args.file)
    if exp is None and mod is None:
        sys.stdout.write(_list())
        return 0
    name = exp.name if exp is not None else getattr(mod, "NAME", "")
    quick = "-quick" if getattr(args, "quick", False) else ""
    with timed(f"reproduce {name}", 0.0, enabled(args), key=f"reproduce:{name}{quick}"):
        if exp is not None:
            from xpusim.experiments import run_from_args

            out = run_from_args(exp, args)
        else:
            out = mod.reproduce(args)
    if args.json:
        print_json(out)
    else:
        text = getattr(mod, "format_text", None) if mod is not None else None
        sys.stdout.write(text(out) if text else format_table(out))
    return 0
