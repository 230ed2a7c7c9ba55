#!/usr/bin/env python3
"""Measure one NVIDIA GPU for ``xpusim validate`` (suites ``<tag>-gemm``, ``<tag>-llm``,
``<tag>-vector``).

Run on a machine with the GPU and PyTorch (CUDA), from the repository root:

    python validation/measure_gpu.py --tag h200          # writes validation/h200/h200_*.csv
    python validation/measure_gpu.py --tag h100 --quick  # a smaller grid

Every time is device time from CUDA events. A *graph* time replays ``iters`` back-to-back
launches captured in one CUDA graph (what xpusim's ``ideal`` software stack assumes: kernels back
to back, only the GPU-side launch gap between them); an *eager* time records events around
``iters`` eager calls (host dispatch included where it is slower than the kernels). Each is the
median of ``samples`` samples after warm-up, divided by ``iters``.

Files (``<tag>`` is the ``--tag``):

* ``<tag>_gemm.csv``: ``torch.matmul`` of [M, K] x [K, N] in bf16 and fp16 over LLM projection
  shapes and square sweeps, and fp8 (e4m3 x e4m3 -> bf16, ``torch._scaled_mm``) where the GPU
  has it. Columns: dtype, M, N, K, latency_s (graph), eager_s, tflops.
* ``<tag>_attention.csv``: SDPA (FlashAttention backend where it applies) prefill, causal and
  not, and decode with one query over a KV cache (grouped-query via ``enable_gqa``). Columns:
  phase, impl, causal, batch, heads, kv_heads, q_len, kv_len, head_dim, dtype, latency_s.
* ``<tag>_vector.csv``: memory-bound kernels: copy, tanh-GELU, LayerNorm, RMSNorm, softmax over
  fp16 tensors. Columns: op, rows, width, dtype, latency_s, eager_s, gbytes_per_s (read+write).
* ``<tag>_decode_step.csv``: one decode step of a Llama-style model with random weights
  (RMSNorm, fused QKV, SDPA over the KV cache, SwiGLU MLP, LM head), in a CUDA graph (mode
  ``cuda-graph``) and eagerly (mode ``eager``). Columns: model, layers, batch, context, dtype,
  latency_s, mode.
* ``<tag>_prefill_step.csv``: one causal prefill of the same Llama-style models (K/V written to
  the cache, logits of the last token), in a CUDA graph. Columns: model, layers, batch, prompt,
  dtype, latency_s, mode.
* ``<tag>_power.csv`` (``--only power``): NVML board power and SM clock (median over the second
  half of a 2 s window) while each workload runs back to back from a CUDA graph: 8192^3 GEMMs
  in bf16 / fp16 / fp8, a 4096^3 one, a weight-streaming 16 x 28672 x 8192 GEMM, a 1 GiB copy,
  Llama-2-7B decode (batch 8) and prefill (2,048 tokens) steps; the first row is the idle
  power. ``<tag>_power_trace.csv`` (``--only trace``): clock and power every 20 ms from rest
  into sustained 8192^3 bf16 GEMMs. ``<tag>_power_sweep.csv`` (``--only power_sweep``): the
  same for bf16 GEMMs of 256-16384 rows of an 8192 x 8192 weight (and two more).
* ``<tag>_attention_sweep.csv`` (``--only attention_sweep``): the attention part over more
  lengths (to 16k prefill, 128k decode), head dims 64 / 128 and groupings.
* ``<tag>_dvfs.csv`` (``--only dvfs``): power, SM clock and time per call of 8192^3 bf16 and
  fp8 GEMMs run in short bursts at duty cycles from 5% to 100% (the power limiter's clock and
  the energy per call as the load rises).
* ``<tag>_kernels.csv`` (``--only kernels``): the kernels (name, grid, block, registers, shared
  memory, duration) PyTorch launches for cuBLAS GEMMs of Llama layers, LayerNorm / RMSNorm /
  softmax and SDPA decode and prefill, from the PyTorch profiler.
* ``<tag>_gemm_burst.csv`` (``--only gemm_burst``): the GEMM grid timed with the GPU resting
  between samples (25% duty: the boost clock), with the lowest SM clock NVML read per shape.
* ``<tag>_gemm_sustained.csv`` (``--only gemm_sustained``): power rows of nine GEMMs per dtype
  (weight-streaming to compute-bound) run back to back for 1.5 s.
* ``<tag>_attention_duty.csv`` (``--only attention_duty``): ``dvfs``'s rows for three SDPA
  prefills (bf16, non-causal) at 25% and 100% duty.
* ``<tag>_step_duty.csv`` (``--only step_duty``): ``dvfs``'s rows for Llama prefill and decode
  steps at 25% and 100% duty.
* ``<tag>_device.json``: device name, SMs, memory, driver, torch/CUDA versions, and the SM clock
  and power NVML read while a large bf16 GEMM ran for ~3 s.

The CSVs are project validation data: commit them; ``xpusim validate`` picks them up.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import threading
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEVICE = "cuda"


def _sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _calls(fns, iters: int):
    """A function making ``iters`` calls, cycling through ``fns`` (one callable or a list)."""
    fns = fns if isinstance(fns, list) else [fns]

    def run() -> None:
        for j in range(iters):
            fns[j % len(fns)]()
    return run


def _eager_timer(fns, iters: int, samples: int) -> float:
    """Median seconds per call of ``iters`` back-to-back eager calls (cycling through ``fns``)."""
    import torch

    many = _calls(fns, iters)
    _calls(fns, 3 * len(fns) if isinstance(fns, list) else 3)()
    _sync()
    times = []
    for _ in range(samples):
        if DEVICE != "cuda":
            t0 = time.perf_counter()
            many()
            times.append((time.perf_counter() - t0) / iters)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        many()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3 / iters)
    return statistics.median(times)


def _capture(fns, iters: int):
    """A CUDA graph of ``iters`` calls cycling through ``fns`` (warmed up on a side stream)."""
    import torch

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        _calls(fns, 3 * len(fns) if isinstance(fns, list) else 3)()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        _calls(fns, iters)()
    return graph


def _graph_timer(fns, iters: int, samples: int) -> float:
    """Median seconds per call of ``iters`` calls (cycling through ``fns``) captured in one CUDA
    graph and replayed."""
    if DEVICE != "cuda":
        return _eager_timer(fns, iters, samples)
    graph = _capture(fns, iters)
    t = _eager_timer(graph.replay, 1, samples) / iters
    del graph
    return t


#: operands are rotated through copies adding up to at least this many bytes, several times the
#: L2 (50-60 MB on Hopper), so that every call reads them from DRAM as in a model's forward pass
COLD_BYTES = 256 * 2 ** 20


def _copies(nbytes: float) -> int:
    """How many copies of a call's operands keep its repeated calls out of the L2."""
    return max(1, min(64, -(-int(COLD_BYTES) // max(int(nbytes), 1))))


def _write(out: Path, name: str, rows: list[dict]) -> None:
    if not rows:
        return
    path = out / name
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    print(f"wrote {path} ({len(rows)} rows)", flush=True)


def _iters(work: float, per_sample: float) -> int:
    """Launches per sample so that one sample holds about ``per_sample`` of work."""
    return max(1, min(200, int(per_sample / max(work, 1.0))))


def gemm_grid(quick: bool) -> list[tuple[int, int, int]]:
    ms = [1, 16, 64, 128, 256, 512, 1024, 4096, 16384] if not quick else [16, 1024]
    nk = [(4096, 4096), (12288, 4096), (4096, 11008), (11008, 4096), (8192, 8192),
          (8192, 28672), (28672, 8192), (1024, 8192), (8192, 1024), (32000, 4096)]
    if quick:
        nk = nk[:2]
    squares = [(s, s, s) for s in (256, 512, 1024, 2048, 4096, 6144, 8192, 16384)]
    if quick:
        squares = squares[:2]
    if DEVICE != "cuda":  # a dry run checks the code paths on small shapes
        ms, nk, squares = [16, 64], [(256, 512)], [(128, 128, 128)]
    return [(m, n, k) for m in ms for n, k in nk] + squares


def _gemm_call(dtype_name: str, m: int, n: int, k: int):
    """One ``torch.matmul`` (or fp8 ``torch._scaled_mm``) on fresh random operands."""
    import torch

    if dtype_name == "fp8":
        a = torch.randn(m, k, device=DEVICE).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=DEVICE).to(torch.float8_e4m3fn).t()  # column-major
        one = torch.ones((), device=DEVICE)
        return partial(torch._scaled_mm, a, b, scale_a=one, scale_b=one,
                       out_dtype=torch.bfloat16)
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float16
    a = torch.randn(m, k, device=DEVICE, dtype=dtype)
    b = torch.randn(k, n, device=DEVICE, dtype=dtype)
    return partial(torch.matmul, a, b)


def measure_gemm(quick: bool, samples: int) -> list[dict]:
    rows = []
    dtypes = ("bf16", "fp16") if DEVICE != "cuda" or not _has_fp8() else ("bf16", "fp16", "fp8")
    for dtype_name in dtypes:
        size = 1 if dtype_name == "fp8" else 2
        for m, n, k in gemm_grid(quick):
            if dtype_name == "fp8" and m % 16:
                continue  # _scaled_mm needs every dimension a multiple of 16
            flops = 2.0 * m * n * k
            copies = _copies(size * (m * k + k * n) + 2 * m * n)
            it = max(copies, _iters(flops, 2e12 if DEVICE == "cuda" else 2e9))
            try:
                fns = [_gemm_call(dtype_name, m, n, k) for _ in range(copies)]
                t = _graph_timer(fns, it, samples)
                te = _eager_timer(fns, it, samples)
            except Exception as exc:  # noqa: BLE001 - a shape the library refuses is skipped
                _skip(f"{dtype_name} {m}x{n}x{k}", exc)
                continue
            del fns
            rows.append({"dtype": dtype_name, "M": m, "N": n, "K": k, "latency_s": f"{t:.9g}",
                         "eager_s": f"{te:.9g}", "tflops": f"{flops / t / 1e12:.6g}",
                         "copies": copies})
        print(f"gemm {dtype_name} done ({len(rows)} rows)", flush=True)
    return rows


def _skip(case: str, exc: Exception) -> None:
    print(f"skip {case}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}",
          file=sys.stderr, flush=True)


def _has_fp8() -> bool:
    import torch

    return hasattr(torch, "float8_e4m3fn") and torch.cuda.get_device_capability(0) >= (8, 9)


def _sdpa(q, k, v, causal: bool, gqa: bool):
    import torch.nn.functional as F

    if gqa:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


#: (batch, heads, kv_heads, tokens, head_dim) of the attention part's prefill calls, and (batch,
#: heads, kv_heads, kv_len, head_dim) of its decode calls
PREFILL = [(1, 32, 32, 512, 128), (1, 32, 32, 2048, 128), (8, 32, 32, 2048, 128),
           (1, 32, 8, 4096, 128), (1, 64, 8, 8192, 128), (4, 32, 32, 1024, 64)]
DECODE = [(1, 32, 32, n, 128) for n in (1024, 4096, 16384, 65536)] + \
    [(8, 32, 32, n, 128) for n in (1024, 4096)] + \
    [(8, 32, 8, n, 128) for n in (1024, 4096, 16384)] + \
    [(32, 32, 8, n, 128) for n in (1024, 4096)] + \
    [(1, 64, 8, n, 128) for n in (4096, 32768)]
#: the attention sweep (``--only attention_sweep``): more lengths, head dims and groupings
PREFILL_SWEEP = [(1, 32, 32, s, 128) for s in (1024, 4096, 8192, 16384)] + \
    [(1, 32, 8, s, 128) for s in (1024, 2048, 8192)] + [(4, 32, 8, 2048, 128)] + \
    [(1, 32, 32, s, 64) for s in (512, 2048, 4096, 8192)] + \
    [(1, 64, 8, s, 128) for s in (2048, 16384)]
DECODE_SWEEP = [(b, 32, 8, n, 128) for b in (1, 4, 16, 64) for n in (2048, 8192)] + \
    [(1, 32, 32, 131072, 128), (4, 32, 32, 8192, 64)]


def measure_attention(quick: bool, samples: int, prefill=None, decode=None) -> list[dict]:
    import torch

    rows = []
    dtype = torch.bfloat16
    prefill = PREFILL if prefill is None else prefill
    decode = DECODE if decode is None else decode
    if quick:
        prefill, decode = prefill[:2], decode[:3]
    if DEVICE != "cuda":
        prefill, decode = [(1, 4, 2, 64, 32)], [(2, 4, 2, 128, 32)]
    mk = lambda *s: torch.randn(*s, device=DEVICE, dtype=dtype)  # noqa: E731
    for b, h, g, s, d in prefill:
        copies = _copies(2 * (2 * b * h * s * d + 2 * b * g * s * d))
        qkv = [(mk(b, h, s, d), mk(b, g, s, d), mk(b, g, s, d)) for _ in range(copies)]
        for causal in (False, True):
            fns = [partial(_sdpa, q, k, v, causal, g != h) for q, k, v in qkv]
            it = max(copies, _iters(4.0 * b * h * s * s * d, 1e12))
            try:
                t = _graph_timer(fns, it, samples)
            except Exception as exc:  # noqa: BLE001
                _skip(f"prefill {b} {h} {g} {s} {d} causal={causal}", exc)
                continue
            rows.append({"phase": "prefill", "impl": "sdpa", "causal": int(causal), "batch": b,
                         "heads": h, "kv_heads": g, "q_len": s, "kv_len": s, "head_dim": d,
                         "dtype": "bf16", "latency_s": f"{t:.9g}", "copies": copies})
        del qkv
    for b, h, g, n, d in decode:
        copies = _copies(2 * 2 * b * g * n * d)
        qkv = [(mk(b, h, 1, d), mk(b, g, n, d), mk(b, g, n, d)) for _ in range(copies)]
        fns = [partial(_sdpa, q, k, v, False, g != h) for q, k, v in qkv]
        try:
            t = _graph_timer(fns, max(copies, _iters(4.0 * b * g * n * d, 4e9)), samples)
        except Exception as exc:  # noqa: BLE001
            _skip(f"decode {b} {h} {g} {n} {d}", exc)
            continue
        rows.append({"phase": "decode", "impl": "sdpa", "causal": 0, "batch": b, "heads": h,
                     "kv_heads": g, "q_len": 1, "kv_len": n, "head_dim": d, "dtype": "bf16",
                     "latency_s": f"{t:.9g}", "copies": copies})
        del qkv, fns
    print(f"attention done ({len(rows)} rows)", flush=True)
    return rows


def attention_sweep(quick: bool, samples: int) -> list[dict]:
    """The attention part over :data:`PREFILL_SWEEP` and :data:`DECODE_SWEEP`."""
    return measure_attention(quick, samples, PREFILL_SWEEP, DECODE_SWEEP)


def measure_vector(quick: bool, samples: int) -> list[dict]:
    import torch
    import torch.nn.functional as F

    rows = []
    dtype = torch.float16
    widths = (1024, 4096, 8192, 16384) if not quick else (4096,)
    row_counts = (1, 64, 1024, 8192, 32768) if not quick else (1024,)
    shapes = [(r, w) for r in row_counts for w in widths] if DEVICE == "cuda" else [(16, 256)]
    for r, w in shapes:
        nbytes = 2.0 * r * w * 2  # one read and one write of fp16
        copies = _copies(nbytes)
        xs = [torch.randn(r, w, device=DEVICE, dtype=dtype) for _ in range(copies)]
        ys = [torch.empty_like(x) for x in xs]
        ops = {"copy": [partial(y.copy_, x) for x, y in zip(xs, ys, strict=True)],
               "gelu": [partial(F.gelu, x, approximate="tanh") for x in xs],
               "layernorm": [partial(F.layer_norm, x, (w,)) for x in xs],
               "softmax": [partial(torch.softmax, x, dim=-1) for x in xs]}
        if hasattr(F, "rms_norm"):
            ops["rmsnorm"] = [partial(F.rms_norm, x, (w,)) for x in xs]
        for name, fns in ops.items():
            it = max(copies, _iters(nbytes, 4e9))
            t = _graph_timer(fns, it, samples)
            te = _eager_timer(fns, it, samples)
            rows.append({"op": name, "rows": r, "width": w, "dtype": "fp16",
                         "latency_s": f"{t:.9g}", "eager_s": f"{te:.9g}",
                         "gbytes_per_s": f"{nbytes / t / 1e9:.6g}", "copies": copies})
        del xs, ys, ops
    print(f"vector done ({len(rows)} rows)", flush=True)
    return rows


LLAMA = {"llama2-7b": dict(layers=32, d=4096, heads=32, kv=32, ff=11008, vocab=32000),
         "llama3-8b": dict(layers=32, d=4096, heads=32, kv=8, ff=14336, vocab=128256)}


def _decode_step_fn(x0, layers, head, batch, d, h, g, hd, ff):
    """One decode step of the random-weight Llama stack (returns the logits)."""
    import torch.nn.functional as F

    def norm(x):
        return F.rms_norm(x, (d,)) if hasattr(F, "rms_norm") else x

    def step():
        x = x0
        for L in layers:
            qkv = norm(x) @ L["wqkv"]
            q = qkv[..., : h * hd].view(batch, 1, h, hd).transpose(1, 2)
            a = _sdpa(q, L["kc"], L["vc"], False, g != h)
            x = x + a.transpose(1, 2).reshape(batch, 1, h * hd) @ L["wo"]
            gu = norm(x) @ L["wgu"]
            x = x + (F.silu(gu[..., :ff]) * gu[..., ff:]) @ L["wd"]
        return norm(x) @ head

    return step


def _random_llama(name: str, batch: int, ctx: int):
    """(config, layers, head, make) of a random-weight Llama stack with a ``ctx``-token KV cache
    per layer (a dry run shrinks it to 2 small layers)."""
    import torch

    c = dict(LLAMA[name])
    if DEVICE != "cuda":
        c.update(layers=2, d=256, ff=512, vocab=1000, heads=4, kv=min(c["kv"], 2))
    d, h, g, ff = c["d"], c["heads"], c["kv"], c["ff"]
    hd = c["hd"] = d // h

    def mk(*shape):
        return torch.randn(*shape, device=DEVICE, dtype=torch.bfloat16) * 0.02

    layers = [dict(wqkv=mk(d, (h + 2 * g) * hd), wo=mk(h * hd, d), wgu=mk(d, 2 * ff),
                   wd=mk(ff, d), kc=mk(batch, g, ctx, hd), vc=mk(batch, g, ctx, hd))
              for _ in range(c["layers"])]
    return c, layers, mk(d, c["vocab"]), mk


def _llama_step(phase: str, name: str, batch: int, length: int):
    """(one decode step over a ``length``-token cache, or one ``length``-token prefill, of the
    random-weight model ``name``; its config)."""
    c, layers, head, mk = _random_llama(name, batch, length)
    dims = (c["d"], c["heads"], c["kv"], c["hd"], c["ff"])
    if phase == "decode":
        return _decode_step_fn(mk(batch, 1, c["d"]), layers, head, batch, *dims), c
    return _prefill_fn(mk(batch, length, c["d"]), layers, head, batch, length, *dims), c


def _llama_steps(phase: str, cases: list, quick: bool, samples: int, modes: tuple,
                 iters: int) -> list[dict]:
    """A row per (case, timing mode) of :func:`_llama_step`."""
    import torch

    rows = []
    length_col = "context" if phase == "decode" else "prompt"
    for name, batch, length in (cases[:1] if quick else cases):
        length = length if DEVICE == "cuda" else 64
        fn, c = _llama_step(phase, name, batch, length)
        for mode, timer in modes:
            try:
                t = timer(fn, iters, samples)
            except Exception as exc:  # noqa: BLE001
                _skip(f"{phase} step {name} b{batch} {length_col} {length} {mode}", exc)
                continue
            rows.append({"model": name, "layers": c["layers"], "batch": batch,
                         length_col: length, "dtype": "bf16", "latency_s": f"{t:.9g}",
                         "mode": mode})
        del fn
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    print(f"{phase} steps done ({len(rows)} rows)", flush=True)
    return rows


def measure_decode_step(quick: bool, samples: int) -> list[dict]:
    cases = [("llama2-7b", 1, 1024), ("llama2-7b", 8, 1024), ("llama2-7b", 32, 2048),
             ("llama3-8b", 1, 4096), ("llama3-8b", 16, 4096), ("llama3-8b", 64, 2048)]
    return _llama_steps("decode", cases, quick, samples,
                        (("cuda-graph", _graph_timer), ("eager", _eager_timer)), 5)


def _prefill_fn(x0, layers, head, batch, seq, d, h, g, hd, ff):
    """One causal prefill of the random-weight Llama stack: K/V written to the cache, logits of
    the last token (as serving engines do)."""
    import torch.nn.functional as F

    def norm(x):
        return F.rms_norm(x, (d,)) if hasattr(F, "rms_norm") else x

    def forward():
        x = x0
        for L in layers:
            qkv = norm(x) @ L["wqkv"]
            q = qkv[..., : h * hd].view(batch, seq, h, hd).transpose(1, 2)
            k = qkv[..., h * hd: (h + g) * hd].view(batch, seq, g, hd).transpose(1, 2)
            v = qkv[..., (h + g) * hd:].view(batch, seq, g, hd).transpose(1, 2)
            L["kc"].copy_(k)
            L["vc"].copy_(v)
            a = _sdpa(q, k, v, True, g != h)
            x = x + a.transpose(1, 2).reshape(batch, seq, h * hd) @ L["wo"]
            gu = norm(x) @ L["wgu"]
            x = x + (F.silu(gu[..., :ff]) * gu[..., ff:]) @ L["wd"]
        return norm(x[:, -1]) @ head

    return forward


def measure_prefill_step(quick: bool, samples: int) -> list[dict]:
    cases = [("llama2-7b", 1, 512), ("llama2-7b", 1, 2048), ("llama2-7b", 1, 4096),
             ("llama2-7b", 4, 1024), ("llama3-8b", 1, 2048), ("llama3-8b", 1, 8192)]
    return _llama_steps("prefill", cases, quick, samples, (("cuda-graph", _graph_timer),), 2)


def _sustain(fns, iters: int, seconds: float, log: ClockLog) -> dict:
    """Replay a graph of ``iters`` calls back to back for ``seconds`` after a 1 s rest: seconds
    per call over the whole window, and NVML's clock and power over its second half."""
    import torch

    graph = _capture(fns, iters) if DEVICE == "cuda" else None
    replay = graph.replay if graph is not None else _calls(fns, iters)
    _sync()
    time.sleep(1.0)
    t0 = time.perf_counter()
    cuda = DEVICE == "cuda"
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    calls = 0
    while time.perf_counter() - t0 < seconds:
        for _ in range(4):
            replay()
        calls += 4 * iters
        _sync()
    if cuda:
        end.record()
        end.synchronize()
    t1 = time.perf_counter()
    busy = start.elapsed_time(end) * 1e-3 if cuda else t1 - t0
    out = {"calls": calls, "seconds": f"{busy:.6g}", "time_per_call_s": f"{busy / calls:.9g}"}
    got = log.between((t0 + t1) / 2, t1)
    out.update({k: got.get(k, "") for k in ("power_w_median", "sm_clock_mhz_median",
                                             "sm_clock_mhz_min", "samples")})
    del graph
    return out


def measure_power(quick: bool, samples: int, seconds: float = 2.0) -> list[dict]:
    """Board power and SM clock while each workload runs back to back (NVML, second half of a
    ``seconds`` window), after the idle power; and the clock and power from idle into a
    sustained bf16 GEMM (``<tag>_power_trace.csv``, written by :func:`main`)."""
    import torch

    log = ClockLog().start()
    time.sleep(2.0)
    t = time.perf_counter()
    time.sleep(1.0)
    idle = log.between(t, time.perf_counter())
    rows = [{"workload": "idle", "dtype": "", "shape": "", "flops_per_call": 0,
             "bytes_per_call": 0, "calls": 0, "seconds": 1.0, "time_per_call_s": "",
             "power_w_median": idle.get("power_w_median", ""),
             "sm_clock_mhz_median": idle.get("sm_clock_mhz_median", ""),
             "sm_clock_mhz_min": idle.get("sm_clock_mhz_min", ""),
             "samples": idle.get("samples", "")}]
    size = 8192 if DEVICE == "cuda" else 128
    gemms = [("gemm", "bf16", size, size, size), ("gemm", "fp16", size, size, size),
             ("gemm", "fp8", size, size, size), ("gemm", "bf16", size // 2, size // 2, size // 2),
             ("gemv", "bf16", 16, 28672 if DEVICE == "cuda" else 256, size)]
    rows += _power_gemms(gemms[:1] if quick else gemms, seconds, log)
    n_copy = (1 << 29) if DEVICE == "cuda" else (1 << 16)   # 1 GiB of fp16 read, 1 GiB written
    x = torch.randn(n_copy, device=DEVICE, dtype=torch.float16)
    y = torch.empty_like(x)
    got = _sustain(partial(y.copy_, x), 4, seconds, log)
    rows.append({"workload": "copy", "dtype": "fp16", "shape": str(n_copy), "flops_per_call": 0,
                 "bytes_per_call": 4 * n_copy, **got})
    del x, y
    for name, batch, ctx, phase in (("llama2-7b", 8, 1024, "decode"),
                                    ("llama2-7b", 1, 2048, "prefill")):
        ctx = ctx if DEVICE == "cuda" else 64
        fn, _ = _llama_step(phase, name, batch, ctx)
        got = _sustain(fn, 2, seconds, log)
        rows.append({"workload": f"{phase}-step", "dtype": "bf16",
                     "shape": f"{name} b{batch} {'ctx' if phase == 'decode' else 'p'}{ctx}",
                     "flops_per_call": "", "bytes_per_call": "", **got})
        del fn
    log.stop()
    print(f"power done ({len(rows)} rows)", flush=True)
    return rows


def _power_gemms(gemms: list, seconds: float, log: ClockLog) -> list[dict]:
    """A power row per (kind, dtype, M, N, K) GEMM run back to back (:func:`_sustain`)."""
    rows = []
    for kind, dt, m, n, k in gemms:
        elem = 1 if dt == "fp8" else 2
        nbytes = elem * (m * k + k * n) + 2 * m * n
        copies = _copies(nbytes)
        fns = [_gemm_call(dt, m, n, k) for _ in range(copies)]
        got = _sustain(fns, max(copies, 8), seconds, log)
        rows.append({"workload": kind, "dtype": dt, "shape": f"{m}x{n}x{k}",
                     "flops_per_call": 2 * m * n * k, "bytes_per_call": nbytes, **got})
        del fns
    return rows


def power_sweep(quick: bool, samples: int, seconds: float = 2.0) -> list[dict]:
    """Power rows (as :func:`measure_power`'s) of bf16 GEMMs from 256 to 16384 rows of an
    8192 x 8192 weight, a 4096 x 28672 x 8192 one and an fp8 4096-row one: how the power
    limiter's clock follows the tensor load."""
    size = 8192 if DEVICE == "cuda" else 128
    ms = (256, 512, 1024, 2048, 4096, 16384) if DEVICE == "cuda" else (16, 64)
    gemms = [("gemm", "bf16", m, size, size) for m in ms] + \
        [("gemm", "bf16", ms[-2], 28672 if DEVICE == "cuda" else 256, size),
         ("gemm", "fp8", ms[-2], size, size)]
    log = ClockLog().start()
    rows = _power_gemms(gemms[:2] if quick else gemms, seconds, log)
    log.stop()
    print(f"power sweep done ({len(rows)} rows)", flush=True)
    return rows


def power_trace(quick: bool, samples: int, seconds: float = 3.0) -> list[dict]:
    """NVML's SM clock and board power every 20 ms from rest into back-to-back 8192^3 bf16
    GEMMs (the power limiter's response)."""
    size = 8192 if DEVICE == "cuda" else 128
    fn = _gemm_call("bf16", size, size, size)
    fn()
    _sync()
    log = ClockLog().start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            fn()
        _sync()
    time.sleep(0.5)
    log.stop()
    start = t0 - 1.0
    return [{"t_s": f"{t - start:.3f}", "sm_clock_mhz": c, "power_w": f"{p:.1f}",
             "gemm_running": int(t0 <= t <= t0 + seconds)} for t, c, p in log.samples]


#: the duty cycle the ``gemm_burst`` part keeps the GPU under (its power then stays below the
#: limit and the SM clock at its maximum: validation/h200/h200_dvfs.csv)
BURST_DUTY = 0.25


def _burst_timer(fns, iters: int, samples: int, duty: float = BURST_DUTY) -> float:
    """:func:`_graph_timer`, with the GPU resting between samples so that it is busy a ``duty``
    fraction of the time (the boost clock, not the power-limited one)."""
    import torch

    if DEVICE != "cuda":
        return _eager_timer(fns, iters, samples)
    graph = _capture(fns, iters)
    graph.replay()
    _sync()
    times = []
    for _ in range(samples):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        busy = start.elapsed_time(end) * 1e-3
        times.append(busy / iters)
        time.sleep(max(busy * (1.0 / duty - 1.0), 2e-4))
    del graph
    return statistics.median(times)


def gemm_burst(quick: bool, samples: int) -> list[dict]:
    """The GEMM part's grid timed at a :data:`BURST_DUTY` duty cycle (CUDA-graph samples with
    rests between them), with the SM clock NVML read during each shape: GEMMs at the boost
    clock."""
    rows = []
    log = ClockLog().start()
    dtypes = ("bf16", "fp16") if DEVICE != "cuda" or not _has_fp8() else ("bf16", "fp16", "fp8")
    for dtype_name in dtypes:
        size = 1 if dtype_name == "fp8" else 2
        for m, n, k in gemm_grid(quick):
            if dtype_name == "fp8" and m % 16:
                continue
            flops = 2.0 * m * n * k
            copies = _copies(size * (m * k + k * n) + 2 * m * n)
            it = max(copies, _iters(flops, 2e12 if DEVICE == "cuda" else 2e9))
            t0 = time.perf_counter()
            try:
                fns = [_gemm_call(dtype_name, m, n, k) for _ in range(copies)]
                t = _burst_timer(fns, it, samples)
            except Exception as exc:  # noqa: BLE001
                _skip(f"{dtype_name} {m}x{n}x{k}", exc)
                continue
            del fns
            clocks = log.between(t0, time.perf_counter())
            rows.append({"dtype": dtype_name, "M": m, "N": n, "K": k, "latency_s": f"{t:.9g}",
                         "tflops": f"{flops / t / 1e12:.6g}", "copies": copies,
                         "sm_clock_mhz_min": clocks.get("sm_clock_mhz_min", ""),
                         "power_w_max": max((pw for tt, _, pw in log.samples if tt >= t0),
                                            default="")})
        print(f"gemm burst {dtype_name} done ({len(rows)} rows)", flush=True)
    log.stop()
    return rows


#: (M, N, K) of the ``gemm_sustained`` part, each dtype: weight-streaming to compute-bound
SUSTAINED = [(16, 28672, 8192), (256, 8192, 8192), (512, 12288, 4096), (1024, 8192, 8192),
             (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192), (4096, 28672, 8192),
             (16384, 4096, 11008)]


def gemm_sustained(quick: bool, samples: int, seconds: float = 1.5) -> list[dict]:
    """Power rows (as :func:`measure_power`'s) of :data:`SUSTAINED` GEMMs in bf16, fp16 and fp8,
    each run back to back for ``seconds`` after a 1 s rest."""
    dtypes = ("bf16", "fp16", "fp8") if DEVICE == "cuda" and _has_fp8() else ("bf16",)
    shapes = SUSTAINED if DEVICE == "cuda" else [(16, 256, 128), (64, 128, 128)]
    gemms = [("gemm", dt, m, n, k) for dt in dtypes for m, n, k in (shapes[:2] if quick else
                                                                      shapes)]
    log = ClockLog().start()
    rows = _power_gemms(gemms, seconds, log)
    log.stop()
    return rows


#: duty cycles of the ``dvfs`` part: the share of wall time its GEMM bursts run
DUTIES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)


def _duty_row(dtype: str, shape: str, replay, calls: int, duty: float, seconds: float,
              log: ClockLog) -> dict:
    """One duty-cycle row: ``replay`` (``calls`` calls) in bursts separated by host sleeps so
    that the GPU is busy a ``duty`` fraction of ``seconds``, after 0.7 s of rest; the median
    burst's time per call over the window's second half, the first burst's, and NVML's power
    and clock over the second half."""
    import torch

    _sync()
    time.sleep(0.7)
    bursts: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tb = time.perf_counter()
        if DEVICE == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            replay()
            end.record()
            end.synchronize()
            busy = start.elapsed_time(end) * 1e-3
        else:
            replay()
            busy = time.perf_counter() - tb
        bursts.append((tb, busy))
        gap = busy * (1.0 / duty - 1.0)
        if gap > 0:
            time.sleep(gap)
    t1 = time.perf_counter()
    half = (t0 + t1) / 2
    late = [b for tb, b in bursts if tb >= half] or [bursts[-1][1]]
    got = log.between(half, t1)
    row = {"dtype": dtype, "shape": shape, "duty_target": duty,
           "duty": f"{sum(b for _, b in bursts) / (t1 - t0):.4f}",
           "bursts": len(bursts), "calls": calls * len(bursts), "wall_s": f"{t1 - t0:.4f}",
           "time_per_call_s": f"{statistics.median(late) / calls:.9g}",
           "first_call_s": f"{bursts[0][1] / calls:.9g}",
           **{k: got.get(k, "") for k in ("power_w_median", "sm_clock_mhz_median",
                                          "sm_clock_mhz_min", "sm_clock_mhz_max", "samples")}}
    print(f"duty {dtype} {shape} {duty}: {row}", flush=True)
    return row


def dvfs(quick: bool, samples: int, seconds: float = 1.6) -> list[dict]:
    """Power, SM clock and time per call of 8192^3 GEMMs (bf16, fp8) run in bursts of 4 calls
    (one CUDA graph, ~3-6 ms) separated by host sleeps, at each duty cycle of :data:`DUTIES`
    (busy time / wall time), after 0.7 s of rest: how the power limiter's clock and the energy
    per call follow the load (:func:`_duty_row`)."""
    size = 8192 if DEVICE == "cuda" else 128
    log = ClockLog().start()
    time.sleep(0.5)
    t = time.perf_counter()
    time.sleep(0.5)
    idle = log.between(t, time.perf_counter())
    rows = [{"dtype": "", "shape": "", "duty_target": 0, "duty": 0, "bursts": 0, "calls": 0,
             "wall_s": 0.5, "time_per_call_s": "", "first_call_s": "",
             **{k: idle.get(k, "") for k in ("power_w_median", "sm_clock_mhz_median",
                                             "sm_clock_mhz_min", "sm_clock_mhz_max", "samples")}}]
    for dt in (("bf16",) if quick else ("bf16", "fp8")):
        if dt == "fp8" and (DEVICE != "cuda" or not _has_fp8()):
            continue
        fn = _gemm_call(dt, size, size, size)
        graph = _capture(fn, 4) if DEVICE == "cuda" else None
        replay = graph.replay if graph is not None else _calls(fn, 4)
        for duty in (DUTIES[::3] if quick else DUTIES):
            rows.append(_duty_row(dt, f"{size}x{size}x{size}", replay, 4, duty, seconds, log))
        del graph, fn
    log.stop()
    return rows


#: (batch, heads, kv heads, tokens, head dim) of the ``attention_duty`` part: non-causal
#: prefills whose single call lasts 0.4-12 ms
ATTENTION_DUTY = [(8, 32, 32, 2048, 128), (1, 32, 32, 8192, 128), (1, 64, 8, 16384, 128)]


def attention_duty(quick: bool, samples: int, seconds: float = 1.6) -> list[dict]:
    """:func:`dvfs`'s rows for SDPA prefill (bf16, non-causal) at 25% and 100% duty: the
    attention kernel's time at the boost clock and at the power limit, and its power."""
    import torch

    log = ClockLog().start()
    rows = []
    shapes = ATTENTION_DUTY if DEVICE == "cuda" else [(1, 4, 2, 64, 32)]
    for b, h, g, s, d in (shapes[:1] if quick else shapes):
        mk = lambda *z: torch.randn(*z, device=DEVICE, dtype=torch.bfloat16)  # noqa: E731
        q, k, v = mk(b, h, s, d), mk(b, g, s, d), mk(b, g, s, d)
        fn = partial(_sdpa, q, k, v, False, g != h)
        n = max(1, int(4e12 / (4.0 * b * h * s * s * d)))   # ~5 ms per burst
        graph = _capture(fn, n) if DEVICE == "cuda" else None
        replay = graph.replay if graph is not None else _calls(fn, n)
        for duty in (0.25, 1.0):
            rows.append(_duty_row("bf16", f"prefill b{b} h{h}/{g} s{s} d{d}", replay, n, duty,
                                  seconds, log))
        del graph, q, k, v
    log.stop()
    return rows


#: (phase, model, batch, context or prompt, calls per burst) of the ``step_duty`` part
STEP_DUTY = [("prefill", "llama2-7b", 1, 2048, 2), ("prefill", "llama3-8b", 1, 8192, 1),
             ("decode", "llama3-8b", 64, 2048, 8), ("decode", "llama2-7b", 8, 1024, 16)]


def step_duty(quick: bool, samples: int, seconds: float = 1.6) -> list[dict]:
    """:func:`dvfs`'s rows for Llama prefill and decode steps (CUDA graphs of a few steps) at
    25% and 100% duty: a whole step at the boost clock and at the power limit."""
    log = ClockLog().start()
    rows = []
    cases = STEP_DUTY if DEVICE == "cuda" else [("decode", "llama2-7b", 1, 64, 2)]
    for phase, name, batch, length, n in (cases[:1] if quick else cases):
        fn, _ = _llama_step(phase, name, batch, length)
        graph = _capture(fn, n) if DEVICE == "cuda" else None
        replay = graph.replay if graph is not None else _calls(fn, n)
        mark = "ctx" if phase == "decode" else "p"
        for duty in (0.25, 1.0):
            rows.append(_duty_row("bf16", f"{phase}-step {name} b{batch} {mark}{length}", replay,
                                  n, duty, seconds, log))
        del graph, fn
    log.stop()
    return rows

#: (N, K) of the ``kernels`` part's GEMMs: Llama-2-7B's projections (fused QKV, O, gate+up,
#: down, LM head) and Llama-2-70B's at tensor parallelism 8
KERNEL_NK = [(12288, 4096), (4096, 4096), (22016, 4096), (4096, 11008), (32000, 4096),
             (1280, 8192), (1024, 8192), (7168, 8192), (8192, 3584)]
KERNEL_M = (1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def _kernel_rows(case: dict, fn, calls: int = 3) -> list[dict]:
    """The GPU kernels (name, grid, block, registers, shared memory, median duration) that
    ``calls`` calls of ``fn`` launch, from a PyTorch profiler trace."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    fn()
    _sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        _sync()
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        prof.export_chrome_trace(fh.name)
        trace = json.loads(Path(fh.name).read_text())
    by_name: dict[tuple, list[float]] = {}
    for ev in trace.get("traceEvents", []):
        if ev.get("cat") != "kernel":
            continue
        a = ev.get("args", {})
        key = (ev["name"], "x".join(str(v) for v in a.get("grid", [])),
               "x".join(str(v) for v in a.get("block", [])), a.get("registers per thread", ""),
               a.get("shared memory", ""))
        by_name.setdefault(key, []).append(float(ev.get("dur", 0.0)) * 1e-6)
    return [{**case, "kernel": k[0][:240], "grid": k[1], "block": k[2], "registers": k[3],
             "smem_bytes": k[4], "launches": len(d), "duration_s": f"{statistics.median(d):.9g}"}
            for k, d in by_name.items()]


def kernels(quick: bool, samples: int) -> list[dict]:
    """Which kernels PyTorch launches, with their grids: cuBLAS GEMMs of Llama layers
    (:data:`KERNEL_NK` x :data:`KERNEL_M`, bf16 and fp16), the vector part's LayerNorm,
    RMSNorm and softmax shapes, and the attention part's SDPA decode and prefill calls."""
    import torch
    import torch.nn.functional as F

    rows: list[dict] = []
    ms = KERNEL_M if not quick else KERNEL_M[::3]
    nk = KERNEL_NK if DEVICE == "cuda" else [(256, 512)]
    for dt in ("bf16", "fp16"):
        for m in (ms if DEVICE == "cuda" else (16,)):
            for n, k in nk:
                case = {"op": "gemm", "dtype": dt, "shape": f"{m}x{n}x{k}"}
                try:
                    rows += _kernel_rows(case, _gemm_call(dt, m, n, k))
                except Exception as exc:  # noqa: BLE001
                    _skip(f"kernels {case}", exc)
        print(f"kernels gemm {dt} done ({len(rows)} rows)", flush=True)
    widths = (1024, 4096, 8192, 16384) if DEVICE == "cuda" else (256,)
    for r in ((1, 64, 1024, 8192, 32768) if DEVICE == "cuda" else (16,)):
        for w in widths:
            x = torch.randn(r, w, device=DEVICE, dtype=torch.float16)
            ops = {"layernorm": partial(F.layer_norm, x, (w,)),
                   "softmax": partial(torch.softmax, x, dim=-1)}
            if hasattr(F, "rms_norm"):
                ops["rmsnorm"] = partial(F.rms_norm, x, (w,))
            for name, fn in ops.items():
                rows += _kernel_rows({"op": name, "dtype": "fp16", "shape": f"{r}x{w}"}, fn)
            del x
    print(f"kernels vector done ({len(rows)} rows)", flush=True)
    mk = lambda *s: torch.randn(*s, device=DEVICE, dtype=torch.bfloat16)  # noqa: E731
    decode = DECODE + DECODE_SWEEP if DEVICE == "cuda" else [(2, 4, 2, 128, 32)]
    for b, h, g, n, d in decode:
        q, k, v = mk(b, h, 1, d), mk(b, g, n, d), mk(b, g, n, d)
        rows += _kernel_rows({"op": "decode", "dtype": "bf16", "shape": f"b{b} h{h} g{g} "
                              f"kv{n} d{d}"}, partial(_sdpa, q, k, v, False, g != h))
        del q, k, v
    prefill = PREFILL + PREFILL_SWEEP if DEVICE == "cuda" else [(1, 4, 2, 64, 32)]
    for b, h, g, s, d in prefill:
        q, k, v = mk(b, h, s, d), mk(b, g, s, d), mk(b, g, s, d)
        rows += _kernel_rows({"op": "prefill", "dtype": "bf16", "shape": f"b{b} h{h} g{g} "
                              f"s{s} d{d} causal"}, partial(_sdpa, q, k, v, True, g != h))
        del q, k, v
    print(f"kernels done ({len(rows)} rows)", flush=True)
    return rows


def clocks_under_load(seconds: float = 3.0) -> dict:
    """SM clock (MHz) and power (W) NVML reads while a large bf16 GEMM runs back to back."""
    import torch

    try:
        import pynvml
    except ImportError:
        return {"nvml": "pynvml not installed"}
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                            pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3))
            time.sleep(0.05)

    a = torch.randn(8192, 8192, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=DEVICE, dtype=torch.bfloat16)
    torch.matmul(a, b)
    torch.cuda.synchronize()
    thread = threading.Thread(target=sample)
    thread.start()
    t0, n = time.perf_counter(), 0
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            torch.matmul(a, b)
        n += 20
        torch.cuda.synchronize()
    end.record()
    end.synchronize()
    stop.set()
    thread.join()
    loaded = samples[len(samples) // 4:]  # past the ramp
    return {"sm_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "mem_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1e3,
            "driver": pynvml.nvmlSystemGetDriverVersion(),
            "load_gemm": "bf16 8192x8192x8192 back to back",
            "load_tflops": 2 * 8192 ** 3 * n / (start.elapsed_time(end) * 1e-3) / 1e12,
            "load_sm_clock_mhz_median": statistics.median(s[0] for s in loaded),
            "load_sm_clock_mhz_min": min(s[0] for s in loaded),
            "load_power_w_median": statistics.median(s[1] for s in loaded),
            "load_samples": len(loaded)}


class ClockLog:
    """NVML's SM clock (MHz) and board power (W), read every 20 ms in a thread (none without
    pynvml or off the GPU)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - clocks are a side record
            self._nvml = None

    def start(self) -> ClockLog:
        if self._nvml is not None and DEVICE == "cuda":
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        nv, h = self._nvml, self._handle
        while not self._stop.is_set():
            clock = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
            self.samples.append((time.perf_counter(), clock, nv.nvmlDeviceGetPowerUsage(h) / 1e3))
            time.sleep(0.02)

    def between(self, t0: float, t1: float) -> dict:
        """Median and range of the SM clock and power sampled in [t0, t1]."""
        got = [(c, p) for t, c, p in self.samples if t0 <= t <= t1]
        if not got:
            return {}
        clocks, power = sorted(c for c, _ in got), sorted(p for _, p in got)
        return {"sm_clock_mhz_median": statistics.median(clocks), "sm_clock_mhz_min": clocks[0],
                "sm_clock_mhz_max": clocks[-1], "power_w_median": statistics.median(power),
                "samples": len(got)}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def device_info() -> dict:
    import torch

    if DEVICE != "cuda":
        return {"name": "cpu (dry run)", "torch": torch.__version__}
    p = torch.cuda.get_device_properties(0)
    return {"name": p.name, "sm_count": p.multi_processor_count,
            "memory_bytes": p.total_memory, "torch": torch.__version__,
            "cuda": torch.version.cuda, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}


PARTS = ("gemm", "attention", "vector", "decode", "prefill", "power", "trace",
         "attention_sweep", "power_sweep", "dvfs", "kernels", "gemm_burst", "gemm_sustained",
         "attention_duty", "step_duty")


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True, help="file prefix and folder, e.g. h200")
    ap.add_argument("--out", type=Path, default=None, help="folder (default validation/<tag>)")
    ap.add_argument("--quick", action="store_true", help="smaller grids")
    ap.add_argument("--samples", type=int, default=7, help="timed samples per case")
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU (no CUDA graphs)")
    ap.add_argument("--only", default="gemm,attention,vector,decode,prefill",
                    help="comma-separated parts to measure")
    args = ap.parse_args(argv)
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        print(f"measure_gpu.py: --only: unknown part(s) {', '.join(sorted(unknown))} (expected "
              f"some of {', '.join(PARTS)})", file=sys.stderr)
        return 2
    import torch

    if args.cpu:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("no CUDA device: run on the GPU machine (or --cpu for a dry run)", file=sys.stderr)
        return 2
    out = args.out or HERE / args.tag
    out.mkdir(parents=True, exist_ok=True)
    info = device_info()
    print(json.dumps(info), flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    parts = set(args.only.split(","))
    t0 = time.perf_counter()
    if DEVICE == "cuda":
        try:
            info.update(clocks_under_load())
        except Exception as exc:  # noqa: BLE001
            _skip("clocks under load", exc)
        print(json.dumps(info), flush=True)
    steps = (("gemm", measure_gemm, "gemm"), ("attention", measure_attention, "attention"),
             ("vector", measure_vector, "vector"), ("decode", measure_decode_step, "decode_step"),
             ("prefill", measure_prefill_step, "prefill_step"),
             ("power", measure_power, "power"), ("trace", power_trace, "power_trace"),
             ("attention_sweep", attention_sweep, "attention_sweep"),
             ("power_sweep", power_sweep, "power_sweep"), ("dvfs", dvfs, "dvfs"),
             ("kernels", kernels, "kernels"), ("gemm_burst", gemm_burst, "gemm_burst"),
             ("gemm_sustained", gemm_sustained, "gemm_sustained"),
             ("attention_duty", attention_duty, "attention_duty"),
             ("step_duty", step_duty, "step_duty"))
    log = ClockLog().start()
    info["clocks_by_part"] = {}
    for part, fn, name in steps:
        if part in parts:
            t_part = time.perf_counter()
            try:
                _write(out, f"{args.tag}_{name}.csv", fn(args.quick, args.samples))
            except Exception as exc:  # keep what the other parts measured
                print(f"{part} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            info["clocks_by_part"][part] = log.between(t_part, time.perf_counter())
            print(f"[{time.perf_counter() - t0:.1f} s] {info['clocks_by_part'][part]}", flush=True)
    log.stop()
    (out / f"{args.tag}_device.json").write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
