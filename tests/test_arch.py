"""Arch presets load, cite a source for every value, round-trip, and reject bad input."""

import math
from pathlib import Path

import pytest
import yaml

import arch
from arch import SpecError, arch_from_dict, list_presets, load_arch
from arch.schema import leaf_paths

GPU_PRESETS = ("a100", "a100-40gb", "h100", "a6000", "dgx-a100", "dgx-h100")


def test_required_presets_exist():
    assert set(GPU_PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", list_presets())
def test_every_parameter_has_a_source(name):
    a = load_arch(name)
    missing = set(leaf_paths(a.sections)) - set(a.provenance)
    assert not missing, f"{name}: parameters without a source: {sorted(missing)}"
    assert all(isinstance(s, str) and len(s) > 8 for s in a.provenance.values())


def _close(x, y):
    if isinstance(x, float):
        return math.isclose(x, y, rel_tol=1e-12)
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_close(a, b) for a, b in zip(x, y, strict=True))
    if hasattr(x, "__dataclass_fields__"):
        return _close(vars(x), vars(y))
    return x == y


@pytest.mark.parametrize("name", list_presets())
def test_show_round_trips(name):
    a = load_arch(name)
    text = yaml.safe_dump(a.to_dict(), sort_keys=False)
    b = arch_from_dict(yaml.safe_load(text), file="shown.yaml")
    assert _close(a.sections, b.sections)
    assert a.provenance == b.provenance


def test_spec_sheet_values():
    a100, h100 = load_arch("a100"), load_arch("h100")
    assert a100.gpu.sm_count == 108 and h100.gpu.sm_count == 132
    assert a100.memory["hbm"].bandwidth == 2.039e12
    assert load_arch("a100-40gb").memory["hbm"].bandwidth == 1.555e12
    assert h100.memory["hbm"].capacity == 80 * 2**30
    assert h100.gpu.tensor_flops["bf16"] == pytest.approx(989.4e12)
    assert load_arch("dgx-h100").components["gpu"].count == 8


def test_extends_overrides_only_what_it_names():
    base, derived = load_arch("a100"), load_arch("a100-40gb")
    assert derived.gpu == base.gpu
    assert derived.memory["hbm"].capacity == 40 * 2**30
    assert derived.provenance["memory.hbm.capacity"] != base.provenance["memory.hbm.capacity"]


H100 = "name: x\ntype: gpu\nextends: h100\n"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "chip.yaml"
    p.write_text(text)
    return p


def _bad(tmp_path, text):
    with pytest.raises(SpecError) as exc:
        load_arch(_write(tmp_path, text))
    msg = str(exc.value)
    assert "\n" not in msg and "chip.yaml" in msg
    return msg


def test_unknown_key_did_you_mean(tmp_path):
    msg = _bad(tmp_path, H100 + "gpu:\n  sm_cuont: 10\n")
    assert "gpu.sm_cuont" in msg and "did you mean 'sm_count'" in msg


def test_wrong_type(tmp_path):
    msg = _bad(tmp_path, H100 + "gpu:\n  sm_count: many\n")
    assert "gpu.sm_count" in msg and "integer" in msg


def test_negative_size(tmp_path):
    msg = _bad(tmp_path, H100 + "memory:\n  hbm:\n    capacity: -8 GiB\n")
    assert "memory.hbm.capacity" in msg and "> 0" in msg


def test_bad_unit(tmp_path):
    msg = _bad(tmp_path, H100 + "memory:\n  hbm:\n    bandwidth: 3 TB\n")
    assert "memory.hbm.bandwidth" in msg and "B/s" in msg


def test_missing_required(tmp_path):
    msg = _bad(tmp_path, "name: x\ntype: gpu\ngpu:\n  sm_count: 4\n")
    assert "gpu.clock" in msg or "memory" in msg


def test_yaml_syntax_error(tmp_path):
    msg = _bad(tmp_path, "name: x\ntype: gpu\ngpu: [1, 2\n")
    assert "YAML syntax error" in msg and "line" in msg


def test_unknown_type(tmp_path):
    msg = _bad(tmp_path, "name: x\ntype: gpuu\n")
    assert "type" in msg and "did you mean 'gpu'" in msg


def test_mapping_source_must_be_text(tmp_path):
    # a table of values (op -> cycles) cites its source as text; a number there is rejected
    # with the field named (fuzz_inputs.py found it passing into the provenance as an int)
    msg = _bad(tmp_path, "extends: fusemax\nnpu:\n  op_cycles:\n    source: 1024\n")
    assert "npu.op_cycles.source" in msg and "expected a text citation" in msg


def test_cross_section_reference(tmp_path):
    msg = _bad(tmp_path, H100 + "energy:\n  memory:\n    dram: 3 pJ/bit\n")
    assert "energy.memory.dram" in msg


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_arch(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="did you mean 'h100'"):
        load_arch("h10")


def test_sweep_style_edit_of_raw_data():
    data, label = arch.load_arch_data("h100")
    data["gpu"]["sm_count"] = 66
    a = arch_from_dict(data, label)
    assert a.gpu.sm_count == 66


def test_a_section_read_as_an_attribute_is_kept_and_replace_makes_a_new_arch():
    """``arch.memory`` is the ``memory`` section, kept on the instance at its first read (a
    second read no longer goes through ``__getattr__``); :meth:`Arch.replace` gives a new arch
    whose attribute is its new section, the old arch keeps its own; a missing section still
    raises AttributeError naming it; a pickled arch reads back equal, with the same section."""
    import dataclasses
    import pickle

    a = arch_from_dict(load_arch("h100").to_dict())   # a fresh object
    assert "memory" not in a.__dict__
    first = a.memory
    assert first is a.sections["memory"] and a.__dict__["memory"] is first
    hbm = dataclasses.replace(first["hbm"], bandwidth=1e12)
    b = a.replace(memory={**first, "hbm": hbm})
    assert b.memory["hbm"].bandwidth == 1e12 and a.memory["hbm"] is first["hbm"]
    with pytest.raises(AttributeError, match="no section 'dataflow'"):
        a.dataflow  # noqa: B018
    c = pickle.loads(pickle.dumps(a))
    assert c == a and c.memory == a.memory
