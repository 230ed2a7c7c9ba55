"""Mapping objects: per-level loop factors per rank, loop order, spatial unrolling, bypass, fusion.

A :class:`Problem` is a contraction ``O = sum I * W`` over named ranks (from an Einsum). A
:class:`Mapping` assigns every rank's extent to loops: temporal loops per storage level (outermost
level first, loops outer to inner within a level) and a spatial unrolling over the array's rows
and columns, which sits between the last shared level and the per-PE levels. ``bypass`` names
(level, operand) pairs that skip a level that could hold them; ``fusion`` lists groups of Einsum
names computed together without their intermediates leaving the array (cascades).

Per-operand level boundaries (ZigZag's per-operand memory allocation): the temporal loops, read
outer to inner across the levels, form one loop nest; by default every operand's tile at a level
spans that level's loops and everything inside. ``cuts`` overrides this per operand: for an
operand, the index in the flattened nest where each level's loops start (one per level, the first
0, non-decreasing). As in ZigZag, where the spatial unrolling sits in an operand's hierarchy
(between its last shared and first per-PE level) is per operand: a shared level's tile counts the
spatial factors relevant to the operand, a per-PE level's does not. An operand may so keep a
register tile across loops that, for another operand, belong
to the buffer above (an output accumulating in the PE while weights stream through it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mappings.spec import OPERANDS, SpatialArch
from workloads.einsum import Einsum


class MappingError(ValueError):
    """An invalid mapping (factor products, capacity, spatial fan-out), naming what is wrong."""


@dataclass(frozen=True)
class Problem:
    """A contraction: rank sizes and which ranks index each operand I, W, O."""

    name: str
    sizes: tuple[tuple[str, int], ...]
    relevant: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def size(self) -> dict[str, int]:
        return dict(self.sizes)

    def ranks_of(self, operand: str) -> tuple[str, ...]:
        return dict(self.relevant)[operand]

    @property
    def ranks(self) -> tuple[str, ...]:
        return tuple(r for r, _ in self.sizes)

    @property
    def macs(self) -> int:
        return math.prod(n for _, n in self.sizes)

    def elements(self, operand: str) -> int:
        s = self.size
        return math.prod(s[r] for r in self.ranks_of(operand))


def gemm_problem(m: int, n: int, k: int, name: str = "gemm") -> Problem:
    """``O[m,n] = sum_k I[m,k] * W[k,n]``."""
    return Problem(name, (("m", m), ("n", n), ("k", k)),
                   (("I", ("m", "k")), ("W", ("k", "n")), ("O", ("m", "n"))))


def problem_from_einsum(e: Einsum) -> Problem:
    """The contraction ``e`` as a problem (first input I, second W, output O)."""
    if not e.is_contraction:
        raise MappingError(f"einsum {e.name}: only contractions map onto the MAC array")
    a, b = e.inputs
    return Problem(e.name, tuple((r, e.size[r]) for r in e.ranks),
                   (("I", a.ranks), ("W", b.ranks), ("O", e.output.ranks)))


Loop = tuple[str, int]


@dataclass(frozen=True)
class Mapping:
    """Loops per level (outermost level first; within a level, outer loop first), spatial
    unrolling over rows and columns, bypassed (level, operand) pairs and fusion groups."""

    temporal: tuple[tuple[Loop, ...], ...]
    spatial_rows: tuple[Loop, ...] = ()
    spatial_cols: tuple[Loop, ...] = ()
    bypass: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    fusion: tuple[tuple[str, ...], ...] = ()
    cuts: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def nest(self) -> tuple[Loop, ...]:
        """All temporal loops, outermost first (levels concatenated)."""
        return tuple(lp for level in self.temporal for lp in level)

    def level_starts(self) -> tuple[int, ...]:
        """Index in :meth:`nest` where each level's loops start (the shared boundaries)."""
        out, n = [], 0
        for level in self.temporal:
            out.append(n)
            n += len(level)
        return tuple(out)

    def starts_for(self, operand: str) -> tuple[int, ...]:
        """Where each level's loops start for ``operand`` (its cut, else the shared one)."""
        for op, starts in self.cuts:
            if op == operand:
                return starts
        return self.level_starts()

    def segments_for(self, operand: str) -> tuple[tuple[Loop, ...], ...]:
        """The loops each level iterates for ``operand``, outermost level first."""
        nest, starts = self.nest(), self.starts_for(operand)
        ends = (*starts[1:], len(nest))
        return tuple(nest[a:b] for a, b in zip(starts, ends, strict=True))

    def factor(self, rank: str) -> int:
        """Product of all factors of ``rank`` (temporal and spatial)."""
        f = 1
        for level in self.temporal:
            for r, x in level:
                if r == rank:
                    f *= x
        for r, x in (*self.spatial_rows, *self.spatial_cols):
            if r == rank:
                f *= x
        return f

    def spatial_factor(self, rank: str) -> int:
        return math.prod(x for r, x in (*self.spatial_rows, *self.spatial_cols) if r == rank)

    def describe(self, arch: SpatialArch) -> str:
        parts = []
        for lev, loops in zip(arch.levels, self.temporal, strict=True):
            parts.append(f"{lev.name}: " + (" ".join(f"{r}{x}" for r, x in loops) or "-"))
        parts.append("spatial rows " + " ".join(f"{r}{x}" for r, x in self.spatial_rows) +
                     ", cols " + " ".join(f"{r}{x}" for r, x in self.spatial_cols))
        for op, starts in self.cuts:
            if starts != self.level_starts():
                parts.append(f"{op} levels start at " + ",".join(str(s) for s in starts))
        return "; ".join(parts)


def holds(arch: SpatialArch, mapping: Mapping, level: int, operand: str) -> bool:
    lev = arch.levels[level]
    return lev.holds(operand) and (lev.name, operand) not in mapping.bypass


def tile_elements(problem: Problem, arch: SpatialArch, mapping: Mapping, level: int,
                  operand: str) -> int:
    """Elements of ``operand`` one instance of ``level`` holds: loops at this level and inside
    it, plus the spatial unrolling when the level is shared (above the fan-out)."""
    rel = problem.ranks_of(operand)
    f = 1
    segments = mapping.segments_for(operand) if mapping.cuts else mapping.temporal
    for j in range(level, len(segments)):
        for r, x in segments[j]:
            if r in rel:
                f *= x
    if level < arch.fanout_index:
        f *= math.prod(x for r, x in (*mapping.spatial_rows, *mapping.spatial_cols) if r in rel)
    return f


def validate(problem: Problem, arch: SpatialArch, mapping: Mapping) -> None:
    """Raise :class:`MappingError` unless factor products equal the rank sizes, the spatial
    unrolling fits the array and every tile fits its level."""
    if len(mapping.temporal) != len(arch.levels):
        raise MappingError(f"mapping has {len(mapping.temporal)} temporal levels, arch "
                           f"{arch.name} has {len(arch.levels)}")
    for r, n in problem.sizes:
        if mapping.factor(r) != n:
            raise MappingError(f"rank {r}: factors multiply to {mapping.factor(r)}, size is {n}")
    for loops in mapping.temporal:
        for r, x in loops:
            if r not in problem.size or x < 1:
                raise MappingError(f"loop {r}{x}: unknown rank or factor < 1")
    rows = math.prod(x for _, x in mapping.spatial_rows)
    cols = math.prod(x for _, x in mapping.spatial_cols)
    if rows > arch.rows or cols > arch.cols:
        raise MappingError(f"spatial fan-out {rows}x{cols} exceeds the {arch.rows}x{arch.cols} "
                           "array")
    _validate_cuts(arch, mapping)
    for lvl, name in mapping.bypass:
        arch.level_index(lvl)
        if name not in OPERANDS:
            raise MappingError(f"bypass of unknown operand '{name}'")
    for i, lev in enumerate(arch.levels):
        if math.isinf(lev.capacity):
            continue
        used = 0.0
        for op in OPERANDS:
            if not holds(arch, mapping, i, op):
                continue
            word = arch.psum_bytes if (op == "O" and lev.per_pe) else arch.bytes_of(op)
            need = tile_elements(problem, arch, mapping, i, op) * word
            if lev.double_buffered:
                need *= 1  # capacities of double-buffered levels are given per active half
            own = lev.capacity_for(op)
            if own is not None and need > own + 1e-9:
                raise MappingError(f"level {lev.name}: {op} tile of {need:.0f} B exceeds its "
                                   f"{own:.0f} B buffer")
            used += need
        if used > lev.capacity + 1e-9:
            raise MappingError(f"level {lev.name}: tiles need {used:.0f} B, capacity "
                               f"{lev.capacity:.0f} B")


def _validate_cuts(arch: SpatialArch, mapping: Mapping) -> None:
    """Per-operand level starts: one per level, from 0, non-decreasing, within the nest."""
    nlev, n = len(arch.levels), len(mapping.nest())
    for op, starts in mapping.cuts:
        if op not in OPERANDS:
            raise MappingError(f"cuts: unknown operand '{op}'")
        if len(starts) != nlev or starts[0] != 0:
            raise MappingError(f"cuts for {op}: need {nlev} level starts beginning with 0, got "
                               f"{list(starts)}")
        if any(b < a for a, b in zip(starts, starts[1:], strict=False)) or starts[-1] > n:
            raise MappingError(f"cuts for {op}: starts {list(starts)} must not decrease and stay "
                               f"within the {n} loops")
