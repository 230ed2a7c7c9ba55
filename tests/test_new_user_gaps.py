"""Silent modelling gaps a new user hit (issue 16, item 8): each now speaks or is fixed."""

import json

import pytest

from workloads.hf_config import load_hf_config
from xpusim.cli import main


def test_prompt_beyond_trained_context_warns_once(capsys):
    code = main(["run", "--prompt", "8000", "--gen", "2", "--batch", "1",
                 "--fidelity", "roofline", "--json", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpusim: warning: --prompt")
    assert "8,001" in lines[0] and "4,096" in lines[0] and "trained context" in lines[0]


def test_prompt_inside_context_is_silent(capsys):
    assert main(["run", "--prompt", "64", "--gen", "2", "--batch", "1",
                 "--fidelity", "roofline", "--json", "--quiet"]) == 0
    assert capsys.readouterr().err == ""   # --quiet only silences the assumption count


def test_qwen2_biases_only_on_qkv(tmp_path):
    """Qwen2 (HF Qwen2Attention) has biases on q/k/v_proj, none on o_proj or the MLP."""
    cfg = {"model_type": "qwen2", "num_attention_heads": 8, "num_key_value_heads": 2,
           "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 3,
           "vocab_size": 1000, "max_position_embeddings": 4096, "tie_word_embeddings": False}
    path = tmp_path / "qwen" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    m = load_hf_config(path)
    d, q, kv, ff = 512, 512, 2 * 64, 1408
    attn = d * q + 2 * d * kv + q * d + (q + 2 * kv)  # weights + Q, K, V biases
    mlp = 3 * d * ff                                  # gate, up, down: no biases
    norms = 2 * d                                     # two RMSNorm gains
    expected = 1000 * d + 3 * (attn + mlp + norms) + d + 1000 * d
    assert m.param_count() == expected


@pytest.mark.parametrize("preset", ["neupims-npu", "neupims"])
def test_neupims_static_energy_is_counted(capsys, preset):
    assert main(["run", "--arch", preset, "--model", "gpt3-7b", "--batch", "4", "--gen", "4",
                 "--prompt", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # 8 arrays x 128 x 128 MACs x 0.180192 pJ + 1,024 lanes x 0.0846 pJ, at 1 GHz (>= 23.7 W)
    assert out["static_energy_J"] >= 23.7 * out["latency_s"] * 0.999


def test_harness_paths_from_the_docs_work_from_any_folder(tmp_path, monkeypatch):
    from arch import load_arch

    monkeypatch.chdir(tmp_path)
    arch = load_arch("xpusim/validation/harness/splitwise-dgx-a100.yaml")
    assert arch.type == "system" or arch.name
    with pytest.raises(Exception, match="no-such"):
        load_arch("xpusim/validation/harness/no-such.yaml")
