"""``xpusim op`` for every op kind: attention, collectives, vector ops; one-line errors."""

import json

import pytest

from xpusim.cli import main


def _op(capsys, *argv):
    assert main(["op", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_attention_flops_by_hand(capsys):
    # QK^T and PV: 2 x (2 b h q n d) FLOPs, h = 32 query heads (8 KV heads: grouped query)
    d = _op(capsys, "attention", "--arch", "h100", "--batch", "4", "--heads", "32",
            "--kv-heads", "8", "--q-len", "1", "--kv-len", "4096", "--head-dim", "128")
    assert d["flops"] >= 4 * 4 * 32 * 1 * 4096 * 128
    assert d["flops"] < 4 * 4 * 32 * 4096 * 128 * 1.2  # + softmax work
    # decode reads the K and V caches once: 2 x b x kv_heads x n x d x 2 bytes at least
    assert d["dram_bytes"] >= 2 * 4 * 8 * 4096 * 128 * 2
    assert d["latency_s"] >= d["dram_bytes"] / 3.35e12


def test_latent_attention_op_is_flash_mla(capsys):
    """``xpusim op attention --shared-kv``: DeepSeek's decode attention (one KV head of 576
    channels whose first 512 are its values) priced as FlashMLA: FLOPs 2 b h n (576 + 512),
    the cache read once (b n 576 x 2 B), the latency ``flash_mla``'s; one line for a value
    width wider than the shared keys."""
    from dataclasses import replace

    from arch import load_arch
    from sim.devices.base import device_for
    from sim.gpu.attention import AttentionShape, flash_mla

    d = _op(capsys, "attention", "--arch", "h100", "--batch", "64", "--heads", "16",
            "--kv-heads", "1", "--head-dim", "576", "--v-dim", "512", "--shared-kv",
            "--q-len", "1", "--kv-len", "16384")
    n = 16384
    assert d["flops"] >= 2 * 64 * 16 * n * (576 + 512)
    assert d["flops"] < 2 * 64 * 16 * n * (576 + 512) * 1.01   # + softmax work
    assert d["dram_bytes"] == pytest.approx(64 * n * 576 * 2, rel=0.01)
    sh = AttentionShape(batch=64, q_heads=16, kv_heads=1, q_len=1, kv_len=n, head_dim=576,
                        v_dim=512, kv_shared=True)
    hw = device_for(load_arch("h100"), "tile")._attn_hw("fp16")
    assert d["latency_s"] == pytest.approx(flash_mla(hw, sh)["time"], rel=1e-9)
    unshared = _op(capsys, "attention", "--arch", "h100", "--batch", "64", "--heads", "16",
                   "--kv-heads", "1", "--head-dim", "576", "--v-dim", "512", "--q-len", "1",
                   "--kv-len", str(n))
    assert unshared["dram_bytes"] > 1.8 * d["dram_bytes"]   # keys and values apart
    assert replace(sh, kv_shared=False).kv_bytes == 64 * n * (576 + 512) * 2
    assert main(["op", "attention", "--heads", "16", "--kv-heads", "1", "--head-dim", "64",
                 "--v-dim", "512", "--shared-kv", "--q-len", "1", "--kv-len", "64"]) == 2
    assert "--v-dim: 512 shared value channels exceed --head-dim 64" in \
        capsys.readouterr().err


def test_prefill_attention_is_compute_bound(capsys):
    d = _op(capsys, "attention", "--arch", "a100", "--heads", "32", "--q-len", "4096",
            "--kv-len", "4096")
    assert d["bound"] == "compute"
    assert d["flops"] / d["latency_s"] < 312e12


def test_allreduce_large_message_by_hand(capsys):
    """Ring all-reduce of 1 GiB among 8 A100s: 2 x 7/8 of the buffer at the NVLink's 300 GB/s
    x 0.78 (dgx-a100 preset), plus the Simple protocol's fixed costs: 2 us launch, 60 us per
    call (FITTED on Vidur's train rows) and 14 steps of 3.4 us + 0.053 us NVLink latency."""
    s = 1 << 30
    fixed = 2e-6 + 60e-6
    d = _op(capsys, "allreduce", "--arch", "dgx-a100", "--bytes", str(s), "--group", "8")
    assert d["latency_s"] == pytest.approx(
        2 * 7 / 8 * s / (300e9 * 0.78) + fixed + 14 * 3.453e-6, rel=1e-3)
    g = _op(capsys, "allgather", "--arch", "dgx-a100", "--bytes", str(s // 8), "--group", "8")
    assert g["latency_s"] == pytest.approx(
        7 * (s // 8) / (300e9 * 0.78) + fixed + 7 * 3.453e-6, rel=1e-3)


def test_h100_all_gather_and_reduce_scatter_against_nccl_tests(capsys):
    """What `xpusim op` gives on dgx-h100 for the public ring logs (validation/nccl, suite
    h100-collectives-nccltests; nothing fitted): 1 GiB gathered over 8 GPUs (each rank gives
    128 MiB) in 2.707 ms, 1 GiB reduce-scattered in 2.713 ms (in place)."""
    s = 1 << 30
    g = _op(capsys, "allgather", "--arch", "dgx-h100", "--bytes", str(s // 8), "--group", "8")
    r = _op(capsys, "reducescatter", "--arch", "dgx-h100", "--bytes", str(s), "--group", "8")
    assert g["latency_s"] == pytest.approx(2.70737e-3, rel=0.02)
    assert r["latency_s"] == pytest.approx(2.71253e-3, rel=0.02)
    # the same wire bytes: (p-1)/p of the gathered (reduced) buffer per rank
    assert g["latency_s"] == pytest.approx(r["latency_s"], rel=1e-9)


@pytest.mark.parametrize("kind", ["softmax", "layernorm", "rmsnorm", "gelu", "silu", "add", "mul"])
def test_vector_ops_stream_their_operands(capsys, kind):
    rows, cols = 4096, 8192
    d = _op(capsys, kind, "--arch", "a100", "--rows", str(rows), "--cols", str(cols))
    inputs = 2 if kind in ("add", "mul") else 1
    assert d["bytes"] >= (inputs + 1) * rows * cols * 2  # fp16 in and out
    # memory-bound: at least the bytes at the achievable HBM bandwidth (0.88 x 2039 GB/s)
    assert d["latency_s"] >= (inputs + 1) * rows * cols * 2 / (0.88 * 2039e9)
    assert d["bound"] == "memory"


@pytest.mark.parametrize("argv,needle", [
    (["allreduce", "--bytes", "100"], "--group"),
    (["attention", "--heads", "32", "--q-len", "1"], "--kv-len"),
    (["attention", "--heads", "32", "--kv-heads", "5", "--q-len", "1", "--kv-len", "8"],
     "--kv-heads"),
    (["allreduce", "--bytes", "100", "--group", "4"], "exceeds"),
    (["softmax", "--rows", "4", "--cols", "4", "--dtype", "fp7"], "--dtype"),
])
def test_bad_options_are_one_line_errors(capsys, argv, needle):
    assert main(["op", *argv, "--arch", "a100"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
