"""GroupedLoads: a plan's op -> loads mapping as arrays reads as the dict it replaces, and the
whole-run readers (LoadIndex, routed_bytes) give what they give from that dict."""

import numpy as np
import pytest

from sim.load_index import LoadIndex
from sim.system.grouped_loads import GroupedLoads, sums_in_order
from sim.system.plan import Load, Plan
from sim.system.usage import routed_bytes


def _both() -> tuple[GroupedLoads, dict]:
    """Ops 3, 5, 8, 9, 14 on three tuples; tuples 0 and 2 are one object (shared), 1 loads
    x twice; bytes 0.1, 0.2, 0.3 whose sum's order shows in the last bit."""
    a = (Load("x", 0.1), Load("y", 4.0))
    b = (Load("x", 0.2), Load("x", 0.3))
    grouped = GroupedLoads(np.array([3, 5, 8, 9, 14]), np.array([1, 0, 2, 1, 0]), [a, b, a])
    return grouped, {3: b, 5: a, 8: a, 9: b, 14: a}


def test_reads_as_the_dict():
    grouped, ref = _both()
    assert grouped == ref and list(grouped) == list(ref) and len(grouped) == 5
    assert grouped[8] is ref[8] and grouped.get(4) is None and grouped.get(99, ()) == ()
    assert 9 in grouped and np.int64(14) in grouped and 7 not in grouped and -1 not in grouped
    with pytest.raises(KeyError):
        grouped[6]   # noqa: B018


def test_having_is_in_for_an_array_of_ids():
    """``having``: ``in`` for each id of an array (group 0 included, ids past the last op or
    negative not), and OpLinks passes it on."""
    from sim.system.execute import OpLinks

    grouped, ref = _both()
    ids = np.array([-1, 0, 3, 4, 5, 8, 9, 13, 14, 15, 99])
    want = [i in ref for i in ids.tolist()]
    assert grouped.having(ids).tolist() == want
    assert OpLinks(grouped).having(ids).tolist() == want
    assert OpLinks(ref).having(ids).tolist() == want    # a plain dict: asked one by one


def test_values_of_is_get_for_an_array_of_ids():
    """``values_of``: ``get`` for each id of an array, by search and from the built table
    alike (the very tuple objects), and OpLinks' ``names_of`` names them as ``[]`` does,
    from grouped loads or a plain dict, ``()`` where an op loads nothing."""
    from sim.system.execute import OpLinks

    grouped, ref = _both()
    ids = np.array([-1, 0, 3, 4, 5, 8, 9, 13, 14, 15, 99])
    want = [ref.get(i, "none") for i in ids.tolist()]
    by_search = grouped.values_of(ids, "none")
    assert [id(x) for x in by_search] == [id(x) for x in want]
    grouped._lookup()   # the per-op table, as built after many single lookups
    assert [id(x) for x in grouped.values_of(ids, "none")] == [id(x) for x in want]
    assert GroupedLoads(np.zeros(0), np.zeros(0), []).values_of(ids) == [None] * len(ids)
    names = [tuple(ld.resource for ld in ref[i]) if i in ref else () for i in ids.tolist()]
    assert names[2] == ("x", "x") and names[4] == ("x", "y")
    assert OpLinks(grouped).names_of(ids) == names == OpLinks(ref).names_of(ids)


def test_with_tuples_converts_each_shared_tuple_once():
    grouped, _ = _both()
    calls = []
    out = grouped.with_tuples(lambda t: calls.append(t) or list(t))
    assert len(calls) == 2                       # a (twice in tuples) and b
    assert out[5] is out[8] is out[14] and out[3] == list(grouped[3])


def test_sums_in_order_are_the_dict_loops_floats():
    """One pass over the rows gives each resource the float a ``+=`` loop over the dict
    gives, from its start value; the terms' order shows in the last bit."""
    grouped, ref = _both()
    want = {"x": 0.3, "y": 1.0}
    for loads in ref.values():   # op by op (3, 5, 8, 9, 14), each tuple in its order
        for ld in loads:
            want[ld.resource] += ld.nbytes
    got = sums_in_order({"x": 0.3, "y": 1.0}, grouped.group, grouped.tuples)
    assert got == want and got["x"] == 0.3 + 0.2 + 0.3 + 0.1 + 0.1 + 0.2 + 0.3 + 0.1
    assert got["x"] != 0.3 + 0.1 + 0.3 + 0.2 + 0.1 + 0.1 + 0.3 + 0.2   # the other way
    assert got["y"] == 13.0
    # only the resources asked for, each from its start; none the tuples do not load
    assert sums_in_order({"y": 2.0}, grouped.group, grouped.tuples, ["y", "z"]) == \
        {"y": 14.0}
    assert sums_in_order({}, np.zeros(0, dtype=np.int64), []) == {}


def test_routed_bytes_and_load_index_equal_the_dicts():
    grouped, ref = _both()
    plans = [Plan(streams={}, resources={"x": 1.0, "y": 1.0}, op_loads=loads)
             for loads in (grouped, ref)]
    assert routed_bytes(plans[0]) == routed_bytes(plans[1])
    # resolved as the engine resolves them: one list per tuple object
    links = {"x": object(), "y": object()}
    memo: dict = {}

    def resolve(loads):
        return memo.setdefault(id(loads), [(links[ld.resource], ld.nbytes) for ld in loads])
    new = LoadIndex(grouped.with_tuples(resolve), 20)
    old = LoadIndex({i: resolve(loads) for i, loads in ref.items()}, 20)
    assert new.ids.tolist() == old.ids.tolist() and new.code.tolist() == old.code.tolist()
    assert [id(x) for x in new.lists] == [id(x) for x in old.lists]
    assert new.of_op.tolist() == old.of_op.tolist()


def test_lookups_by_search_equal_the_table(monkeypatch):
    """The first lookups search ``ids``, later ones read the per-op table, and ``having`` of
    a few ids searches: each answer is the dict's, ids between, before and past the ops
    included."""
    from sim.system import grouped_loads

    rng = np.random.default_rng(3)
    ids = np.arange(2, 3000, 3)
    tuples = [(Load("x", 1.0),), (Load("y", 2.0),), (Load("x", 3.0), Load("y", 4.0))]
    group = rng.integers(0, 3, len(ids))
    ref = {i: tuples[g] for i, g in zip(ids.tolist(), group.tolist(), strict=True)}
    asked = list(range(-2, 3005))
    monkeypatch.setattr(grouped_loads, "SEARCHES_BEFORE_TABLE", 1000)
    grouped = GroupedLoads(ids, group, tuples)
    got = [grouped.get(i) for i in asked]          # 1,000 searched, the rest from the table
    assert got == [ref.get(i) for i in asked] and grouped._of is not None
    few = np.array([-1, 0, 2, 3, 5, 2999, 3000, 4000])
    searched = GroupedLoads(ids, group, tuples)
    assert searched.having(few).tolist() == [i in ref for i in few.tolist()]
    assert searched._of is None                    # answered without the table
    assert searched.having(np.array(asked)).tolist() == [i in ref for i in asked]
