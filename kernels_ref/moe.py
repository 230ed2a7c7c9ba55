"""Mixture-of-experts routing in float64: gating (softmax, top-k), dispatch and combine."""

from __future__ import annotations

import numpy as np

from kernels_ref.elementwise import activation, softmax_naive, swiglu
from kernels_ref.gemm import gemm


def moe_gate(logits: np.ndarray, top_k: int, renormalize: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over experts, then the ``top_k`` largest per token (ties: lower expert index).
    ``renormalize`` rescales the chosen probabilities to sum to 1 (Mixtral). Returns expert
    indices [T, k] (int64) and weights [T, k]."""
    probs = softmax_naive(np.ascontiguousarray(logits, dtype=np.float64))
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    w = np.take_along_axis(probs, idx, axis=1)
    if renormalize:
        w = w / w.sum(axis=1, keepdims=True)
    return idx.astype(np.int64), w


def moe_dispatch(idx: np.ndarray, n_experts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group token slots by expert. Returns ``order`` (flat slot ids t*k+j sorted by expert,
    stable), ``counts`` per expert and ``offsets`` (start of each expert's run in ``order``)."""
    flat = idx.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n_experts)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return order, counts, offsets


def moe_combine(expert_out: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """y[t] = sum_j weights[t, j] * expert_out[t, j] for expert_out [T, k, D]."""
    return np.einsum("tkd,tk->td", expert_out, weights)


def moe_ffn(x: np.ndarray, idx: np.ndarray, weights: np.ndarray, w_up: np.ndarray,
            w_down: np.ndarray, act: str = "swiglu") -> np.ndarray:
    """The whole MoE MLP: dispatch tokens, run each expert's MLP on its tokens, combine.
    ``w_up`` [E, D, F] (``[E, D, 2F]`` gate then up for swiglu), ``w_down`` [E, F, D]."""
    t_len, k = idx.shape
    order, counts, offsets = moe_dispatch(idx, w_up.shape[0])
    out = np.zeros((t_len, k, x.shape[1]))
    for e in range(w_up.shape[0]):
        if counts[e] == 0:
            continue
        slots = order[offsets[e]:offsets[e] + counts[e]]
        tokens = slots // k
        h = gemm(np.ascontiguousarray(x[tokens]), np.ascontiguousarray(w_up[e]))
        if act == "swiglu":
            f = h.shape[1] // 2
            h = swiglu(np.ascontiguousarray(h[:, :f]), np.ascontiguousarray(h[:, f:]))
        else:
            h = activation(act, h)
        y = gemm(np.ascontiguousarray(h), np.ascontiguousarray(w_down[e]))
        out[tokens, slots % k] = y
    return moe_combine(out, weights)
