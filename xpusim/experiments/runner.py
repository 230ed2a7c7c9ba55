"""Run an experiment: its study on its systems and parameters, then its claims and assumptions.

The study (a driver registered in :mod:`sim.studies`, living with its device) returns points and
values; the runner forms each claim (a ratio between two systems' columns, a value, or a custom
metric), fills ``{field}`` placeholders in claim texts and assumptions from the parameters and
values, and returns the shape every reproduction shares::

    {"name", "results": [{claim, measured, target, rel_error}], "assumptions", "points", ...}
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any

import yaml

from xpusim.experiments.schema import Claim, Experiment, ExperimentError, load_experiment
from xpusim.reproductions._shape import claim as make_claim
from xpusim.reproductions._shape import report

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "reproductions" / "experiments"


def shipped() -> dict[str, Path]:
    """Shipped experiment files keyed by their ``name``."""
    out: dict[str, Path] = {}
    for path in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
        out[load_experiment(path).name] = path
    return out


def resolve(name_or_path: str) -> Experiment:
    """A shipped experiment by name, or an experiment file by path."""
    files = shipped()
    if name_or_path in files:
        return load_experiment(files[name_or_path])
    if Path(name_or_path).suffix in (".yaml", ".yml") or Path(name_or_path).exists():
        return load_experiment(name_or_path)
    raise ExperimentError("", "NAME", f"no experiment {name_or_path!r}; expected one of "
                          f"{', '.join(files)} or a YAML file path")


def apply_sets(exp: Experiment, sets: list[str] | tuple[str, ...],
               params: dict[str, Any] | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Systems and parameters after ``KEY=VALUE`` overrides (``systems.LABEL=arch``,
    ``params.NAME=yaml`` or a bare system label / parameter name; values parsed as YAML)."""
    systems = dict(exp.systems)
    params = dict(exp.params if params is None else params)
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ExperimentError("--set", item, "expected KEY=VALUE, e.g. systems.gpu=a100")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        group, _, leaf = key.rpartition(".")
        if group not in ("", "systems", "params"):
            raise ExperimentError("--set", key, "expected systems.LABEL or params.NAME")
        if group == "systems" or (not group and leaf in systems and leaf not in params):
            if leaf not in systems:
                raise ExperimentError("--set", key, f"no system {leaf!r} in {exp.name}; "
                                      f"expected one of {', '.join(systems)}")
            systems[leaf] = str(text)
        elif leaf in params:
            params[leaf] = _like(value, params[leaf], key)
        else:
            raise ExperimentError("--set", key, f"not a system or parameter of {exp.name}; "
                                  f"systems: {', '.join(systems)}; params: {', '.join(params)}")
    return systems, params


def _like(value: Any, old: Any, key: str) -> Any:
    """``value`` checked against the type of the value it replaces."""
    if isinstance(old, bool):
        ok = isinstance(value, bool)
    elif isinstance(old, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(old, dict):
        ok = isinstance(value, dict)
    elif isinstance(old, list):
        value = value if isinstance(value, list) else [value]
        ok = all(not isinstance(v, (dict, list)) for v in value)
    else:
        ok = True
    if not ok:
        raise ExperimentError("--set", key, f"expected a value like {old!r}, got {value!r}")
    return value


def _near(arch: str, exp_path: str) -> str:
    """An arch YAML path as given when it exists, else relative to the experiment file, else
    to the shipped experiments' folder."""
    if not arch.endswith((".yaml", ".yml")) or Path(arch).exists() or not exp_path:
        return arch
    for base in (Path(exp_path).parent, EXPERIMENTS_DIR):   # a copy keeps the shipped paths
        near = base / arch
        if near.exists():
            return str(near.resolve())
    return arch


class _Fields(dict):
    """format_map source that leaves unknown ``{fields}`` as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(text: str, fields: dict[str, Any]) -> str:
    """``text`` with ``{name}`` / ``{name:fmt}`` placeholders filled from ``fields``."""
    try:
        return string.Formatter().vformat(text, (), _Fields(fields))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return text


def _reduce(xs: list[float], how: str) -> float:
    if not xs:
        raise KeyError("no points")
    if how == "max":
        return max(xs)
    if how == "min":
        return min(xs)
    if how == "gmean":
        return math.exp(sum(math.log(x) for x in xs) / len(xs))
    if how == "first":
        return xs[0]
    if how == "last":
        return xs[-1]
    return sum(xs) / len(xs)


def measure(c: Claim, result: dict[str, Any], params: dict[str, Any]) -> float:
    """The measured figure of claim ``c`` from a study ``result`` (KeyError when absent)."""
    from sim.studies import get_metric

    points = [p for p in result.get("points") or []
              if all(p.get(k) == v for k, v in c.where.items())]
    if c.kind == "ratio":
        return _reduce([p[f"{c.of}_{c.metric}"] / p[f"{c.over}_{c.metric}"] for p in points],
                       c.reduce)
    if c.kind == "value":
        if c.value:
            return float(result.get("values", {})[c.value])
        return _reduce([p[c.column] for p in points], c.reduce)
    fn = get_metric(c.metric)
    if fn is None:
        raise ExperimentError("", "claims.metric", f"no metric {c.metric!r} registered in "
                              "sim.studies")
    return float(fn(result, params))


def run_experiment(exp: Experiment, quick: bool = False, sets: list[str] | tuple = (),
                   params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``exp`` (``quick``: its quick overrides; ``params``: replacements applied before
    ``sets``) and return the reproduction report."""
    import dse.studies  # noqa: F401 - registers the studies that need dse
    from sim.studies import get_study, names
    from xpusim.paths import reference_dir

    base = dict(exp.params)
    if quick:
        base.update(exp.quick)
    if params:
        base.update(params)
    systems, prm = apply_sets(exp, sets, base)
    systems = {k: _near(v, exp.path) for k, v in systems.items()}
    fn = get_study(exp.study)
    if fn is None:
        raise ExperimentError(exp.path, "study", f"no study {exp.study!r}; registered: "
                              f"{', '.join(names()[0])}")
    targets = {c.id: c.target for c in exp.claims if c.id}
    try:
        result = fn(systems, {**prm, "targets": targets, "reference_dir": str(reference_dir())})
    except KeyError as exc:   # a label or parameter the study needs but the file lacks
        key = exc.args[0] if exc.args else None
        if not isinstance(key, str) or key in systems or key in prm:
            raise
        raise ExperimentError(exp.path, "systems" if key not in exp.params else "params",
                              f"study {exp.study} needs {key!r}; this file has systems "
                              f"{', '.join(systems)} and params {', '.join(prm)}") from None
    fields = {**prm, **{f"system_{k}": v for k, v in systems.items()},
              **result.get("values", {})}
    results = []
    for n, c in enumerate(exp.claims):
        try:
            measured = measure(c, result, prm)
        except (KeyError, ZeroDivisionError) as exc:
            if c.optional:
                continue
            what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else str(exc)
            raise ExperimentError(exp.path, f"claims[{n}]", f"cannot measure it: the study's "
                                  f"result has {what} (systems: {', '.join(systems)})") from None
        results.append(make_claim(fill(c.text, fields), measured, c.target))
        i = n + 1    # claim<i>_measured / _target / _gap (target / measured)
        fields.update({f"claim{i}_measured": measured, f"claim{i}_target": c.target,
                       f"claim{i}_gap": c.target / measured if measured else float("nan")})
    assumptions = [fill(a, fields) for a in exp.assumptions]
    assumptions += result.get("assumptions", [])
    extra = dict(result.get("extra", {}))
    extra["experiment"] = {"file": exp.path, "study": exp.study, "systems": systems,
                           "source": exp.source,
                           "claim_sources": [c.source for c in exp.claims]}
    return report(exp.name, results, assumptions, result.get("points"), **extra)
