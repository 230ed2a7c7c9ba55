"""Attention cascades and the FuseMax pass analysis."""

from __future__ import annotations

import pytest

from workloads.cascades import (
    attention_1pass,
    attention_2pass,
    attention_3pass,
    divide_after_reduce,
)
from workloads.einsum import Cascade, Einsum, TensorRef
from workloads.passes import pass_analysis, passes


def test_builtin_pass_counts():
    assert passes(attention_3pass(2, 4, 256, 512, 64)) == 3
    assert passes(attention_2pass(2, 4, 256, 512, 64)) == 2
    assert passes(attention_1pass(2, 4, 256, 512, 64, tile=128)) == 1


def test_pass_membership():
    rep = pass_analysis(attention_3pass(1, 1, 8, 8, 4), "m")
    assert rep.einsums_in_pass(1) == ["QK", "GM"]
    assert rep.einsums_in_pass(3) == ["A", "AV"]
    assert pass_analysis(attention_3pass(1, 1, 8, 8, 4), "p").passes == 1


def test_division_reduction_rewrite():
    three = attention_3pass(1, 2, 16, 32, 8)
    two = divide_after_reduce(three)
    names = [e.name for e in two.einsums]
    assert names == ["QK", "GM", "SN", "SD", "AV_num", "AV"]
    assert two.einsums[-1].map_op == "div" and two.einsums[-1].reduce_op is None
    # the division now touches p*f elements instead of m*p
    assert three.op_counts["div"] == 2 * 16 * 32
    assert two.op_counts["div"] == 2 * 16 * 8
    assert divide_after_reduce(two) is two


def test_iterative_state_is_not_an_input():
    c = attention_1pass(1, 1, 64, 64, 16, tile=16)
    assert [t.name for t in c.external_inputs] == ["Q", "BK", "BV"]
    assert c.min_bytes == attention_3pass(1, 1, 64, 64, 16).min_bytes
    assert any(e.iterative == ("m1",) for e in c.einsums)


def test_flops_derived_and_extended_operators():
    c = attention_3pass(1, 1, 4, 4, 2)
    qk = c.einsums[0]
    assert qk.flops == 2 * 4 * 4 * 2
    sn = c.einsums[2]
    assert (sn.map_op, sn.unary) == ("sub", "exp")
    assert c.op_counts["exp"] == 16 and c.op_counts["max"] == 16


def test_tile_must_divide():
    with pytest.raises(ValueError, match="multiple"):
        attention_1pass(1, 1, 8, 10, 4, tile=4)


def test_reduction_then_reuse_needs_a_second_pass():
    s = {"i": 8, "j": 4}
    x = TensorRef("X", ("i", "j"))
    tot = TensorRef("T", ("j",))
    y = TensorRef("Y", ("i", "j"))
    c = Cascade("norm", (Einsum("T", tot, (x,), (("i", 8), ("j", 4))),
                         Einsum("Y", y, (x, tot), tuple(s.items()), map_op="div",
                                reduce_op=None)))
    assert passes(c, "i") == 2
    assert passes(c, "j") == 1
