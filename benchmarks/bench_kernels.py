"""Reference kernels (numba, float64) against the same operation in numpy / BLAS.

Every row times the numba kernel and its float64 numpy form (``kernels_ref/numpy_forms.py``, or
BLAS through ``@`` for the GEMM family) on the same inputs, best of ``--repeat`` runs after a
warm-up (so compilation is excluded), and prints the ratio numba / numpy. The goal is a ratio of
at most 3 everywhere (below 1: numba is faster).

    python benchmarks/bench_kernels.py [--repeat 5] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench_args import rounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL = 3.0


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cases(quick: bool):
    import numpy as np

    import kernels_ref.numpy_forms as F
    from kernels_ref import attention as A
    from kernels_ref import dtypes as D
    from kernels_ref import elementwise as E
    from kernels_ref import gemm as G
    from kernels_ref import ssm as S

    rng = np.random.default_rng(0)
    s = 4 if quick else 1
    m, k, n = 512 // s, 4096 // s, 4096 // s
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    yield "gemm", f"{m}x{k} @ {k}x{n}", lambda: G.gemm(a, b), lambda: a @ b
    xb = rng.standard_normal((32, 512 // s, 128))
    yb = rng.standard_normal((32, 128, 512 // s))
    yield "batched_gemm", f"32 x {512 // s}x128 @ 128x{512 // s}", \
        lambda: G.batched_gemm(xb, yb), lambda: xb @ yb
    w = rng.standard_normal((11008 // s, 4096 // s))
    x = rng.standard_normal(11008 // s)
    yield "gemv", f"{11008 // s} @ {11008 // s}x{4096 // s}", lambda: G.gemv(x, w), lambda: x @ w
    q, sc = D.quantize_weights(rng.standard_normal((k, n)), "int4", 128)
    xs = rng.standard_normal((16, k))
    yield "weight_only_gemm int4/g128", f"16x{k} @ {k}x{n}", \
        lambda: G.weight_only_gemm(xs, q, sc), lambda: xs @ (q * np.repeat(sc, 128, axis=0))
    rows = rng.standard_normal((2048 // s, 4096))
    g, beta = rng.standard_normal(4096), rng.standard_normal(4096)
    yield "layernorm", f"{2048 // s}x4096", lambda: E.layernorm(rows, g, beta, 1e-5), \
        lambda: F.layernorm(rows, g, beta, 1e-5)
    yield "rmsnorm", f"{2048 // s}x4096", lambda: E.rmsnorm(rows, g, 1e-6), \
        lambda: F.rmsnorm(rows, g, 1e-6)
    yield "softmax naive", f"{2048 // s}x4096", lambda: E.softmax_naive(rows), \
        lambda: F.softmax(rows)
    yield "softmax online", f"{2048 // s}x4096", lambda: E.softmax_online(rows), \
        lambda: F.softmax(rows)
    yield "gelu (tanh)", f"{2048 // s}x4096", lambda: E.gelu_tanh(rows), \
        lambda: F.gelu_tanh(rows)
    yield "gelu (erf)", f"{2048 // s}x4096", lambda: E.gelu_erf(rows), lambda: F.gelu_erf(rows)
    yield "silu", f"{2048 // s}x4096", lambda: E.silu(rows), lambda: F.silu(rows)
    half = np.ascontiguousarray(rows[:, :2048])
    yield "swiglu", f"{2048 // s}x2048", lambda: E.swiglu(half, half), \
        lambda: F.swiglu(half, half)
    t = 512 // s
    xr = rng.standard_normal((t, 32, 128))
    cos, sin = E.rope_tables(np.arange(t), 128)
    yield "rope", f"{t}x32x128", lambda: E.rope(xr, cos, sin), lambda: F.rope(xr, cos, sin)
    hq, sq = 32 // s, 512 // s
    qa = rng.standard_normal((hq, sq, 128))
    ka = rng.standard_normal((hq // 4, sq, 128))
    va = rng.standard_normal((hq // 4, sq, 128))
    for name, fn in (("attention 3-pass", lambda: A.attention_3pass(qa, ka, va, 0.09, True)),
                     ("attention 2-pass", lambda: A.attention_2pass(qa, ka, va, 0.09, True)),
                     ("attention 1-pass", lambda: A.attention_1pass(qa, ka, va, 0.09, True,
                                                                     64))):
        yield name, f"{hq} heads (GQA 4), {sq}x{sq}x128 causal", fn, \
            lambda: F.attention(qa, ka, va, 0.09, True)
    bsz, dim, nst, length = 2, 256 // s, 16, 256 // s
    u = rng.standard_normal((bsz, dim, length))
    dl = rng.standard_normal((bsz, dim, length))
    am = -np.exp(rng.standard_normal((dim, nst)))
    bm = rng.standard_normal((bsz, nst, length))
    cm = rng.standard_normal((bsz, nst, length))
    dm, bias = rng.standard_normal(dim), rng.standard_normal(dim)
    z = rng.standard_normal((bsz, dim, length))
    yield "selective scan", f"B{bsz} D{dim} N{nst} L{length}", \
        lambda: S.selective_scan(u, dl, am, bm, cm, dm, z, bias, True), \
        lambda: F.selective_scan(u, dl, am, bm, cm, dm, z, bias, True)
    big = rng.standard_normal(8_000_000 // s)
    with np.errstate(over="ignore"):
        yield "quantize fp16 (rne)", f"{big.size} values", lambda: D.quantize(big, "fp16"), \
            lambda: big.astype(np.float16).astype(np.float64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=rounds, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller shapes (CI smoke run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, shape, ours, theirs in cases(args.quick):
        t_ours = best(ours, args.repeat)
        t_np = best(theirs, args.repeat)
        rows.append({"kernel": name, "shape": shape, "numba_s": t_ours, "numpy_s": t_np,
                     "ratio": t_ours / t_np, "within_goal": t_ours / t_np <= GOAL})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.json:
        print(json.dumps({"goal_ratio": GOAL, "load_avg_1min": load, "rows": rows}, indent=2))
    else:
        print(f"{'kernel':28} {'shape':38} {'numba ms':>9} {'numpy ms':>9} {'ratio':>6}")
        for r in rows:
            flag = "" if r["within_goal"] else "  > 3x"
            print(f"{r['kernel']:28} {r['shape']:38} {r['numba_s'] * 1e3:9.2f} "
                  f"{r['numpy_s'] * 1e3:9.2f} {r['ratio']:6.2f}{flag}")
        print(f"load average {load:.2f}; {sum(r['within_goal'] for r in rows)}/{len(rows)} "
              f"within {GOAL:g}x of numpy/BLAS")
    return 0 if all(r["within_goal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
