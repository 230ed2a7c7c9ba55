"""Ops' waits held as blocks of pairs (sim/system/wait_table.py) and ragged rows as arrays
(workloads.ragged.RaggedInts), by hand."""

import numpy as np

from sim.engine_planned import _dependencies
from sim.system.plan import Plan, add_waits
from sim.system.wait_table import WaitTable
from workloads.ragged import RaggedInts, int_rows


def _blocks() -> WaitTable:
    table = WaitTable()
    # op 7 waits for 31 then 30 (a block's pairs in the order given), op 3 for 32
    table.add_pairs(np.array([7, 3, 7]), np.array([31, 32, 30]))
    # a later block: op 3 then waits for 40 as well, op 9 for 41 and 42
    table.add_pairs(np.array([9, 3, 9]), np.array([41, 40, 42]))
    table.add_pairs(np.array([], dtype=np.int64), np.array([], dtype=np.int64))   # nothing
    return table


def test_blocks_read_as_the_rows_added_in_order():
    want = {3: (32, 40), 7: (31, 30), 9: (41, 42)}
    assert _blocks() == want and dict(_blocks()) == want
    assert len(_blocks()) == 3 and 7 in _blocks() and 8 not in _blocks()
    assert _blocks().get(8, ()) == () and _blocks()[9] == (41, 42)
    keys, lengths, flat = _blocks().flat()      # straight from the blocks: ops ascending
    assert keys.tolist() == [3, 7, 9] and lengths.tolist() == [2, 2, 2]
    assert flat.tolist() == [32, 40, 31, 30, 41, 42]


def test_rows_assigned_then_blocks_keep_their_order():
    table = WaitTable()
    table[3] = (5,)
    table.add(3, 6)
    table.add_pairs(np.array([3, 4]), np.array([8, 9]))
    table.add(4, 10)                # after the block: settles it first
    assert dict(table) == {3: (5, 6, 8), 4: (9, 10)}
    keys, lengths, flat = table.flat()
    assert dict(zip(keys.tolist(), np.split(flat, np.cumsum(lengths)[:-1]), strict=True)) \
        .keys() == {3, 4}
    assert flat.tolist() == [5, 6, 8, 9, 10]
    assert not WaitTable() and table and WaitTable().flat()[0].tolist() == []
    nonempty = WaitTable()
    nonempty.add_pairs(np.array([1]), np.array([2]))
    assert nonempty        # pending pairs count before they are settled


def test_add_waits_into_a_dict_or_a_table_alike():
    as_dict: dict = {7: (1,)}
    add_waits(as_dict, np.array([7, 3, 7]), np.array([31, 32, 30]))
    table = WaitTable({7: (1,)})
    add_waits(table, np.array([7, 3, 7]), np.array([31, 32, 30]))
    assert as_dict == table == {7: (1, 31, 30), 3: (32,)}
    assert list(as_dict) == [7, 3]
    assert isinstance(Plan(streams={}).extra_deps, WaitTable)


def test_the_engines_dependency_table_by_hand():
    """``_dependencies`` of 10 ops (op j after op j - 1) and 2 transfers (ids 10, 11): each
    op's own dependency, then the transfers it waits for as their loads tasks (transfer
    ``t``'s: ``2 t - n + 1``); a transfer's latency task ``n + 2 j`` its own dependencies
    (op 2; op 4 and transfer 10), its loads task none. The same from the waits in a dict
    whose ops are not in order, and with the trace's dependencies as 32-bit ids."""
    from sim.system.plan import Transfer

    n = 10
    arrays = type("A", (), {"dep_ptr": np.r_[0, np.arange(n)], "dep_idx": np.arange(n - 1)})
    transfers = [Transfer(10 + j, "w", "weights", "gpu0.copy", "host_ddr", "gpu0.hbm", 1e6, 1,
                          (), (), 0.0, 0.0, deps) for j, deps in enumerate([(2,), (4, 10)])]
    table = WaitTable()
    table.add_pairs(np.array([7, 3, 7]), np.array([11, 10, 2]))
    ptr, idx = _dependencies(None, arrays, transfers, table, n)
    assert ptr.tolist() == [0, 0, 1, 2, 4, 5, 6, 7, 10, 11, 12, 13, 13, 15, 15]
    assert idx.tolist() == [0, 1, 2, 11, 3, 4, 5, 6, 13, 2, 7, 8, 2, 4, 11]
    as_dict = {7: (11, 2), 3: (10,)}           # op 7 first: not in op order
    assert [a.tolist() for a in _dependencies(None, arrays, transfers, as_dict, n)] == \
        [ptr.tolist(), idx.tolist()]
    narrow = type("A", (), {"dep_ptr": arrays.dep_ptr,
                            "dep_idx": arrays.dep_idx.astype(np.int32)})
    assert [a.tolist() for a in _dependencies(None, narrow, transfers, table, n)] == \
        [ptr.tolist(), idx.tolist()]


def test_ragged_ints_read_as_tuples():
    rows = RaggedInts(np.array([2, 0, 3]), np.array([4, 5, 6, 7, 8]))
    assert list(rows) == [(4, 5), (), (6, 7, 8)] and rows[2] == (6, 7, 8) and rows[1] == ()
    assert rows[-1] == (6, 7, 8) and rows[0:3:2] == [(4, 5), (6, 7, 8)]
    assert rows == [(4, 5), (), (6, 7, 8)] and [(4, 5), (), (6, 7, 8)] == rows
    assert rows != [(4, 5), (), (6, 7)] and rows != [(4, 5), ()]
    lengths, flat = int_rows(rows)
    assert lengths is rows.lengths and flat is rows.flat
    assert [a.tolist() for a in int_rows([(4, 5), (), (6, 7, 8)])] == [[2, 0, 3],
                                                                       [4, 5, 6, 7, 8]]


def test_many_pairs_keep_each_ops_order_across_blocks():
    """300 pairs over 12 ops in 3 blocks (long enough that an unstable sort would reorder an
    op's waits): each op's waits as a loop over the pairs gives them."""
    rng = np.random.default_rng(11)
    table, want = WaitTable(), {}
    for block in range(3):
        waiter = rng.integers(0, 12, 100)
        waited = 1000 * block + rng.permutation(100)
        table.add_pairs(waiter, waited)
        for w, t in zip(waiter.tolist(), waited.tolist(), strict=True):
            want[w] = want.get(w, ()) + (t,)
    keys, lengths, flat = table.flat()
    rows = np.split(flat, np.cumsum(lengths)[:-1])
    assert {k: tuple(r.tolist()) for k, r in zip(keys.tolist(), rows, strict=True)} == want
    assert dict(table) == want


def test_rows_assigned_out_of_op_order_read_flat_in_op_order():
    table = WaitTable({9: (1, 2), 4: (3,), 6: ()})
    table.add(4, 5)
    keys, lengths, flat = table.flat()
    assert keys.tolist() == [4, 6, 9] and lengths.tolist() == [2, 0, 2]
    assert flat.tolist() == [3, 5, 1, 2]


def test_a_wait_by_an_op_outside_the_run_is_refused():
    """A waiter id past the run's ops would leave the compiled table's last entries unset:
    refused, naming how many waits were placed."""
    import pytest

    n = 10
    arrays = type("A", (), {"dep_ptr": np.r_[0, np.arange(n)], "dep_idx": np.arange(n - 1)})
    table = WaitTable()
    table.add_pairs(np.array([3, 12]), np.array([10, 10]))
    with pytest.raises(ValueError, match="1 of 2 placed"):
        _dependencies(None, arrays, [], table, n)
