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


def test_the_engines_dependency_table_reads_the_blocks():
    """``_dependencies`` of 10 ops (op j after op j - 1) and 0 transfers: each op's own
    dependency, then the transfers it waits for (task ``n + 2 j + 1``: transfer ``n + j``'s
    loads task), as from the same waits in a dict."""
    n = 10
    arrays = type("A", (), {"dep_ptr": np.r_[0, np.arange(n)], "dep_idx": np.arange(n - 1)})
    table = _blocks()
    got = _dependencies(None, arrays, [], table, n)
    want = _dependencies(None, arrays, [], dict(_blocks()), n)
    assert [a.tolist() for a in got] == [a.tolist() for a in want]
    ptr, idx = got
    # op 3: its own dependency (op 2), then 32 and 40 as their loads tasks 2 x 32 - 10 + 1...
    assert idx[ptr[3]:ptr[4]].tolist() == [2, 2 * 32 - n + 1, 2 * 40 - n + 1]
    assert idx[ptr[7]:ptr[8]].tolist() == [6, 2 * 31 - n + 1, 2 * 30 - n + 1]


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
