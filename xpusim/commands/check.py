"""``xpusim check``: run one layer functionally on an arch and compare every op with the float64
reference kernels (max abs, max rel and ULP error against a per-datatype tolerance)."""

from __future__ import annotations

import argparse
import math
import sys

from xpusim.commands._common import add_arch_arg, load_model, positive_int, print_json

NAME = "check"
HELP = "run one layer functionally and compare every op with the float64 reference kernels"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_arch_arg(p)
    p.add_argument("--model", default="llama2-7b",
                   help="model preset or config.json path (default llama2-7b)")
    p.add_argument("--ops", nargs="+", default=[],
                   help="op names to check (default: all ops of the layer), e.g. qkv_proj softmax")
    p.add_argument("--phase", default="both", choices=("prefill", "decode", "both"),
                   help="prefill layer, one decode step, or both (default both)")
    p.add_argument("--batch", type=positive_int, default=1, help="requests (1)")
    p.add_argument("--prompt", type=positive_int, default=64,
                   help="prompt tokens; decode attends over prompt + 1 (default 64)")
    p.add_argument("--dtype", default="fp16", help="weight and activation dtype (fp16)")
    p.add_argument("--kv-dtype", default="", help="KV-cache dtype (default: --dtype)")
    p.add_argument("--attention", default="unfused", choices=("unfused", "flash"),
                   help="QK/softmax/AV kernels, or the fused 1-pass cascade")
    p.add_argument("--full", action="store_true",
                   help="real model widths (default: heads and d_ff scaled down so d_model <= "
                        "--max-width; head_dim and the GQA ratio kept)")
    p.add_argument("--max-width", type=positive_int, default=1024,
                   help="largest d_model without --full (1024)")
    p.add_argument("--weights", default="", choices=("", "int8", "int4"),
                   help="weight-only integer weights, dequantized on the device")
    p.add_argument("--group", type=int, default=0,
                   help="weight quantization group size along K (0: per output channel)")
    p.add_argument("--seed", type=int, default=0, help="data seed (0)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def run(args: argparse.Namespace) -> int:
    from arch import load_arch
    from sim.functional.layer import CheckSpec, check_layer

    arch = load_arch(args.arch)
    model = load_model(args.model)
    ops = tuple(o for item in args.ops for o in item.split(",") if o)
    phases = ("prefill", "decode") if args.phase == "both" else (args.phase,)
    spec = CheckSpec(batch=args.batch, prompt=args.prompt, phases=phases, dtype=args.dtype,
                     kv_dtype=args.kv_dtype, attention=args.attention, ops=ops, seed=args.seed,
                     full=args.full, max_width=args.max_width, weights=args.weights,
                     group=args.group)
    report = check_layer(arch, model, spec)
    if args.json:
        out = report.as_dict()
        for row in out["ops"]:
            for key in ("max_abs", "max_rel", "max_ulp", "max_ulp_raw"):
                row[key] = _num(row[key])
        print_json(out)
    else:
        _print_table(report)
    return 0 if report.passed else 1


def _print_table(report) -> None:
    sh = report.shapes
    scale = f", widths / {sh['width_scale']}" if sh["width_scale"] > 1 else ""
    w = sys.stdout.write
    w(f"{report.model} layer on {report.arch}: d_model {sh['d_model']}, {sh['heads']} heads "
      f"({sh['kv_heads']} KV) x {sh['head_dim']}, d_ff {sh['d_ff']}, batch {sh['batch']}, "
      f"prompt {sh['prompt']}{scale}; {report.seconds:.1f} s\n")
    head = (f"{'phase':8} {'op':15} {'device':14} {'dtype':6} {'max_abs':>10} {'max_rel':>10} "
            f"{'max_ulp':>8} {'tol':>4}  {'':4}  mapping\n")
    w(head)
    for r in report.rows:
        d = r.detail
        mapping = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("mapping_source",))
        w(f"{r.phase:8} {r.op:15} {r.device:14} {r.dtype:6} {r.max_abs:10.3g} {r.max_rel:10.3g} "
          f"{r.max_ulp:8.3g} {r.tolerance:4.1f}  {'ok' if r.passed else 'FAIL':4}  {mapping}\n")
    failed = [r.op for r in report.rows if not r.passed]
    w("passed\n" if not failed else f"FAILED: {', '.join(failed)}\n")
