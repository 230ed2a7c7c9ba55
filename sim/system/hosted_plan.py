"""Hosted ops of a trace held as arrays planned from its arrays (no op object per op).

:func:`sim.system.hosted.host_ops` plans the ops that run on another component (decode
attention on the host CPU or a computational drive: ``CompactOps.hosted``) op by op: each
one's stream and model, its tier and link loads (once per computation), its memory bound,
the tensors moved around it and the activations it exchanges with the device's ops.
:func:`host_arrays` makes the same decisions from the arrays, in the same order (so the
plan's streams, resources, transfers and waits are the op-by-op ones entry for entry,
tests/test_hosted_arrays.py); only the hosted ops (one per layer and decode step) are
walked one by one, each as a :class:`HostedAt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.devices.base import device_for
from sim.system.hosted import HostedDevice, _activations, _around, _op_loads, _own_tier
from sim.system.plan import Plan
from sim.system.topology import System
from workloads.trace import CompactOps, ops_at

if TYPE_CHECKING:
    from sim.system.placement import Placement


class HostedAt:
    """A hosted op as planning reads it: its own id, phase, layer, step and dependencies,
    and every other field of :class:`~workloads.trace.Op` its kind's representative's."""

    __slots__ = ("_rep", "id", "phase", "layer", "step", "deps")

    def __init__(self, rep, i: int, phase: str, layer: int, step: int, deps: tuple):
        self._rep, self.id, self.phase, self.layer, self.step, self.deps = \
            rep, i, phase, layer, step, deps

    def __getattr__(self, name: str):
        return getattr(self._rep, name)


def hosted_stream(system: System, arrays: CompactOps) -> str:
    """The stream the hosted ops of ``arrays`` run on: their component's first instance's."""
    return f"{system.compute_devices(arrays.hosted[1])[0].name}.compute"


def host_arrays(plan: Plan, system: System, arrays: CompactOps, placement: Placement | None,
                home: str, fidelity: str, group: tuple[str, ...],
                io: tuple[float, int]) -> dict[int, str]:
    """:func:`~sim.system.hosted.host_ops` of the ops ``arrays.hosted`` marks: the hosted
    stream and its model registered, each op's loads in ``plan.op_loads`` (added after those
    there, in op order) and its memory bound in the model, the transfers around it and its
    activations' transfers; returns the hosted ops with loads and their stream (what the
    op-by-op plan prunes with)."""
    mask, where, _ = arrays.hosted
    inst = system.compute_devices(where)[0]
    own = _own_tier(system, inst.name, inst.memory)
    stream = f"{inst.name}.compute"
    bounds: dict[int, float] = {}
    dev = HostedDevice(device_for(inst.arch, fidelity), bounds)
    plan.streams.setdefault(stream, dev)
    plan.stream_device[stream] = inst.name
    plan.devices_of[stream] = (inst.name,)
    at = np.flatnonzero(mask)
    if not len(at):
        return {}
    ptr, idx = arrays.dep_ptr.astype(np.int64), arrays.dep_idx.astype(np.int64)
    # the device's ops that wait for a hosted op, per hosted op in op order
    owner = np.repeat(np.arange(len(mask), dtype=np.int64), np.diff(ptr))
    wait = np.flatnonzero(mask[idx] & ~mask[owner])
    order = np.argsort(idx[wait], kind="stable")
    waited, waiter = idx[wait][order], owner[wait][order]
    bounds_of = np.searchsorted(waited, np.stack((at, at + 1)))
    waiter_list = waiter.tolist()
    # one representative op per kind of hosted op (its computation, name, class ...)
    kind = arrays.kind[at]
    reps = {}
    for k, op in zip(*np.unique(kind, return_index=True), strict=True):
        reps[int(k)] = ops_at(arrays, at[[op]], stream)[0]
    shapes: dict[tuple, tuple] = {}   # (component, tensors, compute) -> _op_loads
    of_kind: dict[int, tuple] = {}    # kind -> the same, for its ops
    terms: dict[tuple[str, str], tuple] = {}
    hosted = set(at.tolist())
    phases, loaded = arrays.phases, {}
    idx_list = idx.tolist()
    for i, k, ph, layer, step, lo, hi, u0, u1 in zip(
            at.tolist(), kind.tolist(), arrays.phase[at].tolist(), arrays.layer[at].tolist(),
            arrays.step[at].tolist(), ptr[at].tolist(), ptr[at + 1].tolist(),
            bounds_of[0].tolist(), bounds_of[1].tolist(), strict=True):
        op = HostedAt(reps[k], i, phases[ph], layer, step, tuple(idx_list[lo:hi]))
        hit = of_kind.get(k)
        if hit is None:
            key = (op.where, op.tensors, id(op.compute))
            hit = shapes.get(key)
            if hit is None:   # the ops of one compute object (a step's layers) share it
                hit = shapes[key] = _op_loads(plan, system, op, placement, own, home,
                                              inst.name, io, terms)
            of_kind[k] = hit
        traffic, loads, bound = hit
        if loads:
            plan.op_loads[i] = loads
            loaded[i] = stream
        bounds[i] = bound
        if "gradients" in traffic or "weights" in traffic:   # (else nothing moves)
            _around(plan, system, op, placement, home, group, traffic)
        # (the device's ops of a trace held as arrays run there: no other ``where``)
        _activations(plan, system, op, group, own, [d for d in op.deps if d not in hosted],
                     waiter_list[u0:u1], traffic)
    return loaded
