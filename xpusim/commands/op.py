"""``xpusim op``: cost of a single operation on an arch."""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import add_arch_arg, positive_int, print_json, warn_emulated

NAME = "op"
HELP = "cost of one operation (gemm) on an arch"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=("gemm",), help="operation")
    add_arch_arg(p, default="a100")
    p.add_argument("--m", type=positive_int, required=True, help="rows of A and C")
    p.add_argument("--n", type=positive_int, required=True, help="columns of B and C")
    p.add_argument("--k", type=positive_int, required=True, help="reduction length")
    p.add_argument("--batch", type=positive_int, default=1, help="batched GEMMs (1)")
    p.add_argument("--dtype", default="fp16", help="operand dtype (fp16)")
    p.add_argument("--fidelity", default="tile", choices=("roofline", "tile", "cycle"))
    p.add_argument("--json", action="store_true", help="print JSON")


def gemm_op(m: int, n: int, k: int, batch: int, dtype: str):
    """A one-op trace entry for C[b,m,n] = A[b,m,k] B[b,k,n]."""
    from workloads.einsum import DTYPE_BYTES, TensorRef, contraction
    from workloads.errors import WorkloadError
    from workloads.trace import MATMUL, Op

    if dtype not in DTYPE_BYTES:
        raise WorkloadError("", "--dtype", f"unknown dtype '{dtype}' "
                                           f"(expected one of {', '.join(DTYPE_BYTES)})")
    ranks = ("b",) if batch > 1 else ()
    e = contraction("gemm", TensorRef("C", (*ranks, "m", "n"), dtype),
                    TensorRef("A", (*ranks, "m", "k"), dtype),
                    TensorRef("B", (*ranks, "k", "n"), dtype, "weight"),
                    {"b": batch, "m": m, "n": n, "k": k})
    return Op(0, "gemm", MATMUL, "prefill", 0, 0, e, op_class="gemm")


def run(args: argparse.Namespace) -> int:
    from arch import load_arch
    from sim.devices.base import device_for

    arch = load_arch(args.arch)
    device = device_for(arch, args.fidelity)
    op = gemm_op(args.m, args.n, args.k, args.batch, args.dtype)
    warn_emulated(arch, args.dtype)
    cost = device.estimate(op)
    out = {"op": "gemm", "arch": arch.name, "fidelity": args.fidelity, "dtype": args.dtype,
           "m": args.m, "n": args.n, "k": args.k, "batch": args.batch,
           "latency_s": cost.latency, "roofline_s": cost.roofline, "flops": op.flops,
           "bytes": op.bytes, "dram_bytes": cost.dram_bytes, "energy_J": cost.energy_total,
           "energy_by_component_J": cost.energy, "bound": cost.bound,
           "tflops": op.flops / cost.latency / 1e12 if cost.latency else 0.0,
           "detail": {k: v for k, v in cost.detail.items()}}
    if args.json:
        print_json(out)
    else:
        sys.stdout.write(f"gemm {args.batch}x{args.m}x{args.n}x{args.k} {args.dtype} on "
                         f"{arch.name}: {cost.latency * 1e6:.2f} us ({out['tflops']:.1f} TFLOP/s, "
                         f"{cost.bound}-bound), {cost.energy_total * 1e3:.4f} mJ\n")
    return 0
