"""Evaluate extended Einsums and cascades on numpy arrays, as the IR states them.

Each Einsum applies its map operator across its inputs at every point of the iteration space,
folds the ranks the output lacks with its reduce operator (``select`` keeps the last index),
applies its unary operator, and the result is rounded by ``round_out(values, tensor)`` (the
device's compute format, then the tensor's datatype; identity for a float64 reference).
Iterative ranks: consecutive Einsums sharing ``iterative=(r,)`` run step by step over ``r``;
within a step an input named like an output of the group reads this step's value when already
written, else the previous step's (zero before the first step). Arrays are laid out in their
tensor's rank order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from workloads.einsum import Cascade, Einsum, TensorRef

Rounding = Callable[[np.ndarray, TensorRef], np.ndarray]
_MAP = {"mul": np.multiply, "add": np.add, "sub": np.subtract, "div": np.divide,
        "max": np.maximum, "min": np.minimum}
_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "recip": lambda x: 1.0 / x, "relu": lambda x: np.maximum(x, 0.0), "neg": np.negative,
    "square": np.square, "tanh": np.tanh, "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3))),
}


def _exact(values: np.ndarray, tensor: TensorRef) -> np.ndarray:
    return values


def _aligned(e: Einsum, t: TensorRef, arr: np.ndarray) -> np.ndarray:
    """``arr`` (laid out in ``t.ranks``) as a view over ``e.ranks`` with size-1 broadcast axes."""
    order = [r for r in e.ranks if r in t.ranks]
    arr = np.transpose(np.asarray(arr, dtype=np.float64), [t.ranks.index(r) for r in order])
    return arr.reshape([e.size[r] if r in t.ranks else 1 for r in e.ranks])


def eval_einsum(e: Einsum, env: dict[str, np.ndarray], round_out: Rounding = _exact
                ) -> np.ndarray:
    """The output of ``e`` given its inputs in ``env`` (by tensor name)."""
    vals = [_aligned(e, t, env[t.name]) for t in e.inputs]
    if e.map_op not in _MAP and len(vals) > 1:
        raise ValueError(f"einsum {e.name}: cannot evaluate map operator '{e.map_op}'")
    x = vals[0]
    for v in vals[1:]:
        x = _MAP[e.map_op](x, v)
    x = np.broadcast_to(x, [e.size[r] for r in e.ranks])
    n_out = len(e.output.ranks)
    axes = tuple(range(n_out, len(e.ranks)))
    if axes:
        op = e.reduce_op
        if op == "add":
            x = x.sum(axis=axes)
        elif op == "max":
            x = x.max(axis=axes)
        elif op == "min":
            x = x.min(axis=axes)
        elif op == "mul":
            x = x.prod(axis=axes)
        elif op == "select":  # the last index of each reduced rank (an iterative state)
            x = x[(Ellipsis,) + (-1,) * len(axes)]
        else:
            raise ValueError(f"einsum {e.name}: cannot evaluate reduce operator '{op}'")
    if e.unary is not None and e.unary != "copy":
        x = _UNARY[e.unary](x)
    return round_out(np.array(x, dtype=np.float64), e.output)


def _run_iterative(group: list[Einsum], env: dict[str, np.ndarray],
                   round_out: Rounding) -> None:
    rank = group[0].iterative[0]
    steps = group[0].size[rank]
    carried = {e.output.name for e in group}
    outs = {e.output.name: np.zeros([e.size[r] for r in e.output.ranks]) for e in group}
    for i in range(steps):
        written: set[str] = set()
        for e in group:
            local: dict[str, np.ndarray] = {}
            for t in e.inputs:
                src = outs[t.name] if t.name in carried else env[t.name]
                if rank not in t.ranks:
                    local[t.name] = src
                    continue
                ax = t.ranks.index(rank)
                if t.name in carried and t.name not in written:
                    j = i - 1  # the previous step's value (zero before the first)
                    local[t.name] = np.take(src, [j], axis=ax) if j >= 0 else \
                        np.zeros_like(np.take(src, [0], axis=ax))
                else:
                    local[t.name] = np.take(src, [i], axis=ax)
            step_e = replace(e, sizes=tuple((r, 1 if r == rank else n) for r, n in e.sizes))
            val = eval_einsum(step_e, local, round_out)
            ax = e.output.ranks.index(rank)
            idx = [slice(None)] * val.ndim
            idx[ax] = slice(i, i + 1)
            outs[e.output.name][tuple(idx)] = val
            written.add(e.output.name)
    env.update(outs)


def eval_cascade(cascade: Cascade, inputs: dict[str, np.ndarray],
                 round_out: Rounding = _exact) -> dict[str, np.ndarray]:
    """Every tensor of ``cascade`` given its external inputs (by name)."""
    env = dict(inputs)
    einsums = list(cascade.einsums)
    i = 0
    while i < len(einsums):
        e = einsums[i]
        if e.iterative:
            j = i
            while j < len(einsums) and einsums[j].iterative == e.iterative:
                j += 1
            _run_iterative(einsums[i:j], env, round_out)
            i = j
            continue
        env[e.output.name] = eval_einsum(e, env, round_out)
        i += 1
    return env
