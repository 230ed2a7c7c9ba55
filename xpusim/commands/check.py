"""``xpusim check``: run one layer functionally on an arch and compare every op with the float64
reference kernels (max abs, max rel and ULP error against a per-datatype tolerance)."""

from __future__ import annotations

import argparse
import math
import sys

from xpusim.commands._common import (
    add_arch_arg,
    load_model,
    positive_int,
    positive_or_zero_int,
    print_json,
    seed_int,
)
from xpusim.progress import add_quiet_arg

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
    p.add_argument("--weights", default="", choices=("", "int8", "int4", "int2"),
                   help="weight-only integer weights, dequantized on the device")
    p.add_argument("--group", type=positive_or_zero_int, default=0,
                   help="weight quantization group size along K (0: per output channel)")
    p.add_argument("--act-dtype", default="", choices=("", "int8"),
                   help="int8: per-token int8 activations; with --weights, linear ops run on "
                        "the device's low-bit datapath where it has one (fpga: W2A8/W4A8)")
    p.add_argument("--sparsity", default="", metavar="N:M",
                   help="prune the linear weights N:M (e.g. 2:4); a sparse engine stores the "
                        "kept blocks compressed")
    p.add_argument("--seed", type=seed_int, default=0, help="data seed (0)")
    p.add_argument("--attention-on", default=None, metavar="COMPONENT",
                   help="a system arch: the device component that runs decode attention "
                        "(default: its csd component if it has one; the primary's name keeps "
                        "it on the primary)")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimated work or memory is above the limit")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_quiet_arg(p)


#: reference-kernel work and memory a check may need without --force (~30 s, 4 GiB; the
#: reference kernels run 2-4 GFLOP/s, a --full Llama-2-7B layer 2.6e10 FLOPs in 12 s, 1.8 GB)
MAX_FLOPS = 1e11
MAX_BYTES = 4 * 2**30


def check_size(model, batch: int, prompt: int, full: bool, max_width: int) -> tuple[float, float]:
    """(FLOPs, bytes) one checked layer needs, estimated from its shapes: a float64 copy of the
    weights, four of activations and attention scores, and the GEMM and attention work."""
    from sim.functional.layer import reduced_model

    m = model if full else reduced_model(model, max_width)[0]
    t, d, ff = batch * prompt, m.d_model, m.d_ff * max(1, m.n_experts)
    q, kv = m.n_heads * m.head_dim, m.n_kv_heads * m.head_dim
    weights = d * (q + 2 * kv) + q * d + 3 * d * ff
    flops = 2.0 * t * weights + 4.0 * batch * m.n_heads * prompt * (prompt + 1) * m.head_dim
    elements = t * (3 * d + 3 * ff) + batch * m.n_heads * prompt * (prompt + 1)
    return flops, 8.0 * (weights + 4 * elements)


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def run(args: argparse.Namespace) -> int:
    from arch import load_arch
    from kernels_ref.dtypes import get_format
    from sim.functional.layer import CheckSpec, check_layer
    from workloads.errors import WorkloadError

    arch = load_arch(args.arch)
    model = load_model(args.model)
    for opt, name in (("--dtype", args.dtype), ("--kv-dtype", args.kv_dtype)):
        try:
            if name:
                get_format(name)
        except KeyError as exc:  # a datatype the reference kernels cannot emulate
            raise WorkloadError("", opt, str(exc.args[0])) from None
    if model.is_mla:   # before the size check: no size makes it checkable
        raise WorkloadError("", "--model", f"{model.name}'s multi-head latent attention is "
                                           "priced but not checked functionally (no reference "
                                           "for its absorbed projections yet)")
    flops, nbytes = check_size(model, args.batch, args.prompt, args.full, args.max_width)
    if (flops > MAX_FLOPS or nbytes > MAX_BYTES) and not args.force:
        raise WorkloadError("", "--batch", f"this check needs about {flops:.2g} FLOPs and "
                                           f"{nbytes / 2**30:,.1f} GiB (limits {MAX_FLOPS:.0e}, "
                                           f"{MAX_BYTES // 2**30} GiB); use a smaller --batch, "
                                           "--prompt or --max-width, or --force")
    ops = tuple(o for item in args.ops for o in item.split(",") if o)
    phases = ("prefill", "decode") if args.phase == "both" else (args.phase,)
    spec = CheckSpec(batch=args.batch, prompt=args.prompt, phases=phases, dtype=args.dtype,
                     kv_dtype=args.kv_dtype, attention=args.attention, ops=ops, seed=args.seed,
                     full=args.full, max_width=args.max_width, weights=args.weights,
                     group=args.group, attention_on=args.attention_on,
                     activations=args.act_dtype, sparsity=args.sparsity)
    from xpusim.progress import enabled, timed

    # the float64 reference kernels run at 2-4 GFLOP/s (see MAX_FLOPS); the first check of a
    # session also compiles the numba kernels (~30 s), so a remembered duration wins when known
    with timed("check", flops / 3e9, enabled(args),
               key=f"check:{model.name}:{args.phase}:{args.full}:{args.max_width}"):
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
