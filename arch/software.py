"""Software stacks as their own presets (``arch/stacks/*.yaml``), composable with any GPU arch.

A stack file names a serving/inference stack (``ideal``: CUDA graphs; ``vllm``: a vLLM-like
async Python host; ``eager``: eager PyTorch; ``trtllm``: a TensorRT-LLM-like C++ runtime) and
holds one ``software`` section (:class:`arch.sections.gpu.SoftwareSpec`: per-op, per-step and
per-request host costs, the decode-attention kernel and the attention precision, collective
protocols), every value with its source. :func:`with_software` puts it on an arch's raw data:

* a ``gpu`` arch: its ``software`` section is replaced;
* a ``system`` arch: every device component whose arch is a ``gpu`` gets the stack as
  ``overrides.software``.

Replacement rule: every field of the section takes the stack's value, or
:class:`SoftwareSpec`'s default when the stack leaves it out; tables (``dispatch``, ``issue``,
``bandwidth_efficiency``) are replaced whole. The one exception is ``collective_protocols``:
NCCL's protocol constants depend on the GPU generation (``llMaxBw`` differs for Ampere and
Hopper), so they stay with the GPU preset and a stack's protocols are added (or replace one of
the same name).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from arch.schema import BuildContext, SpecError, build

STACK_DIR = Path(__file__).parent / "stacks"
TABLES = ("dispatch", "issue", "bandwidth_efficiency")
_TOP_KEYS = ("name", "description", "software")


def list_stacks() -> list[str]:
    """Names of the built-in software stacks, sorted."""
    return sorted(p.stem for p in STACK_DIR.glob("*.yaml"))


def stack_path(name: str) -> Path:
    """Path of stack ``name`` (a built-in name or a ``.yaml`` file); :class:`SpecError` with
    a did-you-mean when unknown."""
    text = str(name)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    path = STACK_DIR / f"{text}.yaml"
    if not path.is_file():
        names = list_stacks()
        hint = difflib.get_close_matches(text, names, n=1)
        more = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SpecError("", "--software", f"unknown software stack '{text}'{more}; stacks: "
                                          f"{', '.join(names)}")
    return path


def load_stack(name: str) -> tuple[str, dict[str, Any]]:
    """(stack name, raw ``software`` section with sources) of a stack, validated against
    :class:`SoftwareSpec`; errors name the stack file and field."""
    from arch import read_yaml
    from arch.sections.gpu import SoftwareSpec

    path = stack_path(name)
    label = str(path) if path.parent != STACK_DIR else path.name
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(label, "", f"expected a mapping with {', '.join(_TOP_KEYS)}")
    for key in data:
        if key not in _TOP_KEYS:
            raise SpecError(label, str(key), f"unknown key (expected one of: "
                                             f"{', '.join(_TOP_KEYS)})")
    section = data.get("software")
    if not isinstance(section, dict):
        raise SpecError(label, "software", "missing: the stack's software section (a mapping)")
    build(SoftwareSpec, section, BuildContext(file=label), "software")
    stack_name = data.get("name", path.stem)
    if not isinstance(stack_name, str) or not stack_name:
        raise SpecError(label, "name", "expected the stack's name (text)")
    return stack_name, section


def _entries(table: Any) -> dict[str, Any]:
    """A table's entries without its ``source``/``note`` keys."""
    if not isinstance(table, dict):
        return {}
    return {str(k): v for k, v in table.items() if k not in ("source", "note")}


def _replacing(stack_table: Any, base_table: Any, fallback: float) -> Any:
    """``stack_table`` plus, for every key only ``base_table`` has, the value the stack's table
    gives that key by lookup (its ``default``, else ``fallback``): deep-merged over the base,
    it acts as a replacement of the whole table."""
    out = dict(stack_table) if isinstance(stack_table, dict) else {}
    entries = _entries(stack_table)
    for key in _entries(base_table):
        if key not in entries and key != "default":
            out[key] = entries.get("default", fallback)
    if "default" in _entries(base_table) and "default" not in entries:
        out["default"] = fallback
    return out


#: what an absent table entry means (sim.gpu.host.lookup's defaults)
_FALLBACK = {"dispatch": 0.0, "issue": 0.0, "bandwidth_efficiency": 1.0}


def resolved_section(stack_name: str, section: dict[str, Any],
                     base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stack's section with every field set (defaults named as such): deep-merged over a
    GPU's section ``base`` it replaces everything but the collective protocols."""
    from arch.sections.gpu import SoftwareSpec

    base = base if isinstance(base, dict) else {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(SoftwareSpec):
        given = section.get(f.name)
        if f.name in TABLES:
            out[f.name] = _replacing(given if isinstance(given, dict) else {},
                                     base.get(f.name), _FALLBACK[f.name])
        elif given is not None:
            out[f.name] = given
        elif f.name == "kernel_cycles":     # a table: no {value: ...} wrapper around it
            out[f.name] = {"source": f"xpusim default (software stack '{stack_name}' does "
                                     "not set it)"}
        elif f.name != "collective_protocols":
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            out[f.name] = {"value": default, "source": f"xpusim default (software stack "
                                                       f"'{stack_name}' does not set it)"}
    return out


def _unwrap(value: Any) -> Any:
    return value["value"] if isinstance(value, dict) and "value" in value else value


def _component_arch(ref: Any, system_label: str) -> dict[str, Any]:
    """A component's raw arch data (``{}`` when it cannot be read here; the arch build then
    reports the problem)."""
    from arch import load_arch_data

    ref = _unwrap(ref)
    if not isinstance(ref, str):
        return {}
    candidates = [ref]
    if ref.endswith((".yaml", ".yml")) and not Path(ref).is_absolute() and system_label:
        candidates.insert(0, str(Path(system_label).parent / ref))
    for cand in candidates:
        try:
            data, _ = load_arch_data(cand)
        except SpecError:
            continue
        return data if isinstance(data, dict) else {}
    return {}


def with_software(data: dict[str, Any], stack: str, label: str = "") -> dict[str, Any]:
    """Raw arch ``data`` with software stack ``stack`` (a name or file) put on its GPUs."""
    from arch import deep_merge

    stack_name, section = load_stack(stack)
    if not isinstance(data, dict):
        raise SpecError(label, "", "expected a mapping")
    kind = _unwrap(data.get("type"))
    out = dict(data)
    if kind == "gpu":
        base = data.get("software") if isinstance(data.get("software"), dict) else {}
        out["software"] = deep_merge(base, resolved_section(stack_name, section, base))
    elif kind == "system":
        comps = data.get("components")
        new_comps = dict(comps) if isinstance(comps, dict) else {}
        hits = []
        for name, comp in new_comps.items():
            if not isinstance(comp, dict) or _unwrap(comp.get("kind")) != "device":
                continue
            arch_data = _component_arch(comp.get("arch"), label)
            if _unwrap(arch_data.get("type")) != "gpu":
                continue
            overrides = comp.get("overrides") if isinstance(comp.get("overrides"), dict) else {}
            base = deep_merge(arch_data.get("software") or {}, overrides.get("software") or {})
            comp = dict(comp)
            comp["overrides"] = deep_merge(
                overrides, {"software": resolved_section(stack_name, section, base)})
            new_comps[name] = comp
            hits.append(name)
        if not hits:
            raise SpecError(label, "--software", "the system has no GPU device component to run "
                                                 "a software stack on")
        out["components"] = new_comps
    else:
        raise SpecError(label, "--software", f"a software stack runs on a gpu or system arch, "
                                             f"not a '{kind}' arch")
    name = _unwrap(data.get("name"))
    if isinstance(name, str) and name:
        out["name"] = f"{name}+{stack_name}"
    return out


def load_arch_with_software(arch: str | Path, software: str | None = None):
    """:func:`arch.load_arch` with an optional software stack (name or file) applied."""
    from arch import arch_from_dict, load_arch, load_arch_data

    if not software:
        return load_arch(arch)
    data, label = load_arch_data(arch)
    return arch_from_dict(with_software(data, software, label), file=label)
