"""The architecture object: a named device class with typed sections and the sources of its values.

Sections (``gpu``, ``memory``, ``energy``, ``interconnect``, ``system`` and those other device
classes add) are dataclasses registered with :func:`register_section`; device classes declare which
sections they need with :func:`register_device_type`. Adding a device class means adding one
section module under ``arch/sections/`` and one preset; nothing here changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arch.schema import BuildContext, SpecError, build_any, dump


class _Registry(dict):
    """A registry the ``arch/sections/`` modules fill as they are imported (they load on
    demand, :mod:`arch.sections`); reading a missing key imports them all first."""

    def __missing__(self, key: Any) -> Any:
        from arch.sections import load_all

        load_all()
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        raise KeyError(key)


SECTIONS: dict[str, type] = _Registry()
DEVICE_TYPES: dict[str, dict[str, tuple[str, ...]]] = _Registry()
TYPE_CHECKS: dict[str, Callable[[Any], tuple[str, str] | None]] = {}
TOP_LEVEL_KEYS = ("name", "type", "description", "source", "note")


def register_section(name: str):
    """Class decorator: make dataclass ``cls`` the schema of top-level YAML section ``name``."""
    def deco(cls: type) -> type:
        SECTIONS[name] = cls
        return cls
    return deco


def register_device_type(name: str, required: tuple[str, ...],
                         optional: tuple[str, ...] = (),
                         check: Callable[[Any], tuple[str, str] | None] | None = None) -> None:
    """Declare device class ``name`` (the YAML ``type``) and the sections it needs and may use.

    ``check(arch) -> (path, message) | None`` runs after the sections are built and before their
    own ``check_arch`` (so it may resolve what those checks read, e.g. a system's devices).
    """
    DEVICE_TYPES[name] = {"required": tuple(required), "optional": tuple(optional)}
    if check is not None:
        TYPE_CHECKS[name] = check


@dataclass
class Arch:
    """A device (or system of devices) described by typed sections.

    ``sections`` maps section name to its dataclass; attribute access (``arch.gpu``) reaches them.
    ``provenance`` maps each leaf path (``gpu.sm_count``) to its cited source.
    """

    name: str
    type: str
    description: str = ""
    sections: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    origin: str = ""

    def __getattr__(self, item: str) -> Any:
        """A section, kept as an attribute of the instance at its first access (later ones
        do not come here: placement and the engine read ``arch.memory`` and its like tens of
        thousands of times a run). An arch's sections are not changed in place (a sweep's
        :meth:`replace` makes a new arch)."""
        sections = self.__dict__.get("sections", {})
        if item in sections:
            value = self.__dict__[item] = sections[item]
            return value
        raise AttributeError(f"arch '{self.__dict__.get('name')}' has no section '{item}'")

    def has(self, section: str) -> bool:
        """Whether this arch carries ``section``."""
        return section in self.sections

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`arch_from_dict` loads back to an equal object."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.description:
            out["description"] = self.description
        for key, sec in self.sections.items():
            out[key] = dump(sec, _sub_provenance(self.provenance, key))
        return out

    def replace(self, **sections: Any) -> Arch:
        """A copy with some sections replaced (used by sweeps)."""
        return dataclasses.replace(self, sections={**self.sections, **sections})

    def assumptions(self) -> list[str]:
        """Leaf paths whose cited source is an assumption rather than a measured or published
        value (the source text starts with "assumption"), including those of a system's device
        components (``components.<name>.arch.<path>``)."""
        out = [k for k, v in self.provenance.items() if v.lower().startswith("assumption")]
        for name, comp in (self.sections.get("components") or {}).items():
            device = getattr(comp, "device", None)
            if isinstance(device, Arch):
                out += [f"components.{name}.arch.{k}" for k in device.assumptions()]
        return out

    def parameter_count(self) -> int:
        """Leaf parameters with a cited source, including a system's device components."""
        n = len(self.provenance)
        for comp in (self.sections.get("components") or {}).values():
            device = getattr(comp, "device", None)
            if isinstance(device, Arch):
                n += device.parameter_count()
        return n


def _sub_provenance(prov: dict[str, str], key: str) -> dict[str, str]:
    prefix = key + "."
    return {k[len(prefix):]: v for k, v in prov.items() if k.startswith(prefix)}


def arch_from_dict(data: Any, file: str = "") -> Arch:
    """Validate ``data`` (parsed YAML) and build an :class:`Arch`; raise :class:`SpecError`."""
    from arch.sections import load_for_type  # registers the schemas this arch needs

    ctx = BuildContext(file=file)
    if not isinstance(data, dict):
        raise ctx.error("", f"expected a mapping at the top level, got {type(data).__name__}")
    for key in ("name", "type"):
        if key not in data:
            raise ctx.error(key, "missing required field (a text value)")
        if not isinstance(data[key], str) or not data[key]:
            raise ctx.error(key, f"expected a non-empty text value, got {data[key]!r}")
    dev_type = data["type"]
    load_for_type(dev_type)
    if dev_type not in DEVICE_TYPES:
        import difflib  # on the error path only (start-up)
        hint = difflib.get_close_matches(dev_type, list(DEVICE_TYPES), n=1)
        more = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ctx.error("type", f"unknown device type '{dev_type}'{more}; expected one of "
                                f"{', '.join(sorted(DEVICE_TYPES))}")
    spec = DEVICE_TYPES[dev_type]
    allowed = set(TOP_LEVEL_KEYS) | set(spec["required"]) | set(spec["optional"])
    for key in data:
        if key not in allowed:
            import difflib  # on the error path only (start-up)
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            more = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ctx.error(str(key), f"unknown key for a '{dev_type}' arch{more}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ctx.error("description", "expected a text value")
    top_source = data.get("source")
    sections: dict[str, Any] = {}
    for key in spec["required"] + spec["optional"]:
        if key not in data:
            if key in spec["required"]:
                raise ctx.error(key, f"missing required section for a '{dev_type}' arch")
            continue
        if key not in SECTIONS:
            raise ctx.error(key, f"no schema is registered for section '{key}' of a "
                                 f"'{dev_type}' arch (its module under arch/sections/ is missing)")
        sections[key] = build_any(SECTIONS[key], data[key], ctx, key, top_source)
    arch = Arch(name=data["name"], type=dev_type, description=description, sections=sections,
                provenance=ctx.provenance, origin=file)
    _check_cross(arch, ctx)
    return arch


def _check_cross(arch: Arch, ctx: BuildContext) -> None:
    """Checks that span sections: the device type's ``check`` first, then each section's
    ``check_arch(arch) -> (path, msg)`` returning the full field path of the problem."""
    type_check = TYPE_CHECKS.get(arch.type)
    if type_check is not None:
        problem = type_check(arch)
        if problem:
            raise SpecError(ctx.file, problem[0], problem[1])
    for sec in arch.sections.values():
        check = getattr(sec, "check_arch", None)
        if callable(check):
            problem = check(arch)
            if problem:
                raise SpecError(ctx.file, problem[0], problem[1])
