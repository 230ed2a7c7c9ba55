"""Unit strings parse once into SI floats of the field's canonical unit."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arch.units import UnitError, format_quantity, parse_quantity


@pytest.mark.parametrize("text,unit,expected", [
    ("3.35 TB/s", "B/s", 3.35e12),
    ("2039 GB/s", "B/s", 2.039e12),
    ("1.5 ns", "s", 1.5e-9),
    ("4 us", "s", 4e-6),
    ("80 GiB", "B", 80 * 2**30),
    ("164 KiB", "B", 164 * 1024),
    ("1.98 GHz", "Hz", 1.98e9),
    ("989.4 TFLOP/s", "FLOP/s", 989.4e12),
    ("312 TFLOPS", "FLOP/s", 312e12),
    ("624 TOP/s", "FLOP/s", 624e12),
    ("3.9 pJ/bit", "J/bit", 3.9e-12),
    ("0.47 pJ/bit", "J/bit", 4.7e-13),
    ("1 pJ/B", "J/bit", 0.125e-12),
    ("200 Gb/s", "B/s", 25e9),
    ("700 W", "W", 700.0),
    ("826 mm2", "m2", 826e-6),
    ("16 GT/s", "T/s", 16e9),
    (42, "B", 42.0),
])
def test_parse(text, unit, expected):
    assert math.isclose(parse_quantity(text, unit), expected, rel_tol=1e-12)


@pytest.mark.parametrize("text,unit", [
    ("3.35 TB", "B/s"),        # wrong dimension
    ("fast", "B/s"),           # no number
    ("3 furlongs", "s"),       # unknown unit
    ("1.5 GHz", "s"),
    ("12 GB//s", "B/s"),
    (True, "B"),
])
def test_bad_quantities(text, unit):
    with pytest.raises(UnitError):
        parse_quantity(text, unit)


@given(st.floats(min_value=1e-15, max_value=1e18, allow_nan=False),
       st.sampled_from(["B/s", "s", "Hz", "FLOP/s", "J/bit", "W"]))
def test_format_parses_back(value, unit):
    assert math.isclose(parse_quantity(format_quantity(value, unit), unit), value, rel_tol=1e-12)


def test_binary_sizes_print_binary():
    assert format_quantity(80 * 2**30, "B") == "80 GiB"
