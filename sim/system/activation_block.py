"""The activations a block of hosted ops exchanges with the device, made as rows at once.

:meth:`sim.system.hosted.Activations.move` makes, per hosted op, a transfer of what it reads
from the device's ops (waiting for them, anchored after the last, waited for by the op) and
one of what it writes for its users there (waiting for the op, anchored after it, waited for
by every user). A plan from a trace's arrays moves the activations of tens of thousands of
hosted ops (a layer's attention each decode step); :func:`add_activation_block` makes the
transfers of a run of them, recorded in op order, as one block of rows: the same ids, bytes,
waits and anchors, and each (route, bytes)'s figures made in the order the ops first need
them (tests/test_stage_transfers.py).
"""

from __future__ import annotations

import numpy as np

from sim.columns import in_first_order
from sim.system.plan import Plan, add_waits
from sim.system.route_transfers import IN_PLACE, RouteTransfers
from workloads.ragged import int_rows, slice_indices


class ActivationMoves:
    """Hosted ops' activation moves as columns, one entry per op (op order not required):
    its id, phase name, layer, step, its dependencies on the device (``n_from`` each, one op
    after the other in ``flat_from``), its users there (``n_user``, ``flat_users``) and the
    bytes it reads and writes; an op moves in only with dependencies there, out only with
    users."""

    __slots__ = ("op", "phase", "layer", "step", "n_from", "flat_from", "n_user",
                 "flat_users", "read", "wrote")

    def __init__(self, op, phase, layer, step, n_from, flat_from, n_user, flat_users, read,
                 wrote):
        self.op = np.asarray(op, dtype=np.int64)
        self.phase = list(phase)
        self.layer, self.step = np.asarray(layer, np.int64), np.asarray(step, np.int64)
        self.n_from, self.flat_from = np.asarray(n_from, np.int64), np.asarray(flat_from,
                                                                                np.int64)
        self.n_user, self.flat_users = np.asarray(n_user, np.int64), np.asarray(flat_users,
                                                                                 np.int64)
        self.read, self.wrote = np.asarray(read, np.float64), np.asarray(wrote, np.float64)

    @classmethod
    def of_records(cls, records: list[tuple]) -> ActivationMoves:
        """From records (op id, phase, layer, step, dependencies there, users there, bytes
        read, bytes written)."""
        op, phase, layer, step, froms, users, read, wrote = zip(*records, strict=True)
        return cls(op, phase, layer, step, *int_rows(froms), *int_rows(users), read, wrote)

    def __len__(self) -> int:
        return len(self.op)

    def in_op_order(self, other: ActivationMoves | None = None) -> ActivationMoves:
        """These moves (and ``other``'s) in op order."""
        parts = [self] + ([other] if other is not None and len(other) else [])
        cat = [np.concatenate([getattr(p, f) for p in parts]) for f in
               ("op", "layer", "step", "n_from", "flat_from", "n_user", "flat_users",
                "read", "wrote")]
        op, layer, step, n_from, flat_from, n_user, flat_users, read, wrote = cat
        phase = [ph for p in parts for ph in p.phase]
        order = np.argsort(op, kind="stable")
        from_ptr = np.concatenate(([0], np.cumsum(n_from)))
        user_ptr = np.concatenate(([0], np.cumsum(n_user)))
        return ActivationMoves(
            op[order], [phase[j] for j in order.tolist()], layer[order], step[order],
            n_from[order], flat_from[slice_indices(from_ptr[order], n_from[order])],
            n_user[order], flat_users[slice_indices(user_ptr[order], n_user[order])],
            read[order], wrote[order])


def add_activation_block(plan: Plan, routes: tuple[RouteTransfers, RouteTransfers], k: int,
                         records: list[tuple]) -> None:
    """:func:`add_activation_moves` of records (:meth:`ActivationMoves.of_records`), in op
    order."""
    if records:
        add_activation_moves(plan, routes, k, ActivationMoves.of_records(records))


def add_activation_moves(plan: Plan, routes: tuple[RouteTransfers, RouteTransfers], k: int,
                         moves: ActivationMoves) -> None:
    """Append the transfers of ``moves`` (in op order): a transfer in (``routes[0]``, bytes
    read / ``k``) where an op has dependencies on the device, one out (``routes[1]``, bytes
    written / ``k``) where it has users; the one waits for the dependencies and the op for
    it, the other waits for the op and every user for it."""
    n = len(moves)
    if not n:
        return
    op, phase, n_from, n_user = moves.op, moves.phase, moves.n_from, moves.n_user
    flat_from, flat_users = moves.flat_from, moves.flat_users
    row_op, out = np.nonzero(np.stack((n_from > 0, n_user > 0), axis=1))   # op order
    out = out.astype(bool)
    into = ~out
    m = len(row_op)
    nbytes = np.where(out, moves.wrote[row_op], moves.read[row_op]) / k
    # the ids of what each transfer waits for: the op's dependencies (in), the op (out)
    from_ptr = np.concatenate(([0], np.cumsum(n_from)))
    count = np.where(out, 1, n_from[row_op])
    ptr = np.concatenate(([0], np.cumsum(count)))
    dep_idx = np.empty(int(ptr[-1]), dtype=np.int64)
    dep_idx[ptr[:-1][out]] = op[row_op[out]]
    in_ops = row_op[into]
    dep_idx[slice_indices(ptr[:-1][into], n_from[in_ops])] = \
        flat_from[slice_indices(from_ptr[in_ops], n_from[in_ops])]
    anchor = op[row_op] + 0.5
    if len(in_ops):
        anchor[into] = np.maximum.reduceat(flat_from, from_ptr[in_ops]) + 0.5
    # figures per (direction, bytes), in the order the ops first need them
    distinct, byte_code = np.unique(nbytes, return_inverse=True)
    _, at, pair = in_first_order(out * len(distinct) + byte_code.reshape(-1))
    made = []
    for d, b in zip(out[at].tolist(), nbytes[at].tolist(), strict=True):
        route = routes[int(d)]
        made.append((route.code, *route.figures(b)))
    made_a = np.array(made, dtype=np.float64)[pair]
    rows = plan.transfers
    ids = plan.first_transfer_id + len(rows) + np.arange(m, dtype=np.int64)
    codes = {p: rows.phase_code(p) for p in dict.fromkeys(phase)}
    phase_code = np.array([codes[p] for p in phase], dtype=np.int64)
    rows.extend({"id": ids, "route": made_a[:, 0].astype(np.int64),
                 "loads": made_a[:, 1].astype(np.int64), "phase": phase_code[row_op],
                 "layer": moves.layer[row_op], "step": moves.step[row_op],
                 "release": np.full(m, IN_PLACE, dtype=np.int64), "nbytes": nbytes,
                 "floor": made_a[:, 2], "energy": made_a[:, 3], "anchor": anchor},
                count, dep_idx)
    # who waits: the op for its transfer in, each user for the op's transfer out
    user_ptr = np.concatenate(([0], np.cumsum(n_user)))
    out_ops = row_op[out]
    waiter = np.empty(m + int(n_user[out_ops].sum()) - int(out.sum()), dtype=np.int64)
    per_row = np.where(out, n_user[row_op], 1)
    wptr = np.concatenate(([0], np.cumsum(per_row)))
    waiter[wptr[:-1][into]] = op[in_ops]
    waiter[slice_indices(wptr[:-1][out], n_user[out_ops])] = \
        flat_users[slice_indices(user_ptr[out_ops], n_user[out_ops])]
    add_waits(plan.extra_deps, waiter, np.repeat(ids, per_row))
