"""Built-in presets are parsed with libyaml (arch._read_builtin); the bounded loader that
guards user files must read each of them to exactly the same data."""

from __future__ import annotations

import pytest
import yaml

from arch import PRESET_DIR, list_presets, read_yaml
from arch.safe_yaml import load_yaml_text


@pytest.mark.parametrize("name", list_presets())
def test_builtin_preset_parses_the_same_under_the_bounded_loader(name):
    text = (PRESET_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    assert read_yaml(PRESET_DIR / f"{name}.yaml") == load_yaml_text(text)


def test_user_files_keep_the_bounded_loader(tmp_path):
    # A duplicate key is accepted silently by plain PyYAML; a user file must be refused.
    text = "name: a\nname: b\n"
    assert yaml.safe_load(text) == {"name": "b"}
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(Exception, match="duplicate"):
        read_yaml(path)
