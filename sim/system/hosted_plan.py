"""Hosted ops of a trace held as arrays planned from its arrays (no op object per op).

:func:`sim.system.hosted.host_ops` plans the ops that run on another component (decode
attention on the host CPU or a computational drive: ``CompactOps.hosted``) op by op: each
one's stream and model, its tier and link loads (once per computation), its memory bound,
the tensors moved around it and the activations it exchanges with the device's ops.
:func:`host_arrays` makes the same decisions from the arrays, in the same order (so the
plan's streams, resources, transfers and waits are the op-by-op ones entry for entry,
tests/test_hosted_arrays.py). The hosted ops are walked one by one until the two
activation routes (to the host and back) are made; from there each kind's loads and bound are
worked out at its first op (resources registered, in op order), and the activation transfers
of all those ops are made from columns in one block with the walked ones', in op order
(:mod:`sim.system.activation_block`). Where a kind moves gradients or weights around
its ops, the ops from its first one on are walked one by one, as
:func:`~sim.system.hosted.host_ops` walks them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.devices.base import device_for
from sim.system.activation_block import ActivationMoves
from sim.system.hosted import Activations, HostedDevice, _around, _op_loads, _own_tier
from sim.system.plan import Plan
from sim.system.topology import System
from workloads.ragged import slice_indices
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
    # whether each op exchanges activations with the device's ops (a dependency there, or a
    # user there): else, its kind known, nothing moves around it
    outside = np.concatenate(([0], np.cumsum(~mask[idx])))
    active = ((outside[ptr[at + 1]] - outside[ptr[at]]) > 0) | (bounds_of[1] > bounds_of[0])
    moves = Activations(plan, system, group, own, defer=True)
    # the hosted ops' dependencies alone as a list (op j's: deps[dep_at[j]:dep_at[j + 1]]),
    # not the whole trace's
    counts = ptr[at + 1] - ptr[at]
    dep_at = np.zeros(len(at) + 1, dtype=np.int64)
    np.cumsum(counts, out=dep_at[1:])
    deps = idx[slice_indices(ptr[at], counts)].tolist()
    columns = (at.tolist(), kind.tolist(), arrays.phase[at].tolist(), arrays.layer[at].tolist(),
               arrays.step[at].tolist(), dep_at[:-1].tolist(), dep_at[1:].tolist(),
               bounds_of[0].tolist(), bounds_of[1].tolist(), active.tolist())

    def hosted_at(j: int) -> HostedAt:
        i, k, ph, layer, step, lo, hi = (c[j] for c in columns[:7])
        return HostedAt(reps[k], i, phases[ph], layer, step, tuple(deps[lo:hi]))

    def kind_loads(j: int) -> tuple:
        """The traffic, loads and bound of the kind of the hosted op at position ``j``,
        worked out (resources registered) at its kind's first op."""
        k = columns[1][j]
        hit = of_kind.get(k)
        if hit is None:
            op = hosted_at(j)
            key = (op.where, op.tensors, id(op.compute))
            hit = shapes.get(key)
            if hit is None:   # the ops of one compute object (a step's layers) share it
                hit = shapes[key] = _op_loads(plan, system, op, placement, own, home,
                                              inst.name, io, terms)
            of_kind[k] = hit
            if "gradients" in hit[0] or "weights" in hit[0]:
                around.add(k)
        return hit

    def walk(j: int) -> None:
        """Plan the hosted op at position ``j`` (as :func:`~sim.system.hosted.host_ops`)."""
        i, k, ph, layer, step, lo, hi, u0, u1, act = (c[j] for c in columns)
        hit = of_kind.get(k)
        if hit is not None and k not in around:   # only activations move, if any
            if act:
                moves.move(i, phases[ph], layer, step,
                           [d for d in deps[lo:hi] if d not in hosted], waiter_list[u0:u1],
                           hit[0])
            return
        op = hosted_at(j)
        traffic = kind_loads(j)[0]
        if k in around:   # (else nothing moves)
            moves.flush()
            _around(plan, system, op, placement, home, group, traffic)
        # (the device's ops of a trace held as arrays run there: no other ``where``)
        moves.move(i, op.phase, layer, step, [d for d in op.deps if d not in hosted],
                   waiter_list[u0:u1], traffic)

    n_hosted = len(at)
    j = 0
    while j < n_hosted and moves.routes_pending():   # until both routes are made, op by op
        walk(j)
        j += 1
    if around:   # gradients or weights move around a kind: op by op to the end
        for later in range(j, n_hosted):
            walk(later)
    elif j < n_hosted:   # then each kind's loads at its first op, every op's moves as columns
        firsts = np.zeros(n_hosted, dtype=bool)
        firsts[first] = True
        rest = j
        for j in (np.flatnonzero(firsts[rest:]) + rest).tolist():
            kind_loads(j)   # (its first op's moves are then those of any op of its kind)
            if around:   # gradients or weights move around this kind: op by op from here
                _activations_between(moves, rest, j, columns, kind, of_kind,
                                     arrays, mask, idx, outside, ptr, waiter, bounds_of)
                for later in range(j, n_hosted):
                    walk(later)
                break
        else:
            _activations_between(moves, rest, n_hosted, columns, kind, of_kind,
                                 arrays, mask, idx, outside, ptr, waiter, bounds_of)
    moves.flush()
    # each op's bound, its kind's; the ops with loads, each its kind's tuple
    bounds.update(zip(at.tolist(), [of_kind[k][2] for k in kind.tolist()], strict=True))
    tuples = [of_kind[k][1] if k in of_kind else () for k in range(len(arrays.kinds))]
    with_loads = np.array([bool(t) for t in tuples] or [False])[kind]
    return at[with_loads], kind[with_loads].astype(np.int64), tuples


def _activations_between(moves: Activations, lo: int, hi: int, columns,
                         kind: np.ndarray, of_kind: dict, arrays: CompactOps, mask: np.ndarray,
                         idx: np.ndarray, outside: np.ndarray, ptr: np.ndarray,
                         waiter: np.ndarray, bounds_of: np.ndarray) -> None:
    """Make the activation transfers of the hosted ops at positions ``lo..hi-1`` (their
    kinds' traffic known, nothing else moving around them) together with the moves
    ``moves`` recorded, in op order."""
    at = np.asarray(columns[0], dtype=np.int64)
    pos = np.arange(lo, hi)
    n_kinds = int(kind.max()) + 1
    read, wrote = np.zeros(n_kinds), np.zeros(n_kinds)
    for k, hit in of_kind.items():
        rw = hit[0].get("activations")
        if rw is not None:
            read[k], wrote[k] = rw
    ops = at[pos]
    k = kind[pos]
    # the ops' dependencies on the device (the dependencies not hosted), and users there
    n_from = outside[ptr[ops + 1]] - outside[ptr[ops]]
    n_user = bounds_of[1][pos] - bounds_of[0][pos]
    n_from = np.where(read[k] > 0, n_from, 0)
    n_user = np.where(wrote[k] > 0, n_user, 0)
    moving = (n_from > 0) | (n_user > 0)
    pos, ops, k, n_from, n_user = pos[moving], ops[moving], k[moving], n_from[moving], \
        n_user[moving]
    on_device = idx[~mask[idx]]
    fast = ActivationMoves(
        ops, np.array(arrays.phases, dtype=object)[arrays.phase[ops]].tolist(),
        arrays.layer[ops], arrays.step[ops], n_from,
        on_device[slice_indices(outside[ptr[ops]], n_from)], n_user,
        waiter[slice_indices(bounds_of[0][pos], n_user)], read[k], wrote[k])
    moves.flush(fast)
