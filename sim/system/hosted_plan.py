"""Hosted ops of a trace held as arrays planned from its arrays (no op object per op).

:func:`sim.system.hosted.host_ops` plans the ops that run on another component (decode
attention on the host CPU or a computational drive: ``CompactOps.hosted``) op by op: each
one's stream and model, its tier and link loads (once per computation), its memory bound,
the tensors moved around it and the activations it exchanges with the device's ops.
:func:`host_arrays` makes the same decisions from the arrays, in the same order (so the
plan's streams, resources, transfers and waits are the op-by-op ones entry for entry,
tests/test_hosted_arrays.py). Only the first hosted op of each kind, and those of kinds
that move gradients or weights around them, are walked one by one, each as a
:class:`HostedAt`; the others take their kind's loads and bound at once, and those that
exchange an activation with the device's ops (a layer's first and last attention op each
decode step) move it through :class:`~sim.system.hosted.Activations` from their ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.devices.base import device_for
from sim.system.hosted import Activations, HostedDevice, _around, _op_loads, _own_tier
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
                io: tuple[float, int]) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """:func:`~sim.system.hosted.host_ops` of the ops ``arrays.hosted`` marks: the hosted
    stream and its model registered, each op's memory bound in the model, the transfers
    around it and its activations' transfers; returns the hosted ops' loads as (the ops
    with loads in op order, each one's kind, per kind its tuple of loads: () for a kind
    without hosted ops), for :class:`~sim.system.grouped_loads.GroupedLoads`."""
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
        return at, at, []
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
    used, first = np.unique(kind, return_index=True)
    reps = dict(zip(used.tolist(), ops_at(arrays, at[first], stream), strict=True))
    shapes: dict[tuple, tuple] = {}   # (component, tensors, compute) -> _op_loads
    of_kind: dict[int, tuple] = {}    # kind -> the same, for its ops
    around: set[int] = set()          # kinds with gradients or weights to move around them
    terms: dict[tuple[str, str], tuple] = {}
    hosted = set(at.tolist())
    phases = arrays.phases
    idx_list = idx.tolist()
    # whether each op exchanges activations with the device's ops (a dependency there, or a
    # user there): else, its kind known, nothing moves around it
    outside = np.concatenate(([0], np.cumsum(~mask[idx])))
    active = ((outside[ptr[at + 1]] - outside[ptr[at]]) > 0) | (bounds_of[1] > bounds_of[0])
    moves = Activations(plan, system, group, own, defer=True)
    for i, k, ph, layer, step, lo, hi, u0, u1, act in zip(
            at.tolist(), kind.tolist(), arrays.phase[at].tolist(), arrays.layer[at].tolist(),
            arrays.step[at].tolist(), ptr[at].tolist(), ptr[at + 1].tolist(),
            bounds_of[0].tolist(), bounds_of[1].tolist(), active.tolist(), strict=True):
        hit = of_kind.get(k)
        if hit is not None and k not in around:   # only activations move, if any
            if act:
                moves.move(i, phases[ph], layer, step,
                           [d for d in idx_list[lo:hi] if d not in hosted], waiter_list[u0:u1],
                           hit[0])
            continue
        op = HostedAt(reps[k], i, phases[ph], layer, step, tuple(idx_list[lo:hi]))
        if hit is None:
            key = (op.where, op.tensors, id(op.compute))
            hit = shapes.get(key)
            if hit is None:   # the ops of one compute object (a step's layers) share it
                hit = shapes[key] = _op_loads(plan, system, op, placement, own, home,
                                              inst.name, io, terms)
            of_kind[k] = hit
            if "gradients" in hit[0] or "weights" in hit[0]:
                around.add(k)
        traffic = hit[0]
        if k in around:   # (else nothing moves)
            moves.flush()
            _around(plan, system, op, placement, home, group, traffic)
        # (the device's ops of a trace held as arrays run there: no other ``where``)
        moves.move(i, op.phase, layer, step, [d for d in op.deps if d not in hosted],
                   waiter_list[u0:u1], traffic)
    moves.flush()
    # each op's bound, its kind's; the ops with loads, each its kind's tuple
    bounds.update(zip(at.tolist(), [of_kind[k][2] for k in kind.tolist()], strict=True))
    tuples = [of_kind[k][1] if k in of_kind else () for k in range(len(arrays.kinds))]
    with_loads = np.array([bool(t) for t in tuples] or [False])[kind]
    return at[with_loads], kind[with_loads].astype(np.int64), tuples
