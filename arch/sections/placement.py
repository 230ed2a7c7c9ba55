"""The ``placement`` section of a ``type: system`` arch: which memory tier holds each tensor class.

Three policies (docs/placement.md):

* ``explicit`` — ``fractions: {CLASS: {TIER: FRACTION}}``, FlexGen-style shares of each class per
  tier; each class's fractions lie in [0, 1] and sum to 1.
* ``priority`` — ``order: [{classes: [...], tiers: [...]}, ...]``: the classes, in order, each fill
  their tiers in order and spill to the next. A tier entry is a tier name or a list of tier names
  (an interleave group); a name with ``*``/``?`` is a pattern (``cxl*``) matching several tiers,
  which then form an interleave group.
* ``interleave`` — ``tiers: [...]`` (and optionally ``classes: [...]``, default all): pages go
  round robin over the tiers, a full tier drops out and the rest continue (Linux MPOL_INTERLEAVE).

Tier names: ``<component>.<level>`` (``gpu.hbm``) is each device's own memory, a standalone tier
is named by its component (``host_ddr``) or instance (``cxl0``). Classes the section does not name
stay on the device's own memory. ``page_size`` (B) sets the interleave granularity.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass
from typing import Any

from arch.schema import param
from arch.spec import register_section

TENSOR_CLASSES = ("weights", "kv_cache", "activations", "gradients", "optimizer",
                  "optimizer_master", "optimizer_momentum", "optimizer_variance", "experts")
# a class the spec does not name follows its parent's rule (optimizer parts, MoE experts)
CLASS_PARENT = {"optimizer_master": "optimizer", "optimizer_momentum": "optimizer",
                "optimizer_variance": "optimizer", "experts": "weights"}
POLICIES = ("explicit", "priority", "interleave")
# Linux base page on x86-64 (and default arm64 kernels): `getconf PAGESIZE` = 4096
DEFAULT_PAGE_SIZE = 4096.0
SUM_TOLERANCE = 1e-6


def class_problem(name: Any) -> str | None:
    """Why ``name`` is not a tensor class (with a did-you-mean), or None when it is one."""
    if not isinstance(name, str):
        return f"expected a tensor class name, got {name!r}"
    if name in TENSOR_CLASSES:
        return None
    hint = difflib.get_close_matches(name, TENSOR_CLASSES, n=1) or \
        [c for c in TENSOR_CLASSES if name and c.startswith(name)][:1]
    more = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown tensor class '{name}'{more}; expected one of {', '.join(TENSOR_CLASSES)}"


def is_pattern(tier: str) -> bool:
    """Whether a tier name is a glob pattern (``cxl*``)."""
    return any(c in tier for c in "*?[")


@dataclass(kw_only=True)
class PriorityEntry:
    """Classes that, in order, fill the listed tiers in order (spilling to the next)."""

    classes: list[str] = param(doc="tensor classes, placed in this order")
    tiers: list[Any] = param(doc="tiers filled in order; an entry that is a list of tiers (or a "
                                 "pattern like 'cxl*') is an interleave group")

    def steps(self) -> list[tuple[str, ...]]:
        """The tier steps, each a tuple of tier names or patterns (more than one = interleave)."""
        return [(t,) if isinstance(t, str) else tuple(t) for t in self.tiers]

    def check(self) -> tuple[str, str] | None:
        if not self.classes:
            return ("classes", "expected at least one tensor class")
        for i, name in enumerate(self.classes):
            problem = class_problem(name)
            if problem:
                return (f"classes[{i}]", problem)
            if name in self.classes[:i]:
                return (f"classes[{i}]", f"'{name}' is listed twice")
        if not self.tiers:
            return ("tiers", "expected at least one tier")
        for i, step in enumerate(self.tiers):
            group = [step] if isinstance(step, str) else step
            if not isinstance(group, list) or not group or \
                    not all(isinstance(t, str) and t for t in group):
                return (f"tiers[{i}]", f"expected a tier name or a non-empty list of tier names "
                                       f"(an interleave group), got {step!r}")
        return None


@dataclass(kw_only=True)
class PlacementSpec:
    """Where each tensor class lives: an explicit, priority or interleave policy."""

    policy: str = param(choices=POLICIES, doc="explicit | priority | interleave")
    fractions: dict[str, dict[str, float]] | None = param(
        ge=0, le=1, default=None, doc="explicit: share of each class on each tier (sums to 1)")
    order: list[PriorityEntry] | None = param(
        default=None, doc="priority: entries placed in order, each class filling its tiers")
    tiers: list[str] | None = param(default=None, doc="interleave: tiers taking pages in turn")
    classes: list[str] | None = param(
        default=None, doc="interleave: classes interleaved (default: all)")
    page_size: float | None = param("B", gt=0, default=None,
                                    doc="interleave granularity in bytes (unset: 4 KiB, the "
                                        "Linux base page)")

    @property
    def page_bytes(self) -> float:
        """Interleave page in bytes: ``page_size`` or the 4 KiB Linux base page."""
        return DEFAULT_PAGE_SIZE if self.page_size is None else self.page_size

    def check(self) -> tuple[str, str] | None:
        used = {"explicit": ("fractions",), "priority": ("order",),
                "interleave": ("tiers", "classes")}[self.policy]
        for key in ("fractions", "order", "tiers", "classes"):
            if getattr(self, key) is not None and key not in used:
                return (key, f"not used by policy {self.policy} (it takes "
                             f"{' and '.join(used)})")
        if self.page_size is not None and not float(self.page_size).is_integer():
            return ("page_size", f"expected a whole number of bytes, got {self.page_size:g} B")
        if self.policy == "explicit":
            return self._check_fractions()
        if self.policy == "priority":
            return self._check_order()
        return self._check_interleave()

    def _check_fractions(self) -> tuple[str, str] | None:
        if not self.fractions:
            return ("fractions", "policy explicit needs fractions: {CLASS: {TIER: FRACTION}}")
        for cls, shares in self.fractions.items():
            problem = class_problem(cls)
            if problem:
                return (f"fractions.{cls}", problem)
            if not shares:
                return (f"fractions.{cls}", "expected at least one tier with a fraction")
            total = sum(shares.values())
            if abs(total - 1.0) > SUM_TOLERANCE:
                listed = ", ".join(f"{t}: {f:g}" for t, f in shares.items())
                return (f"fractions.{cls}", f"fractions sum to {total:.6g}, expected 1 ({listed})")
        return None

    def _check_order(self) -> tuple[str, str] | None:
        if not self.order:
            return ("order", "policy priority needs order: [{classes: [...], tiers: [...]}]")
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.order):
            for j, cls in enumerate(entry.classes):
                if cls in seen:
                    return (f"order[{i}].classes[{j}]",
                            f"'{cls}' is already placed by order[{seen[cls]}]")
                seen[cls] = i
        return None

    def _check_interleave(self) -> tuple[str, str] | None:
        if not self.tiers:
            return ("tiers", "policy interleave needs tiers: [TIER, ...]")
        for i, cls in enumerate(self.classes or []):
            problem = class_problem(cls)
            if problem:
                return (f"classes[{i}]", problem)
        return None

    def named_tiers(self) -> list[tuple[str, str]]:
        """(field path, tier name or pattern) of every tier the spec names."""
        out: list[tuple[str, str]] = []
        for cls, shares in (self.fractions or {}).items():
            out += [(f"fractions.{cls}", t) for t in shares]
        for i, entry in enumerate(self.order or []):
            for j, step in enumerate(entry.steps()):
                out += [(f"order[{i}].tiers[{j}]", t) for t in step]
        out += [(f"tiers[{i}]", t) for i, t in enumerate(self.tiers or [])]
        return out

    def check_arch(self, arch) -> tuple[str, str] | None:
        """Tier names must start with a non-switch component of the system (``gpu.hbm``,
        ``host_ddr``, ``cxl0``); patterns are checked when placing."""
        comps = arch.sections.get("components")
        if not isinstance(comps, dict) or not comps:
            return None
        comps = {n: c for n, c in comps.items() if getattr(c, "kind", None) != "switch"}
        for path, tier in self.named_tiers():
            base = tier.split(".")[0]
            if is_pattern(tier) or base in comps or base.rstrip(string.digits) in comps:
                continue
            hint = difflib.get_close_matches(base, list(comps), n=1)
            more = f" (did you mean '{hint[0]}'?)" if hint else ""
            return (f"placement.{path}", f"tier '{tier}' names no memory-holding component of "
                                         f"the system{more}; components: {', '.join(comps)}")
        return None


register_section("placement")(PlacementSpec)
