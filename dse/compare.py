"""One workload on several arches: presets, arch files, or a preset with ``--set`` overrides.

``--set memory.hbm.bandwidth=6.7TB/s`` addresses a device field; on a ``system`` arch it lands
in the primary device component's ``overrides`` (as sweeps map their axes,
:func:`dse.spec.arch_data_path`), so one path works for ``h100`` and ``dgx-h100`` alike.
Tables are plain DataFrames: metrics (arch columns, ratio to the first), and time by op class
(seconds of op time summed over streams, with the difference to the first arch).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pandas as pd
import yaml

from arch import SpecError, load_arch_data
from arch.spec import DEVICE_TYPES, Arch, arch_from_dict
from dse.spec import SYSTEM_DERIVED, set_path

#: metrics the comparison table shows, in order (others are in the JSON)
TABLE_METRICS = ("ttft_s", "tpot_s", "latency_s", "tokens_per_s", "decode_tokens_per_s",
                 "energy_J", "energy_per_token_J", "static_energy_J", "flops", "dram_bytes",
                 "memory_per_device_bytes")


def parse_set(text: str) -> tuple[str, Any]:
    """``PATH=VALUE`` -> (path, value); the value is YAML (``132``, ``true``) or text with a
    unit (``6.7TB/s``), parsed by the arch loader."""
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not path or not value.strip() or any(not p for p in path.split(".")):
        raise SpecError("--set", "", f"expected PATH=VALUE (e.g. memory.hbm.bandwidth=6.7TB/s), "
                                     f"got '{text[:60]}'")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value.strip()
    if isinstance(parsed, (dict, list)) or parsed is None:
        parsed = value.strip()
    return path, parsed


def _device_prefix(arch: Arch) -> tuple[str, tuple[str, ...]]:
    """(where the primary device's data lives, the sections addressed through it)."""
    if arch.type != "system":
        return "", ()
    from arch.topology_view import device_view, primary_component

    primary = primary_component(arch)
    view = device_view(arch, primary)
    own = DEVICE_TYPES[view.type]["required"] + DEVICE_TYPES[view.type]["optional"]
    return f"components.{primary}.overrides", tuple(s for s in own if s not in SYSTEM_DERIVED)


def with_overrides(ref: str, sets: list[tuple[str, Any]]) -> Arch:
    """Arch ``ref`` (preset or file) with each ``(path, value)`` set; named ``NAME+set``."""
    data, label = load_arch_data(ref)
    data = copy.deepcopy(data)
    base = arch_from_dict(copy.deepcopy(data), file=label)
    prefix, sections = _device_prefix(base)
    for path, value in sets:
        where = f"{prefix}.{path}" if prefix and path.split(".")[0] in sections else path
        set_path(data, where, value)
    data["name"] = f"{base.name}+" + ",".join(f"{p.rsplit('.', 1)[-1]}={v}" for p, v in sets)
    return arch_from_dict(data, file=f"{label} with --set")


def arch_variants(refs: list[str], sets: list[str]) -> list[Arch]:
    """The arches to compare: each of ``refs``, then (with ``sets``) the first of them with
    the overrides applied."""
    from arch import load_arch

    arches = [load_arch(r) for r in refs]
    if sets:
        arches.append(with_overrides(refs[0], [parse_set(s) for s in sets]))
    names = [a.name for a in arches]
    for i, a in enumerate(arches):  # same name twice (a file extending its preset): number them
        if names.count(a.name) > 1:
            arches[i] = _renamed(a, f"{a.name} ({i + 1})")
    return arches


def _renamed(arch: Arch, name: str) -> Arch:
    import dataclasses

    return dataclasses.replace(arch, name=name)


def run_all(arches: list[Arch], simulate_one: Callable[[Arch], Any],
            progress: Callable[[str], None] | None = None) -> list[Any]:
    """``simulate_one(arch)`` for each arch, in order; ``progress(name)`` after each."""
    out = []
    for arch in arches:
        out.append(simulate_one(arch))
        if progress:
            progress(arch.name)
    return out


def metrics_table(names: list[str], results: list[Any]) -> pd.DataFrame:
    """One row per metric, one column per arch, and ``x first`` ratios for the others."""
    rows = []
    for key in TABLE_METRICS:
        vals = [r.metrics.get(key) for r in results]
        if all(v is None for v in vals):
            continue
        rows.append({"metric": key, **dict(zip(names, vals, strict=True))})
    df = pd.DataFrame(rows)
    first = names[0]
    for n in names[1:]:
        df[f"{n} / {first}"] = df[n] / df[first].where(df[first] != 0)
    return df


def op_class_table(names: list[str], results: list[Any]) -> pd.DataFrame:
    """Op time (s, summed over streams) by phase and op class per arch, and each arch's
    difference to the first (s)."""
    frames = []
    for name, r in zip(names, results, strict=True):
        t = r.ops.groupby(["phase", "op_class"])["latency_s"].sum().rename(name)
        frames.append(t)
    df = pd.concat(frames, axis=1).fillna(0.0).reset_index()
    for n in names[1:]:
        diff = df[n] - df[names[0]]
        scale = df[[n, names[0]]].abs().max(axis=1)
        df[f"{n} - {names[0]}"] = diff.where(diff.abs() > 1e-9 * scale, 0.0)  # float noise
    return df.sort_values(names[0], ascending=False, ignore_index=True)


def bound_table(names: list[str], results: list[Any]) -> pd.DataFrame:
    """The bound (compute, memory, ...) that holds most of each op class's time, per arch."""
    rows: dict[str, dict[str, str]] = {}
    for name, r in zip(names, results, strict=True):
        t = r.ops.groupby(["op_class", "bound"])["latency_s"].sum().reset_index()
        for cls, g in t.groupby("op_class"):
            rows.setdefault(cls, {})[name] = str(g.loc[g["latency_s"].idxmax(), "bound"])
    return pd.DataFrame([{"op_class": k, **v} for k, v in sorted(rows.items())])
