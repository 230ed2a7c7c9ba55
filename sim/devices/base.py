"""The device-model interface every device class implements, and the registry that picks one.

A device model turns one op into a :class:`Cost` (``estimate``) and runs it in the event engine
(``process``, a SimPy generator; the default holds the device for the estimated latency).
Estimates are memoised per distinct op shape, so a trace that repeats a layer pays once.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from arch import Arch
from workloads.einsum import Cascade, Einsum
from workloads.trace import COLLECTIVE, MATMUL, Op

FIDELITIES = ("roofline", "tile", "cycle")


class SimError(ValueError):
    """A run that cannot proceed for a reason the user can fix (one line, names the input)."""


@dataclass
class Cost:
    """What one op costs on a device (per shard: shards run in parallel on their own devices).

    ``latency`` in s; ``energy`` in J per component (``compute``, ``hbm``, ``l2``, ``link`` ...)
    for one shard; ``dram_bytes`` the traffic the model predicts (≥ the op's minimum bytes);
    ``bound`` the limiting resource; ``roofline`` the closed-form lower bound in s.
    """

    latency: float
    roofline: float
    bound: str
    energy: dict[str, float] = field(default_factory=dict)
    dram_bytes: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def energy_total(self) -> float:
        return float(sum(self.energy.values()))


class CostBlock:
    """Costs of ops priced together from arrays, kept as one column per figure: row ``j``'s
    :class:`Cost` is formed when first read (:meth:`cost`), then kept (one object per row).
    The Cost is the one a device's ``estimate`` would form op by op (the same floats, types
    and dict order, tests/test_speed_settle.py): ``latency``, ``roofline`` in s and
    ``e_compute``, ``e_hbm``, ``e_l2`` in J as float64 arrays; ``results`` each row's
    kernel result dict (``bound``, ``dram_bytes``, ``l2_bytes``, ``time`` and details: an
    ``l2`` energy where ``l2_bytes`` is non-zero; the detail is the dict without ``time``)."""

    __slots__ = ("latency", "roofline", "e_compute", "e_hbm", "e_l2", "results", "_formed")

    def __init__(self, latency, roofline, e_compute, e_hbm, e_l2, results: list[dict]):
        self.latency, self.roofline = latency, roofline
        self.e_compute, self.e_hbm, self.e_l2 = e_compute, e_hbm, e_l2
        self.results = results
        self._formed: list[Cost | None] = [None] * len(results)

    def __len__(self) -> int:
        return len(self.results)

    def cost(self, j: int) -> Cost:
        """Row ``j``'s :class:`Cost` (formed on the first call, the same object after)."""
        c = self._formed[j]
        if c is None:
            res = self.results[j]
            energy = {"compute": float(self.e_compute[j]), "hbm": float(self.e_hbm[j])}
            if res["l2_bytes"]:
                energy["l2"] = float(self.e_l2[j])
            detail = res.copy()
            del detail["time"]
            c = self._formed[j] = Cost(float(self.latency[j]), float(self.roofline[j]),
                                       res["bound"], energy, res["dram_bytes"], detail)
        return c

    def figures(self) -> tuple:
        """(latency, roofline, DRAM bytes, compute energy, total energy: float64 arrays;
        bounds: list) of every row, what each formed Cost's ``latency``, ``roofline``,
        ``dram_bytes``, ``energy["compute"]``, ``energy_total`` and ``bound`` give, without
        forming them: the total is ``sum`` of the energy dict's values in its order (0 +
        compute + hbm [+ l2]), the same IEEE additions (Python < 3.12, whose ``sum`` of
        floats adds in order; None on a later Python, whose ``sum`` compensates)."""
        if sys.version_info >= (3, 12):
            return None
        import numpy as np

        results = self.results
        dram = np.array([r["dram_bytes"] for r in results], dtype=np.float64)
        total = (self.e_compute + 0.0) + self.e_hbm
        l2 = np.array([bool(r["l2_bytes"]) for r in results], dtype=bool)
        if l2.any():
            total = np.where(l2, total + self.e_l2, total)
        return (self.latency, self.roofline, dram, self.e_compute, total,
                [r["bound"] for r in results])


class Device:
    """Base class of device models. Subclasses set ``arch_type`` and implement ``_estimate``."""

    arch_type: ClassVar[str] = ""

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        if fidelity not in self.fidelities():
            raise SimError(f"--fidelity: the {arch.type} model offers "
                           f"{', '.join(self.fidelities())}, not '{fidelity}'")
        self.arch = arch
        self.fidelity = fidelity
        self._memo: dict[tuple, tuple] = {}

    @classmethod
    def fidelities(cls) -> tuple[str, ...]:
        """Fidelity levels this model implements."""
        return ("roofline", "tile")

    @classmethod
    def fidelities_for(cls, arch: Arch) -> tuple[str, ...]:
        """Fidelity levels this model offers on ``arch`` (default: :meth:`fidelities`)."""
        return cls.fidelities()

    def system_link(self, which: str = "intra_node_link") -> tuple[str, Any]:
        """(name, LinkSpec or None) of the link ``system.<which>`` names, ("", None) if none."""
        system = self.arch.sections.get("system")
        name = getattr(system, which, "") if system else ""
        return name, (self.arch.sections.get("interconnect", {}).get(name) if name else None)

    # --- what subclasses provide -------------------------------------------------------------
    def peak_flops(self, op: Op) -> float:
        """Peak FLOP/s available to ``op`` on one device."""
        raise NotImplementedError

    def peak_bandwidth(self) -> float:
        """Peak bytes/s of the device's main memory."""
        raise NotImplementedError

    def sustained_bandwidth(self) -> float:
        """Bytes/s concurrent streams on this device share (default: the peak)."""
        return self.peak_bandwidth()

    def link_bandwidth(self) -> float:
        """Peak bytes/s per direction of the link collectives use (0 when there is none)."""
        return 0.0

    def memory_capacity(self) -> float:
        """Bytes of main memory on one device."""
        raise NotImplementedError

    def static_power(self) -> float:
        """Watts drawn by one device while powered."""
        return 0.0

    def _estimate(self, op: Op) -> Cost:
        raise NotImplementedError

    def roof_lines(self, dtype: str) -> dict[str, float]:
        """Compute ceilings (FLOP/s) to draw on the roofline plot for ``dtype``."""
        return {}

    def describe(self, dtype: str) -> dict[str, Any]:
        """Peaks and capacity for reports."""
        return {"peak_bandwidth_Bps": self.peak_bandwidth(), "roofs": self.roof_lines(dtype),
                "memory_capacity_B": self.memory_capacity()}

    # --- shared machinery --------------------------------------------------------------------
    def roofline(self, op: Op) -> float:
        """Closed-form lower bound in s for one shard: max(FLOPs/peak, bytes/bandwidth)."""
        shards = max(op.shards, 1)
        if op.kind == COLLECTIVE:
            c = op.collective
            bw = self.link_bandwidth()
            if c is None or c.group <= 1 or bw <= 0:
                return 0.0
            return collective_min_bytes(c.kind, c.bytes_per_rank, c.group) / bw
        flops = op.flops / shards
        nbytes = op.bytes / shards
        return max(flops / self.peak_flops(op), nbytes / self.peak_bandwidth())

    def estimate(self, op: Op) -> Cost:
        """The cost of ``op``, memoised by the op's shape."""
        compute, collective = op.compute, op.collective
        key = (id(compute), id(collective), op.shards, op.kind)
        hit = self._memo.get(key)
        # the entry keeps its objects alive, so an id cannot be reused while it is cached
        if hit is not None and hit[0] is compute and hit[1] is collective:
            # (compute, collective, cost), or (compute, collective, block, row): a cost
            # priced from arrays (:class:`CostBlock`), formed on its first read
            return hit[2] if len(hit) == 3 else hit[2].cost(hit[3])
        cost = self._estimate(op)
        self._memo[key] = (op.compute, op.collective, cost)
        return cost

    def process(self, env: Any, op: Op, cost: Cost) -> Generator:
        """SimPy process body for one op: hold the device for its latency."""
        yield env.timeout(cost.latency)

    def unit_of(self, op: Op) -> str:
        """The unit of this device that runs ``op`` when it is not the main compute engine
        (e.g. ``"pim"``): a system run gives each such unit its own stream, so units work
        concurrently and contend for the device's memory. Default: "" (the compute stream).
        It may read the op's name, kind, class, phase and computation only: the plan asks
        once per such shape (sim/system/schedule.py)."""
        return ""

    def unit_ops(self) -> tuple[str, ...]:
        """Names of the ops a unit beside the compute engine runs (the tracer cuts a layer's
        segments where ops enter or leave the unit, so micro-batches interleave there)."""
        return ()

    def split_trace(self, trace: Any) -> Any:
        """The trace with co-processed ops split into shares for several units (default: as
        is)."""
        return trace

    def unit_memory_bandwidth(self) -> float | None:
        """Bytes/s the device's streams contend for when its units read inside the memory
        (logic-die PIM: the DRAM arrays' internal bandwidth); None: the memory tier's."""
        return None

    def kind_costs(self, arrays: Any) -> list[Cost | None] | None:
        """The cost of each kind of the trace held as arrays ``arrays``, where this device
        has them already (a kind's entry None: price one of its ops with :meth:`estimate`);
        None: none known (the engine prices one op per kind)."""
        return None

    def estimates_by_kind(self) -> bool:
        """True when ``estimate`` is a function of what the ops of one kind of a trace held as
        arrays share (:class:`~workloads.trace.OpKind`: name, kind, class, computation,
        collective, shards), so the engine may price one op per kind: the memoised base
        ``estimate``; a subclass that overrides it says so."""
        return type(self).estimate is Device.estimate

    def holds_for_latency(self) -> bool:
        """True when ``process`` is exactly one timeout of ``cost.latency`` (the engine then
        skips the generator); a subclass that overrides ``process`` returns False unless it
        knows better."""
        return type(self).process is Device.process


class WrappedDevice(Device):
    """A device model that answers for another (``inner``): its arch, fidelity, peaks, memory
    and static power are the inner device's; a subclass says how it prices an op."""

    def __init__(self, inner: Device):
        self.inner = inner
        self.arch, self.fidelity, self._memo = inner.arch, inner.fidelity, {}

    def peak_flops(self, op: Op) -> float:
        return self.inner.peak_flops(op)

    def peak_bandwidth(self) -> float:
        return self.inner.peak_bandwidth()

    def memory_capacity(self) -> float:
        return self.inner.memory_capacity()

    def static_power(self) -> float:
        return self.inner.static_power()


def collective_min_bytes(kind: str, bytes_per_rank: float, group: int) -> float:
    """Bytes each rank must send at least (ring algorithms are bandwidth-optimal)."""
    if group <= 1:
        return 0.0
    frac = (group - 1) / group
    if kind == "allreduce":
        return 2 * frac * bytes_per_rank
    if kind in ("allgather", "reducescatter", "alltoall"):
        return frac * bytes_per_rank * group if kind == "allgather" else frac * bytes_per_rank
    return bytes_per_rank


def op_dtype(op: Op) -> str:
    """The datatype an op computes in (its first input's)."""
    comp = op.compute
    if isinstance(comp, Einsum):
        return comp.inputs[0].dtype if comp.inputs else comp.output.dtype
    if isinstance(comp, Cascade):
        return comp.einsums[0].inputs[0].dtype
    return op.collective.dtype if op.collective else "fp16"


def is_matmul(op: Op) -> bool:
    return op.kind == MATMUL


DEVICE_MODELS: dict[str, type[Device]] = {}


class MainTierDevice(Device):
    """A device whose main memory is one tier of its arch (``self.main_tier``: bandwidth B/s,
    efficiency, capacity B), with an energy table (static W) and an optional collective link
    (``self.link``): the accessors every such device answers the same way."""

    main_tier: Any = None
    link: Any = None
    energy_table: Any = None

    def peak_bandwidth(self) -> float:
        return self.main_tier.bandwidth

    def sustained_bandwidth(self) -> float:
        return self.main_tier.bandwidth * self.main_tier.efficiency

    def link_bandwidth(self) -> float:
        return self.link.bandwidth if self.link else 0.0

    def memory_capacity(self) -> float:
        return self.main_tier.capacity

    def static_power(self) -> float:
        return self.energy_table.static_power


def register_device(cls: type[Device]) -> type[Device]:
    """Class decorator: make ``cls`` the model for arches whose ``type`` is ``cls.arch_type``."""
    DEVICE_MODELS[cls.arch_type] = cls
    return cls


def model_class(arch_type: str) -> type[Device] | None:
    """The device model registered for ``arch_type`` (imports its module), or None."""
    cls = DEVICE_MODELS.get(arch_type)
    if cls is None:
        import importlib

        try:
            importlib.import_module(f"sim.devices.{arch_type}")
        except ModuleNotFoundError:
            pass
        cls = DEVICE_MODELS.get(arch_type)
    return cls


def fidelities_of(arch: Arch) -> tuple[str, ...]:
    """Fidelity levels ``xpusim run`` offers on ``arch`` (a system: its primary device's);
    () when no device model runs it (e.g. ``ssd``, ``dram``)."""
    if arch.type == "system":
        from arch.topology_view import device_view, primary_component

        arch = device_view(arch, primary_component(arch))
    cls = model_class(arch.type)
    return cls.fidelities_for(arch) if cls is not None else ()


def device_for(arch: Arch, fidelity: str) -> Device:
    """Instantiate the device model registered for ``arch.type``; for a ``system`` arch, the
    model of its primary device component as the topology sees it
    (:func:`arch.topology_view.device_view`)."""
    if arch.type == "system":
        from arch.topology_view import device_view, primary_component

        arch = device_view(arch, primary_component(arch))
    cls = DEVICE_MODELS.get(arch.type)
    if cls is None:  # by convention the model of type X lives in sim/devices/X.py
        import importlib

        try:
            importlib.import_module(f"sim.devices.{arch.type}")
        except ModuleNotFoundError:
            from sim.devices import load_all

            load_all()
        cls = DEVICE_MODELS.get(arch.type)
    if cls is None:
        from sim.devices import load_all

        load_all()
        raise SimError(f"--arch: no device model for arch type '{arch.type}' "
                       f"(available: {', '.join(sorted(DEVICE_MODELS))})")
    if fidelity not in FIDELITIES:
        raise SimError(f"--fidelity: expected one of {', '.join(FIDELITIES)}, got '{fidelity}'")
    return cls(arch, fidelity)
