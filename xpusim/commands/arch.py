"""``xpusim arch``: list, show and validate architecture descriptions."""

from __future__ import annotations

import argparse
import sys

NAME = "arch"
HELP = "list presets, show one as loadable YAML, or validate an arch file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                           parser_class=type(p))
    sub.add_parser("list", help="list built-in presets")
    show = sub.add_parser("show", help="print a preset (or file) as loadable YAML with sources")
    show.add_argument("name", help="preset name or path")
    val = sub.add_parser("validate", help="validate an arch YAML file")
    val.add_argument("file", help="path to the arch YAML")


def run(args: argparse.Namespace) -> int:
    from arch import list_presets, load_arch, load_arch_data

    if args.action == "list":
        # type and description from each preset's data (``extends`` resolved), not a full
        # build and validation of every preset (0.27 s of CPU for ~50 presets); the presets'
        # validity is tests/test_arch*'s job, and `arch show NAME` builds one
        names = list_presets()
        width = max(len(n) for n in names)
        for name in names:
            data, _ = load_arch_data(name)
            sys.stdout.write(f"{name:{width}s}  {data['type']:8s} "
                             f"{data.get('description', '')}\n")
        return 0
    if args.action == "show":
        import yaml

        from sim.devices.base import fidelities_of

        a = load_arch(args.name)
        sys.stdout.write(f"# {a.description}\n" if a.description else "")
        fids = fidelities_of(a)
        sys.stdout.write(f"# fidelities (xpusim run --fidelity): {', '.join(fids)}\n" if fids
                         else "# fidelities: none (no device model runs this type)\n")
        sys.stdout.write(yaml.safe_dump(a.to_dict(), sort_keys=False, width=100,
                                        allow_unicode=True))
        return 0
    a = load_arch(args.file)
    sys.stdout.write(f"{args.file}: valid {a.type} arch '{a.name}' "
                     f"({len(a.provenance)} sourced parameters)\n")
    return 0
