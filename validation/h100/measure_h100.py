#!/usr/bin/env python3
"""Measure an NVIDIA H100 for ``xpusim validate`` (suites ``h100-gemm`` and ``h100-llm``).

Run on a machine with one H100 and PyTorch (CUDA) installed, from the repository root:

    python validation/h100/measure_h100.py            # writes validation/h100/*.csv
    python validation/h100/measure_h100.py --quick    # a smaller grid (a few minutes)

What it measures (device time with CUDA events; ``iters`` back-to-back launches per sample, the
median of ``samples`` samples, after warm-up):

* ``h100_gemm.csv`` — ``torch.matmul`` of [M, K] x [K, N] in bf16 and fp16 over a grid of
  shapes (LLM projection shapes and square sweeps). Columns: dtype, M, N, K, latency_s, tflops.
* ``h100_attention.csv`` — fused attention: prefill with
  ``F.scaled_dot_product_attention`` (flash backend, causal=False) and decode with
  ``flash_attn.flash_attn_with_kvcache`` when the flash-attn package is installed (else SDPA with
  one query). Columns: phase, impl, batch, heads, kv_heads, q_len, kv_len, head_dim, dtype,
  latency_s.
* ``h100_decode_step.csv`` — one decode step of a Llama-style model with random weights (RMSNorm,
  fused QKV, SDPA with a KV cache, SwiGLU MLP, LM head), captured in a CUDA graph so the time is
  the GPU's, as xpusim's ideal software stack assumes. Columns: model, layers, batch, context,
  dtype, latency_s, mode.
* ``h100_device.json`` — device name, clocks, driver, torch and CUDA versions.

The CSVs are project validation data: commit them; ``xpusim validate`` picks them up.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent


def _timer(fn, iters: int, samples: int) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(samples):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3 / iters)
    return statistics.median(times)


def _write(name: str, rows: list[dict]) -> None:
    if not rows:
        return
    path = OUT / name
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    print(f"wrote {path} ({len(rows)} rows)")


def gemm_grid(quick: bool) -> list[tuple[int, int, int]]:
    ms = [1, 8, 64, 256, 1024, 4096, 16384] if not quick else [1, 64, 1024, 8192]
    nk = [(4096, 4096), (8192, 8192), (8192, 28672), (28672, 8192), (12288, 12288),
          (1024, 8192), (8192, 1024)]
    if quick:
        nk = nk[:3]
    squares = [(s, s, s) for s in (256, 512, 1024, 2048, 4096, 8192, 16384)]
    return [(m, n, k) for m in ms for n, k in nk] + squares


def measure_gemm(quick: bool) -> list[dict]:
    import torch

    rows = []
    for dtype_name in ("bf16", "fp16"):
        dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float16
        for m, n, k in gemm_grid(quick):
            a = torch.randn(m, k, device="cuda", dtype=dtype)
            b = torch.randn(k, n, device="cuda", dtype=dtype)
            flops = 2.0 * m * n * k
            iters = max(1, min(200, int(2e12 / max(flops, 1.0))))
            t = _timer(lambda a=a, b=b: torch.matmul(a, b), iters, 7)
            rows.append({"dtype": dtype_name, "M": m, "N": n, "K": k, "latency_s": f"{t:.9g}",
                         "tflops": f"{flops / t / 1e12:.6g}"})
            del a, b
    return rows


def measure_attention(quick: bool) -> list[dict]:
    import torch
    import torch.nn.functional as F

    rows = []
    dtype = torch.bfloat16
    prefill = [(1, 32, 32, 2048, 128), (8, 32, 32, 2048, 128), (1, 64, 8, 4096, 128),
               (4, 32, 32, 1024, 64)]
    decode = [(1, 32, 32, n, 128) for n in (1024, 4096, 16384, 65536)] + \
        [(8, 64, 8, n, 128) for n in (1024, 4096, 16384)] + \
        [(1, 64, 64, n, 64) for n in (4096, 65536)]
    if quick:
        prefill, decode = prefill[:2], decode[:4]
    for b, h, g, s, d in prefill:
        q = torch.randn(b, h, s, d, device="cuda", dtype=dtype)
        k = torch.randn(b, g, s, d, device="cuda", dtype=dtype)
        v = torch.randn(b, g, s, d, device="cuda", dtype=dtype)
        if g != h:
            k, v = k.repeat_interleave(h // g, 1), v.repeat_interleave(h // g, 1)
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
            t = _timer(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v), 5, 7)
        rows.append({"phase": "prefill", "impl": "sdpa-flash", "batch": b, "heads": h,
                     "kv_heads": g, "q_len": s, "kv_len": s, "head_dim": d, "dtype": "bf16",
                     "latency_s": f"{t:.9g}"})
    try:
        from flash_attn import flash_attn_with_kvcache
    except ImportError:
        flash_attn_with_kvcache = None
    for b, h, g, n, d in decode:
        if flash_attn_with_kvcache is not None:
            q = torch.randn(b, 1, h, d, device="cuda", dtype=dtype)
            kc = torch.randn(b, n, g, d, device="cuda", dtype=dtype)
            vc = torch.randn(b, n, g, d, device="cuda", dtype=dtype)
            t = _timer(lambda q=q, kc=kc, vc=vc: flash_attn_with_kvcache(q, kc, vc), 20, 7)
            impl = "flash_attn_with_kvcache"
        else:
            q = torch.randn(b, h, 1, d, device="cuda", dtype=dtype)
            kc = torch.randn(b, h, n, d, device="cuda", dtype=dtype)
            vc = torch.randn(b, h, n, d, device="cuda", dtype=dtype)
            t = _timer(lambda q=q, kc=kc, vc=vc: F.scaled_dot_product_attention(q, kc, vc),
                       20, 7)
            impl = "sdpa"
        rows.append({"phase": "decode", "impl": impl, "batch": b, "heads": h, "kv_heads": g,
                     "q_len": 1, "kv_len": n, "head_dim": d, "dtype": "bf16",
                     "latency_s": f"{t:.9g}"})
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
            k = L["kc"].repeat_interleave(h // g, 1) if g != h else L["kc"]
            v = L["vc"].repeat_interleave(h // g, 1) if g != h else L["vc"]
            a = F.scaled_dot_product_attention(q, k, v)
            x = x + a.transpose(1, 2).reshape(batch, 1, h * hd) @ L["wo"]
            gu = norm(x) @ L["wgu"]
            x = x + (F.silu(gu[..., :ff]) * gu[..., ff:]) @ L["wd"]
        return x @ head

    return step


def measure_decode_step(quick: bool) -> list[dict]:
    import torch

    rows = []
    dtype = torch.bfloat16
    cases = [("llama2-7b", 1, 1024), ("llama2-7b", 8, 1024), ("llama3-8b", 1, 4096)]
    if quick:
        cases = cases[:1]
    for name, batch, ctx in cases:
        c = LLAMA[name]
        d, h, g, ff, hd = c["d"], c["heads"], c["kv"], c["ff"], c["d"] // c["heads"]
        mk = lambda *s: torch.randn(*s, device="cuda", dtype=dtype) * 0.02  # noqa: E731
        layers = [dict(wqkv=mk(d, (h + 2 * g) * hd), wo=mk(h * hd, d), wgu=mk(d, 2 * ff),
                       wd=mk(ff, d), kc=mk(batch, g, ctx, hd), vc=mk(batch, g, ctx, hd))
                  for _ in range(c["layers"])]
        head = mk(d, c["vocab"])
        x0 = mk(batch, 1, d)

        step = _decode_step_fn(x0, layers, head, batch, d, h, g, hd, ff)

        mode = "cuda-graph"
        try:
            torch.cuda.synchronize()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                step()
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            t = _timer(graph.replay, 10, 7)
        except Exception as exc:  # graph capture unsupported: fall back to eager timing
            print(f"CUDA graph capture failed ({exc}); timing eagerly", file=sys.stderr)
            mode = "eager"
            t = _timer(step, 10, 7)
        rows.append({"model": name, "layers": c["layers"], "batch": batch, "context": ctx,
                     "dtype": "bf16", "latency_s": f"{t:.9g}", "mode": mode})
        del layers, head
        torch.cuda.empty_cache()
    return rows


def device_info() -> dict:
    import torch

    p = torch.cuda.get_device_properties(0)
    return {"name": p.name, "sm_count": p.multi_processor_count,
            "memory_bytes": p.total_memory, "torch": torch.__version__,
            "cuda": torch.version.cuda, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller grids")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this script must run on the GPU machine", file=sys.stderr)
        return 2
    info = device_info()
    print(json.dumps(info))
    if "H100" not in info["name"]:
        print(f"warning: measuring a '{info['name']}', not an H100", file=sys.stderr)
    torch.backends.cuda.matmul.allow_tf32 = False
    _write("h100_gemm.csv", measure_gemm(args.quick))
    _write("h100_attention.csv", measure_attention(args.quick))
    _write("h100_decode_step.csv", measure_decode_step(args.quick))
    (OUT / "h100_device.json").write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
