"""ONNX graphs become traces: a small transformer built with onnx.helper has exactly the FLOPs and
bytes of the config-built trace of the same model; unsupported nodes and bad files fail in one
line (exit 2)."""

import dataclasses

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from workloads.errors import WorkloadError  # noqa: E402
from workloads.models import ModelConfig  # noqa: E402
from workloads.onnx_import import load_onnx_model, trace_onnx  # noqa: E402
from workloads.scenario import Scenario  # noqa: E402
from workloads.tracer import trace_model  # noqa: E402

F16 = TensorProto.FLOAT16


def _w(name, shape, dtype=np.float16):
    return numpy_helper.from_array(np.zeros(shape, dtype=dtype), name)


def _proj(inits, bias, x_in, w, out, width, mm_name, add_name):
    """MatMul, and with ``bias`` an Add of a [width] bias."""
    if not bias:
        return [helper.make_node("MatMul", [x_in, w], [out], name=mm_name)]
    inits.append(_w(w + "_b", (width,)))
    return [helper.make_node("MatMul", [x_in, w], [out + "_mm"], name=mm_name),
            helper.make_node("Add", [out + "_mm", w + "_b"], [out], name=add_name)]


def build_transformer(path, layers=2, d=64, heads=4, ff=256, vocab=512, act="Gelu",
                      named=True, scale=False, extra=None, opset=20, bias=False):
    """A pre-norm decoder (fused QKV, no position embedding; ``bias``: each projection followed
    by an Add of its bias) as torch.onnx would export it, with the LM head on each request's
    last token."""
    hd = heads and d // heads
    nodes, inits = [], [_w("embed", (vocab, d))]
    inits += [numpy_helper.from_array(np.array([0, 0, heads, hd], np.int64), "hshape"),
              numpy_helper.from_array(np.array([0, 0, d], np.int64), "dshape"),
              numpy_helper.from_array(np.array([d, d, d], np.int64), "split3"),
              numpy_helper.from_array(np.array(-1, np.int64), "last"),
              numpy_helper.from_array(np.array(0.125, np.float16), "scale")]

    def name(i, s):
        return f"/model/layers.{i}/{s}" if named else ""

    nodes.append(helper.make_node("Gather", ["embed", "input_ids"], ["x0"],
                                  name="/model/embed_tokens/Gather" if named else ""))
    x = "x0"
    for i in range(layers):
        p = f"l{i}_"
        inits += [_w(p + "g1", (d,)), _w(p + "b1", (d,)), _w(p + "wqkv", (d, 3 * d)),
                  _w(p + "wo", (d, d)), _w(p + "g2", (d,)), _w(p + "b2", (d,)),
                  _w(p + "wup", (d, ff)), _w(p + "wdown", (ff, d))]
        mk = helper.make_node

        def proj(x_in, w, out, label, width, i=i, inits=inits):
            return _proj(inits, bias, x_in, w, out, width, name(i, label + "/MatMul"),
                         name(i, label + "/Add"))

        nodes += [
            mk("LayerNormalization", [x, p + "g1", p + "b1"], [p + "h"], axis=-1,
               name=name(i, "input_layernorm")),
            *proj(p + "h", p + "wqkv", p + "qkv", "attn/qkv", 3 * d),
            mk("Split", [p + "qkv", "split3"], [p + "q", p + "k", p + "v"], axis=-1,
               name=name(i, "attn/Split")),
        ]
        for t in "qkv":
            nodes.append(mk("Reshape", [p + t, "hshape"], [p + t + "r"],
                            name=name(i, f"attn/{t}/Reshape")))
        nodes += [
            mk("Transpose", [p + "qr"], [p + "qh"], perm=[0, 2, 1, 3], name=name(i, "attn/T1")),
            mk("Transpose", [p + "kr"], [p + "kt"], perm=[0, 2, 3, 1], name=name(i, "attn/T2")),
            mk("Transpose", [p + "vr"], [p + "vh"], perm=[0, 2, 1, 3], name=name(i, "attn/T3")),
            mk("MatMul", [p + "qh", p + "kt"], [p + "s0"], name=name(i, "attn/qk/MatMul")),
        ]
        s = p + "s0"
        if scale:
            nodes.append(mk("Mul", [s, "scale"], [p + "s1"], name=name(i, "attn/Mul")))
            s = p + "s1"
        nodes += [
            mk("Softmax", [s], [p + "pr"], axis=-1, name=name(i, "attn/Softmax")),
            mk("MatMul", [p + "pr", p + "vh"], [p + "ctx"], name=name(i, "attn/av/MatMul")),
            mk("Transpose", [p + "ctx"], [p + "ct"], perm=[0, 2, 1, 3], name=name(i, "attn/T4")),
            mk("Reshape", [p + "ct", "dshape"], [p + "c2"], name=name(i, "attn/Reshape")),
            *proj(p + "c2", p + "wo", p + "o", "attn/o_proj", d),
            mk("Add", [x, p + "o"], [p + "x1"], name=name(i, "Add")),
            mk("LayerNormalization", [p + "x1", p + "g2", p + "b2"], [p + "h2"], axis=-1,
               name=name(i, "post_attention_layernorm")),
            *proj(p + "h2", p + "wup", p + "u", "mlp/up", ff),
            mk(act, [p + "u"], [p + "a"], name=name(i, "mlp/act")),
            *proj(p + "a", p + "wdown", p + "dn", "mlp/down", d),
            mk("Add", [p + "x1", p + "dn"], [p + "x2"], name=name(i, "Add_1")),
        ]
        x = p + "x2"
    inits += [_w("gf", (d,)), _w("bf", (d,)), _w("wlm", (d, vocab))]
    nodes += [helper.make_node("Gather", [x, "last"], ["xl"], axis=1, name="/model/Gather_last"),
              helper.make_node("LayerNormalization", ["xl", "gf", "bf"], ["hf"], axis=-1,
                               name="/model/norm"),
              helper.make_node("MatMul", ["hf", "wlm"], ["logits"], name="/lm_head/MatMul")]
    nodes += extra or []
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                                      ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", F16, ["batch", vocab])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return path


def _config(act="gelu", layers=2, d=64, heads=4, ff=256, vocab=512) -> ModelConfig:
    return ModelConfig(name="tiny", family="tiny", n_layers=layers, d_model=d, n_heads=heads,
                       n_kv_heads=heads, d_ff=ff, vocab_size=vocab, max_positions=4096,
                       activation=act, position="alibi", bias=False, tied_embeddings=False)


def _sums(trace):
    by = {}
    for op in trace.ops:
        k = (op.kind, op.layer)
        f, b = by.get(k, (0.0, 0.0))
        by[k] = (f + op.flops, b + op.bytes)
    return by


@pytest.mark.parametrize("act,batch,prompt", [("Gelu", 2, 32), ("Relu", 1, 128)])
def test_onnx_trace_matches_config_trace(tmp_path, act, batch, prompt):
    path = build_transformer(tmp_path / "tiny.onnx", act=act)
    model = load_onnx_model(path)
    sc = Scenario(batch=batch, prompt_len=prompt, gen_len=1)
    got = trace_onnx(model, sc)
    want = trace_model(_config(act.lower()), sc)
    # same FLOPs and bytes, overall and per (kind, layer): layers and the head are recognised
    assert got.total_flops == want.total_flops
    assert got.total_bytes == want.total_bytes
    assert _sums(got) == _sums(want)
    assert sorted(op.kind for op in got.ops) == sorted(op.kind for op in want.ops)
    assert [op.name for op in got.ops if op.name == "lm_head"] == ["lm_head"]
    assert {op.phase for op in got.ops} == {"prefill"}
    # shape summary: 2 layers, d 64, 4 heads of 16, d_ff 256, vocab 512, weights counted
    assert (model.n_layers, model.d_model, model.n_heads, model.head_dim, model.d_ff,
            model.vocab_size) == (2, 64, 4, 16, 256, 512)
    # every floating-point initializer element: the weights and the one-element scale constant
    assert model.param_count() == 512 * 64 + 2 * (4 * 64 + 64 * 192 + 64 * 64 + 2 * 64 * 256) \
        + 2 * 64 + 64 * 512 + 1


def test_dependencies_follow_graph_edges(tmp_path):
    """Q, K and V come from one split: both attention contractions depend on the QKV GEMM
    through layout changes; the residual add depends on the layer input and o_proj."""
    model = load_onnx_model(build_transformer(tmp_path / "t.onnx"))
    ops = trace_onnx(model, Scenario(batch=1, prompt_len=8, gen_len=1)).ops
    by = {op.name: op for op in ops}
    qkv = by["/model/layers.0/attn/qkv/MatMul"].id
    assert by["/model/layers.0/attn/qk/MatMul"].deps == (qkv,)
    av = by["/model/layers.0/attn/av/MatMul"]
    assert set(av.deps) == {by["/model/layers.0/attn/Softmax"].id, qkv}
    add = by["/model/layers.0/Add"]
    assert set(add.deps) == {by["/model/embed_tokens/Gather"].id,
                             by["/model/layers.0/attn/o_proj/MatMul"].id}
    assert all(d < op.id for op in ops for d in op.deps)


def test_layers_inferred_without_names(tmp_path):
    """Without exporter names, layers come from norms feeding attention; the head is after the
    last residual add."""
    named = trace_onnx(load_onnx_model(build_transformer(tmp_path / "a.onnx", layers=3)),
                       Scenario(batch=1, prompt_len=16, gen_len=1))
    bare = trace_onnx(load_onnx_model(build_transformer(tmp_path / "b.onnx", layers=3,
                                                        named=False)),
                      Scenario(batch=1, prompt_len=16, gen_len=1))
    assert [op.layer for op in bare.ops] == [op.layer for op in named.ops]
    assert [op.layer for op in bare.ops][:2] == [-1, 0] and bare.ops[-1].layer == 3


def test_attention_scale_is_an_extra_vector_op(tmp_path):
    """A Mul on the scores is real work the config tracer folds away: one vector op per layer
    of b*h*s*s multiplies, classed as attention."""
    base = trace_onnx(load_onnx_model(build_transformer(tmp_path / "a.onnx")),
                      Scenario(batch=2, prompt_len=32, gen_len=1))
    scaled = trace_onnx(load_onnx_model(build_transformer(tmp_path / "b.onnx", scale=True)),
                        Scenario(batch=2, prompt_len=32, gen_len=1))
    extra = [op for op in scaled.ops if op.name.endswith("attn/Mul")]
    assert len(extra) == 2 and all(op.op_class == "attention" for op in extra)
    assert scaled.total_flops - base.total_flops == 2 * 2 * 4 * 32 * 32


def test_fused_attention_node(tmp_path):
    """ONNX Attention (opset 23) becomes one fused attention cascade with the FLOPs of
    QK^T + softmax + PV."""
    b, h, s, e = 2, 4, 16, 8
    vi = [helper.make_tensor_value_info(n, F16, [b, h, s, e]) for n in "qkv"]
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], name="attn")
    graph = helper.make_graph([node], "a", vi, [helper.make_tensor_value_info("y", F16,
                                                                              [b, h, s, e])])
    path = tmp_path / "attn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)]), str(path))
    tr = trace_onnx(load_onnx_model(path), Scenario(batch=1, prompt_len=1, gen_len=1))
    (op,) = tr.ops
    assert op.kind == "attention"
    softmax = 4 * b * h * s * s  # max, sub+exp, sum, div
    assert op.flops == 2 * 2 * b * h * s * s * e + softmax + b * h * s * s  # exp counted once
    assert op.bytes == 4 * b * h * s * e * 2  # q, k, v in, y out (fp16)


def test_unsupported_node_is_one_line(tmp_path):
    bad = helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="my_lstm")
    path = build_transformer(tmp_path / "bad.onnx", extra=[bad])
    with pytest.raises(WorkloadError, match=r"bad\.onnx: node 'my_lstm': unsupported op type "
                                            r"'LSTM'") as exc:
        load_onnx_model(path)
    assert "\n" not in str(exc.value)


def test_bad_files_and_dims(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf\xff" * 10)
    with pytest.raises(WorkloadError, match="junk.onnx: not a readable ONNX model"):
        load_onnx_model(junk)
    with pytest.raises(WorkloadError, match="missing.onnx: file not found"):
        load_onnx_model(tmp_path / "missing.onnx")
    path = build_transformer(tmp_path / "dims.onnx")
    m = onnx.load(str(path))
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "heads_q"
    onnx.save(m, str(path))
    with pytest.raises(WorkloadError, match="input 'input_ids': symbolic dimension 'heads_q'"):
        load_onnx_model(path)


def test_cli_run_onnx(tmp_path, capsys):
    from xpusim.cli import main

    path = build_transformer(tmp_path / "tiny.onnx")
    assert main(["run", "--model", str(path), "--arch", "h100", "--batch", "2", "--prompt",
                 "64", "--gen", "1", "--json", "--quiet"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    want = trace_model(_config(), Scenario(batch=2, prompt_len=64, gen_len=1)).total_flops
    assert out["flops"] == pytest.approx(want, rel=1e-12)
    assert main(["run", "--model", str(path), "--gen", "4", "--quiet"]) == 2
    assert "--gen: an ONNX graph" in capsys.readouterr().err
    bad = build_transformer(tmp_path / "bad.onnx",
                            extra=[helper.make_node("TopK", ["logits", "last"], ["v", "i"],
                                                    name="topk")])
    assert main(["run", "--model", str(bad), "--gen", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "node 'topk': unsupported op type 'TopK'" in err and err.count("\n") == 1


def test_record_roundtrip_keeps_graph(tmp_path):
    model = load_onnx_model(build_transformer(tmp_path / "tiny.onnx"))
    again = ModelConfig(**dataclasses.asdict(model))
    sc = Scenario(batch=1, prompt_len=8, gen_len=1)
    assert trace_model(again, sc).total_flops == trace_onnx(model, sc).total_flops


def test_onnx_run_times_like_the_config_model(tmp_path):
    """The same ops give the same simulated run: TTFT and energy of the ONNX-traced model equal
    the config-built model's on a GPU and on the FuseMax NPU."""
    from arch import load_arch
    from sim.run import simulate

    model = load_onnx_model(build_transformer(tmp_path / "t.onnx"))
    sc = Scenario(batch=2, prompt_len=64, gen_len=1)
    for name in ("h100", "fusemax"):
        arch = load_arch(name)
        a, b = simulate(arch, model, sc).metrics, simulate(arch, _config(), sc).metrics
        assert a["ttft_s"] == b["ttft_s"] and a["energy_J"] == pytest.approx(b["energy_J"])


def test_kv_cache_graph_refused(tmp_path):
    path = build_transformer(tmp_path / "kv.onnx")
    m = onnx.load(str(path))
    m.graph.input.append(helper.make_tensor_value_info(
        "past_key", F16, ["batch", 4, "past_sequence_length", 16]))
    onnx.save(m, str(path))
    with pytest.raises(WorkloadError, match="input 'past_key': symbolic dimension "
                                            "'past_sequence_length' is a KV-cache length"):
        load_onnx_model(path)


def test_bias_adds_are_vector_ops(tmp_path):
    """Biases exported as Adds: the trace has the config trace's work plus, per layer, one add
    per output element of each projection (QKV 3d, O d, up ff, down d per token), each reading
    the [n] bias once; layers are still found."""
    b, p, d, ff = 2, 16, 64, 256
    sc = Scenario(batch=b, prompt_len=p, gen_len=1)
    got = trace_onnx(load_onnx_model(build_transformer(tmp_path / "b.onnx", bias=True)), sc)
    want = trace_model(_config(), sc)
    t = b * p
    per_layer = t * (3 * d + d + ff + d)
    assert got.total_flops - want.total_flops == 2 * per_layer
    # each add reads its input and the bias and writes the output (fp16)
    assert got.total_bytes - want.total_bytes == 2 * (2 * 2 * per_layer + 2 * (3 * d + d + ff + d))
    assert {op.layer for op in got.ops if op.name.endswith("/Add") and "attn" in op.name} == {0, 1}


def test_contrib_ops(tmp_path):
    """ORT's com.microsoft FastGelu is read as gelu (shape from its input); its Attention (packed
    QKV weights, different from ONNX's) is refused by name."""
    x = helper.make_tensor_value_info("x", F16, ["batch", "sequence", 32])
    y = helper.make_tensor_value_info("y", F16, None)
    ops = [helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    g = helper.make_graph([helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft",
                                            name="fg")], "g", [x], [y])
    path = tmp_path / "fg.onnx"
    onnx.save(helper.make_model(g, opset_imports=ops), str(path))
    (op,) = trace_onnx(load_onnx_model(path), Scenario(batch=2, prompt_len=4, gen_len=1)).ops
    assert op.flops == 8 * 2 * 4 * 32 and op.op_class == "activation"  # gelu costs 8
    g = helper.make_graph([helper.make_node("Attention", ["x", "w"], ["y"],
                                            domain="com.microsoft", name="ort_attn")],
                          "g", [x], [y], [_w("w", (32, 96))])
    onnx.save(helper.make_model(g, opset_imports=ops), str(path))
    with pytest.raises(WorkloadError, match="node 'ort_attn': unsupported op type "
                                            "'com.microsoft.Attention'"):
        load_onnx_model(path)


def test_grouped_query_attention_broadcast(tmp_path):
    """GQA as exporters write it: K and V carry a size-1 group axis that MatMul broadcasts over
    the r query heads of each KV head. QK^T, softmax and PV have the FLOPs and bytes of the
    config tracer's GQA attention (K and V read once per KV head)."""
    from workloads.tracer import LayerBuilder

    b, s, g, r, e = 2, 16, 2, 3, 8
    h = g * r
    mk = helper.make_node
    i64 = lambda v, n: numpy_helper.from_array(np.array(v, np.int64), n)  # noqa: E731
    inits = [i64([h * e, g * e, g * e], "split"), i64([0, 0, g, r, e], "qs"),
             i64([0, 0, g, e], "ks"), i64([2], "ax2")]
    nodes = [mk("Split", ["qkv", "split"], ["q", "k", "v"], axis=-1, name="split"),
             mk("Reshape", ["q", "qs"], ["q5"], name="rq"),
             mk("Transpose", ["q5"], ["qh"], perm=[0, 2, 3, 1, 4], name="tq"),
             mk("Reshape", ["k", "ks"], ["k4"], name="rk"),
             mk("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1], name="tk"),
             mk("Unsqueeze", ["kt", "ax2"], ["k5"], name="uk"),
             mk("Reshape", ["v", "ks"], ["v4"], name="rv"),
             mk("Transpose", ["v4"], ["vt"], perm=[0, 2, 1, 3], name="tv"),
             mk("Unsqueeze", ["vt", "ax2"], ["v5"], name="uv"),
             mk("MatMul", ["qh", "k5"], ["sc"], name="qk"),
             mk("Softmax", ["sc"], ["pr"], axis=-1, name="softmax"),
             mk("MatMul", ["pr", "v5"], ["y"], name="av")]
    graph = helper.make_graph(
        nodes, "gqa", [helper.make_tensor_value_info("qkv", F16, ["batch", "sequence",
                                                                   (h + 2 * g) * e])],
        [helper.make_tensor_value_info("y", F16, None)], inits)
    path = tmp_path / "gqa.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    sc = Scenario(batch=b, prompt_len=s, gen_len=1)
    got = {op.name: op for op in trace_onnx(load_onnx_model(path), sc).ops}
    cfg = dataclasses.replace(_config(d=h * e, heads=h), n_kv_heads=g)
    want = {t.name: t.compute for t in LayerBuilder(cfg, sc).attention(b, s, s)}
    for name in ("qk", "softmax", "av"):
        assert (got[name].flops, got[name].bytes) == (want[name].flops, want[name].min_bytes)
    assert got["qk"].compute.gemm_shape == (b * g, r * s, s, e)


def test_baked_sequence_length(tmp_path):
    """A Reshape that hard-codes 128 tokens: the model loads (shapes probed at 128) and traces at
    --prompt 128; another prompt length is a one-line shape-inference error."""
    path = build_transformer(tmp_path / "baked.onnx")
    m = onnx.load(str(path))
    for i, t in enumerate(m.graph.initializer):
        if t.name == "hshape":
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                np.array([0, 128, 4, 16], np.int64), "hshape"))
    onnx.save(m, str(path))
    model = load_onnx_model(path)
    sc = Scenario(batch=1, prompt_len=128, gen_len=1)
    assert trace_onnx(model, sc).total_flops == trace_model(_config(), sc).total_flops
    with pytest.raises(WorkloadError, match="baked.onnx: ONNX shape inference failed"):
        trace_onnx(model, Scenario(batch=1, prompt_len=64, gen_len=1))
