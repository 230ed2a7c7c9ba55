"""Experiments: declarative reproductions (YAML) run by one generic runner.

``xpusim reproduce NAME`` runs the shipped file ``xpusim/reproductions/experiments/NAME.yaml``;
``xpusim reproduce path/to/my.yaml`` runs a user's copy; ``--set systems.LABEL=ARCH`` or
``--set PARAM=VALUE`` changes a chip or a workload parameter without editing the file.
See docs/experiments.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from xpusim.experiments.runner import resolve, run_experiment, shipped
from xpusim.experiments.schema import Experiment, ExperimentError, load_experiment

__all__ = ["Experiment", "ExperimentError", "add_experiment_arguments", "load_experiment",
           "resolve", "run_experiment", "run_from_args", "shipped", "legacy"]


def _typed(kind: str, minimum: float | None):
    conv = {"int": int, "float": float, "str": str}[kind]

    def parse(text: str) -> Any:
        try:
            value = conv(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got '{text}'") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind} >= {minimum:g}, got {value}")
        return value
    return parse


def add_experiment_arguments(p: argparse.ArgumentParser, exp: Experiment | None) -> None:
    """The flags of one experiment (its declared options) plus --quick and --set."""
    p.add_argument("--quick", action="store_true",
                   help="the experiment's quick parameter set (tests, a first look)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a system (systems.LABEL=ARCH) or a parameter (NAME=VALUE, "
                        "YAML value); repeatable")
    for o in exp.options if exp else []:
        label = o.param.removeprefix("systems.")
        default = exp.systems[label] if o.param.startswith("systems.") else exp.params[o.param]
        p.add_argument(o.flag, dest=f"opt_{o.param}", type=_typed(o.type, o.minimum),
                       nargs=o.nargs, default=None, metavar=o.flag[2:].upper().replace("-", "_"),
                       help=f"{o.help} (default {default})".strip())


def run_from_args(exp: Experiment, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``exp`` with the options, --quick and --set of parsed ``args``."""
    params, sets = _option_values(exp, args, prefix="opt_")
    return run_experiment(exp, quick=bool(getattr(args, "quick", False)),
                          sets=sets + list(getattr(args, "set", []) or []), params=params)


def _option_values(exp: Experiment, args: argparse.Namespace,
                   prefix: str) -> tuple[dict[str, Any], list[str]]:
    """(parameter values, system --set items) given by the options present on ``args``."""
    params: dict[str, Any] = {}
    sets: list[str] = []
    for o in exp.options:
        dest = prefix + o.param if prefix else o.flag[2:].replace("-", "_")
        value = getattr(args, dest, None)
        if value is None:
            continue
        if o.param.startswith("systems."):
            sets.append(f"{o.param}={value}")
        else:
            params[o.param] = value
    return params, sets


def legacy(name: str):
    """``reproduce(args)`` for a former reproduction module: runs the shipped experiment
    ``name`` with the attributes of ``args`` named like its options' parameters."""
    def reproduce(args: argparse.Namespace) -> dict[str, Any]:
        exp = resolve(name)
        params, sets = _option_values(exp, args, prefix="")
        return run_experiment(exp, quick=bool(getattr(args, "quick", False)),
                              sets=sets + list(getattr(args, "set", []) or []), params=params)
    return reproduce
