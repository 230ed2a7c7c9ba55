"""Options and loaders shared by the commands that run a workload on an arch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workloads.safe_json import strict_json_values

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~5 ms of start-up; annotations are strings here
    from typing import Any

#: largest integer option (batch, lengths, sizes): products of two stay inside 64 bits
MAX_INT_OPTION = 2**31 - 1


def _big(value: int) -> str:
    """A possibly huge integer for a message: ``1e+23``, or its digit count past floats."""
    return f"{value:.3g}" if abs(value) < 10**300 else f"a {len(str(abs(value)))}-digit integer"


def _bounded_int(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text[:40]}'") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {_big(value)}")
    if value > MAX_INT_OPTION:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_INT_OPTION:,}, got "
                                         f"{_big(value)}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer 1 .. 2^31 - 1, with a one-line message otherwise."""
    return _bounded_int(text, 1, "a positive integer")


def duty_fraction(text: str) -> float:
    """argparse type: a fraction of time in (0, 1], with a one-line message otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got '{text[:40]}'") \
            from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text[:40]}")
    return value


def positive_or_zero_int(text: str) -> int:
    """argparse type: an integer 0 .. 2^31 - 1, with a one-line message otherwise."""
    return _bounded_int(text, 0, "an integer >= 0")


def seed_int(text: str) -> int:
    """argparse type: a random seed, 0 .. 2^32 - 1 (what numpy accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got '{text[:40]}'") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in 0 .. 4294967295, got {_big(value)}")
    return value


def add_arch_arg(p: argparse.ArgumentParser, default: str = "h100") -> None:
    p.add_argument("--arch", default=default,
                   help=f"preset name or arch YAML path (default {default}; "
                        "see `xpusim arch list`)")


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """--arch, --model and the scenario options."""
    add_arch_arg(p)
    p.add_argument("--model", default="llama2-7b",
                   help="model preset (see `xpusim models list`), a Hugging Face config.json "
                        "path, or an ONNX graph (model.onnx: one forward pass, --gen 1; needs "
                        "the onnx extra) (default llama2-7b)")
    p.add_argument("--batch", type=positive_int, default=8, help="requests in the batch (8)")
    p.add_argument("--prompt", type=positive_int, default=512, help="prompt tokens (512)")
    p.add_argument("--gen", type=positive_int, default=128, help="generated tokens (128)")
    p.add_argument("--dtype", default="fp16", help="weight and activation dtype (fp16)")
    p.add_argument("--kv-dtype", default="", help="KV-cache dtype (default: --dtype)")
    p.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel devices (1)")
    p.add_argument("--pp", type=positive_int, default=1,
                   help="pipeline-parallel stages, each of --tp devices (1)")
    p.add_argument("--microbatches", type=positive_int, default=1,
                   help="split the batch into micro-batches that pipeline stages and a "
                        "device's compute and communication streams overlap (1)")
    p.add_argument("--ep", type=positive_int, default=1,
                   help="expert parallelism: spread MoE experts over the --tp devices (1 or "
                        "--tp)")
    p.add_argument("--expert-skew", type=float, default=0.0, metavar="S",
                   help="Zipf exponent of the router's load over experts (0 = uniform)")
    p.add_argument("--expert-counts", default="", metavar="FILE",
                   help="measured tokens per MoE expert (CSV: a 'tokens' column, optionally "
                        "'expert'; or one count per line); each step's routed tokens are "
                        "shared in these proportions (instead of --expert-skew)")
    p.add_argument("--sparse-kv", type=float, default=1.0, metavar="F",
                   help="fraction of the KV cache a decode step's attention reads (sparse "
                        "selection, e.g. 0.125; default 1: dense)")
    p.add_argument("--attention", default="unfused", choices=("unfused", "flash"),
                   help="attention kernels: unfused (QK, softmax, AV) or flash (fused)")
    add_lowbit_args(p)
    p.add_argument("--fidelity", default="tile", choices=("roofline", "tile", "cycle"),
                   help="model depth (default tile). roofline and tile: every device; cycle "
                        "(the cycle-level micro-models, docs/fidelity.md): npu and npu_pim "
                        "(with a dram section), pim, xpu_pim, csd; `xpusim arch show NAME` "
                        "prints the fidelities NAME offers")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="random seed recorded with the result")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimated size (ops, memory) is above the limit")


def add_lowbit_args(p: argparse.ArgumentParser) -> None:
    """Low-bit weights and sink + window attention (docs/fpga.md)."""
    p.add_argument("--weights", default="", metavar="DTYPE",
                   help="stored dtype of the layers' linear weights, e.g. int4 or int2 "
                        "(default: --dtype)")
    p.add_argument("--weight-group", type=positive_or_zero_int, default=0, metavar="G",
                   help="one fp16 scale per G weights along K (0: none)")
    p.add_argument("--sparsity", default="", metavar="N:M",
                   help="structured weight sparsity, e.g. 2:4 (default dense)")
    p.add_argument("--attn-sink", type=positive_or_zero_int, default=0, metavar="S",
                   help="attention sink tokens kept with the window (0)")
    p.add_argument("--attn-window", type=positive_or_zero_int, default=0, metavar="W",
                   help="attend to the S sink tokens plus the last W tokens (0: full)")


def lowbit_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The Scenario fields of :func:`add_lowbit_args` (defaults when a command lacks them)."""
    return {"weights": getattr(args, "weights", ""),
            "weight_group": getattr(args, "weight_group", 0),
            "sparsity": getattr(args, "sparsity", ""),
            "attn_sink": getattr(args, "attn_sink", 0),
            "attn_window": getattr(args, "attn_window", 0)}


def load_model(spec: str):
    """A model preset by name, a config.json (file or directory) or an ONNX graph by path."""
    from workloads.models import get_model

    if spec.lower().endswith(".onnx"):
        from workloads.onnx_import import load_onnx_model

        return load_onnx_model(spec)
    if spec.endswith(".json") or "/" in spec or Path(spec).is_dir():
        from workloads.hf_config import load_hf_config

        return load_hf_config(spec)
    return get_model(spec)


def load_workload(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(arch, model, scenario) from parsed options."""
    from arch import load_arch
    from workloads.limits import check_context, check_run_size
    from workloads.scenario import Scenario

    arch = load_arch(args.arch)
    model = load_model(args.model)
    counts: tuple[float, ...] = ()
    if getattr(args, "expert_counts", ""):
        from workloads.errors import WorkloadError
        from workloads.routing import load_expert_counts

        if not model.is_moe:
            raise WorkloadError("", "--expert-counts", f"model '{model.name}' has no experts")
        counts = load_expert_counts(args.expert_counts, model.n_experts)
    scenario = Scenario(batch=args.batch, prompt_len=args.prompt, gen_len=args.gen,
                        dtype=args.dtype, kv_dtype=args.kv_dtype, tp=args.tp,
                        attention=args.attention, pp=getattr(args, "pp", 1),
                        microbatches=getattr(args, "microbatches", 1),
                        ep=getattr(args, "ep", 1), expert_skew=getattr(args, "expert_skew", 0.0),
                        expert_counts=counts,
                        sparse_kv=getattr(args, "sparse_kv", 1.0), **lowbit_kwargs(args))
    from workloads.tracer_families import check_scenario

    check_scenario(model, scenario)  # encoders generate nothing; families without --pp ...
    check_run_size(model, scenario, force=getattr(args, "force", False))
    warn(check_context(model, scenario, force=True))
    return arch, model, scenario


def warn(message: str) -> None:
    """``xpusim: warning: MESSAGE`` as one line on stderr (nothing for an empty message)."""
    if message:
        from xpusim.cli import write_error

        write_error(message, "warning")


def warn_assumptions(arch: Any) -> None:
    """One line on stderr naming how many of the arch's parameters are assumptions."""
    assumed = arch.assumptions()
    if assumed:
        shown = ", ".join(assumed[:3]) + (", ..." if len(assumed) > 3 else "")
        warn(f"{len(assumed)} of {arch.parameter_count()} parameters of '{arch.name}' are "
             f"assumptions, not measured or published values ({shown}); `xpusim arch show "
             f"{arch.name}` cites each")


def warn_emulated(arch: Any, *dtypes: str) -> None:
    """One line on stderr when the arch has no native rate for a datatype (emulated)."""
    from sim.plausibility import native_dtype_warning

    message = native_dtype_warning(arch, dtypes)
    if message:
        from xpusim.cli import write_error

        write_error(message, "warning")


def print_json(data: Any) -> None:
    """Print ``data`` as strict JSON (non-finite numbers become null)."""
    json.dump(strict_json_values(data), sys.stdout, indent=2, sort_keys=False, default=float,
              allow_nan=False)
    sys.stdout.write("\n")
