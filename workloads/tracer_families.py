"""Traces of the model families beyond decoder-only transformers, and the decoder's parallel
attention/MLP block.

* ``encoder`` (BERT, TrXL, XLM): one bidirectional forward pass over the prompt (phase
  ``prefill``; no decode steps), embeddings (token, learned position, segment, embedding norm),
  the same layer ops as the decoder (attention over all ``prompt`` keys), BERT's pooler.
* ``encoder_decoder`` (T5): the encoder over the prompt, then the decoder. Prefill holds the
  encoder, each decoder layer's cross-attention K/V projection of the encoder output and the
  first decoder token; every decode step runs the decoder on one token per request: self
  attention over the tokens generated so far, cross attention over the prompt's ``prompt`` keys.
  Each stack numbers its layers from 0 (decoder layer i runs after the whole encoder).
* ``mamba``: per layer RMSNorm, in_proj, depthwise causal conv (``d_conv`` taps), SiLU, x_proj,
  dt_proj, the selective scan as one Einsum cascade (:func:`selective_scan_cascade`), out_proj,
  residual. Decode steps run one token per request against the carried SSM state.

Not modelled (named so a reader knows): T5's relative-position bias inside a fused attention
cascade (with unfused kernels it is an add on the scores), Gemma's embedding scale.
"""

from __future__ import annotations

from dataclasses import replace

from workloads.einsum import Cascade, Einsum, TensorRef, elementwise
from workloads.errors import WorkloadError
from workloads.models import ModelConfig
from workloads.scenario import Scenario
from workloads.trace import VECTOR, Trace
from workloads.tracer import LayerBuilder, OpTemplate, _Stamper, _t, layernorm

SSM_DTYPE = "fp32"  # the scan's internal precision (mamba_ssm computes the scan in fp32)


def check_scenario(model: ModelConfig, scenario: Scenario, generation: bool = True) -> None:
    """Refuse options a family does not support, naming the option (one line). ``generation``
    (the user's run, not an op-count estimate on a shrunk copy): also refuse ``--gen`` above 1
    for an encoder (the tracer just emits no decode steps) and more decoder than encoder layers
    (each stack numbers its layers from 0 within ``n_layers``)."""
    if model.kind == "decoder":
        return
    if generation and model.kind == "encoder" and scenario.gen_len != 1:
        raise WorkloadError("", "--gen", f"{model.name} is an encoder: it runs one forward "
                                         f"pass over the prompt and generates nothing; use "
                                         f"--gen 1 (got {scenario.gen_len})")
    if generation and model.kind == "onnx" and scenario.gen_len != 1:
        raise WorkloadError("", "--gen", f"an ONNX graph ({model.name}) is traced as one "
                                         f"forward pass of --batch x --prompt tokens; use "
                                         f"--gen 1 (got {scenario.gen_len})")
    if scenario.pp > 1:
        raise WorkloadError("", "--pp", f"pipeline parallelism is not modelled for "
                                        f"{model.kind} models ({model.name})")
    if scenario.microbatches > 1:
        raise WorkloadError("", "--microbatches", f"micro-batches are not modelled for "
                                                  f"{model.kind} models ({model.name})")
    if generation and model.n_decoder_layers > model.n_layers:  # layer ids: 0 .. n_layers
        raise WorkloadError("", "n_decoder_layers", f"{model.name}: more decoder layers "
                                                    f"({model.n_decoder_layers}) than encoder "
                                                    f"layers ({model.n_layers}) is not supported")
    if model.kind == "onnx" and scenario.tp > 1:
        raise WorkloadError("", "--tp", f"tensor parallelism is not modelled for {model.kind} "
                                        f"models ({model.name}); use --tp 1")


# --- decoder layers: the hook in LayerBuilder.layer ------------------------------------------

def _decoder_view(model: ModelConfig) -> ModelConfig:
    """``model`` as the decoder-layer builder sees it (this module's tracers build their
    transformer layers from it; anyone else asking a non-decoder model for a layer is refused
    by :func:`layer_hook`)."""
    if model.kind == "mamba":   # a decoder whose every layer runs a Mamba-1 mixer
        return replace(model, kind="decoder", attn_layers=())
    return model if model.kind == "decoder" else replace(model, kind="decoder")


def require_decoder_layers(m: ModelConfig) -> None:
    """Refuse, in one line, a model without decoder layers to build (an encoder-decoder, a
    Mamba model, an ONNX graph): fine-tuning and serving build them layer by layer."""
    if m.kind in ("encoder_decoder", "mamba", "onnx"):
        raise WorkloadError("", "--model", f"{m.name} is a {m.kind} model: only inference "
                                           "(`xpusim run`, `compare`, `check`) traces it; "
                                           "fine-tuning and serving need decoder layers")


def layer_hook(bld: LayerBuilder, b: int, s: int, n: int, layer: int = 0, local: bool = False,
               nope: bool = False) -> list[OpTemplate]:
    """``LayerBuilder.layer`` for a parallel block or a non-decoder model. Training and serving
    build decoder layers directly: an encoder's layer is one (bidirectional attention has the
    same ops), an encoder-decoder, a Mamba model or an ONNX graph has none (one-line error)."""
    m = bld.m
    require_decoder_layers(m)
    if m.block != "sequential":
        return parallel_layer(bld, b, s, n, layer, local, nope)
    return LayerBuilder(_decoder_view(m), bld.sc).layer(b, s, n, layer, local, nope=nope)


# --- decoder: parallel attention and MLP -----------------------------------------------------

def parallel_layer(bld: LayerBuilder, b: int, s: int, n: int, layer: int = 0,
                   local: bool = False, nope: bool = False) -> list[OpTemplate]:
    """GPT-J / Falcon / Phi / Command R block: attention and MLP read the same normed input
    (``parallel``: one norm; ``parallel2``: a second norm of the same input, Falcon-40B) and
    one residual adds both outputs to the input; under tensor parallelism the two partial sums
    share one all-reduce (Megatron's fused parallel block). ``local`` and ``nope`` as
    ``LayerBuilder.layer`` (Command R7B's windowed layers, its global ones without RoPE)."""
    sh, t, rms = bld.shape, b * s, bld.m.norm == "rmsnorm"
    qkv_width = (sh.heads + 2 * sh.kv_groups) * sh.head_dim
    ops = [OpTemplate("ln_attn", VECTOR, "norm", layernorm("ln_attn", "x", t, sh.d, bld.dt, rms)),
           bld._linear("qkv_proj", t, sh.d, qkv_width)]
    if bld.m.qk_norm:   # Command R+: a norm of each query and key head
        ops.append(bld.norm("qk_norm", "qk", t * (sh.heads + sh.kv_groups), True, sh.head_dim))
    if not nope:
        ops += bld.rope(t)
    ops += bld.attention(b, s, n, local)
    ops.append(bld._linear("o_proj", t, sh.heads * sh.head_dim, sh.d))
    if bld.m.block == "parallel2":
        ops.append(OpTemplate("ln_ffn", VECTOR, "norm",
                              layernorm("ln_ffn", "x", t, sh.d, bld.dt, rms)))
    ops += bld.mlp(t, layer)
    ops += bld._allreduce("allreduce_block", t)
    ops.append(bld._vector("residual_parallel", t, sh.d, "add", n_inputs=3))
    return ops


# --- encoders and encoder-decoders ------------------------------------------------------------

def _embedding(bld: LayerBuilder, t: int) -> list[OpTemplate]:
    m, d = bld.m, bld.shape.d
    ops = bld.embedding(t)
    if m.type_vocab:
        ops.append(bld._vector("type_embedding", t, d, "add", op_class="memory"))
    if m.embed_norm:
        ops.append(OpTemplate("embed_norm", VECTOR, "norm",
                              layernorm("embed_norm", "e", t, d, bld.dt, m.norm == "rmsnorm")))
    return ops


def _final_norm(bld: LayerBuilder, name: str, t: int) -> list[OpTemplate]:
    return [OpTemplate(name, VECTOR, "norm", layernorm(name, "y", t, bld.shape.d, bld.dt,
                                                      bld.m.norm == "rmsnorm"))]


def _cross_attention(bld: LayerBuilder, b: int, p: int, first: bool) -> list[OpTemplate]:
    """Cross attention of one decoder token per request over ``p`` encoder positions; the K/V
    projection of the encoder output runs once (``first``, in prefill)."""
    sh, rms = bld.shape, bld.m.norm == "rmsnorm"
    ops = [OpTemplate("ln_cross", VECTOR, "norm", layernorm("ln_cross", "h", b, sh.d, bld.dt,
                                                            rms)),
           bld._linear("q_cross", b, sh.d, sh.heads * sh.head_dim)]
    if first:
        ops.append(bld._linear("kv_cross", b * p, sh.d, 2 * sh.kv_groups * sh.head_dim))
    ops += [replace(tpl, name=f"cross_{tpl.name}") for tpl in bld.attention(b, 1, p)]
    ops.append(bld._linear("o_cross", b, sh.heads * sh.head_dim, sh.d))
    ops += bld._allreduce("allreduce_cross", b)
    ops.append(bld._vector("residual_cross", b, sh.d, "add"))
    return ops


def _pos_bias(bld: LayerBuilder, ops: list[OpTemplate], b: int, s: int, n: int
              ) -> list[OpTemplate]:
    """T5's relative-position bias: each self-attention adds the [heads, s, n] bias (gathered
    once per stack from ``rel_pos_buckets`` x heads, a negligible lookup) to its scores; with
    unfused kernels an add after QK^T (the fused cascade folds it in, uncounted)."""
    if not bld.m.rel_pos_buckets or bld.sc.attention == "flash":
        return ops
    sh, dt = bld.shape, bld.dt
    sizes = {"b": b, "g": sh.kv_groups, "r": sh.group_size, "s": s, "n": n}
    scores = _t("scores", "bgrsn", dt)
    add = elementwise("pos_bias", scores, (scores, _t("pos_bias.table", "grsn", dt, "state")),
                      sizes, "add")
    cut = next(i for i, tpl in enumerate(ops) if tpl.name == "qk") + 1
    return ops[:cut] + [OpTemplate("pos_bias", VECTOR, "attention", add)] + ops[cut:]


def _decoder_layer(bld: LayerBuilder, b: int, n_self: int, p: int, first: bool,
                   cross: list[OpTemplate] | None = None) -> list[OpTemplate]:
    """A decoder layer of one token per request: self attention over ``n_self`` keys, cross
    attention over the ``p`` encoder positions (``cross``: its templates, made once for every
    decode step, whose cross attention is one and the same)."""
    ops = _pos_bias(bld, bld.layer(b, 1, n_self), b, 1, n_self)
    cut = next(i for i, tpl in enumerate(ops) if tpl.name == "residual_attn") + 1
    return ops[:cut] + (cross or _cross_attention(bld, b, p, first)) + ops[cut:]


def _pooler(bld: LayerBuilder, b: int) -> list[OpTemplate]:
    """BERT's pooler: a dense layer and tanh on each request's first token."""
    d = bld.shape.d
    return [bld._linear("pooler", b, d, d),
            bld._vector("pooler_tanh", b, d, "copy", n_inputs=1, unary="tanh",
                        op_class="activation")]


def _trace_encoder(model: ModelConfig, sc: Scenario, phases: tuple[str, ...]) -> Trace:
    bld, stamp = LayerBuilder(_decoder_view(model), sc), _Stamper(sc.tp)
    b, p = sc.batch, sc.prompt_len
    if "prefill" in phases:
        stamp.add(_embedding(bld, b * p), "prefill", -1, 0, b * p, b)
        layer = bld.layer(b, p, p)
        for i in range(model.n_layers):
            stamp.add(layer, "prefill", i, 0, b * p, b)
        tail = _final_norm(bld, "final_norm", b * p) if model.final_norm else []
        tail += _pooler(bld, b) if model.pooler else []
        if tail:
            stamp.add(tail, "prefill", model.n_layers, 0, b, b)
    # an encoder generates no tokens: no phase counts towards the generated-request invariant
    return Trace(stamp.ops, model, sc, {"phases": (), "traced": phases, "kind": model.kind})


def _trace_encoder_decoder(model: ModelConfig, sc: Scenario, phases: tuple[str, ...],
                           compact: bool = False) -> Trace:
    """An encoder-decoder's trace: the prefill (the encoder over the prompt, then the decoder's
    first token), then ``gen_len - 1`` decode steps of the decoder, whose self attention reads
    one more key each step. ``compact``: the first two decode steps stamped, every further
    step as arrays from the last (:func:`workloads.tracer.stamp_repeats`: its self attention
    resized to the step's keys, or each step's templates swapped in)."""
    from workloads.tracer import stamp_repeats

    bld, stamp = LayerBuilder(_decoder_view(model), sc), _Stamper(sc.tp, rows=compact)
    b, p, enc = sc.batch, sc.prompt_len, model.n_layers
    dec_layers, last = range(model.n_decoder_layers), model.n_layers
    if "prefill" in phases:
        stamp.add(_embedding(bld, b * p), "prefill", -1, 0, b * p, b)
        layer = _pos_bias(bld, bld.layer(b, p, p), b, p, p)
        for i in range(enc):
            stamp.add(layer, "prefill", i, 0, b * p, b)
        stamp.add(_final_norm(bld, "enc_final_norm", b * p), "prefill", enc - 1, 0, b * p, b)
        stamp.add(_embedding(bld, b), "prefill", -1, 0, b, b)
        dec = _decoder_layer(bld, b, 1, p, first=True)
        for i in dec_layers:
            stamp.add(dec, "prefill", i, 0, b, b)
        stamp.add(bld.head(b), "prefill", last, 0, b, b)
    if "decode" not in phases:
        return Trace(stamp.ops, model, sc, {"phases": phases, "kind": model.kind})
    embed, head = _embedding(bld, b), bld.head(b)
    cross = _cross_attention(bld, b, p, first=False)
    made: dict[int, tuple[dict, dict, dict]] = {}

    def templates(step: int) -> tuple[dict, dict, dict]:
        """Decode step ``step``'s template lists: embedding, decoder layer, head."""
        if step not in made:
            made[step] = ({0: embed}, {0: _decoder_layer(bld, b, step + 1, p, False, cross)},
                          {0: head})
        return made[step]

    steps = list(range(1, sc.gen_len))
    rest = steps[2:] if compact and len(steps) >= 3 else []
    for step in steps[:2] if rest else steps:
        e, dec, h = (t[0] for t in templates(step))
        stamp.add(e, "decode", -1, step, b, b)
        for i in dec_layers:
            stamp.add(dec, "decode", i, step, b, b)
        stamp.add(h, "decode", last, step, b, b)
    info = {"phases": phases, "kind": model.kind}
    if rest:
        kv = bld.kv_lens(1, [step + 1 for step in (*steps[:2], *rest)])
        arrays = stamp_repeats(stamp, sc.tp, [templates(steps[0]), templates(steps[1])], rest,
                               kv, lambda k: templates(rest[k]))
        if arrays is not None:
            return Trace(None, model, sc, info, compact=arrays)
        return _trace_encoder_decoder(model, sc, phases)
    return Trace(stamp.ops, model, sc, info)


# --- Mamba ------------------------------------------------------------------------------------

def selective_scan_cascade(batch: int, length: int, channels: int, states: int,
                           dtype: str = "fp16", carried_state: bool = False) -> Cascade:
    """The selective scan (Gu & Dao 2023, Algorithm 2; ``kernels_ref.ssm.selective_scan``) as
    extended Einsums over ranks ``b`` (requests), ``l`` (tokens, iterative), ``c`` (channels),
    ``n`` (SSM states):

    ``dt = log(exp(delta + dt_bias) + 1)`` (softplus), ``dA = exp(dt A)``,
    ``dBx = dt B x``, ``SH = dA H[l-1]``, ``H[l] = SH + dBx`` (iterative over ``l``: ``H`` read
    by ``SH`` is the previous step's; the initial state is zero, or the carried ``ssm.state``
    when ``carried_state``), ``Y = sum_n H C``, ``YD = Y + D x``, ``out = YD silu(z)``; the last
    step's ``H`` leaves as ``ssm.state`` (``select`` over ``l`` keeps the last step).
    Inputs: ``ssm.x``, ``ssm.delta``, ``ssm.z`` [b,l,c], ``ssm.B``, ``ssm.C`` [b,l,n] in
    ``dtype``; ``ssm.A`` [c,n], ``ssm.D``, ``ssm.dt_bias`` [c] in fp32."""
    sz = {"b": batch, "l": length, "c": channels, "n": states}
    f = SSM_DTYPE
    blc, blcn, bln = ("b", "l", "c"), ("b", "l", "c", "n"), ("b", "l", "n")
    x, delta, z = (_t(f"ssm.{k}", blc, dtype) for k in ("x", "delta", "z"))
    bb, cc = _t("ssm.B", bln, dtype), _t("ssm.C", bln, dtype)
    a = _t("ssm.A", "cn", f, "weight")
    d, bias = _t("ssm.D", "c", f, "weight"), _t("ssm.dt_bias", "c", f, "weight")
    one = _t("ssm.one", (), f, "state")
    dte, dt = _t("ssm.dt_exp", blc, f, "intermediate"), _t("ssm.dt", blc, f, "intermediate")
    da, dbx = _t("ssm.dA", blcn, f, "intermediate"), _t("ssm.dBx", blcn, f, "intermediate")
    shh, h = _t("ssm.sh", blcn, f, "intermediate"), _t("ssm.h", blcn, f, "intermediate")
    prev = _t("ssm.state", ("b", "c", "n"), f, "state") if carried_state else h
    y, dx = _t("ssm.y", blc, f, "intermediate"), _t("ssm.dx", blc, f, "intermediate")
    yd, g = _t("ssm.yd", blc, f, "intermediate"), _t("ssm.gate", blc, f, "intermediate")
    out, state = _t("ssm.out", blc, dtype), _t("ssm.state", ("b", "c", "n"), f, "state")
    it = () if carried_state else ("l",)
    full = tuple((r, sz[r]) for r in blcn)
    return Cascade("ssm_scan", (
        elementwise("ssm.dt_exp", dte, (delta, bias), sz, "add", unary="exp"),
        elementwise("ssm.dt", dt, (dte, one), sz, "add", unary="log"),
        elementwise("ssm.dA", da, (dt, a), sz, "mul", unary="exp"),
        elementwise("ssm.dBx", dbx, (dt, bb, x), sz, "mul"),
        Einsum("ssm.sh", shh, (da, prev), full, map_op="mul", reduce_op=None, iterative=it),
        Einsum("ssm.h", h, (shh, dbx), full, map_op="add", reduce_op=None, iterative=it),
        Einsum("ssm.y", y, (h, cc), full, map_op="mul", reduce_op="add"),
        elementwise("ssm.dx", dx, (d, x), sz, "mul"),
        elementwise("ssm.yd", yd, (y, dx), sz, "add"),
        elementwise("ssm.gate", g, (z,), sz, "copy", unary="silu"),
        elementwise("ssm.out", out, (yd, g), sz, "mul"),
        Einsum("ssm.state", state, (h,), full, reduce_op="select"),
    ), outputs=("ssm.out", "ssm.state"))


class MambaBuilder:
    """Op templates of one Mamba layer for ``b`` requests of ``s`` new tokens each."""

    def __init__(self, model: ModelConfig, sc: Scenario):
        self.m, self.sc, self.dt = model, sc, sc.dtype
        self.bld = LayerBuilder(_decoder_view(model), sc)

    def layer(self, b: int, s: int) -> list[OpTemplate]:
        """The layer's norm and Mamba-1 mixer (:func:`workloads.mamba1.mixer`, one rank's
        share under tensor parallelism), then its residual add."""
        from workloads.mamba1 import mixer

        return [*mixer(self.bld, b, s), self.bld._vector("residual", b * s, self.m.d_model,
                                                         "add")]


def _trace_mamba(model: ModelConfig, sc: Scenario, phases: tuple[str, ...],
                 compact: bool = False) -> Trace:
    """Mamba's trace: the prefill, then ``gen_len - 1`` decode steps of one token each. A
    step's state is of one size whatever the step, so every decode step stamps the same
    templates; ``compact``: the prefill and the first two decode steps stamped, every further
    step as arrays from the last (:func:`workloads.tracer.stamp_repeats`, nothing swapped:
    a folded trace whose further steps are the last one's kinds, :mod:`workloads.fold`)."""
    from workloads.tracer import stamp_repeats

    mb, stamp = MambaBuilder(model, sc), _Stamper(sc.tp, rows=compact)
    b, p = sc.batch, sc.prompt_len
    steps: list[tuple[str, int, int]] = []
    if "prefill" in phases:
        steps.append(("prefill", 0, p))
    if "decode" in phases:
        steps += [("decode", s, 1) for s in range(1, sc.gen_len)]
    made: dict[int, tuple[dict, dict, dict]] = {}

    def templates(s: int) -> tuple[dict, dict, dict]:
        """A step's template lists of ``s`` new tokens per request: embedding, layer, head."""
        if s not in made:
            made[s] = ({0: mb.bld.embedding(b * s)}, {0: mb.layer(b, s)}, {0: mb.bld.head(b)})
        return made[s]

    rest: list[tuple[str, int, int]] = []
    if compact:
        first = next((i for i, st in enumerate(steps) if st[0] == "decode"), len(steps))
        if len(steps) - first >= 4:
            steps, rest = steps[:first + 2], steps[first + 2:]
    for phase, step, s in steps:
        embed, layer, head = (t[0] for t in templates(s))
        stamp.add(embed, phase, -1, step, b * s, b)
        for i in range(model.n_layers):
            stamp.add(layer, phase, i, step, b * s, b)
        stamp.add(head, phase, model.n_layers, step, b, b)
    info = {"phases": phases, "kind": model.kind}
    if rest:
        arrays = stamp_repeats(stamp, sc.tp, [templates(1), templates(1)],
                               [step for _, step, _ in rest], [0] * (len(rest) + 2),
                               lambda k: templates(1))
        if arrays is not None:
            return Trace(None, model, sc, info, compact=arrays)
        return _trace_mamba(model, sc, phases)
    return Trace(stamp.ops, model, sc, info)


def trace_family(model: ModelConfig, scenario: Scenario,
                 phases: tuple[str, ...] = ("prefill", "decode"), compact: bool = False) -> Trace:
    """The trace of an encoder, encoder-decoder or Mamba model (see the module doc);
    ``compact``: the further decode steps of a Mamba or encoder-decoder model held as arrays
    (:func:`_trace_mamba`, :func:`_trace_encoder_decoder`)."""
    check_scenario(model, scenario, generation=False)
    if model.kind == "encoder":
        return _trace_encoder(model, scenario, phases)
    if model.kind == "encoder_decoder":
        return _trace_encoder_decoder(model, scenario, phases, compact)
    if model.kind == "mamba":
        return _trace_mamba(model, scenario, phases, compact)
    if model.kind == "onnx":
        from workloads.onnx_import import trace_onnx
        return trace_onnx(model, scenario)
    raise WorkloadError("", "kind", f"no tracer for model kind '{model.kind}'")


def state_bytes(model: ModelConfig, scenario: Scenario) -> float:
    """Bytes of the per-request state one device keeps between steps, all requests: the KV cache
    of an encoder-decoder's decoder (self attention over generated tokens, cross attention over
    the prompt), Mamba's SSM state (``d_inner x d_state`` fp32 per layer, plus the conv rows);
    an encoder keeps nothing."""
    kv = TensorRef("x", (), scenario.kv_dtype).nbytes({})
    b = scenario.batch
    if model.kind == "mamba":   # one rank's channels
        inner = model.d_inner // scenario.tp
        per_layer = inner * model.d_state * 4 + inner * (model.d_conv - 1) * \
            TensorRef("x", (), scenario.dtype).nbytes({})
        return float(b * model.n_layers * per_layer)
    if model.kind == "encoder_decoder":
        groups = max(1, model.n_kv_heads // scenario.tp)
        per_token = 2 * model.n_decoder_layers * groups * model.head_dim * kv
        return float(b * per_token * (scenario.prompt_len + scenario.gen_len))
    return 0.0


