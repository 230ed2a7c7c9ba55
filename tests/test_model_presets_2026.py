"""The presets of newer families (``--model qwen3.5-27b`` ...): each is its config.json as the
reader takes it, field for field but its name and source."""

from __future__ import annotations

import pytest
from test_hf_heterogeneous import SUPER, nas
from test_hf_more_families import GLM4_9B, MINISTRAL_8B
from test_hybrid_mamba2 import GRANITE_H_TINY, QWEN3_NEXT, QWEN35_27B

from workloads.hf_config import model_from_hf_dict
from workloads.models import get_model

CONFIGS = {"qwen3.5-27b": QWEN35_27B, "qwen3-next-80b-a3b": QWEN3_NEXT,
           "granite-4.0-h-tiny": GRANITE_H_TINY,
           "llama-3.3-nemotron-super-49b": nas(SUPER, 8192, 64),
           "ministral-8b": MINISTRAL_8B, "glm-4-9b": GLM4_9B}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_presets_are_their_config_json(name):
    preset = get_model(name)
    read = model_from_hf_dict(CONFIGS[name], f"{name}/config.json")
    assert {k: v for k, v in preset.__dict__.items() if k not in ("name", "source")} == \
        {k: v for k, v in read.__dict__.items() if k not in ("name", "source")}


def test_alias():
    assert get_model("nemotron-super-49b").param_count() == 49_867_145_216
