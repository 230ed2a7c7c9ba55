"""``xpusim op``: cost of a single operation on an arch.

Kinds: ``gemm`` (``--m --n --k [--batch]``); ``attention`` (fused, FlashAttention-style:
``--batch --heads [--kv-heads] --q-len --kv-len [--head-dim] [--v-dim] [--shared-kv]``;
``--q-len 1`` is a decode step; ``--shared-kv``: the values are the keys' first ``--v-dim``
channels, as multi-head latent attention reads its cache: FlashMLA on GPUs);
the collectives ``allreduce``, ``allgather``, ``reducescatter``, ``alltoall``, ``send``
(``--bytes`` per rank, ``--group`` devices); the vector ops ``softmax``, ``layernorm``,
``rmsnorm`` (``--rows --cols``, reduced along the columns), ``gelu``, ``silu`` (``--rows
--cols`` elements) and ``add``, ``mul`` (two inputs). Each builds the op the tracer builds for a
model layer and asks the arch's device model for its cost.
"""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import (
    add_arch_arg,
    duty_fraction,
    positive_int,
    print_json,
    warn_emulated,
)

NAME = "op"
HELP = "cost of one operation (gemm, attention, a collective, a vector op) on an arch"

COLLECTIVES = ("allreduce", "allgather", "reducescatter", "alltoall", "send")
REDUCTIONS = ("softmax", "layernorm", "rmsnorm")
ELEMENTWISE = ("gelu", "silu", "add", "mul", "copy")
KINDS = ("gemm", "attention", *COLLECTIVES, *REDUCTIONS, *ELEMENTWISE)
#: options each kind needs (the rest are ignored for it)
REQUIRED = {"gemm": ("m", "n", "k"), "attention": ("heads", "q_len", "kv_len"),
            **{c: ("bytes", "group") for c in COLLECTIVES},
            **{v: ("rows", "cols") for v in (*REDUCTIONS, *ELEMENTWISE)}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, help="operation")
    add_arch_arg(p, default="a100")
    p.add_argument("--m", type=positive_int, help="gemm: rows of A and C")
    p.add_argument("--n", type=positive_int, help="gemm: columns of B and C")
    p.add_argument("--k", type=positive_int, help="gemm: reduction length")
    p.add_argument("--batch", type=positive_int, default=1,
                   help="gemm: batched GEMMs; attention: sequences (1)")
    p.add_argument("--heads", type=positive_int, help="attention: query heads")
    p.add_argument("--kv-heads", type=positive_int, default=None,
                   help="attention: key/value heads (default --heads; fewer = grouped-query)")
    p.add_argument("--q-len", type=positive_int, help="attention: query tokens per sequence "
                                                      "(1 = a decode step)")
    p.add_argument("--kv-len", type=positive_int, help="attention: key/value tokens per sequence")
    p.add_argument("--head-dim", type=positive_int, default=128,
                   help="attention: head dimension (128)")
    p.add_argument("--v-dim", type=positive_int, default=None,
                   help="attention: value head dimension (default --head-dim)")
    p.add_argument("--shared-kv", action="store_true",
                   help="attention: the values are the keys' first --v-dim channels "
                        "(latent attention, DeepSeek: --kv-heads 1 --head-dim 576 --v-dim 512)")
    p.add_argument("--bytes", type=positive_int, help="collectives: bytes each rank contributes")
    p.add_argument("--group", type=positive_int, help="collectives: devices taking part")
    p.add_argument("--rows", type=positive_int, help="vector ops: rows (tokens)")
    p.add_argument("--cols", type=positive_int, help="vector ops: columns (reduced for softmax "
                                                     "and the norms)")
    p.add_argument("--dtype", default="fp16", help="operand dtype (fp16)")
    p.add_argument("--weights", default="", metavar="FORMAT",
                   help="gemm: stored format of B, a dtype or a packed low-bit format "
                        "BASE[/gG][/N:M], e.g. int2/g128/2:4 (default: --dtype)")
    p.add_argument("--fidelity", default="tile", choices=("roofline", "tile", "cycle"))
    p.add_argument("--duty", type=duty_fraction, default=None, metavar="D",
                   help="the op runs back to back a D fraction of the time (0-1], for longer "
                        "than the power limiter takes to react: priced at the clock the GPU's "
                        "power limit allows (default: one call, at the boost clock unless it "
                        "lasts longer than the limiter takes to react, gpu.power_reaction)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _check_dtype(dtype: str) -> None:
    from workloads.einsum import DTYPE_BYTES
    from workloads.errors import WorkloadError

    if dtype not in DTYPE_BYTES:
        raise WorkloadError("", "--dtype", f"unknown dtype '{dtype}' "
                                           f"(expected one of {', '.join(DTYPE_BYTES)})")


def gemm_op(m: int, n: int, k: int, batch: int, dtype: str, weights: str = ""):
    """A one-op trace entry for C[b,m,n] = A[b,m,k] B[b,k,n] (B stored as ``weights``)."""
    from workloads.einsum import DTYPE_BYTES, TensorRef, contraction, packed_format
    from workloads.errors import WorkloadError
    from workloads.trace import MATMUL, Op

    _check_dtype(dtype)
    if weights and weights not in DTYPE_BYTES and packed_format(weights) is None:
        raise WorkloadError("", "--weights", f"expected a dtype or BASE[/gG][/N:M] (e.g. "
                                             f"int2/g128/2:4), got '{weights[:40]}'")
    ranks = ("b",) if batch > 1 else ()
    e = contraction("gemm", TensorRef("C", (*ranks, "m", "n"), dtype),
                    TensorRef("A", (*ranks, "m", "k"), dtype),
                    TensorRef("B", (*ranks, "k", "n"), weights or dtype, "weight"),
                    {"b": batch, "m": m, "n": n, "k": k})
    return Op(0, "gemm", MATMUL, "prefill", 0, 0, e, op_class="gemm")


def attention_op(batch: int, heads: int, kv_heads: int, q_len: int, kv_len: int,
                 head_dim: int, dtype: str, v_dim: int | None = None, shared_kv: bool = False):
    """Fused attention of ``batch`` sequences: ``q_len`` queries over ``kv_len`` keys
    (``v_dim``: value heads of another width; ``shared_kv``: the values are the keys' first
    ``v_dim`` channels, one tensor, as latent attention reads its cache)."""
    from workloads.einsum import Cascade
    from workloads.errors import WorkloadError
    from workloads.models import ModelConfig
    from workloads.scenario import Scenario
    from workloads.trace import ATTENTION, Op
    from workloads.tracer import LayerBuilder

    _check_dtype(dtype)
    if heads % kv_heads:
        raise WorkloadError("", "--kv-heads", f"{kv_heads} must divide --heads {heads}")
    if q_len > kv_len:
        raise WorkloadError("", "--q-len", f"{q_len} query tokens exceed --kv-len {kv_len}")
    if shared_kv and (v_dim or head_dim) > head_dim:
        raise WorkloadError("", "--v-dim", f"{v_dim} shared value channels exceed --head-dim "
                                           f"{head_dim}")
    model = ModelConfig(name="op", family="llama", n_layers=1, d_model=heads * head_dim,
                        n_heads=heads, n_kv_heads=kv_heads, d_ff=4 * heads * head_dim,
                        vocab_size=32000, max_positions=max(kv_len, 2), head_dim=head_dim,
                        position="rope")
    sc = Scenario(batch=batch, prompt_len=kv_len, gen_len=2, dtype=dtype, attention="flash")
    builder = LayerBuilder(model, sc)
    if v_dim is None and not shared_kv:
        tpl = builder.attention(batch, q_len, kv_len)
    else:   # the tracer's attention ops with a value width of their own
        from workloads.einsum import TensorRef

        sizes = {"b": batch, "g": kv_heads, "r": heads // kv_heads, "s": q_len, "n": kv_len,
                 "e": head_dim, "f": v_dim or head_dim}
        k = TensorRef("kv_latent" if shared_kv else "k_cache", tuple("bgne"), dtype, "kv_cache")
        v = TensorRef("kv_latent" if shared_kv else "v_cache", tuple("bgnf"), dtype, "kv_cache")
        tpl = builder.attention_ops(TensorRef("q", tuple("bgrse"), dtype), k, v, sizes, "bgrsf")
    comp = tpl[0].compute
    assert isinstance(comp, Cascade)
    phase = "decode" if q_len == 1 else "prefill"
    return Op(0, "attention", ATTENTION, phase, 0, 0, comp, op_class="attention")


def collective_op(kind: str, nbytes: int, group: int, dtype: str = "fp16"):
    """One collective among ``group`` devices, ``nbytes`` per rank."""
    from workloads.trace import COLLECTIVE, Collective, Op

    _check_dtype(dtype)
    return Op(0, kind, COLLECTIVE, "decode", 0, 0, None, op_class="communication",
              collective=Collective(kind, nbytes, group, dtype))


def vector_op(kind: str, rows: int, cols: int, dtype: str = "fp16"):
    """A softmax / norm over ``cols`` of each row, or an element-wise op on rows x cols."""
    from workloads.einsum import TensorRef, elementwise
    from workloads.trace import VECTOR, Op
    from workloads.tracer import layernorm, softmax

    _check_dtype(dtype)
    if kind == "softmax":
        comp = softmax("softmax", TensorRef("x", ("t", "n"), dtype), {"t": rows, "n": cols}, "n")
        return Op(0, "softmax", VECTOR, "prefill", 0, 0, comp, op_class="attention")
    if kind in ("layernorm", "rmsnorm"):
        comp = layernorm(kind, "x", rows, cols, dtype, rms=kind == "rmsnorm")
        return Op(0, kind, VECTOR, "prefill", 0, 0, comp, op_class="norm")
    sizes = {"t": rows, "c": cols}
    if kind in ("gelu", "silu"):
        e = elementwise(kind, TensorRef("y", ("t", "c"), dtype),
                        (TensorRef("x", ("t", "c"), dtype),), sizes, "copy", unary=kind)
        return Op(0, kind, VECTOR, "prefill", 0, 0, e, op_class="activation")
    if kind == "copy":        # y = x: one read and one write of each element
        e = elementwise(kind, TensorRef("y", ("t", "c"), dtype),
                        (TensorRef("x", ("t", "c"), dtype),), sizes, "copy")
        return Op(0, kind, VECTOR, "prefill", 0, 0, e, op_class="elementwise")
    e = elementwise(kind, TensorRef("y", ("t", "c"), dtype),
                    (TensorRef("a", ("t", "c"), dtype), TensorRef("b", ("t", "c"), dtype)),
                    sizes, kind)
    return Op(0, kind, VECTOR, "prefill", 0, 0, e, op_class="elementwise")


def build_op(args: argparse.Namespace):
    """The op ``args`` describe; a one-line error names a missing option."""
    from workloads.errors import WorkloadError

    for name in REQUIRED[args.kind]:
        if getattr(args, name) is None:
            raise WorkloadError("", f"--{name.replace('_', '-')}",
                                f"required for 'xpusim op {args.kind}' (needs "
                                + ", ".join(f"--{n.replace('_', '-')}"
                                            for n in REQUIRED[args.kind]) + ")")
    if args.kind == "gemm":
        return gemm_op(args.m, args.n, args.k, args.batch, args.dtype,
                       getattr(args, "weights", ""))
    if args.kind == "attention":
        return attention_op(args.batch, args.heads, args.kv_heads or args.heads, args.q_len,
                            args.kv_len, args.head_dim, args.dtype, args.v_dim, args.shared_kv)
    if args.kind in COLLECTIVES:
        if args.group < 2:
            raise WorkloadError("", "--group", f"a collective needs at least 2 devices, "
                                               f"got {args.group}")
        return collective_op(args.kind, args.bytes, args.group, args.dtype)
    return vector_op(args.kind, args.rows, args.cols, args.dtype)


def _shape(args: argparse.Namespace) -> dict:
    keys = {"gemm": ("m", "n", "k", "batch"),
            "attention": ("batch", "heads", "kv_heads", "q_len", "kv_len", "head_dim")}
    names = keys.get(args.kind) or (("bytes", "group") if args.kind in COLLECTIVES
                                    else ("rows", "cols"))
    out = {k: getattr(args, k) for k in names}
    if args.kind == "attention":
        out["kv_heads"] = args.kv_heads or args.heads
        if args.v_dim or args.shared_kv:
            out.update(v_dim=args.v_dim or args.head_dim, shared_kv=args.shared_kv)
    return out


def run(args: argparse.Namespace) -> int:
    from arch import load_arch
    from sim.devices.base import device_for

    arch = load_arch(args.arch)
    device = device_for(arch, args.fidelity)
    op = build_op(args)
    if args.kind in COLLECTIVES:
        from sim.system.topology import build_system
        from workloads.errors import WorkloadError

        count = len(build_system(arch).devices)
        if args.group > count:
            raise WorkloadError("", "--group", f"{args.group} exceeds the {count} device(s) of "
                                               f"arch '{arch.name}' (use a multi-GPU arch such "
                                               "as dgx-a100, dgx-h100 or dgx-h100x2)")
    warn_emulated(arch, args.dtype)
    state = None
    duty = args.duty
    if duty is None:
        cost = device.estimate(op)
        from sim.gpu.power_cap import reacts_within

        if reacts_within(arch, cost.latency):   # one call outlasts the limiter's reaction
            duty = 1.0
    if duty is not None:
        from sim.sustained import sustained_cost

        cost, state = sustained_cost(arch, op, duty, args.fidelity)
    shape = _shape(args)
    out = {"op": args.kind, "arch": arch.name, "fidelity": args.fidelity, "dtype": args.dtype,
           **shape, "latency_s": cost.latency, "roofline_s": cost.roofline,
           "flops": op.flops, "bytes": op.bytes, "dram_bytes": cost.dram_bytes,
           "energy_J": cost.energy_total, "energy_by_component_J": cost.energy,
           "bound": cost.bound,
           "tflops": op.flops / cost.latency / 1e12 if cost.latency else 0.0,
           "detail": {k: v for k, v in cost.detail.items()}}
    if state is not None:
        out.update(duty=duty, gpu_speed=state.speed, board_power_W=state.power,
                   boost_power_W=state.boost_power)
    if args.json:
        print_json(out)
        return 0
    dims = "x".join(str(v) for v in shape.values())
    if args.kind == "gemm":
        dims = f"{args.batch}x{args.m}x{args.n}x{args.k}"
    if args.kind in COLLECTIVES:
        rate = f"{args.bytes / max(cost.latency, 1e-30) / 1e9:.1f} GB/s per rank"
    elif args.kind == "gemm" or args.kind == "attention":
        rate = f"{out['tflops']:.1f} TFLOP/s"
    else:
        rate = f"{op.bytes / max(cost.latency, 1e-30) / 1e9:.1f} GB/s"
    when = f"at {duty:.0%} duty" if args.duty is not None else \
        "one call, longer than the power limiter's reaction"
    limited = "" if duty is None else \
        f"; no power limit modelled for {arch.name}: the boost clock" if state is None else (
            f"; {when}: SM clock {state.speed:.1%} of boost, "
            f"{state.power:.0f} W ({state.boost_power:.0f} W at boost)")
    sys.stdout.write(f"{args.kind} {dims} {args.dtype} on {arch.name}: "
                     f"{cost.latency * 1e6:.2f} us ({rate}, {cost.bound}-bound), "
                     f"{cost.energy_total * 1e3:.4f} mJ{limited}\n")
    return 0
