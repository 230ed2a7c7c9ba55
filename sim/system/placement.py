"""Place tensor classes on memory tiers: explicit fractions, priority fill, page interleave.

:func:`place` turns a :class:`PlacementSpec` (the arch ``placement`` section, or
:func:`parse_placement` of a ``--placement`` argument) and the bytes each device needs per tensor
class into a :class:`Placement`: class -> tier -> bytes per device. Tier capacities count per
device: a tier shared by ``sharers`` devices offers each ``capacity / sharers``. All sizes in
bytes. Deterministic: every order comes from the spec, the demands and the tiers mapping.

Semantics (docs/placement.md): classes the spec does not name (nor their parent, see
``CLASS_PARENT``) go to ``home`` first, since they have nowhere else to go; then the named
classes in spec order. ``explicit`` puts each class's fractions where they say and never
spills; ``priority`` fills a class's tiers in order, byte-exact on a single tier and page by
page on an interleave group; ``interleave`` hands out whole pages round robin starting at the
first tier (10 pages over 3 tiers: 4/3/3), a tier without room for another page drops out and
the rest continue; a class's last, partial page goes to the next tier in turn with room for it.
Anything that does not fit raises :class:`SimError` naming class, tiers and bytes.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arch import read_yaml
from arch.schema import BuildContext, SpecError, build_any
from arch.sections.placement import (
    CLASS_PARENT,
    DEFAULT_PAGE_SIZE,
    POLICIES,
    TENSOR_CLASSES,
    PlacementSpec,
    PriorityEntry,
    class_problem,
    is_pattern,
)
from arch.units import UnitError, format_quantity, parse_quantity
from sim.devices.base import SimError

__all__ = ["TENSOR_CLASSES", "CLASS_PARENT", "PlacementSpec", "PriorityEntry", "TierRoom",
           "Placement", "place", "parse_placement", "format_placement"]

GIB = 2.0**30


def _gib(x: float) -> str:
    return f"{x / GIB:.1f} GiB"


def _tol(*xs: float) -> float:
    """Bytes below which a difference is rounding (1e-6 B plus 1e-12 relative)."""
    return 1e-6 + 1e-12 * max((abs(x) for x in xs), default=0.0)


@dataclass(frozen=True)
class TierRoom:
    """A tier as placement sees it: ``capacity`` (B, the whole tier) and ``sharers``, the
    devices whose per-device demand lands on it (own HBM: 1; host DDR of 8 GPUs: 8)."""

    name: str
    capacity: float
    sharers: int = 1

    @property
    def per_device(self) -> float:
        """Bytes one device may use: ``capacity / sharers``."""
        return self.capacity / self.sharers


@dataclass
class Placement:
    """Where each class lives: ``bytes[class][tier]`` in bytes PER DEVICE (tiers in fill order).

    ``tiers`` are the rooms it was placed on, ``home`` the device's own tier.
    """

    bytes: dict[str, dict[str, float]]
    tiers: dict[str, TierRoom] = field(default_factory=dict)
    home: str = ""

    def demand(self, cls: str) -> float:
        """Per-device bytes of ``cls`` (0 when the class is absent)."""
        return float(sum(self.bytes.get(cls, {}).values()))

    def fraction(self, cls: str, tier: str) -> float:
        """Share of ``cls`` on ``tier`` (0 when the class is absent or empty)."""
        total = self.demand(cls)
        return self.bytes.get(cls, {}).get(tier, 0.0) / total if total > 0 else 0.0

    def tiers_of(self, cls: str) -> list[str]:
        """Tiers holding bytes of ``cls``, in fill order."""
        return [t for t, b in self.bytes.get(cls, {}).items() if b > 0]

    def on_tier(self, tier: str) -> float:
        """Per-device bytes of all classes on ``tier``."""
        return float(sum(by.get(tier, 0.0) for by in self.bytes.values()))

    def total(self, tier: str) -> float:
        """Bytes on ``tier`` counting all its sharers."""
        room = self.tiers.get(tier)
        return self.on_tier(tier) * (room.sharers if room else 1)

    def moved(self, cls: str, home: str | None = None) -> float:
        """Per-device bytes of ``cls`` away from ``home`` (default: the placement's home): what
        must be transferred to the device."""
        home = self.home if home is None else home
        return float(sum(b for t, b in self.bytes.get(cls, {}).items() if t != home))

    def away(self, home: str | None = None) -> dict[str, dict[str, float]]:
        """class -> tier -> per-device bytes away from ``home``, classes with none left out."""
        home = self.home if home is None else home
        out = {cls: {t: b for t, b in by.items() if t != home and b > 0}
               for cls, by in self.bytes.items()}
        return {cls: by for cls, by in out.items() if by}

    def by_tier(self) -> dict[str, dict[str, float]]:
        """tier -> class -> per-device bytes (tiers in ``tiers`` order, then any others)."""
        names = list(self.tiers) + sorted({t for by in self.bytes.values() for t in by}
                                          - set(self.tiers))
        out = {t: {cls: by[t] for cls, by in self.bytes.items() if by.get(t, 0.0) > 0}
               for t in names}
        return {t: by for t, by in out.items() if by}

    def describe(self) -> list[str]:
        """One line per class: ``weights: gpu.hbm 30.0 GiB (50%), host_ddr 30.0 GiB (50%)``."""
        lines = []
        for cls, by in self.bytes.items():
            parts = [f"{t} {_gib(b)} ({100 * self.fraction(cls, t):.0f}%)"
                     for t, b in by.items() if b > 0]
            lines.append(f"{cls}: {', '.join(parts) or 'nothing'}")
        return lines


# --- placing ------------------------------------------------------------------------------------

class _Fill:
    """Per-device room left on each tier and the bytes placed so far."""

    def __init__(self, tiers: dict[str, TierRoom]):
        self.tiers = tiers
        self.room = {name: t.per_device for name, t in tiers.items()}
        self.bytes: dict[str, dict[str, float]] = {}

    def put(self, cls: str, tier: str, nbytes: float) -> None:
        if nbytes <= 0:
            return
        self.room[tier] -= nbytes
        by = self.bytes.setdefault(cls, {})
        by[tier] = by.get(tier, 0.0) + nbytes

    def overflow(self, cls: str, more: float, steps: list[tuple[str, ...]]) -> SimError:
        """The one-line error for ``more`` bytes of ``cls`` that fit nowhere on ``steps``; "taken"
        counts the other classes there (what ``cls`` itself got is capacity minus taken)."""
        names = list(dict.fromkeys(t for step in steps for t in step))
        where = " then ".join("|".join(step) for step in steps)
        rooms = [self.tiers[t] for t in names]
        cap = sum(r.per_device for r in rooms)
        if len(rooms) == 1 and rooms[0].sharers > 1:
            cap_text = (f"capacity {_gib(cap)} per device, {_gib(rooms[0].capacity)} shared by "
                        f"{rooms[0].sharers}")
        elif any(r.sharers > 1 for r in rooms):
            cap_text = f"capacity {_gib(cap)} per device"
        else:
            cap_text = f"capacity {_gib(cap)}"
        holders = {c: sum(by.get(t, 0.0) for t in names) for c, by in self.bytes.items()
                   if c != cls}
        holders = {c: b for c, b in holders.items() if b > 0}
        taken = sum(holders.values())
        if not holders:
            taken_text = "nothing else on it"
        elif len(holders) == 1:
            taken_text = f"{_gib(taken)} taken by {next(iter(holders))}"
        else:
            taken_text = f"{_gib(taken)} taken by " + ", ".join(
                f"{c} {_gib(b)}" for c, b in holders.items())
        return SimError(f"placement: {cls} needs {_gib(more)} more on {where} "
                        f"({cap_text}, {taken_text})")


def _interleave(amount: float, group: tuple[str, ...], room: dict[str, float],
                page: float) -> tuple[dict[str, float], float]:
    """Hand ``amount`` bytes out page by page round robin over ``group`` (first tier first); a
    tier without room for a page drops out. Returns (bytes per tier, bytes left over).

    Closed form per round: all active tiers take ``m`` pages (the fewest any can still take)
    until the pages left fit in fewer rounds; at most ``len(group)`` steps.
    """
    n = math.floor(amount / page)
    rem = amount - n * page
    if rem <= _tol(amount):
        rem = 0.0
    elif page - rem <= _tol(amount):
        n, rem = n + 1, 0.0
    cap = {t: max(0, math.floor((room[t] + _tol(room[t])) / page)) for t in group}
    pages = dict.fromkeys(group, 0)
    active = [t for t in group if cap[t] > 0]
    left, last = n, group[-1]
    while left and active:
        k = len(active)
        m = min(cap[t] - pages[t] for t in active)
        if left <= m * k:
            q, s = divmod(left, k)
            for i, t in enumerate(active):
                pages[t] += q + (1 if i < s else 0)
            last = active[s - 1] if s else active[-1]
            left = 0
        else:
            for t in active:
                pages[t] += m
            left -= m * k
            active = [t for t in active if pages[t] < cap[t]]
    got = {t: pages[t] * page for t in group}
    if left:
        return got, left * page + rem
    if rem:
        start = group.index(last) + 1
        for t in group[start:] + group[:start]:
            if room[t] - got[t] + _tol(room[t]) >= rem:
                got[t] += rem
                return got, 0.0
        return got, rem
    return got, 0.0


def _resolver(tiers: dict[str, TierRoom]):
    """Map a tier name or pattern of the spec to known tier names (SimError when none)."""
    known = list(tiers)

    def resolve(name: str) -> tuple[str, ...]:
        if name in tiers:
            return (name,)
        if is_pattern(name):
            hits = tuple(t for t in known if fnmatch.fnmatchcase(t, name))
            if hits:
                return hits
            raise SimError(f"placement: no tier matches '{name}'; known tiers: "
                           f"{', '.join(known)}")
        hint = difflib.get_close_matches(name, known, n=1)
        more = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SimError(f"placement: unknown tier '{name}'{more}; known tiers: {', '.join(known)}")
    return resolve


def _check_inputs(demands: dict[str, float], tiers: dict[str, TierRoom], home: str) -> None:
    for cls, nbytes in demands.items():
        problem = class_problem(cls)
        if problem:
            raise SimError(f"placement: demands: {problem}")
        if not isinstance(nbytes, (int, float)) or not math.isfinite(nbytes) or nbytes < 0:
            raise SimError(f"placement: demands.{cls}: expected finite bytes >= 0, got {nbytes!r}")
    for name, room in tiers.items():
        if not room.capacity >= 0 or not math.isfinite(room.capacity):
            raise SimError(f"placement: tier {name}: expected a finite capacity >= 0 B, "
                           f"got {room.capacity!r}")
        if not isinstance(room.sharers, int) or room.sharers < 1:
            raise SimError(f"placement: tier {name}: expected sharers >= 1, got {room.sharers!r}")
    if home not in tiers:
        raise SimError(f"placement: home tier '{home}' is not among the tiers "
                       f"({', '.join(tiers) or 'none'})")


def _named(spec: PlacementSpec | None, demands: dict[str, float]) -> list[str]:
    """Classes the spec places (in spec order); ``interleave`` without classes takes all."""
    if spec is None:
        return []
    if spec.policy == "explicit":
        return list(spec.fractions or {})
    if spec.policy == "priority":
        return [c for entry in spec.order or [] for c in entry.classes]
    return list(spec.classes) if spec.classes else list(demands)


def _rule_of(demands: dict[str, float], named: list[str]) -> dict[str, str | None]:
    """Demand class -> the spec class whose rule places it (itself, its parent, or None)."""
    out: dict[str, str | None] = {}
    for cls in demands:
        parent = CLASS_PARENT.get(cls)
        out[cls] = cls if cls in named else parent if parent in named else None
    whole = "optimizer"
    parts = [c for c in named if CLASS_PARENT.get(c) == whole]
    if whole in demands and parts and whole not in named:
        raise SimError(f"placement: the spec places {', '.join(parts)} but the workload gives "
                       f"the optimizer states as one class '{whole}'; name '{whole}' instead")
    return out


def place(spec: PlacementSpec | None, demands: dict[str, float], tiers: dict[str, TierRoom],
          home: str) -> Placement:
    """Place per-device ``demands`` (class -> bytes) on ``tiers`` (name -> room) by ``spec``.

    ``home`` is the device's own tier (per-device name such as ``gpu.hbm``): everything goes
    there when ``spec`` is None, and so does every class the spec does not name. Raises
    :class:`SimError` (one line, naming class, tiers and bytes) when something does not fit,
    for unknown tiers or classes, and for explicit fractions that do not sum to 1.
    """
    _check_inputs(demands, tiers, home)
    named = _named(spec, demands)
    rule = _rule_of(demands, named)
    fill = _Fill(tiers)
    for cls, nbytes in demands.items():  # classes with nowhere else to go first
        if rule[cls] is None:
            _place_steps(fill, cls, nbytes, [(home,)], DEFAULT_PAGE_SIZE)
    if spec is not None:
        resolve = _resolver(tiers)
        for key in named:
            for cls in (c for c in demands if rule[c] == key):
                _place_rule(fill, spec, key, cls, demands[cls], resolve)
    ordered = {cls: fill.bytes.get(cls, {}) for cls in demands}
    return Placement(bytes=ordered, tiers=dict(tiers), home=home)


def _place_rule(fill: _Fill, spec: PlacementSpec, key: str, cls: str, nbytes: float,
                resolve) -> None:
    """Place class ``cls`` by the spec's rule for ``key`` (``cls`` or its parent)."""
    if spec.policy == "explicit":
        shares = (spec.fractions or {})[key]
        total = sum(shares.values())
        if abs(total - 1.0) > 1e-6:
            raise SimError(f"placement: explicit fractions of {key} sum to {total:.6g} "
                           f"({100 * total:.4g}%), expected 1")
        for name, frac in shares.items():
            if frac < 0:
                raise SimError(f"placement: explicit fraction of {key} on {name} is {frac:g}, "
                               "expected >= 0")
            hits = resolve(name)
            if len(hits) != 1:
                raise SimError(f"placement: explicit fractions need one tier each; '{name}' "
                               f"matches {', '.join(hits)}")
            tier, need = hits[0], frac * nbytes
            if need > fill.room[tier] + _tol(need, fill.room[tier]):
                raise fill.overflow(cls, need - max(fill.room[tier], 0.0), [(tier,)])
            fill.put(cls, tier, need)
        return
    if spec.policy == "priority":
        entry = next(e for e in spec.order or [] if key in e.classes)
        raw = entry.steps()
    else:
        raw = [tuple(spec.tiers or [])]
    steps = [tuple(dict.fromkeys(t for name in step for t in resolve(name))) for step in raw]
    _place_steps(fill, cls, nbytes, steps, spec.page_bytes)


def _place_steps(fill: _Fill, cls: str, nbytes: float, steps: list[tuple[str, ...]],
                 page: float) -> None:
    """Fill ``steps`` in order: a single tier byte-exact, a group page-interleaved."""
    left = nbytes
    for step in steps:
        if left <= 0:
            break
        if len(step) == 1:
            tier = step[0]
            take = min(left, max(fill.room[tier], 0.0))
            if left - take <= _tol(left, fill.room[tier]):
                take = left
            fill.put(cls, tier, take)
            left -= take
        else:
            got, left = _interleave(left, step, fill.room, page)
            for tier, b in got.items():
                fill.put(cls, tier, b)
    if left > _tol(nbytes):
        raise fill.overflow(cls, left, steps)


# --- the --placement grammar --------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9_.*?\-\[\]]+$")
_PREFIX = re.compile(r"^(explicit|priority|interleave)(?:\[([^\]]*)\])?:(.*)$", re.S)
FORMS = {
    "explicit": "CLASS=TIER[:FRACTION],...[;CLASS=...]",
    "priority": "priority:CLASS,...>TIER[|TIER...],...[;CLASS,...>...]",
    "interleave": "interleave[[CLASS,...]]:TIER,...",
}
_ANY = " | ".join(FORMS.values()) + " | a YAML file with a 'placement:' mapping"


def _bad(what: str, form: str = "") -> SimError:
    return SimError(f"--placement: {what}; expected {FORMS.get(form, _ANY)}")


def _names(text: str, what: str, item: str, form: str) -> list[str]:
    out = [s.strip() for s in text.split(",")]
    for name in out:
        if not name or not _NAME.match(name):
            raise _bad(f"bad {what} name '{name}' in '{item}'", form)
    return out


def _fraction(text: str, item: str) -> float:
    text = text.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise _bad(f"bad fraction '{text}' in '{item}' (a number like 0.5 or 50%)",
                   "explicit") from None
    if not math.isfinite(value):
        raise _bad(f"bad fraction '{text}' in '{item}'", "explicit")
    return value


def _explicit(items: list[str]) -> dict[str, Any]:
    fractions: dict[str, dict[str, float]] = {}
    for item in items:
        if item.count("=") != 1:
            raise _bad(f"'{item}' is not CLASS=TIERS", "explicit")
        cls, rhs = (s.strip() for s in item.split("="))
        if cls in fractions:
            raise _bad(f"class '{cls}' given twice", "explicit")
        shares: dict[str, float] = {}
        rest: str | None = None
        for share in rhs.split(","):
            tier, _, frac = share.partition(":")
            tier = _names(tier, "tier", item, "explicit")[0]
            if tier in shares or tier == rest:
                raise _bad(f"tier '{tier}' given twice in '{item}'", "explicit")
            if frac.strip():
                shares[tier] = _fraction(frac, item)
            elif rest is None:
                rest = tier
            else:
                raise _bad(f"two tiers without a fraction in '{item}' (only one may take the "
                           "rest)", "explicit")
        if rest is not None:
            given = sum(shares.values())
            if given > 1 + 1e-6:
                raise _bad(f"fractions of {cls} sum to {given:.6g} (more than 100%) before "
                           f"'{rest}' takes the rest", "explicit")
            shares[rest] = max(0.0, 1.0 - given)
        fractions[cls] = shares
    return {"policy": "explicit", "fractions": fractions}


def _priority(items: list[str]) -> dict[str, Any]:
    order = []
    for item in items:
        if item.count(">") != 1:
            raise _bad(f"priority entry '{item}' has no single '>'", "priority")
        lhs, rhs = item.split(">")
        steps: list[Any] = []
        for step in rhs.split(","):
            group = _names(step.replace("|", ","), "tier", item, "priority")
            steps.append(group[0] if len(group) == 1 else group)
        order.append({"classes": _names(lhs, "class", item, "priority"), "tiers": steps})
    return {"policy": "priority", "order": order}


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _from_file(path: str) -> PlacementSpec:
    try:
        data = read_yaml(path)
        if not isinstance(data, dict) or "placement" not in data:
            raise SpecError(path, "", "expected a top-level 'placement:' mapping")
        return build_any(PlacementSpec, data["placement"], BuildContext(file=path), "placement")
    except SpecError as exc:
        raise SimError(f"--placement: {exc}") from None


def parse_placement(text: str) -> PlacementSpec:
    """Parse a ``--placement`` argument (quote it in the shell: it holds ``;``, ``>`` and ``|``).

    * explicit: ``CLASS=TIER[:FRACTION],...[;CLASS=...]``, optionally prefixed ``explicit:``.
      FRACTION is ``0.5`` or ``50%``; one tier per class may omit it and takes the rest
      (``weights=gpu.hbm:50%,host_ddr;kv_cache=host_ddr;activations=gpu.hbm``).
    * priority: ``priority:CLASS,...>STEP,...[;CLASS,...>STEP,...]``: the classes, in order,
      fill the steps in order; a step is a tier or ``a|b|c``, an interleave group; a pattern
      (``cxl*``) matching several tiers is a group too
      (``priority:optimizer,weights,activations,gradients>host_ddr,cxl*``).
    * interleave: ``interleave:TIER,...`` (all classes) or ``interleave[CLASS,...]:TIER,...``.
    * any form may end with ``;page_size=SIZE`` (``2MiB``; default 4 KiB).
    * a path to a YAML file (``.yaml``/``.yml`` or an existing file) with a top-level
      ``placement:`` mapping, validated like the arch section.

    Classes: weights, kv_cache, activations, gradients, optimizer (or optimizer_master,
    optimizer_momentum, optimizer_variance), experts. Raises :class:`SimError` (one line) on
    bad text.
    """
    if not isinstance(text, str) or not text.strip():
        raise _bad("empty argument")
    text = text.strip()
    if _is_file(text) or (text.endswith((".yaml", ".yml")) and not any(c in text for c in "=>;")):
        return _from_file(text)
    m = _PREFIX.match(text)
    policy, classes, body = (m.group(1), m.group(2), m.group(3)) if m else ("explicit", None,
                                                                              text)
    if classes is not None and policy != "interleave":
        raise _bad(f"'{policy}[...]' takes no class list (only interleave does)", policy)
    items = [s.strip() for s in body.split(";") if s.strip()]
    page: float | None = None
    rest = []
    for item in items:
        key, eq, value = item.partition("=")
        if eq and key.strip() in ("page_size", "page"):
            try:
                page = parse_quantity(value.strip().replace(" ", ""), "B")
            except UnitError as exc:
                raise _bad(f"page_size: {exc}", policy) from None
        else:
            rest.append(item)
    if not rest:
        raise _bad(f"nothing to place in '{text}'", policy)
    if m is None and "=" not in rest[0]:
        word = re.match(r"^([A-Za-z_]+)\[?[^:=>]*\]?:", text)
        hint = difflib.get_close_matches(word.group(1), POLICIES, n=1) if word else []
        what = f"unknown policy '{word.group(1)}' (did you mean '{hint[0]}'?)" if hint else \
            f"cannot read '{text}'"
        raise _bad(what)
    if policy == "explicit":
        data = _explicit(rest)
    elif policy == "priority":
        data = _priority(rest)
    else:
        if len(rest) != 1:
            raise _bad(f"interleave takes one tier list, got {len(rest)}", policy)
        data = {"policy": "interleave", "tiers": _names(rest[0], "tier", rest[0], policy)}
        if classes is not None:
            data["classes"] = _names(classes, "class", text, policy)
    if page is not None:
        data["page_size"] = page
    try:
        return build_any(PlacementSpec, data, BuildContext(file="--placement"), "placement")
    except SpecError as exc:
        raise SimError(str(exc)) from None


def _num(x: float) -> str:
    return f"{x:.15g}"


def format_placement(spec: PlacementSpec) -> str:
    """The ``--placement`` text of ``spec`` (``parse_placement`` gives back an equal spec)."""
    if spec.policy not in POLICIES:
        raise SimError(f"placement: unknown policy '{spec.policy}'")
    if spec.policy == "explicit":
        items = [f"{cls}=" + ",".join(f"{t}:{_num(f)}" for t, f in shares.items())
                 for cls, shares in (spec.fractions or {}).items()]
        text = "explicit:" + ";".join(items)
    elif spec.policy == "priority":
        items = [",".join(e.classes) + ">" + ",".join(
            "|".join(s) for s in e.steps()) for e in spec.order or []]
        text = "priority:" + ";".join(items)
    else:
        classes = f"[{','.join(spec.classes)}]" if spec.classes else ""
        text = f"interleave{classes}:" + ",".join(spec.tiers or [])
    if spec.page_size is not None:
        text += f";page_size={format_quantity(spec.page_size, 'B').replace(' ', '')}"
    return text
