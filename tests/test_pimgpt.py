"""PIM-GPT reproduction: batch-1 decode on DRAM-PIM + ASIC vs the GPU model."""

from __future__ import annotations

import json


def test_reproduce_pim_gpt_quick(capsys):
    from xpusim.cli import main

    assert main(["reproduce", "pim-gpt", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "pim-gpt" and len(out["results"]) == 8
    targets = [r["target"] for r in out["results"]]
    assert targets[:4] == [41.0, 137.0, 123.0, 383.0] and targets[4:] == [41.0, 137.0] * 2
    assert "T4, eager PyTorch" in out["results"][0]["claim"]
    assert any("GDDR6-AiM" in a for a in out["assumptions"])
    for p in out["points"]:
        # in-bank GEMVs read weights at internal bandwidth: faster and cheaper than any GPU
        for gpu in ("t4_eager", "t4_ideal", "a100_ideal"):
            assert p[f"{gpu}_speedup"] > 1.0 and p[f"{gpu}_energy_efficiency"] > 1.0
        # the host-issued eager stack is never faster than the same T4 with kernels back to back
        assert p["t4_eager_ms_per_token"] >= p["t4_ideal_ms_per_token"]
        assert p["pim_ms_per_token"] > 0
    small, large = out["points"][0], out["points"][-1]
    assert large["pim_ms_per_token"] > small["pim_ms_per_token"]


def test_t4_preset_and_eager_harness_load():
    from arch import load_arch
    from xpusim.reproductions.pim_gpt import T4_HARNESS, harness_path

    t4 = load_arch("t4")
    assert t4.memory["hbm"].bandwidth == 320e9 and t4.gpu.sm_count == 40
    for leaf in ("gpu.sm_count", "gpu.tensor_flops.fp16", "memory.hbm.bandwidth"):
        assert t4.provenance.get(leaf), leaf
    eager = load_arch(harness_path(T4_HARNESS))
    assert eager.software.mode == "async" and eager.gpu.sm_count == 40


def test_gpt3_shapes_match_published_sizes():
    from xpusim.reproductions.pim_gpt import gpt3_models

    sizes = {m.name: m.param_count() / 1e9 for m in gpt3_models()}
    published = {"gpt3-small": 0.125, "gpt3-medium": 0.35, "gpt3-large": 0.76, "gpt3-xl": 1.3}
    for name, p in published.items():
        assert abs(sizes[name] - p) / p < 0.1, (name, sizes[name])
