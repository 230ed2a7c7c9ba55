"""Options and loaders shared by the commands that run a workload on an arch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a one-line message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_or_zero_int(text: str) -> int:
    """argparse type: an integer >= 0, with a one-line message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def add_arch_arg(p: argparse.ArgumentParser, default: str = "h100") -> None:
    p.add_argument("--arch", default=default,
                   help=f"preset name or arch YAML path (default {default}; "
                        "see `xpusim arch list`)")


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """--arch, --model and the scenario options."""
    add_arch_arg(p)
    p.add_argument("--model", default="llama2-7b",
                   help="model preset (see `xpusim models list`) or a Hugging Face config.json "
                        "path (default llama2-7b)")
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
    p.add_argument("--attention", default="unfused", choices=("unfused", "flash"),
                   help="attention kernels: unfused (QK, softmax, AV) or flash (fused)")
    p.add_argument("--fidelity", default="tile", choices=("roofline", "tile", "cycle"),
                   help="model depth (default tile)")
    p.add_argument("--seed", type=int, default=0, help="random seed recorded with the result")


def load_model(spec: str):
    """A model preset by name, or a config.json (file or directory) by path."""
    from workloads.hf_config import load_hf_config
    from workloads.models import get_model

    if spec.endswith(".json") or "/" in spec or Path(spec).is_dir():
        return load_hf_config(spec)
    return get_model(spec)


def load_workload(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(arch, model, scenario) from parsed options."""
    from arch import load_arch
    from workloads.scenario import Scenario

    arch = load_arch(args.arch)
    model = load_model(args.model)
    scenario = Scenario(batch=args.batch, prompt_len=args.prompt, gen_len=args.gen,
                        dtype=args.dtype, kv_dtype=args.kv_dtype, tp=args.tp,
                        attention=args.attention, pp=getattr(args, "pp", 1),
                        microbatches=getattr(args, "microbatches", 1))
    return arch, model, scenario


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=float)
    sys.stdout.write("\n")
