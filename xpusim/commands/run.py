"""``xpusim run``: simulate a model on an arch and write the report."""

from __future__ import annotations

import argparse
import sys

from xpusim.commands._common import (
    add_workload_args,
    load_workload,
    positive_int,
    positive_or_zero_int,
    print_json,
    warn_emulated,
)

NAME = "run"
HELP = "simulate prefill and decode of a model on an arch; write a report"
DEFAULT_OUT = "xpusim-report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workload_args(p)
    p.add_argument("--out", default=None,
                   help=f"report directory (default {DEFAULT_OUT}; with --json, none unless given)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--placement", default=None, metavar="SPEC",
                   help="tensor classes on memory tiers of a system arch, e.g. "
                        "'weights=gpu.hbm:0.5,host_ddr:0.5' (see docs/placement.md); "
                        "default: the arch's placement section, else all on the device")
    p.add_argument("--prefetch", type=positive_or_zero_int, default=1, metavar="N",
                   help="layers ahead that off-device tensors are fetched (0 = none; 1)")
    p.add_argument("--overlap", action="store_true",
                   help="run collectives on their own stream, overlapping compute of other "
                        "micro-batches (as stacks with async communication do)")
    p.add_argument("--cpu-attention", action="store_true",
                   help="run decode attention on the system's host CPU over host-resident KV "
                        "(FlexGen's --cpu; place kv_cache on a host tier with --placement)")
    p.add_argument("--mode", choices=("inference", "finetune"), default="inference",
                   help="inference (prefill + decode) or finetune (one training step: "
                        "forward, backward, optimizer)")
    p.add_argument("--seq", type=positive_int, default=None,
                   help="finetune: tokens per sequence (default: --prompt)")
    p.add_argument("--offload", choices=("none", "optimizer", "full"), default="optimizer",
                   help="finetune: ZeRO-Offload of optimizer states and step to the host CPU "
                        "(optimizer, default), also fp16 weights (full), or none")
    p.add_argument("--recompute", action="store_true",
                   help="finetune: activation checkpointing (recompute each layer's forward)")


def run(args: argparse.Namespace) -> int:
    if args.mode == "finetune":
        args.prompt, args.gen = args.seq or args.prompt, 1
    arch, model, scenario = load_workload(args)
    warn_emulated(arch, scenario.dtype, scenario.kv_dtype)
    from sim.system.placement import parse_placement
    from sim.system.schedule import Policies

    spec = parse_placement(args.placement) if args.placement else \
        arch.sections.get("placement")
    policies = Policies(overlap=args.overlap, prefetch=args.prefetch,
                        cpu_attention=args.cpu_attention)
    if args.mode == "finetune":
        return _finetune(args, arch, model, scenario, spec, policies)
    from sim.run import simulate

    result = simulate(arch, model, scenario, fidelity=args.fidelity, seed=args.seed,
                      placement=spec, policies=policies)
    out = args.out or (None if args.json else DEFAULT_OUT)
    if out:
        from sim.report import write_run_report

        write_run_report(result, out)
    if args.json:
        print_json({**result.metrics, "energy_by_component_J": result.energy_by_component,
                    "invariants": result.invariants, "inputs": result.inputs,
                    **({"report_dir": out} if out else {})})
    else:
        m = result.metrics
        sys.stdout.write(
            f"{model.name} on {arch.name} ({args.fidelity}): TTFT {m['ttft_s'] * 1e3:.2f} ms, "
            f"TPOT {m['tpot_s'] * 1e3:.3f} ms, {m['tokens_per_s']:.1f} tokens/s, "
            f"{m['energy_per_token_J']:.4f} J/token; invariants passed\n"
            f"report: {out}/report.html\n")
    return 0


def _finetune(args: argparse.Namespace, arch, model, scenario, spec, policies) -> int:
    """``--mode finetune``: one training step; report step time, tokens/s and phases."""
    from sim.finetune import simulate_training
    from workloads.training import Training

    training = Training(recompute=args.recompute, offload=args.offload)
    result = simulate_training(arch, model, scenario, training, fidelity=args.fidelity,
                               seed=args.seed, placement=spec, policies=policies)
    out = args.out or (None if args.json else DEFAULT_OUT)
    if out:
        from sim.report import write_run_report

        write_run_report(result, out)
    m = result.metrics
    if args.json:
        print_json({**m, "energy_by_component_J": result.energy_by_component,
                    "invariants": result.invariants, "inputs": result.inputs,
                    **({"report_dir": out} if out else {})})
        return 0
    sys.stdout.write(
        f"fine-tuning {model.name} on {arch.name} ({args.fidelity}, offload {args.offload}): "
        f"step {m['step_s']:.3f} s, {m['tokens_per_s']:.0f} tokens/s; forward "
        f"{m['forward_s']:.3f} s, backward {m['backward_s']:.3f} s, optimizer "
        f"{m['optimizer_s']:.3f} s, transfers {m.get('transfer_s', 0.0):.3f} s (summed); "
        f"invariants passed\nreport: {out}/report.html\n")
    return 0
