"""Functional execution on a computational SSD (arch type ``csd``): InstInfer's in-storage
attention engine, computing next to the KV cache in its flash.

The model (InstInfer, HPCA'25, as we read its design; the facts the arch YAML does not carry
are assumptions, marked):

* **Layout.** The KV cache of one (request, KV head) lies in flash pages of
  ``flash.page_size`` bytes; a page holds ``P = page_size // (head_dim x bytes)`` consecutive
  tokens of that head's K or of its V (4 KiB, head_dim 128, fp16: 16 tokens). The ``P`` tokens
  of a page are a *page group*; the engine processes the cache page group by page group, in
  token order, as the pages arrive from the channels (assumption: one page per group; the
  paper's sparse variant reads groups of pages, which changes no sum here).
* **QK^T.** Each score is one dot product over head_dim: fp16 operands, exact products, one
  fp32 round-to-nearest per multiply-add in head_dim order (assumption: a MAC lane with an fp32
  accumulator). Page groups produce disjoint scores, so their order changes no value; a group
  that is never read leaves its scores uncomputed (NaN).
* **softmax** on the engine's vector unit in fp32 over :data:`VECTOR_LANES` lanes (assumption).
* **AV.** Per page group, the partial output ``sum_{t in group} p_t v_t`` is accumulated in fp32
  (one rounding per multiply-add, token order); the partials are added into an fp32 running
  sum in page-group order, group 0 first (a sequential reduction over groups).
* **Other contractions** (the standalone ``csd`` arch runs a whole layer on its engine, which
  computes GEMVs too): each output's weights stream in pages of ``page_size // bytes``
  consecutive reduction-rank elements, each page a group reduced as AV's.
* Operands in a datatype the engine lacks (``engine.flops`` has fp16 only) are rounded to fp16,
  as the timing model falls back to fp16. The fused 1-pass attention op is not modelled.

Besides the plans, the device *declares its reduction order*: :meth:`CsdFunctional.replay`
recomputes a contraction by a direct emulation of the order above, and the check requires the
executed plan to match it bit for bit (the allowance, a worst-case bound for any order, cannot
see a reordering).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from arch import Arch
from kernels_ref.dtypes import get_format
from sim.devices.base import SimError
from sim.functional.base import (
    FunctionalDevice,
    MatmulNumerics,
    MatmulPlan,
    Stage,
    VectorNumerics,
    register_functional,
)
from sim.functional.formats import Rounder
from sim.functional.tiled import STORE

#: lanes of the engine's fp32 vector unit (assumption: 16, one page group of a 128-wide head)
VECTOR_LANES = 16


def page_group_plan(shape: tuple[int, int, int, int], k_group: int, n_group: int,
                    num: MatmulNumerics, order: list[int] | None = None,
                    detail: dict | None = None) -> MatmulPlan:
    """A contraction (X, M, N, K) on the engine: the reduction rank K in groups of
    ``k_group`` (each group's partial in ``num.acc``, ``num.block`` products per rounding,
    stored in its own buffer), the output rank N in independent groups of ``n_group``; the K
    groups' partials are added in ``order`` (default: group order) with ``num.partial``."""
    xs, m, n, k = shape
    k_group, n_group = max(1, min(k, k_group)), max(1, min(n, n_group))
    spans = [(k0, min(k, k0 + k_group)) for k0 in range(0, k, k_group)]
    items = [(x, 0, m, j0, min(n, j0 + n_group), k0, k1, g)
             for x in range(xs) for g, (k0, k1) in enumerate(spans)
             for j0 in range(0, n, n_group)]
    order = list(range(len(spans))) if order is None else list(order)
    levels = [(math.ceil(k_group / num.block), num.acc), (len(spans) - 1, num.partial)]
    stage = Stage((tuple(order),), "sequential", num.partial)
    return MatmulPlan(shape, np.array(items, dtype=np.int64).reshape(-1, 8), len(spans),
                      num.block, num.acc, num, levels, STORE, None, [stage], None,
                      {"mapping": "page groups", "k_group": k_group, "n_group": n_group,
                       "groups": len(spans), **(detail or {})})


def page_group_reference(a: np.ndarray, b: np.ndarray, k_group: int,
                         num: MatmulNumerics) -> np.ndarray:
    """The declared page-group order, emulated directly: per K group, ``num.block`` exact
    products added (in float64, left to right) to an accumulator rounded with ``num.acc``; the
    group partials added in group order, each sum rounded with ``num.partial``. ``a`` [X, M,
    K] and ``b`` [X, K, N] hold values in the input datatype."""
    k = a.shape[2]
    k_group = max(1, min(k, k_group))
    out_shape = (a.shape[0], a.shape[1], b.shape[2])
    fmt = get_format(num.inputs)
    fast = (num.block == 1 and num.acc == Rounder("fp32") and fmt.is_float
            and fmt.man_bits + 1 <= 12)  # products exact in fp32: float32 numpy is the model
    total: np.ndarray | None = None
    for k0 in range(0, k, k_group):
        k1 = min(k, k0 + k_group)
        if fast:
            acc = _fp32_macs(a[:, :, k0:k1].astype(np.float32), b[:, k0:k1].astype(np.float32))
        else:
            acc = np.zeros(out_shape)
            for kb in range(k0, k1, num.block):
                for t in range(kb, min(k1, kb + num.block)):
                    acc = acc + a[:, :, t, None] * b[:, None, t, :]
                acc = num.acc(acc)
        total = acc if total is None else num.partial(total + acc)
    return total if total is not None else np.zeros(out_shape)


def _fp32_macs(a32: np.ndarray, b32: np.ndarray) -> np.ndarray:
    """``sum_t a32[:, :, t] b32[:, t]`` with one fp32 rounding per multiply-add, in t order."""
    acc = np.zeros((a32.shape[0], a32.shape[1], b32.shape[2]), dtype=np.float32)
    tmp = np.empty_like(acc)
    for t in range(a32.shape[2]):
        np.multiply(a32[:, :, t, None], b32[:, None, t, :], out=tmp)
        acc += tmp
    return acc.astype(np.float64)


@register_functional
class CsdFunctional(FunctionalDevice):
    """Functional executor for arches of type ``csd`` (see the module doc)."""

    arch_type = "csd"

    def __init__(self, arch: Arch):
        super().__init__(arch)
        self.page = int(arch.flash.page_size)

    def matmul_numerics(self, dtype: str) -> MatmulNumerics:
        inputs = dtype if dtype in self.arch.engine.flops else "fp16"
        return MatmulNumerics(inputs, Rounder("fp32"), 1, Rounder("fp32"),
                              "CSD engine: fp16 MACs into fp32, one rounding per MAC; page-group "
                              "partials added in fp32 in page-group order (assumption)")

    def vector_numerics(self) -> VectorNumerics:
        return VectorNumerics("fp32", VECTOR_LANES,
                              f"CSD engine vector unit in fp32, {VECTOR_LANES} lanes (assumption)")

    def attention_numerics(self, dtype: str) -> dict[str, Any]:
        raise SimError(f"{self.arch.name}: the CSD engine's functional model computes attention "
                       "unfused (qk, softmax, av over page groups); use --attention unfused")

    def groups(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> tuple[int, int]:
        """(K group, N group) of contraction ``op`` of shape (X, M, N, K): AV reduces over
        tokens (K) in pages of ``page // (head_dim x bytes)`` tokens, QK^T spreads its tokens
        (N) over such pages, other contractions reduce over pages of reduction-rank elements."""
        _, _, n, k = shape
        name = getattr(op, "name", "")
        kv = _kv_dtype(op) or dtype
        nbytes = max(1, get_format(kv).bits // 8)
        if name == "av":
            return max(1, self.page // (n * nbytes)), n
        if name == "qk":
            return k, max(1, self.page // (k * nbytes))
        return max(1, self.page // max(1, get_format(dtype).bits // 8)), n

    def plan_matmul(self, op: Any, dtype: str, shape: tuple[int, int, int, int]) -> MatmulPlan:
        k_group, n_group = self.groups(op, dtype, shape)
        return page_group_plan(shape, k_group, n_group, self.matmul_numerics(dtype),
                               detail={"page_B": self.page})

    def replay(self, op: Any, dtype: str, shape: tuple[int, int, int, int], a: np.ndarray,
               b: np.ndarray) -> np.ndarray | None:
        k_group, _ = self.groups(op, dtype, shape)
        return page_group_reference(a, b, k_group, self.matmul_numerics(dtype))


def _kv_dtype(op: Any) -> str:
    """Datatype of the KV-cache tensor ``op`` reads ('' when none)."""
    comp = getattr(op, "compute", None)
    for t in getattr(comp, "inputs", ()) or ():
        if getattr(t, "role", "") == "kv_cache":
            return t.dtype
    return ""
