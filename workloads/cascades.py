"""Built-in Einsum cascades for attention in 3-pass, 2-pass and 1-pass form (FuseMax §III).

Notation follows Nayak et al., "FuseMax: Leveraging Extended Einsums to Optimize Attention
Accelerator Design" (MICRO 2024): ``Q[b,h,e,p]``, ``K[b,h,e,m]``, ``V[b,h,f,m]``; ``p`` is the
query sequence rank, ``m`` the key/value sequence rank, ``e``/``f`` the head dimension.

* :func:`attention_3pass` — PyTorch/FLAT-style: ``QK``, global max ``GM`` (pass 1 over m),
  ``SN = exp(QK - GM)`` and its sum ``SD`` (pass 2), ``A = SN / SD`` and ``AV = A·V`` (pass 3).
* :func:`divide_after_reduce` — the division-reduction rewrite: ``sum_m (SN/SD)·V`` becomes
  ``(sum_m SN·V) / SD`` because ``SD`` does not depend on ``m``; it removes the third pass.
* :func:`attention_2pass` — the 3-pass cascade after that rewrite.
* :func:`attention_1pass` — FlashAttention/FuseMax: ``m`` split into ``m1`` (tiles, an
  iterative rank) and ``m0``; running max ``RM[m1+1] = max(RM[m1], LM[m1])``, running
  denominator ``RD`` and numerator ``RNV`` rescaled by ``PRM = exp(RM[m1] - RM[m1+1])``; the
  division happens once at the end.

Every cascade's FLOPs and minimum bytes are derived by the IR (:mod:`workloads.einsum`).
"""

from __future__ import annotations

from dataclasses import replace

from workloads.einsum import Cascade, Einsum, TensorRef

ACC = "fp32"  # intermediates (scores, running statistics) are kept in fp32


def _t(name: str, ranks: tuple[str, ...] | str, dtype: str, role: str = "intermediate"
       ) -> TensorRef:
    return TensorRef(name, tuple(ranks), dtype, role)


def _sizes(sizes: dict[str, int], *ranks: str) -> tuple[tuple[str, int], ...]:
    return tuple((r, sizes[r]) for r in ranks)


def attention_inputs(dtype: str = "fp16") -> tuple[TensorRef, TensorRef, TensorRef]:
    """The Q, K, V tensors (batch b, heads h)."""
    return (_t("Q", ("b", "h", "e", "p"), dtype, "activation"),
            _t("K", ("b", "h", "e", "m"), dtype, "kv_cache"),
            _t("V", ("b", "h", "f", "m"), dtype, "kv_cache"))


def _base_sizes(batch: int, heads: int, seq_q: int, seq_kv: int, head_dim: int
                ) -> dict[str, int]:
    return {"b": batch, "h": heads, "p": seq_q, "m": seq_kv, "e": head_dim, "f": head_dim}


def attention_3pass(batch: int, heads: int, seq_q: int, seq_kv: int, head_dim: int,
                    dtype: str = "fp16", name: str = "attention_3pass") -> Cascade:
    """Softmax attention as PyTorch and FLAT compute it: three passes over ``m``."""
    s = _base_sizes(batch, heads, seq_q, seq_kv, head_dim)
    q, k, v = attention_inputs(dtype)
    bhmp = ("b", "h", "m", "p")
    qk = _t("QK", bhmp, ACC)
    gm = _t("GM", ("b", "h", "p"), ACC)
    sn = _t("SN", bhmp, ACC)
    sd = _t("SD", ("b", "h", "p"), ACC)
    a = _t("A", bhmp, dtype)
    av = _t("AV", ("b", "h", "f", "p"), dtype, "activation")
    return Cascade(name, (
        Einsum("QK", qk, (q, k), _sizes(s, "b", "h", "m", "p", "e")),
        Einsum("GM", gm, (qk,), _sizes(s, "b", "h", "m", "p"), reduce_op="max"),
        Einsum("SN", sn, (qk, gm), _sizes(s, "b", "h", "m", "p"), map_op="sub", reduce_op=None,
               unary="exp"),
        Einsum("SD", sd, (sn,), _sizes(s, "b", "h", "m", "p"), reduce_op="add"),
        Einsum("A", a, (sn, sd), _sizes(s, "b", "h", "m", "p"), map_op="div", reduce_op=None),
        Einsum("AV", av, (a, v), _sizes(s, "b", "h", "f", "p", "m")),
    ), outputs=("AV",))


def divide_after_reduce(cascade: Cascade) -> Cascade:
    """Division-reduction rewrite: ``Z = sum_r (X / D) * Y`` with ``D`` free of ``r`` becomes
    ``N = sum_r X * Y; Z = N / D``. Applies to every matching (divide, contract) pair; returns
    the cascade unchanged when none matches."""
    einsums = list(cascade.einsums)
    out: list[Einsum] = []
    consumed: set[int] = set()
    for i, e in enumerate(einsums):
        if i in consumed:
            continue
        rewritten = None
        if e.map_op == "div" and e.reduce_op is None and len(e.inputs) == 2:
            x, d = e.inputs
            users = [j for j, f in enumerate(einsums) if j > i and
                     any(t.name == e.output.name for t in f.inputs)]
            if len(users) == 1:
                j = users[0]
                f = einsums[j]
                if f.is_contraction and not any(r in d.ranks for r in f.reduced_ranks):
                    y = next(t for t in f.inputs if t.name != e.output.name)
                    num = _t(f"{f.output.name}_num", f.output.ranks, ACC)
                    contract = replace(f, name=f"{f.name}_num", output=num, inputs=(x, y))
                    div_sizes = tuple((r, f.size[r]) for r in f.output.ranks)
                    divide = Einsum(f.name, f.output, (num, d), div_sizes, map_op="div",
                                    reduce_op=None)
                    rewritten = (j, contract, divide)
        if rewritten is None:
            out.append(e)
            continue
        j, contract, divide = rewritten
        consumed.add(j)
        out += [contract, divide]
    if not consumed:
        return cascade
    return Cascade(cascade.name, tuple(out), cascade.outputs)


def attention_2pass(batch: int, heads: int, seq_q: int, seq_kv: int, head_dim: int,
                    dtype: str = "fp16", name: str = "attention_2pass") -> Cascade:
    """The 3-pass cascade after the division-reduction rewrite: two passes over ``m``."""
    return replace(divide_after_reduce(
        attention_3pass(batch, heads, seq_q, seq_kv, head_dim, dtype)), name=name)


def attention_1pass(batch: int, heads: int, seq_q: int, seq_kv: int, head_dim: int,
                    tile: int = 256, dtype: str = "fp16", name: str = "attention_1pass"
                    ) -> Cascade:
    """FuseMax's 1-pass cascade (its Cascade 5): ``m = m1 x m0`` with ``m0 = tile``; the
    running statistics are iterative over ``m1``."""
    tile = max(1, min(tile, seq_kv))
    if seq_kv % tile:
        raise ValueError(f"attention_1pass: seq_kv {seq_kv} must be a multiple of tile {tile}")
    s = _base_sizes(batch, heads, seq_q, seq_kv, head_dim)
    s.update(m1=seq_kv // tile, m0=tile)
    q = _t("Q", ("b", "h", "e", "p"), dtype, "activation")
    k = _t("BK", ("b", "h", "e", "m1", "m0"), dtype, "kv_cache")
    v = _t("BV", ("b", "h", "f", "m1", "m0"), dtype, "kv_cache")
    tile_r = ("b", "h", "m1", "m0", "p")
    run_r = ("b", "h", "m1", "p")
    bqk = _t("BQK", tile_r, ACC)
    lm = _t("LM", run_r, ACC)
    rm = _t("RM", run_r, ACC)
    sln = _t("SLN", tile_r, ACC)
    sld = _t("SLD", run_r, ACC)
    slnv = _t("SLNV", ("b", "h", "f", "m1", "p"), ACC)
    prm = _t("PRM", run_r, ACC)
    spd = _t("SPD", run_r, ACC)
    rd = _t("RD", run_r, ACC)
    spnv = _t("SPNV", ("b", "h", "f", "m1", "p"), ACC)
    rnv = _t("RNV", ("b", "h", "f", "m1", "p"), ACC)
    av = _t("AV", ("b", "h", "f", "p"), dtype, "activation")
    rnv_last = _t("RNV", ("b", "h", "f", "p"), ACC)
    rd_last = _t("RD", ("b", "h", "p"), ACC)
    it = ("m1",)
    return Cascade(name, (
        Einsum("BQK", bqk, (q, k), _sizes(s, "b", "h", "m1", "m0", "p", "e")),
        Einsum("LM", lm, (bqk,), _sizes(s, "b", "h", "m1", "m0", "p"), reduce_op="max"),
        Einsum("RM", rm, (rm, lm), _sizes(s, "b", "h", "m1", "p"), map_op="max",
               reduce_op=None, iterative=it),
        Einsum("SLN", sln, (bqk, rm), _sizes(s, "b", "h", "m1", "m0", "p"), map_op="sub",
               reduce_op=None, unary="exp"),
        Einsum("SLD", sld, (sln,), _sizes(s, "b", "h", "m1", "m0", "p"), reduce_op="add"),
        Einsum("SLNV", slnv, (sln, v), _sizes(s, "b", "h", "f", "m1", "m0", "p")),
        Einsum("PRM", prm, (rm, rm), _sizes(s, "b", "h", "m1", "p"), map_op="sub",
               reduce_op=None, unary="exp", iterative=it),
        Einsum("SPD", spd, (rd, prm), _sizes(s, "b", "h", "m1", "p"), map_op="mul",
               reduce_op=None, iterative=it),
        Einsum("RD", rd, (sld, spd), _sizes(s, "b", "h", "m1", "p"), map_op="add",
               reduce_op=None, iterative=it),
        Einsum("SPNV", spnv, (rnv, prm), _sizes(s, "b", "h", "f", "m1", "p"), map_op="mul",
               reduce_op=None, iterative=it),
        Einsum("RNV", rnv, (slnv, spnv), _sizes(s, "b", "h", "f", "m1", "p"), map_op="add",
               reduce_op=None, iterative=it),
        Einsum("AV", av, (rnv_last, rd_last), _sizes(s, "b", "h", "f", "p"), map_op="div",
               reduce_op=None),
    ), outputs=("AV",))


BUILTIN = {"attention_3pass": attention_3pass, "attention_2pass": attention_2pass,
           "attention_1pass": attention_1pass}
