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
from sim.system.plan import Plan
from sim.system.route_transfers import IN_PLACE, RouteTransfers
from workloads.ragged import slice_indices


def add_activation_block(plan: Plan, routes: tuple[RouteTransfers, RouteTransfers], k: int,
                         records: list[tuple]) -> None:
    """Append the transfers of ``records``, each (op id, phase, layer, step, its
    dependencies on the device, its users there, bytes it reads, bytes it writes), in op
    order: a transfer in (``routes[0]``, bytes / ``k``) where it has dependencies there, one
    out (``routes[1]``) where it has users; the one waits for the dependencies and the op for
    it, the other waits for the op and every user for it."""
    n = len(records)
    if not n:
        return
    op_id, phase, layer, step, froms, users, read, wrote = zip(*records, strict=True)
    op = np.array(op_id, dtype=np.int64)
    n_from = np.fromiter(map(len, froms), dtype=np.int64, count=n)
    n_user = np.fromiter(map(len, users), dtype=np.int64, count=n)
    row_op, out = np.nonzero(np.stack((n_from > 0, n_user > 0), axis=1))   # op order
    out = out.astype(bool)
    into = ~out
    m = len(row_op)
    nbytes = np.where(out, np.array(wrote, dtype=np.float64)[row_op],
                      np.array(read, dtype=np.float64)[row_op]) / k
    # the ids of what each transfer waits for: the op's dependencies (in), the op (out)
    from_ptr = np.concatenate(([0], np.cumsum(n_from)))
    flat_from = np.fromiter((d for f in froms for d in f), dtype=np.int64,
                            count=int(from_ptr[-1]))
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
                 "layer": np.array(layer, dtype=np.int64)[row_op],
                 "step": np.array(step, dtype=np.int64)[row_op],
                 "release": np.full(m, IN_PLACE, dtype=np.int64), "nbytes": nbytes,
                 "floor": made_a[:, 2], "energy": made_a[:, 3], "anchor": anchor},
                count, dep_idx)
    # who waits: the op for its transfer in, each user for the op's transfer out
    user_ptr = np.concatenate(([0], np.cumsum(n_user)))
    flat_users = np.fromiter((u for us in users for u in us), dtype=np.int64,
                             count=int(user_ptr[-1]))
    out_ops = row_op[out]
    waiter = np.empty(m + int(n_user[out_ops].sum()) - int(out.sum()), dtype=np.int64)
    per_row = np.where(out, n_user[row_op], 1)
    wptr = np.concatenate(([0], np.cumsum(per_row)))
    waiter[wptr[:-1][into]] = op[in_ops]
    waiter[slice_indices(wptr[:-1][out], n_user[out_ops])] = \
        flat_users[slice_indices(user_ptr[out_ops], n_user[out_ops])]
    waited = np.repeat(ids, per_row)
    order = np.argsort(waiter, kind="stable")       # by waiter, ids ascending within
    waiter, waited = waiter[order], waited[order]
    starts = np.flatnonzero(np.concatenate(([True], waiter[1:] != waiter[:-1])))
    ends = np.append(starts[1:], len(waiter))
    extra = plan.extra_deps
    waited_l = waited.tolist()
    for w, a, b in zip(waiter[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        got = extra.get(w)
        extra[w] = tuple(waited_l[a:b]) if got is None else got + tuple(waited_l[a:b])
