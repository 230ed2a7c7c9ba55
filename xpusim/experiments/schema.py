"""Experiment files: the systems, workload parameters, claims and assumptions of one study.

Bad input raises :class:`ExperimentError` (an :class:`arch.SpecError`): one line naming the file
and the field (``claims[2].target``) and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from arch import SpecError

KINDS = ("ratio", "value", "custom")
REDUCE = ("max", "min", "mean", "gmean", "first", "last")
TYPES = {"int": int, "float": float, "str": str}


class ExperimentError(SpecError):
    """Invalid experiment file or override; one line naming file and field."""


@dataclass
class Claim:
    """One published figure and how to measure it from the study's result.

    ``kind``: ``ratio`` (per point ``<of>_<metric> / <over>_<metric>``, reduced over points),
    ``value`` (a point column, or ``value`` a key of the study's values), ``custom`` (a metric
    registered in :mod:`sim.studies`). ``text`` may hold ``{param}`` / ``{value}`` fields.
    ``id`` names the claim for the study, which receives ``params["targets"][id]``.
    """

    text: str
    kind: str
    target: float
    source: str = ""
    metric: str = ""
    of: str = ""
    over: str = ""
    column: str = ""
    value: str = ""
    where: dict[str, Any] = field(default_factory=dict)
    reduce: str = "mean"
    optional: bool = False
    id: str = ""


@dataclass
class Option:
    """A command-line flag that sets one parameter (``xpusim reproduce NAME --flag``)."""

    flag: str
    param: str
    type: str = "str"
    nargs: str | None = None
    help: str = ""
    minimum: float | None = None


@dataclass
class Experiment:
    name: str
    description: str
    study: str
    systems: dict[str, str]
    params: dict[str, Any]
    claims: list[Claim]
    assumptions: list[str]
    source: str = ""
    quick: dict[str, Any] = field(default_factory=dict)
    options: list[Option] = field(default_factory=list)
    path: str = ""


def _need(file: str, where: str, value: Any, kind: type | tuple, what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ExperimentError(file, where, f"expected {what}, got {value!r}")
    return value


def _claim(file: str, where: str, raw: Any, systems: dict[str, str]) -> Claim:
    _need(file, where, raw, dict, "a mapping (claim, kind, target, ...)")
    known = {"claim", "kind", "target", "source", "metric", "of", "over", "column", "value",
             "where", "reduce", "optional", "id"}
    for key in raw:
        if key not in known:
            raise ExperimentError(file, f"{where}.{key}",
                                  f"unknown field; expected one of {', '.join(sorted(known))}")
    text = _need(file, f"{where}.claim", raw.get("claim"), str, "the claim's text")
    kind = raw.get("kind", "ratio")
    if kind not in KINDS:
        raise ExperimentError(file, f"{where}.kind", f"expected one of {', '.join(KINDS)}, "
                              f"got {kind!r}")
    target = _need(file, f"{where}.target", raw.get("target"), (int, float),
                   "the published figure (a number)")
    reduce = raw.get("reduce", "mean")
    if reduce not in REDUCE:
        raise ExperimentError(file, f"{where}.reduce", f"expected one of {', '.join(REDUCE)}, "
                              f"got {reduce!r}")
    c = Claim(text=text, kind=kind, target=float(target), source=str(raw.get("source", "")),
              metric=str(raw.get("metric", "")), of=str(raw.get("of", "")),
              over=str(raw.get("over", "")), column=str(raw.get("column", "")),
              value=str(raw.get("value", "")), reduce=reduce,
              where=_need(file, f"{where}.where", raw.get("where", {}), dict, "a mapping"),
              optional=bool(raw.get("optional", False)), id=str(raw.get("id", "")))
    if kind == "ratio":
        for key in ("metric", "of", "over"):
            if not getattr(c, key):
                raise ExperimentError(file, f"{where}.{key}", "a ratio claim needs metric, of "
                                      "and over")
    elif kind == "value" and not (c.column or c.value):
        raise ExperimentError(file, f"{where}.column", "a value claim needs column (a point "
                              "column) or value (a study value)")
    elif kind == "custom" and not c.metric:
        raise ExperimentError(file, f"{where}.metric", "a custom claim needs metric (a name "
                              "registered in sim.studies)")
    return c


def _option(file: str, where: str, raw: Any) -> Option:
    _need(file, where, raw, dict, "a mapping (flag, param, type, ...)")
    flag = _need(file, f"{where}.flag", raw.get("flag"), str, "a flag such as --heads")
    if not flag.startswith("--"):
        raise ExperimentError(file, f"{where}.flag", f"expected a flag starting '--', got {flag!r}")
    typ = raw.get("type", "str")
    if typ not in TYPES:
        raise ExperimentError(file, f"{where}.type", f"expected one of {', '.join(TYPES)}, "
                              f"got {typ!r}")
    nargs = raw.get("nargs")
    if nargs not in (None, "+", "*"):
        raise ExperimentError(file, f"{where}.nargs", f"expected '+' or '*', got {nargs!r}")
    minimum = raw.get("minimum")
    if minimum is not None:
        _need(file, f"{where}.minimum", minimum, (int, float), "a number")
    return Option(flag=flag, param=_need(file, f"{where}.param", raw.get("param"), str,
                                         "the parameter it sets"),
                  type=typ, nargs=nargs, help=str(raw.get("help", "")), minimum=minimum)


def parse_experiment(data: Any, file: str) -> Experiment:
    """An :class:`Experiment` from parsed YAML ``data`` (``file`` names it in errors)."""
    _need(file, "", data, dict, "a mapping with name, study, systems, params, claims")
    known = {"name", "description", "source", "study", "systems", "params", "quick", "options",
             "claims", "assumptions", "notes"}
    for key in data:
        if key not in known:
            raise ExperimentError(file, str(key),
                                  f"unknown field; expected one of {', '.join(sorted(known))}")
    name = _need(file, "name", data.get("name"), str, "the experiment's name")
    study = _need(file, "study", data.get("study"), str, "a study name registered in sim.studies")
    systems = _need(file, "systems", data.get("systems", {}), dict,
                    "a mapping of system label to arch (preset name or YAML path)")
    for label, arch in systems.items():
        _need(file, f"systems.{label}", arch, str, "an arch preset name or YAML path")
    params = _need(file, "params", data.get("params", {}) or {}, dict, "a mapping")
    quick = _need(file, "quick", data.get("quick", {}) or {}, dict,
                  "a mapping of parameter overrides for --quick")
    for key in quick:
        if key not in params:
            raise ExperimentError(file, f"quick.{key}", "not a parameter in params")
    claims_raw = _need(file, "claims", data.get("claims"), list, "a list of claims")
    if not claims_raw:
        raise ExperimentError(file, "claims", "expected at least one claim")
    claims = [_claim(file, f"claims[{i}]", c, systems) for i, c in enumerate(claims_raw)]
    assumptions = _need(file, "assumptions", data.get("assumptions", []) or [], list,
                        "a list of strings")
    for i, a in enumerate(assumptions):
        _need(file, f"assumptions[{i}]", a, str, "a string")
    options = [_option(file, f"options[{i}]", o) for i, o in
               enumerate(_need(file, "options", data.get("options", []) or [], list, "a list"))]
    for i, o in enumerate(options):
        group, _, label = o.param.rpartition(".")
        if (group == "systems" and label not in systems) or \
                (group != "systems" and o.param not in params):
            raise ExperimentError(file, f"options[{i}].param", f"{o.param!r} is not in params "
                                  "(or systems.LABEL)")
    return Experiment(name=name, description=str(data.get("description", "")), study=study,
                      systems={str(k): v for k, v in systems.items()}, params=dict(params),
                      claims=claims, assumptions=list(assumptions),
                      source=str(data.get("source", "")), quick=dict(quick), options=options,
                      path=file)


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment YAML file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentError(file, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ExperimentError(file, where, f"not valid YAML ({getattr(exc, 'problem', exc)})") \
            from None
    return parse_experiment(data, file)
