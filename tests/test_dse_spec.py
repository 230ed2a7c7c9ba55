"""Sweep specs: safe expressions, pinpoint validation errors, canonical values and point ids."""

from __future__ import annotations

import pytest

from arch import SpecError
from dse.expr import ExprError, parse_expr
from dse.space import point_id
from dse.spec import sweep_from_dict

BASE = {
    "arch": "h100",
    "axes": {"gpu.sm_count": [66, 132], "memory.hbm.bandwidth": ["2 TB/s", "3.35 TB/s"]},
    "workloads": [{"model": "gpt2-small", "layers": 1, "batch": 1, "prompt_len": 16,
                   "gen_len": 2}],
    "objectives": [{"min": "tpot_s"}],
    "fidelity": "roofline",
}


def spec_with(**changes):
    data = {**BASE, **changes}
    return sweep_from_dict({k: v for k, v in data.items() if v is not None}, file="s.yaml")


def error_of(**changes) -> str:
    with pytest.raises(SpecError) as info:
        spec_with(**changes)
    text = str(info.value)
    assert "\n" not in text and text.startswith("s.yaml: ")
    return text


# --- expressions ---------------------------------------------------------------------------------
def test_expressions_evaluate_arithmetic_functions_and_dotted_names():
    e = parse_expr("max(2, gpu.sm_count) * memory.hbm.bandwidth / 1e12 + 2 ** 3 - 7 % 4")
    assert e.names == ("gpu.sm_count", "memory.hbm.bandwidth")
    assert e.evaluate({"gpu.sm_count": 132, "memory.hbm.bandwidth": 2e12}) == 132 * 2 + 8 - 3
    assert parse_expr("a <= 3 and not b > 1").evaluate({"a": 3, "b": 0}) is True
    assert parse_expr("1 < a < 3").evaluate({"a": 5}) is False
    assert parse_expr("a if a > 0 else -a").evaluate({"a": -4}) == 4


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "a.__class__", "(a + 1).real", "a[0]",
    "lambda: 1", "'text'", "[x for x in a]", "open('f')", "f(a=1)", "a.b()", "min", "",
])
def test_expressions_reject_everything_outside_the_grammar(text):
    with pytest.raises(ExprError):
        parse_expr(text)


def test_expression_runtime_errors_are_expr_errors():
    with pytest.raises(ExprError, match="unknown name 'b'"):
        parse_expr("a + b").evaluate({"a": 1})
    with pytest.raises(ExprError, match="cannot evaluate"):
        parse_expr("1 / a").evaluate({"a": 0})
    with pytest.raises(ExprError, match="cannot evaluate"):
        parse_expr("10.0 ** 10 ** 10").evaluate({})


# --- validation errors name file, field and what was expected -------------------------------------
@pytest.mark.parametrize("changes, expected", [
    ({"axis": {}}, "s.yaml: axis: unknown key (did you mean 'axes'?)"),
    ({"axes": {"gpu.sm_cont": [1]}}, "axes.gpu.sm_cont: 'gpu' has no field 'sm_cont' "
                                     "(did you mean 'sm_count'?)"),
    ({"axes": {"gpx.sm_count": [1]}}, "axes.gpx.sm_count: 'gpx' is not a section"),
    ({"axes": {"memory.hbm.bandwidth": ["2 TB/s", "3 GHz"]}},
     "axes.memory.hbm.bandwidth[1]: '3 GHz' is not in B/s"),
    ({"axes": {"gpu.sm_count": [66, 0]}}, "axes.gpu.sm_count[1]: expected a value > 0"),
    ({"axes": {"gpu.sm_count": [66, 66.0]}}, "axes.gpu.sm_count[1]: duplicate value"),
    ({"axes": {"gpu.sm_count": 66}}, "axes.gpu.sm_count: expected a non-empty list"),
    ({"axes": {"memory.hbm3.bandwidth": [1]}}, "'memory' has no entry 'hbm3' in the base arch"),
    ({"axes": {"memory.hbm": [1]}}, "'memory.hbm' is a section, not a single parameter"),
    ({"axes": {"scenario.batchsize": [1]}}, "unknown scenario field 'batchsize'"),
    ({"axes": {"scenario.batch": [1, -2]}}, "axes.scenario.batch[1]: expected a positive"),
    ({"axes": {"model.n_layers": [0]}}, "axes.model.n_layers[0]: expected an integer >= 1"),
    ({"axes": {"model.sliding_window": [-1]}},
     "axes.model.sliding_window[0]: expected an integer >= 0"),
    ({"axes": {"gpu.sm_count": {"min": 8, "max": 4, "steps": 3}}}, "expected min <= max"),
    ({"derived": {"area": "gpu.sm_count * mm"}}, "derived.area: unknown name 'mm'"),
    ({"derived": {"area": "__import__('os')"}}, "derived.area: unknown function"),
    ({"derived": {"gpu.sm_count": "1"}}, "derived.gpu.sm_count: is also an axis"),
    ({"derived": {"tpot_s": "1"}}, "derived.tpot_s: 'tpot_s' is a result metric"),
    ({"derived": {"gpu.clock": "0 - 1"}}, "s.yaml: axes: the first design point"),
    ({"constraints": ["power_W"]}, "constraints[0]: expected a condition"),
    ({"objectives": [{"min": "tpot"}]}, "objectives[0]: unknown metric 'tpot' (did you mean"),
    ({"objectives": None}, "objectives: missing required field"),
    ({"workloads": [{"model": "llama-9"}]}, "workloads[0].model: unknown model 'llama-9'"),
    ({"workloads": [{"model": "gpt2-small", "batch": 0}]}, "workloads[0].batch: expected a "
                                                            "positive integer"),
    ({"workloads": [{"model": "gpt2-small", "wieght": 1}]}, "workloads[0].wieght: unknown key "
                                                            "(did you mean 'weight'?)"),
    ({"fidelity": "exact"}, "fidelity: expected one of roofline, tile, cycle"),
    ({"strategy": "annealing"}, "strategy.name: unknown strategy 'annealing'"),
    ({"strategy": {"name": "random", "sample": 3}}, "strategy.sample: unknown option "
                                                    "(did you mean 'samples'?)"),
    ({"strategy": {"name": "nsga2", "population": 2}}, "strategy.population: expected an "
                                                       "integer >= 4"),
    ({"axes": {"gpu.sm_count": {"min": 60, "max": 132}}}, "the grid needs steps"),
    ({"arch": "h200x"}, "s.yaml: arch: unknown preset 'h200x'"),
    ({"seed": -1}, "seed: expected a non-negative integer"),
])
def test_spec_errors_are_one_line_and_pinpoint(changes, expected):
    assert expected in error_of(**changes)


# --- values, ids, derived ------------------------------------------------------------------------
def test_quantities_are_canonical_and_point_ids_stable():
    a = spec_with(axes={"memory.hbm.bandwidth": ["2 TB/s", "3350 GB/s"]})
    b = spec_with(axes={"memory.hbm.bandwidth": [2e12, "3.35 TB/s"]})
    assert a.axes[0].values == b.axes[0].values == (2e12, 3.35e12)
    assert point_id({"x": 1, "y": 2.5}) == point_id({"y": 2.5, "x": 1})
    assert point_id({"x": 1}) != point_id({"x": 2})
    assert len(point_id({"x": 1})) == 16


def test_ranges_and_derived_kinds():
    spec = spec_with(
        axes={"gpu.sm_count": {"min": 66, "max": 132, "steps": 3},
              "memory.hbm.bandwidth": {"min": "1 TB/s", "max": "4 TB/s", "steps": 3,
                                       "log": True}},
        derived={"gpu.tensor_flops.fp16": "989.4e12 * gpu.sm_count / 132",
                 "area_mm2": "814 * gpu.sm_count / 144", "scenario.batch": "2"},
        constraints=["area_mm2 <= 800", "power_W < 1000"],
        metrics={"perf_per_area": "tokens_per_s / area_mm2"},
        objectives=[{"min": "tpot_s"}, {"max": "perf_per_area"}])
    assert spec.axes[0].grid_values() == (66, 99, 132)
    assert spec.axes[1].grid_values() == pytest.approx((1e12, 2e12, 4e12))
    assert [d.kind for d in spec.derived] == ["arch", "free", "scenario"]
    assert [c.text for c in spec.pre_constraints] == ["area_mm2 <= 800"]
    assert [c.text for c in spec.post_constraints] == ["power_W < 1000"]
    assert spec.objectives[1].sign == -1.0
    assert "ttft_s" in spec.metric_names and "power_W" in spec.metric_names


def test_fingerprint_changes_with_what_decides_results_only():
    a, b = spec_with(), spec_with(axes={"gpu.sm_count": [66, 100, 132],
                                        "memory.hbm.bandwidth": ["2 TB/s"]})
    assert a.fingerprint() == b.fingerprint()  # more or fewer axis values: same sweep
    c = spec_with(fidelity="tile")
    assert a.fingerprint()["fidelity"] != c.fingerprint()["fidelity"]
