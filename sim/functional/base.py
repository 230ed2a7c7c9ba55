"""Functional execution: the interface each device class implements, and the registry.

A functional device runs a mapped op on real data the way its device model says the hardware
does it. It declares its numerics (:class:`MatmulNumerics` per input datatype,
:class:`VectorNumerics` for its vector units) and turns each contraction into a
:class:`MatmulPlan`: work items (tiles, folds, bank slices) over reduction ranges, the
accumulator they use, and how their partial results are reduced. The check derives its error
allowance from the *declared* numerics and the plan's reduction depths, then compares against
``kernels_ref`` in float64; a plan that drops a tile, counts a partial twice or accumulates
narrower than declared fails there.

Device classes register with :func:`register_functional` under their arch ``type``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from arch import Arch
from sim.devices.base import SimError
from sim.functional.formats import Rounder
from sim.functional.tiled import ACCUMULATE, STORE, reduce_partials, run_items


@dataclass(frozen=True)
class MatmulNumerics:
    """How a device's matrix unit computes for one input datatype.

    ``inputs``: the format operands are rounded to before multiplying. ``acc``: accumulator
    format and rounding. ``block``: products summed exactly (a fused multi-operand add) per
    accumulator rounding (1: one rounding per multiply-add). ``partial``: how partial results
    (split-K slices, folds, banks) are added together. ``source``: where these facts come from.
    """

    inputs: str
    acc: Rounder
    block: int = 1
    partial: Rounder = Rounder("fp32")
    source: str = ""


@dataclass(frozen=True)
class VectorNumerics:
    """A device's vector units: compute format (RNE) and lanes per row reduction."""

    compute: str = "fp32"
    lanes: int = 128
    source: str = ""

    @property
    def rounder(self) -> Rounder:
        return Rounder(self.compute)


@dataclass(frozen=True)
class Stage:
    """One reduction stage over partial buffers: each group (a list of buffer indices) becomes
    one buffer, added ``sequential``-ly in the listed order or as a pairwise ``tree``."""

    groups: tuple[tuple[int, ...], ...]
    mode: str
    rounder: Rounder

    def depth(self) -> int:
        longest = max((len(g) for g in self.groups), default=1)
        if self.mode == "tree":
            return math.ceil(math.log2(longest)) if longest > 1 else 0
        return longest - 1


@dataclass
class MatmulPlan:
    """How one (batched) contraction C[x] = A[x] @ B[x] runs on a device.

    ``items`` [n, 8] rows of (x, i0, i1, j0, j1, k0, k1, dest) run with accumulator ``acc``
    (``block`` products per rounding), then ``combine`` (STORE into ``dest`` or ACCUMULATE into
    it with ``obuf``); ``stages`` reduce the partial buffers to one. ``k_perm`` reorders the
    reduction rank first (PIM lanes take strided elements). ``declared`` is the device's
    numerics and ``levels`` the (depth, rounder) pairs of the declared reduction tree that the
    tolerance is derived from; ``detail`` describes the mapping for reports.
    """

    shape: tuple[int, int, int, int]
    items: np.ndarray
    n_dest: int
    block: int
    acc: Rounder
    declared: MatmulNumerics
    levels: list[tuple[int, Rounder]]
    combine: int = STORE
    obuf: Rounder | None = None
    stages: list[Stage] = field(default_factory=list)
    k_perm: np.ndarray | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def execute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Run on ``a`` [X, M, K] and ``b`` [X, K, N] (values in the input datatype); returns
        the reduced result [X, M, N] before the output rounding."""
        if self.k_perm is not None:
            a = a[:, :, self.k_perm]
            b = b[:, self.k_perm, :]
        ws = run_items(a, b, self.items, self.n_dest, self.block, self.acc, self.combine,
                       self.obuf, self.declared.inputs)
        if self.combine == ACCUMULATE and not self.stages:
            return ws[0]
        bufs = ws
        for stage in self.stages:
            nxt = np.empty((len(stage.groups), *bufs.shape[1:]))
            for g, group in enumerate(stage.groups):
                nxt[g] = _reduce_group(bufs, group, stage.mode, stage.rounder)
            bufs = nxt
        if bufs.shape[0] != 1:
            raise SimError(f"matmul plan leaves {bufs.shape[0]} partial buffers unreduced")
        return bufs[0]

    def mutated(self, **changes: Any) -> MatmulPlan:
        """A copy with some fields replaced (tests use this to break a mapping on purpose)."""
        return replace(self, **changes)


@dataclass
class SplitPlan:
    """A contraction split between units: part ``i`` covers ``bounds[i]:bounds[i+1]`` of the
    batch rank X (``axis='x'``) or of the output rank N (``axis='n'``) and runs ``plans[i]``
    (built for that part's shape). The allowance uses the part with the largest error bound."""

    shape: tuple[int, int, int, int]
    axis: str
    bounds: list[int]
    plans: list[MatmulPlan]
    units: list[str]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def worst(self) -> MatmulPlan:
        from sim.functional.tolerance import gamma

        return max(self.plans, key=lambda p: gamma(p.levels))

    @property
    def levels(self) -> list[tuple[int, Rounder]]:
        return self.worst.levels

    @property
    def declared(self) -> MatmulNumerics:
        return self.worst.declared

    def execute(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        xs, m, n, _ = self.shape
        out = np.full((xs, m, n), np.nan)
        spans = list(zip(self.bounds[:-1], self.bounds[1:], strict=True))
        for (lo, hi), plan in zip(spans, self.plans, strict=True):
            if hi <= lo:
                continue
            if self.axis == "x":
                out[lo:hi] = plan.execute(a[lo:hi], b[lo:hi])
            else:
                out[:, :, lo:hi] = plan.execute(a, np.ascontiguousarray(b[:, :, lo:hi]))
        return out


def _reduce_group(bufs: np.ndarray, group: tuple[int, ...], mode: str, rounder: Rounder
                  ) -> np.ndarray:
    if len(group) == 1:  # one partial: nothing is added, nothing rounded
        return bufs[group[0]]
    if mode == "sequential" or len(group) <= 2:
        return reduce_partials(bufs, list(group), rounder)
    level = [bufs[i] for i in group]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            nxt.append(rounder(level[i] + level[i + 1]))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class FunctionalDevice:
    """Base class: vector ops on the declared vector units; subclasses plan contractions."""

    arch_type: ClassVar[str] = ""

    def __init__(self, arch: Arch):
        self.arch = arch

    # --- declared numerics --------------------------------------------------------------------
    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        raise NotImplementedError

    def vector_numerics(self) -> VectorNumerics:
        return VectorNumerics(source="default: fp32 vector units, 128-lane row reductions")

    def attention_numerics(self, dtype: str) -> dict[str, Any]:
        """Parameters of the fused 1-pass attention cascade (see ``cascade``)."""
        mm = self.matmul_numerics(dtype)
        return {"block": 64, "qk": mm, "pv": mm, "p_dtype": dtype,
                "source": "default: 64-key blocks, P in the input datatype"}

    # --- mapping ------------------------------------------------------------------------------
    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        """How contraction ``op`` of (X, M, N, K) = ``shape`` runs on this device."""
        raise NotImplementedError

    def unit_for(self, op: Any) -> str:
        """Name of the unit that runs ``op`` (for reports)."""
        return self.arch.type

    def for_op(self, op: Any) -> FunctionalDevice:
        """The executor that runs ``op`` (a system hands ops to its components)."""
        return self

    def replay(self, op: Any, dtype: str, shape: tuple[int, int, int, int], a: np.ndarray,
               b: np.ndarray) -> np.ndarray | None:
        """Contraction ``op`` recomputed by a direct emulation of the device's *declared*
        reduction order, before the output rounding; the check requires the plan's result to
        match it bit for bit. None: the device declares no order (the allowance only)."""
        return None

    def with_attention_on(self, component: str) -> FunctionalDevice:
        """This executor with decode attention on system component ``component``."""
        raise SimError(f"--attention-on: '{self.arch.name}' is a single device, not a system "
                       "with components")

    def describe(self) -> str:
        return f"{self.arch.name} ({self.arch.type})"


FUNCTIONAL: dict[str, type[FunctionalDevice]] = {}


def register_functional(cls: type[FunctionalDevice]) -> type[FunctionalDevice]:
    """Class decorator: ``cls`` executes ops functionally for arches of type ``cls.arch_type``."""
    FUNCTIONAL[cls.arch_type] = cls
    return cls


def functional_for(arch: Arch) -> FunctionalDevice:
    """The functional executor registered for ``arch.type``."""
    from sim.functional import devices as _devices  # noqa: F401  (registers the executors)

    cls = FUNCTIONAL.get(arch.type)
    if cls is None:
        raise SimError(f"--arch: no functional executor for arch type '{arch.type}' "
                       f"(available: {', '.join(sorted(FUNCTIONAL))})")
    return cls(arch)
