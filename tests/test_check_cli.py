"""``xpusim check``: the error table for every device model, JSON shape, exit codes."""

from __future__ import annotations

import json

import pytest

from xpusim.cli import main

SMALL = ["--max-width", "256", "--prompt", "16"]
KEYS = {"op", "device", "dtype", "max_abs", "max_rel", "max_ulp", "tolerance", "passed"}


def run_json(capsys, *args: str) -> tuple[int, dict]:
    rc = main(["check", *args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("arch,extra", [
    ("a100", []),                              # gpu
    ("h100", ["--attention", "flash"]),        # gpu, FlashAttention-2 cascade
    ("neupims-npu", []),                       # npu, weight-stationary folds
    ("fusemax", ["--attention", "flash"]),     # npu, output-stationary, FuseMax 1-pass
    ("pim-hbm-pim", []),                       # pim, fp16 SIMD lanes
    ("neupims", []),                           # npu_pim
    ("duplex", []),                            # xpu_pim
])
def test_every_device_class_passes(capsys, arch, extra):
    rc, out = run_json(capsys, "--arch", arch, *SMALL, *extra)
    assert rc == 0 and out["passed"] is True
    assert out["ops"] and all(KEYS <= set(row) for row in out["ops"])
    assert {row["phase"] for row in out["ops"]} == {"prefill", "decode"}
    for row in out["ops"]:
        assert row["passed"] and row["max_ulp"] <= row["tolerance"]
        assert row["device"].startswith(arch + ":")


def test_moe_and_weight_only_models(capsys):
    rc, out = run_json(capsys, "--arch", "a100", "--model", "mixtral-8x7b", *SMALL,
                       "--phase", "prefill", "--ops", "router", "router_softmax", "ffn_up",
                       "ffn_down", "moe_combine")
    assert rc == 0 and [r["op"] for r in out["ops"]] == ["router", "router_softmax", "ffn_up",
                                                         "ffn_down", "moe_combine"]
    rc, out = run_json(capsys, "--arch", "a100", *SMALL, "--weights", "int4", "--group", "32",
                       "--ops", "qkv_proj,ffn_down")
    assert rc == 0 and len(out["ops"]) == 4


def test_text_table(capsys):
    assert main(["check", "--arch", "a100", *SMALL, "--phase", "decode",
                 "--model", "gpt2-small"]) == 0
    text = capsys.readouterr().out
    assert "max_ulp" in text and "ln_attn" in text and text.strip().endswith("passed")


def test_a_failing_mapping_exits_nonzero(capsys, monkeypatch):
    from sim.functional.devices.gpu import GpuFunctional

    original = GpuFunctional.plan_matmul

    def dropping(self, op, dtype, shape):
        plan = original(self, op, dtype, shape)
        return plan.mutated(items=plan.items[1:])

    monkeypatch.setattr(GpuFunctional, "plan_matmul", dropping)
    rc, out = run_json(capsys, "--arch", "a100", *SMALL, "--phase", "prefill",
                       "--ops", "qkv_proj", "ln_attn")
    assert rc == 1 and out["passed"] is False
    rows = {r["op"]: r for r in out["ops"]}
    assert rows["qkv_proj"]["passed"] is False and rows["qkv_proj"]["max_ulp"] is None
    assert rows["ln_attn"]["passed"] is True


@pytest.mark.parametrize("args,needle", [
    (["--ops", "nonsense"], "--ops"),
    (["--arch", "no-such-arch"], "no-such-arch"),
    (["--model", "no-such-model"], "--model"),
    (["--dtype", "fp7"], "--dtype"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, needle):
    assert main(["check", *SMALL, *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
