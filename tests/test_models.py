"""Model presets match published parameter counts; config.json files load or fail clearly."""

import json

import pytest

from workloads.errors import WorkloadError
from workloads.hf_config import load_hf_config
from workloads.models import get_model, list_models

# Published parameter counts (model cards, papers), rounded as published.
PUBLISHED = {
    "llama2-7b": 6.74e9, "llama2-13b": 13.02e9, "llama2-70b": 68.98e9,
    "llama3-8b": 8.03e9, "llama3-70b": 70.55e9, "mixtral-8x7b": 46.7e9,
    "bloom-176b": 176.2e9, "gpt3-175b": 174.6e9, "opt-13b": 12.85e9, "opt-30b": 29.97e9,
    "opt-66b": 65.7e9, "gpt2-small": 124.44e6, "gpt2-medium": 354.8e6, "gpt2-large": 774.0e6,
    "gpt2-xl": 1.5576e9,
}


@pytest.mark.parametrize("name,count", sorted(PUBLISHED.items()))
def test_param_counts_match_published(name, count):
    got = get_model(name).param_count()
    assert got == pytest.approx(count, rel=2e-3), (name, got)  # published figures are rounded


def test_exact_counts():
    assert get_model("llama2-7b").param_count() == 6_738_415_616
    assert get_model("llama2-70b").param_count() == 68_976_648_192
    assert get_model("gpt2-small").param_count() == 124_439_808
    assert get_model("mixtral-8x7b").active_param_count() == pytest.approx(12.9e9, rel=0.01)


def test_every_preset_has_source_and_shape():
    for name in list_models():
        m = get_model(name)
        assert m.source and m.n_heads % m.n_kv_heads == 0 and m.head_dim * m.n_heads > 0


def test_neupims_shapes():
    for name, (d, h, L) in {"gpt3-7b": (4096, 32, 32), "gpt3-13b": (5120, 40, 40),
                            "gpt3-30b": (7168, 56, 48), "gpt3-175b": (12288, 96, 96)}.items():
        m = get_model(name)
        assert (m.d_model, m.n_heads, m.n_layers) == (d, h, L)


def test_unknown_model_did_you_mean():
    with pytest.raises(WorkloadError, match="did you mean 'llama2-7b'"):
        get_model("llama2-7")


LLAMA_CFG = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "vocab_size": 32000, "max_position_embeddings": 4096, "tie_word_embeddings": False}


def test_hf_config_llama(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_CFG))
    m = load_hf_config(tmp_path / "config.json")
    assert m.param_count() == get_model("llama2-7b").param_count()
    assert load_hf_config(tmp_path).param_count() == m.param_count()  # directory works too


def test_hf_config_mixtral_and_gpt2(tmp_path):
    mix = {**LLAMA_CFG, "model_type": "mixtral", "intermediate_size": 14336,
           "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
           "max_position_embeddings": 32768}
    (tmp_path / "m.json").write_text(json.dumps(mix))
    assert load_hf_config(tmp_path / "m.json").param_count() == \
        get_model("mixtral-8x7b").param_count()
    gpt2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
            "vocab_size": 50257, "n_positions": 1024}
    (tmp_path / "g.json").write_text(json.dumps(gpt2))
    assert load_hf_config(tmp_path / "g.json").param_count() == 124_439_808


@pytest.mark.parametrize("content,needle", [
    ("{not json", "malformed JSON"),
    ('{"hidden_size": 10}', "model_type"),
    ('{"model_type": "llama", "num_attention_heads": 4, "hidden_size": "big"}', "hidden_size"),
    ('{"model_type": "gpt2", "n_embd": 64, "n_layer": 0, "n_head": 4}', "n_layer"),
    ('{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, '
     '"num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 4, '
     '"vocab_size": 100}', "num_key_value_heads"),
    ('{"model_type": "llama", "hidden_size": 64}', "num_attention_heads"),
    ('{"model_type": "xlnet"}', "unsupported model_type"),
    ('[1, 2]', "JSON object"),
])
def test_malformed_config(tmp_path, content, needle):
    p = tmp_path / "config.json"
    p.write_text(content)
    with pytest.raises(WorkloadError) as exc:
        load_hf_config(p)
    assert needle in str(exc.value) and "config.json" in str(exc.value)
    assert "\n" not in str(exc.value)
