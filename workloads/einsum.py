"""The Einsum IR: tensors with named ranks, extended Einsums and cascades of them.

``Z[m,n] = A[m,k] * B[k,n]`` is ``Einsum(output=T("Z", ("m","n")), inputs=(A, B), sizes=...)``
with ``map_op="mul"`` combining the inputs at each point of the iteration space and
``reduce_op="add"`` folding the ranks that the output lacks. Extended forms (FuseMax): any map and
reduce operator from :data:`OP_COST`, a unary operator applied to the result, and ``iterative``
ranks whose output at step ``i+1`` depends on step ``i``. FLOPs and minimum bytes are derived here,
never typed by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING, Any

from workloads.records import record

if TYPE_CHECKING:   # numpy is imported where arrays are built (start-up stays light)
    import numpy as np


class cached_property:  # noqa: N801 - a drop-in for functools.cached_property
    """:func:`functools.cached_property` without its per-instance lock (Python 3.11 takes an
    ``RLock`` on every first access; decode steps build thousands of Einsums, so tracing spent
    a fifth of its time there). The value lands in the instance ``__dict__`` (frozen
    dataclasses included), which later lookups read directly."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.__doc__ = func.__doc__
        self.attrname = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.attrname] = self.func(obj)
        return value

DTYPE_BYTES: dict[str, float] = {
    "fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "fp8_e4m3": 1,
    "fp8_e5m2": 1, "int32": 4, "int8": 1, "int4": 0.5, "int2": 0.25,
}

# Arithmetic operations charged per application of each operator (FLOPs). Transcendentals count
# as one operation here; a device that needs several cycles for one says so in its own model.
OP_COST: dict[str, float] = {
    "add": 1, "sub": 1, "mul": 1, "div": 1, "max": 1, "min": 1, "exp": 1, "log": 1, "rsqrt": 1,
    "sqrt": 1, "recip": 1, "relu": 1, "gelu": 8, "silu": 4, "sigmoid": 4, "tanh": 4, "copy": 0,
    "square": 1, "neg": 1, "select": 0, "mac": 2,
}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype`` (or of a packed weight format, see
    :func:`packed_format`); raise ``KeyError`` naming the known dtypes."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        packed = packed_format(dtype)
        if packed is not None:
            return packed[3]
        raise KeyError(f"unknown dtype '{dtype}' (known: {', '.join(DTYPE_BYTES)})") from None


#: bits of one group scale of a packed weight format (an fp16 scale per group)
SCALE_BITS = 16


def packed_format(dtype: str) -> tuple[str, int, tuple[int, int], float] | None:
    """``BASE[/gG][/N:M]`` (e.g. ``int2/g128/2:4``): integer weights of dtype BASE with one
    fp16 scale per G consecutive elements of the reduction rank and N kept of every M
    (structured sparsity, a log2(M)-bit position index per kept element). Returns (base, G,
    (N, M), bytes per dense element) or None when ``dtype`` is not such a format. Bytes per
    dense element = (N/M x (bits + index bits) + 16 / G) / 8."""
    parts = dtype.split("/")
    if len(parts) < 2 or parts[0] not in DTYPE_BYTES:
        return None
    group, keep = 0, (1, 1)
    for part in parts[1:]:
        if part[:1] == "g" and part[1:].isdigit() and int(part[1:]) > 0 and not group:
            group = int(part[1:])
        elif ":" in part and keep == (1, 1):
            n, _, m = part.partition(":")
            if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m) <= 64):
                return None
            keep = (int(n), int(m))
        else:
            return None
    bits = DTYPE_BYTES[parts[0]] * 8
    index = math.ceil(math.log2(keep[1])) if keep[1] > 1 else 0
    per = keep[0] / keep[1] * (bits + index) + (SCALE_BITS / group if group else 0.0)
    return parts[0], group, keep, per / 8


@record(frozen=True)
class TensorRef:
    """A tensor named with its ranks (in layout order), its dtype and its role."""

    name: str
    ranks: tuple[str, ...]
    dtype: str = "fp16"
    role: str = "activation"  # weight | activation | kv_cache | state | intermediate

    def elements(self, sizes: dict[str, int]) -> int:
        """Number of elements given rank sizes."""
        return math.prod(map(sizes.__getitem__, self.ranks))

    def nbytes(self, sizes: dict[str, int]) -> float:
        """Bytes given rank sizes."""
        return self.elements(sizes) * dtype_bytes(self.dtype)


#: (output ranks, input ranks) -> the iteration space's ranks (:attr:`Einsum.ranks`)
_RANKS: dict[tuple, tuple[str, ...]] = {}


@record(frozen=True)
class Einsum:
    """One extended Einsum over a rectangular iteration space.

    ``sizes`` holds every rank's extent as ``((rank, size), ...)`` (hashable). ``map_op``
    combines the inputs at each point (ignored with one input), ``reduce_op`` folds the ranks the
    output lacks (``None``: no reduction), ``unary`` applies to each output element afterwards,
    ``iterative`` names ranks carried step to step (``RM[m1+1] = max(RM[m1], LM[m1])``).
    """

    name: str
    output: TensorRef
    inputs: tuple[TensorRef, ...]
    sizes: tuple[tuple[str, int], ...]
    map_op: str = "mul"
    reduce_op: str | None = "add"
    unary: str | None = None
    iterative: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = dict(self.sizes)
        for t in (self.output, *self.inputs):
            for r in t.ranks:
                if r not in known:
                    raise ValueError(f"einsum {self.name}: rank '{r}' of {t.name} has no size")
        for r, n in self.sizes:
            if not isinstance(n, int) or n <= 0:
                raise ValueError(f"einsum {self.name}: rank '{r}' size must be a positive "
                                 f"integer, got {n!r}")
        for op in (self.map_op, self.reduce_op, self.unary):
            if op is not None and op not in OP_COST:
                raise ValueError(f"einsum {self.name}: unknown operator '{op}'")

    @cached_property
    def size(self) -> dict[str, int]:
        """Rank sizes as a dict."""
        return dict(self.sizes)

    @cached_property
    def ranks(self) -> tuple[str, ...]:
        """All ranks of the iteration space, output ranks first (derived once per tensor
        structure: decode steps rebuild the same attention Einsums at another KV length)."""
        key = (self.output.ranks, tuple(t.ranks for t in self.inputs))
        hit = _RANKS.get(key)
        if hit is None:
            seen: list[str] = list(self.output.ranks)
            for t in self.inputs:
                seen += [r for r in t.ranks if r not in seen]
            hit = _RANKS[key] = tuple(seen)
        return hit

    @cached_property
    def reduced_ranks(self) -> tuple[str, ...]:
        """Ranks that appear in inputs but not in the output."""
        return tuple(r for r in self.ranks if r not in self.output.ranks)

    @cached_property
    def points(self) -> int:
        """Points of the iteration space."""
        return math.prod(map(self.size.__getitem__, self.ranks))

    @cached_property
    def output_elements(self) -> int:
        return self.output.elements(self.size)

    @cached_property
    def op_counts(self) -> dict[str, int]:
        """How many times each operator is applied."""
        counts: dict[str, int] = {}
        if len(self.inputs) >= 2:
            counts[self.map_op] = counts.get(self.map_op, 0) + self.points * (len(self.inputs) - 1)
        if self.reduce_op and self.reduced_ranks:
            counts[self.reduce_op] = counts.get(self.reduce_op, 0) + self.points
        if self.unary:
            counts[self.unary] = counts.get(self.unary, 0) + self.output_elements
        return counts

    @cached_property
    def flops(self) -> float:
        """Arithmetic operations, weighted by :data:`OP_COST` (a multiply-add counts 2)."""
        return float(sum(OP_COST[op] * n for op, n in self.op_counts.items()))

    @cached_property
    def min_bytes(self) -> float:
        """Compulsory traffic: each distinct input read once, the output written once."""
        seen: dict[str, TensorRef] = {}
        for t in self.inputs:
            seen.setdefault(t.name, t)
        reads = sum(t.nbytes(self.size) for t in seen.values())
        return float(reads + self.output.nbytes(self.size))

    @cached_property
    def is_contraction(self) -> bool:
        """A multiply-accumulate of two operands over at least one shared reduced rank."""
        if len(self.inputs) != 2 or self.map_op != "mul" or self.reduce_op != "add":
            return False
        a, b = self.inputs
        return any(r in a.ranks and r in b.ranks for r in self.reduced_ranks)

    @cached_property
    def gemm_shape(self) -> tuple[int, int, int, int]:
        """(batch, M, N, K) of a contraction: batch ranks in all three tensors, M only in the
        first input and output, N only in the second input and output, K in both inputs."""
        if not self.is_contraction:
            raise ValueError(f"einsum {self.name} is not a contraction")
        a, b = self.inputs
        out = self.output.ranks
        s = self.size
        batch = math.prod(s[r] for r in out if r in a.ranks and r in b.ranks)
        m = math.prod(s[r] for r in out if r in a.ranks and r not in b.ranks)
        n = math.prod(s[r] for r in out if r in b.ranks and r not in a.ranks)
        k = math.prod(s[r] for r in self.reduced_ranks if r in a.ranks and r in b.ranks)
        return batch, m, n, k

    def tensors(self) -> tuple[TensorRef, ...]:
        return (*self.inputs, self.output)

    def resized(self, rank: str, size: int) -> Einsum:
        """This Einsum with ``rank``'s extent replaced by ``size`` (a positive int), equal to
        the one the constructor would build, without re-validating its structure; what does not
        depend on sizes (ranks, reduced ranks, is it a contraction) is carried over."""
        return self.resizer(rank)(size)

    def resizer(self, rank: str) -> Callable[[int], Einsum]:
        """``size -> self.resized(rank, size)``, with the work shared by all sizes done once
        (decode steps resize one attention Einsum to thousands of KV lengths)."""
        self.ranks, self.reduced_ranks, self.is_contraction  # noqa: B018  (carried over)
        base = {k: v for k, v in self.__dict__.items() if k not in _SIZED}
        sizes = self.sizes
        at = next((i for i, (r, _) in enumerate(sizes) if r == rank), None)
        head, tail = (sizes, ()) if at is None else (sizes[:at], sizes[at + 1:])
        new = object.__new__
        name = self.name

        def make(size: int) -> Einsum:
            if not isinstance(size, int) or size <= 0:
                raise ValueError(f"einsum {name}: rank '{rank}' size must be a positive "
                                 f"integer, got {size!r}")
            out = new(Einsum)
            out.__dict__.update(base)
            out.__dict__["sizes"] = head if at is None else (*head, (rank, size), *tail)
            return out

        return make

    def resized_all(self, rank: str, sizes: list[int],
                    work: tuple[list[float], list[float]] | None = None) -> list[Einsum]:
        """``[self.resized(rank, n) for n in sizes]`` in one pass (the sizes checked once);
        ``work``: their (FLOPs, minimum bytes), e.g. from :meth:`work_over`, kept as what
        :attr:`flops` and :attr:`min_bytes` derive to."""
        _check_extents(self.name, rank, sizes)
        return self._resized_all(rank, sizes, work, {})

    def _resized_all(self, rank: str, sizes: list[int],
                     work: tuple[list[float], list[float]] | None, shapes: dict) -> list[Einsum]:
        """:meth:`resized_all` with the sizes checked; ``shapes`` maps a ``sizes`` tuple to its
        resized tuples (shared by the Einsums of a cascade over the same iteration space)."""
        self.ranks, self.reduced_ranks, self.is_contraction  # noqa: B018  (carried over)
        base = {k: v for k, v in self.__dict__.items() if k not in _SIZED}
        resized = shapes.get(self.sizes)
        if resized is None:
            at = next((i for i, (r, _) in enumerate(self.sizes) if r == rank), None)
            if at is None:
                resized = [self.sizes] * len(sizes)
            else:
                head, tail = self.sizes[:at], self.sizes[at + 1:]
                resized = [(*head, (rank, n), *tail) for n in sizes]
            shapes[self.sizes] = resized
        return _instances(Einsum, base, "sizes", resized, work)

    def work_over(self, rank: str, sizes):
        """(FLOPs, minimum bytes) as float arrays, one entry per extent of ``rank`` in the
        integer array ``sizes``: :attr:`flops` and :attr:`min_bytes` of :meth:`resized` for
        each, with the same arithmetic (integer counts, then the same float operations in
        the same order), so every entry equals the scalar property bit for bit."""
        return self._work_over(rank, sizes, True)

    def _work_over(self, rank: str, sizes, with_bytes: bool):
        """:meth:`work_over`; FLOPs only (bytes None) unless ``with_bytes``."""
        import numpy as np

        size = dict(self.sizes)
        values = _extents(sizes, [n for r, n in size.items() if r != rank])
        extent = _extent_of(values, rank, size)
        counts: dict[str, np.ndarray] = {}
        points = extent(self.ranks)
        if len(self.inputs) >= 2:
            counts[self.map_op] = counts.get(self.map_op, 0) + points * (len(self.inputs) - 1)
        if self.reduce_op and self.reduced_ranks:
            counts[self.reduce_op] = counts.get(self.reduce_op, 0) + points
        if self.unary:
            counts[self.unary] = counts.get(self.unary, 0) + extent(self.output.ranks)
        total = np.zeros_like(values)
        for op, n in counts.items():
            total = total + OP_COST[op] * n
        if not with_bytes:
            return _as_float(total), None
        seen: dict[str, TensorRef] = {}
        for t in self.inputs:
            seen.setdefault(t.name, t)
        reads = _seq_sum([_nbytes(t, extent) for t in seen.values()])
        nbytes = _add(reads, _nbytes(self.output, extent))
        return _as_float(total), _as_float(nbytes)


@record(frozen=True)
class Cascade:
    """An ordered list of Einsums; later ones may read what earlier ones wrote.

    ``outputs`` names the tensors that leave the cascade (default: the last Einsum's output).
    Minimum bytes count only tensors that cross the cascade boundary.
    """

    name: str
    einsums: tuple[Einsum, ...]
    outputs: tuple[str, ...] = field(default=())

    @cached_property
    def final_outputs(self) -> tuple[str, ...]:
        return self.outputs or (self.einsums[-1].output.name,)

    @cached_property
    def external_inputs(self) -> tuple[TensorRef, ...]:
        produced: set[str] = set()
        # state carried by an iterative rank (``RM[m1+1] = max(RM[m1], ...)``) is read before
        # the einsum that writes it; its initial value is a constant, not an input
        carried = {e.output.name for e in self.einsums if e.iterative}
        seen: dict[str, TensorRef] = {}
        for e in self.einsums:
            for t in e.inputs:
                if t.name not in produced and t.name not in carried:
                    seen.setdefault(t.name, t)
            produced.add(e.output.name)
        return tuple(seen.values())

    @cached_property
    def flops(self) -> float:
        return float(sum(e.flops for e in self.einsums))

    @cached_property
    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.einsums:
            for op, n in e.op_counts.items():
                counts[op] = counts.get(op, 0) + n
        return counts

    @cached_property
    def min_bytes(self) -> float:
        sizes: dict[str, int] = {}
        for e in self.einsums:
            sizes.update(e.size)
        outs: dict[str, TensorRef] = {}
        for e in self.einsums:
            if e.output.name in self.final_outputs:
                outs[e.output.name] = e.output
        total = sum(t.nbytes(sizes) for t in self.external_inputs)
        total += sum(t.nbytes(sizes) for t in outs.values())
        return float(total)

    @cached_property
    def size(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for e in self.einsums:
            sizes.update(e.size)
        return sizes

    def resized(self, rank: str, size: int) -> Cascade:
        """This cascade with ``rank``'s extent replaced by ``size`` in every Einsum (see
        :meth:`Einsum.resized`)."""
        return self.resizer(rank)(size)

    def resizer(self, rank: str) -> Callable[[int], Cascade]:
        """``size -> self.resized(rank, size)`` (see :meth:`Einsum.resizer`)."""
        self.final_outputs, self.external_inputs  # noqa: B018  (derived once, carried over)
        base = {k: v for k, v in self.__dict__.items() if k not in _SIZED}
        parts = [e.resizer(rank) for e in self.einsums]
        new = object.__new__

        def make(size: int) -> Cascade:
            out = new(Cascade)
            out.__dict__.update(base)
            out.__dict__["einsums"] = tuple(part(size) for part in parts)
            return out

        return make

    def resized_all(self, rank: str, sizes: list[int],
                    work: tuple[list[float], list[float]] | None = None) -> list[Cascade]:
        """``[self.resized(rank, n) for n in sizes]`` in one pass (see
        :meth:`Einsum.resized_all`; ``work`` is the cascades')."""
        self.final_outputs, self.external_inputs  # noqa: B018  (derived once, carried over)
        base = {k: v for k, v in self.__dict__.items() if k not in _SIZED}
        if not self.einsums:
            return _instances(Cascade, base, "einsums", [()] * len(sizes), work)
        _check_extents(self.einsums[0].name, rank, sizes)
        shapes: dict = {}
        parts = zip(*[e._resized_all(rank, sizes, None, shapes) for e in self.einsums],
                    strict=True)
        return _instances(Cascade, base, "einsums", list(parts), work)

    def work_over(self, rank: str, sizes):
        """(FLOPs, minimum bytes) arrays over extents of ``rank`` (see
        :meth:`Einsum.work_over`): equal to :attr:`flops` and :attr:`min_bytes` of
        :meth:`resized` for each extent."""
        merged: dict[str, int] = {}
        for e in self.einsums:
            merged.update(e.sizes)
        values = _extents(sizes, [n for r, n in merged.items() if r != rank])
        flops = 0
        for e in self.einsums:
            flops = _add(flops, e._work_over(rank, values, False)[0])
        extent = _extent_of(values, rank, merged)
        outs: dict[str, TensorRef] = {}
        for e in self.einsums:
            if e.output.name in self.final_outputs:
                outs[e.output.name] = e.output
        total = _seq_sum([_nbytes(t, extent) for t in self.external_inputs])
        total = _add(total, _seq_sum([_nbytes(t, extent) for t in outs.values()]))
        return _as_float(flops), _as_float(total)


#: cached properties that depend on rank extents (dropped by ``resized``)
_SIZED = ("size", "points", "output_elements", "op_counts", "flops", "min_bytes", "gemm_shape")


def _check_extents(name: str, rank: str, sizes: list[int]) -> None:
    """``ValueError`` (as the constructor raises it) unless every size is a positive int."""
    if not all(issubclass(t, int) for t in set(map(type, sizes))) or \
            (sizes and min(sizes) <= 0):
        bad = next(n for n in sizes if not isinstance(n, int) or n <= 0)
        raise ValueError(f"einsum {name}: rank '{rank}' size must be a positive integer, "
                         f"got {bad!r}")


def _instances(cls: type, base: dict, key: str, values: list,
               work: tuple[list[float], list[float]] | None) -> list:
    """Instances of ``cls`` with ``base``'s attributes and ``key`` set to each of ``values``
    (and ``flops`` / ``min_bytes`` from ``work``), without ``__init__``: equal to the
    constructed ones field by field, with the same attributes in the same order."""
    extra = {} if work is None else {"flops": 0.0, "min_bytes": 0.0}
    return _clones(cls, {**base, **extra}, key, values,
                   *(() if work is None else (("flops", work[0]), ("min_bytes", work[1]))))


def _clones(cls: type, attrs: dict, key: str, values: list, *more: tuple[str, list]) -> list:
    """One instance of ``cls`` per entry of ``values``: ``attrs`` with ``key`` (and each of
    ``more``'s keys) set to that entry's value. Each instance's ``__dict__`` is a copy of one
    prototype's, set attribute by attribute, so CPython keeps them key-sharing (the values
    only: a third of a separate dict's memory, which a long run otherwise first-touches)."""
    setattr_ = object.__setattr__
    proto = object.__new__(cls)
    for k, v in attrs.items():
        setattr_(proto, k, v)
    copy = proto.__dict__.copy
    new = object.__new__
    out = []
    append = out.append
    if not more:
        for v in values:
            d = copy()
            d[key] = v
            obj = new(cls)
            setattr_(obj, "__dict__", d)
            append(obj)
        return out
    (k1, v1), (k2, v2) = more
    for v, a, b in zip(values, v1, v2, strict=True):
        d = copy()
        d[key] = v
        d[k1] = a
        d[k2] = b
        obj = new(cls)
        setattr_(obj, "__dict__", d)
        append(obj)
    return out


# Array arithmetic that mirrors Python's on the scalar path: integer sums stay exact integers
# (int64) until a float joins them, then become float64 by the same conversion float() makes.
def _extents(sizes, others) -> np.ndarray:
    """``sizes`` as int64; ``ValueError`` when one is not positive, ``OverflowError`` when the
    product of the largest and all ``others`` reaches 2**53 (counts times operator costs, bytes
    per element and a few terms then stay far below 2**63, where int64 equals Python's exact
    integers)."""
    import numpy as np

    values = np.asarray(sizes, dtype=np.int64)
    if len(values) and values.min() <= 0:
        raise ValueError(f"rank extents must be positive integers, got {values.min()}")
    if len(values) and float(values.max()) * math.prod(float(n) for n in others) >= 2.0**53:
        raise OverflowError("rank extents out of the exact int64 range")
    return values


def _extent_of(values: np.ndarray, rank: str, size: dict[str, int]):
    """``ranks -> ``the product of their extents, ``rank``'s being the int64 array ``values``
    (the others from ``size``): the other extents multiplied as Python integers, then one
    array product (exact integers in any order: :func:`_extents` keeps every product below
    2**53); a rank listed twice multiplies ``values`` in as often, one array at a time."""
    import numpy as np

    def extent(ranks) -> np.ndarray:
        times = ranks.count(rank)
        c = math.prod(size[r] for r in ranks if r != rank)
        if times == 0:
            return np.full_like(values, c)
        out = values * c
        for _ in range(times - 1):
            out = out * values
        return out

    return extent


def _nbytes(t: TensorRef, extent):
    """``t.nbytes`` over the extents ``extent`` gives (int array when the dtype's bytes are an
    int, as the scalar product is)."""
    per = dtype_bytes(t.dtype)
    elems = extent(t.ranks)
    return elems * per if isinstance(per, int) else elems.astype(float) * per


def _add(a, b):
    """``a + b`` as Python would: int + int exact, anything with a float in float64."""
    import numpy as np

    a_float = isinstance(a, float) or (isinstance(a, np.ndarray) and a.dtype.kind == "f")
    b_float = isinstance(b, float) or (isinstance(b, np.ndarray) and b.dtype.kind == "f")
    if a_float or b_float:
        a = a.astype(float) if isinstance(a, np.ndarray) else float(a)
        b = b.astype(float) if isinstance(b, np.ndarray) else float(b)
    return a + b


def _seq_sum(terms: list):
    """``sum(terms)``: from the integer 0, left to right."""
    total = 0
    for t in terms:
        total = _add(total, t)
    return total


def _as_float(x):
    """``float(x)`` elementwise, as a float64 array."""
    import numpy as np

    return np.asarray(x).astype(float)


def contraction(name: str, out: TensorRef, a: TensorRef, b: TensorRef,
                sizes: dict[str, int]) -> Einsum:
    """A plain multiply-accumulate Einsum ``out = sum(a * b)``."""
    ranks = set(out.ranks) | set(a.ranks) | set(b.ranks)
    return Einsum(name, out, (a, b), tuple((r, sizes[r]) for r in sorted(ranks)))


def elementwise(name: str, out: TensorRef, inputs: tuple[TensorRef, ...], sizes: dict[str, int],
                map_op: str = "add", unary: str | None = None) -> Einsum:
    """A map-only Einsum (no reduction): ``out = unary(map(inputs...))``."""
    ranks: list[str] = list(out.ranks)
    for t in inputs:
        ranks += [r for r in t.ranks if r not in ranks]
    return Einsum(name, out, inputs, tuple((r, sizes[r]) for r in ranks), map_op=map_op,
                  reduce_op=None, unary=unary)


def epilogue_gemm(casc: Cascade) -> bool:
    """Whether ``casc`` is one contraction whose output stays on chip (an intermediate) and
    later steps that each read what an earlier step made: a GEMM with a fused epilogue, priced
    as the GEMM writing only the cascade's final outputs (DeepSeek-V3.2's indexer scores)."""
    first = casc.einsums[0]
    if len(casc.einsums) < 2 or not first.is_contraction or first.output.role != "intermediate":
        return False
    made = {first.output.name}
    for e in casc.einsums[1:]:
        if not any(t.name in made for t in e.inputs):
            return False
        made.add(e.output.name)
    return True
