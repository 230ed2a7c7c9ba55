"""`xpusim check` runs the FPGA's low-bit datapaths as rows: every linear op of an AccLLM layer
on the W2A8 2:4 datapath (int2 weights, fp16 group scales, int8 activations), decode attention
over the int4 KV cache; FlightLLM with int4 dense weights and an int8 KV cache. A doubled group
scale, a dropped 2:4 block or a doubled KV scale injected into the device path fails the
check (exit code 1) at exactly the row it was injected into."""

import json

import numpy as np
import pytest

import sim.functional.devices.fpga as fpga
from xpusim.cli import main

LINEAR = ("qkv_proj", "o_proj", "ffn_up", "ffn_down")
ACCLLM = ["check", "--arch", "accllm-u280", "--weights", "int2", "--group", "128",
          "--kv-dtype", "int4", "--act-dtype", "int8", "--sparsity", "2:4", "--attention",
          "flash", "--max-width", "512", "--prompt", "32", "--json", "--quiet"]


def _run(capsys, argv):
    rc = main(argv)
    out = json.loads(capsys.readouterr().out)
    return rc, {(r["phase"], r["op"]): r for r in out["ops"]}


def test_accllm_check_lists_lowbit_rows_and_passes(capsys):
    rc, rows = _run(capsys, ACCLLM)
    assert rc == 0
    for phase in ("prefill", "decode"):
        for op in LINEAR:
            r = rows[(phase, op)]
            assert r["passed"], r
            assert r["detail"]["mapping"] == "low-bit A8 2:4" and r["detail"]["group"] == 128
            # the fp16 output rounding is the only visible error: at most 1/2 ulp of fp16
            # relative (2^-11) once the fp32 datapath's allowance is spent
            assert r["max_rel"] <= 2.0 ** -11 * 1.01
    att = rows[("decode", "attention")]
    assert att["passed"] and att["detail"]["mapping"] == "int4 KV decode"
    assert att["detail"]["kv_group"] == 128
    assert rows[("prefill", "attention")]["detail"]["mapping"] == "1-pass"


def test_flightllm_check_int4_dense_weights_int8_kv(capsys):
    argv = ["check", "--arch", "flightllm-u280", "--weights", "int4", "--group", "128",
            "--kv-dtype", "int8", "--act-dtype", "int8", "--attention", "flash", "--phase",
            "decode", "--max-width", "512", "--prompt", "32", "--json", "--quiet"]
    rc, rows = _run(capsys, argv)
    assert rc == 0
    assert rows[("decode", "ffn_down")]["detail"]["mapping"] == "low-bit A8"
    assert rows[("decode", "attention")]["detail"]["mapping"] == "int8 KV decode"


def _inject_linear(monkeypatch, call: int, change):
    """Wrap the device's W2A8 kernel so that its ``call``-th use (0-based) sees ``change``d
    compressed weights or scales."""
    real = fpga.lowbit_linear
    count = {"n": 0}

    def wrapped(xq, xs, values, pos, scales, *rest):
        if count["n"] == call:
            values, scales = change(values.copy(), scales.copy())
        count["n"] += 1
        return real(xq, xs, values, pos, scales, *rest)

    monkeypatch.setattr(fpga, "lowbit_linear", wrapped)


def _decode_failures(capsys):
    argv = [a for a in ACCLLM] + ["--phase", "decode"]
    rc, rows = _run(capsys, argv)
    return rc, sorted(op for (_, op), r in rows.items() if not r["passed"])


def test_doubled_group_scale_fails_its_row(monkeypatch, capsys):
    def double(values, scales):
        scales[1, 7] *= 2                 # one group's fp16 scale, one output column
        return values, scales

    _inject_linear(monkeypatch, 1, double)  # decode: qkv_proj is call 0, o_proj call 1
    assert _decode_failures(capsys) == (1, ["o_proj"])


def test_dropped_sparse_block_fails_its_row(monkeypatch, capsys):
    def drop(values, scales):
        col = values[:, 3]
        block = int(np.flatnonzero(col)[0]) // 2   # the first 2:4 block holding a weight
        values[2 * block:2 * block + 2, 3] = 0
        return values, scales

    _inject_linear(monkeypatch, 3, drop)    # ffn_down
    assert _decode_failures(capsys) == (1, ["ffn_down"])


def test_doubled_kv_scale_fails_attention(monkeypatch, capsys):
    real = fpga.kv4_decode_attention

    def wrapped(q, kq, ks, vq, vs, scale):
        vs = vs.copy()
        vs[0, 5, 0] *= 2                  # token 5's V scale in KV head 0
        return real(q, kq, ks, vq, vs, scale)

    monkeypatch.setattr(fpga, "kv4_decode_attention", wrapped)
    assert _decode_failures(capsys) == (1, ["attention"])


def test_unfused_decode_qk_av_run_over_the_int4_cache(monkeypatch, capsys):
    argv = [a for a in ACCLLM if a not in ("--attention", "flash")] + ["--phase", "decode"]
    rc, rows = _run(capsys, argv)
    assert rc == 0
    for op in ("qk", "av"):
        assert rows[("decode", op)]["detail"]["mapping"] == "int4 KV decode"
    real = fpga._kv_scores_kernel

    def wrapped(q, kq, ks, group, out):
        ks = ks.copy()
        ks[0, 5, 0] *= 2                  # token 5's K scale in KV head 0
        real(q, kq, ks, group, out)

    monkeypatch.setattr(fpga, "_kv_scores_kernel", wrapped)
    rc, rows = _run(capsys, argv)
    assert rc == 1
    assert sorted(op for (_, op), r in rows.items() if not r["passed"]) == ["qk"]


@pytest.mark.parametrize("extra, needle", [
    (["--sparsity", "3:2"], "--sparsity"),
    (["--act-dtype", "int8"], "--act-dtype"),
])
def test_bad_options_are_one_line_errors(capsys, extra, needle):
    rc = main(["check", "--arch", "accllm-u280", "--phase", "decode", "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and "\n" not in err and "Traceback" not in err
