"""Optimizer steps as elementwise Einsum cascades (Adam / AdamW over ``n`` parameters).

The mixed-precision step of ZeRO-Offload / DeepSpeed CPU Adam: fp32 master weights ``w``,
momentum ``m`` and variance ``v`` and the gradient ``g`` (fp16 or fp32) are read; ``w``, ``m``
and ``v`` are written back, and optionally the fp16 copy ``w16`` the GPU computes with. Per
parameter that is ``3 x 4 + bytes(g)`` read and ``3 x 4 (+ 2)`` written: 28 B (fp32 gradients,
no fp16 copy) to 30 B (fp32 gradients plus the fp16 copy); fp16 gradients save 2 B.

AdamW per element (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
Algorithm 2; PyTorch ``torch.optim.AdamW``)::

    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    w = w - lr wd w - lr (m / bc1) / (sqrt(v / bc2) + eps)

Scalar hyper-parameters (``b1``, ``lr``, ``eps``, the bias corrections ``bc1``, ``bc2``) are
immediates: an Einsum with one input and a ``unary`` operator applies one of them, so it costs
one operation per element (:data:`workloads.einsum.OP_COST`) and no memory traffic. FLOPs and
bytes are derived by the IR, never typed here: AdamW 16 operations per parameter, Adam 14.
"""

from __future__ import annotations

from workloads.einsum import Cascade, Einsum, TensorRef, elementwise

RANK = "n"  # the flat parameter index
GRAD_DTYPES = ("fp16", "bf16", "fp32")


def _t(name: str, dtype: str = "fp32", role: str = "intermediate") -> TensorRef:
    return TensorRef(name, (RANK,), dtype, role)


def adam_step(name: str, n_params: int, grad_dtype: str = "fp16", keep_fp16_copy: bool = True,
              weight_decay: bool = True) -> Cascade:
    """One Adam (``weight_decay=False``) or AdamW step over ``n_params`` parameters.

    External inputs: ``w``, ``m``, ``v`` (fp32, role ``state``) and ``g`` (``grad_dtype``, role
    ``gradient``); outputs ``w``, ``m``, ``v`` and, with ``keep_fp16_copy``, ``w16`` (fp16,
    role ``weight``). Minimum bytes per parameter: 12 + bytes(g) read, 12 (+ 2) written.
    """
    if grad_dtype not in GRAD_DTYPES:
        raise ValueError(f"adam_step {name}: grad_dtype must be one of "
                         f"{', '.join(GRAD_DTYPES)}, got '{grad_dtype}'")
    if not isinstance(n_params, int) or n_params <= 0:
        raise ValueError(f"adam_step {name}: n_params must be a positive integer, "
                         f"got {n_params!r}")
    s = {RANK: n_params}
    w, m, v = _t("w", role="state"), _t("m", role="state"), _t("v", role="state")
    g = _t("g", grad_dtype, "gradient")

    def op(out: str, inputs: tuple[TensorRef, ...], map_op: str = "add",
           unary: str | None = None, ref: TensorRef | None = None) -> Einsum:
        return elementwise(out, ref or _t(out), inputs, s, map_op=map_op, unary=unary)

    md, gd = op("m_b1", (m,), unary="mul"), op("g_b1", (g,), unary="mul")
    m_new = op("m", (md.output, gd.output), "add", ref=m)
    g2 = op("g_sq", (g, g), "mul")
    vd, g2d = op("v_b2", (v,), unary="mul"), op("g_sq_b2", (g2.output,), unary="mul")
    v_new = op("v", (vd.output, g2d.output), "add", ref=v)
    m_hat = op("m_hat", (m_new.output,), unary="div")
    v_hat = op("v_hat", (v_new.output,), unary="div")
    root = op("v_sqrt", (v_hat.output,), unary="sqrt")
    denom = op("denom", (root.output,), unary="add")
    ratio = op("ratio", (m_hat.output, denom.output), "div")
    step = op("step", (ratio.output,), unary="mul")
    einsums = [md, gd, m_new, g2, vd, g2d, v_new, m_hat, v_hat, root, denom, ratio, step]
    w_in = w
    if weight_decay:
        decay = op("w_decay", (w,), unary="mul")
        w_dec = op("w_decayed", (w, decay.output), "sub")
        einsums += [decay, w_dec]
        w_in = w_dec.output
    w_new = op("w", (w_in, step.output), "sub", ref=w)
    einsums.append(w_new)
    outputs = ["w", "m", "v"]
    if keep_fp16_copy:
        einsums.append(op("w16", (w_new.output,), unary="copy",
                          ref=TensorRef("w16", (RANK,), "fp16", "weight")))
        outputs.append("w16")
    return Cascade(name, tuple(einsums), outputs=tuple(outputs))


def adam_bytes_per_param(grad_dtype: str = "fp16", keep_fp16_copy: bool = True) -> float:
    """Minimum bytes per parameter of :func:`adam_step`, from the IR (one parameter)."""
    return adam_step("adam", 1, grad_dtype, keep_fp16_copy).min_bytes
