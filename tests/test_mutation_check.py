"""benchmarks/mutation_check.py: its spec checks, test selection and one-place edits (without
running a mutant here: that edits the tree the suite runs from)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutation_check",
                                               ROOT / "benchmarks" / "mutation_check.py")
mc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mc)


@pytest.mark.parametrize("spec, message", [
    ("- id: a\n  file: sim/engine.py\n  find: x\n",
     "mutant 0: field 'replace' must be a string"),
    ("- {id: a, file: sim/engine.py, find: x, replace: y, count: 0}\n",
     "field 'count' must be a positive integer"),
    ("id: a\n", "expected a list of mutants"),
    ("- {id: a, file: sim/nowhere.py, find: x, replace: y}\n",
     "field 'file': no file sim/nowhere.py"),
    ("- {id: a, file: sim/engine.py, find: x, replace: y, tests: t.py}\n",
     "field 'tests' must be a list"),
    ("- {id: a, file: sim/engine.py, find: x, replace: y, tests: [tests/no.py]}\n",
     "field 'tests': no tests/no.py"),
    (None, "cannot read the spec"),   # no file at all
])
def test_spec_fields_are_checked(tmp_path, spec, message):
    path = tmp_path / "spec.yaml"
    if spec is not None:
        path.write_text(spec)
    with pytest.raises(SystemExit, match=message):
        mc.load_spec(path)


def test_tests_naming_a_module_are_found_by_dotted_path_or_from_import():
    found = mc.tests_naming("sim/bound_kernel.py")   # imported from its package there
    assert "tests/test_bound_kernel.py" in found
    assert "tests/test_gpu_model.py" not in found
    assert "tests/test_stream_order.py" in mc.tests_naming("sim/stream_order.py")


def test_a_find_that_does_not_occur_as_often_as_said_edits_nothing():
    path = ROOT / "sim" / "stream_order.py"
    before = path.read_bytes()
    row = mc.run_mutant({"id": "x", "file": "sim/stream_order.py", "find": "np.", "replace":
                         "numpy."}, timeout=1)
    assert row["status"].startswith("bad spec: 'find' occurs")
    assert path.read_bytes() == before


def test_a_bad_spec_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "spec.yaml"
    bad.write_text("- {id: a, file: sim/nowhere.py, find: x, replace: y}\n")
    assert mc.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "field 'file'" in err and "Traceback" not in err
