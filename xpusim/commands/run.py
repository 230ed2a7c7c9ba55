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
    warn_assumptions,
    warn_emulated,
)
from xpusim.progress import add_quiet_arg

NAME = "run"
HELP = "simulate prefill and decode of a model on an arch; write a report"
DEFAULT_OUT = "xpusim-report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workload_args(p)
    p.add_argument("--software", default=None, metavar="STACK",
                   help="software stack on the arch's GPUs: ideal (CUDA graphs), vllm, eager, "
                        "trtllm, or a stack YAML (docs/software.md); default: the arch's own")
    p.add_argument("--out", default=None,
                   help=f"report directory (default {DEFAULT_OUT}; with --json, none unless given)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_quiet_arg(p)
    p.add_argument("--format", dest="ops_format", default="auto",
                   choices=("auto", "parquet", "csv"),
                   help="ops and transfers table files: parquet (default when pyarrow is "
                        "installed) or csv")
    p.add_argument("--timeline", default="auto", choices=("auto", "full", "sampled", "none"),
                   help="timeline.json: every op (full), every prefill op and one decode step "
                        "in N (sampled; the default above 200k ops), or none")
    p.add_argument("--placement", default=None, metavar="SPEC",
                   help="tensor classes on memory tiers of a system arch, e.g. "
                        "'weights=gpu.hbm:0.5,host_ddr:0.5' (see docs/placement.md); "
                        "default: the arch's placement section, else all on the device")
    p.add_argument("--prefetch", type=positive_or_zero_int, default=1, metavar="N",
                   help="layers ahead that off-device tensors are fetched (0 = none; 1)")
    p.add_argument("--overlap", action="store_true",
                   help="run collectives on their own stream, overlapping compute of other "
                        "micro-batches (as stacks with async communication do)")
    p.add_argument("--attention-on", default="", metavar="COMPONENT",
                   help="run decode attention on another device component next to the KV "
                        "cache: cpu (FlexGen's --cpu, KV in host DDR) or csd (InstInfer, KV in "
                        "the drive's flash); place kv_cache there with --placement")
    p.add_argument("--cpu-attention", action="store_true", help="same as --attention-on cpu")
    p.add_argument("--relay-storage", action="store_true",
                   help="move tensors on flash tiers through host DDR (FlexGen's disk path) "
                        "instead of peer to peer")
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
    if args.software:
        from arch.software import load_arch_with_software

        arch = load_arch_with_software(args.arch, args.software)
    warn_emulated(arch, scenario.dtype, scenario.kv_dtype)
    from sim.system.schedule import Policies, one_stream_by_policy

    if args.placement:  # placement's parser loads only where a run places tensors
        from sim.system.placement import parse_placement

        spec = parse_placement(args.placement)
    else:
        spec = arch.sections.get("placement")
    policies = Policies(overlap=args.overlap, prefetch=args.prefetch,
                        attention_on=args.attention_on or ("cpu" if args.cpu_attention else ""),
                        relay_storage=args.relay_storage)
    if args.mode == "finetune":
        return _finetune(args, arch, model, scenario, spec, policies)
    from sim.run import simulate
    from workloads.limits import estimate_ops
    from xpusim.commands._record import attach_record, estimate_report_s, run_progress
    from xpusim.heap import HEAP_PER_OP, pretouch
    from xpusim.progress import enabled, timed

    out = args.out or (None if args.json else DEFAULT_OUT)
    # the heap the run's per-op rows take, faulted in on another core; a one-stream run
    # without a report is folded (one figure per op kind, no array per op) and makes none:
    # touching HEAP_PER_OP per op there is system time for nothing (70B TP8 8,192 tokens
    # --json: 1.4 GB, 2.08 instead of 0.64 s)
    if out or not one_stream_by_policy(scenario, spec, policies):
        pretouch(estimate_ops(model, scenario) * HEAP_PER_OP)
    estimate, key = run_progress(model, scenario, args.fidelity, arch.name)
    with timed("simulate", estimate, enabled(args), key=key):
        result = simulate(arch, model, scenario, fidelity=args.fidelity, seed=args.seed,
                          placement=spec, policies=policies)
    attach_record(result, arch, model, scenario, args, spec, policies)
    if out:
        from sim.report import write_run_report

        with timed("report", estimate_report_s(len(result.columns("ops"))), enabled(args)):
            write_run_report(result, out, args.ops_format, args.timeline)
    if args.json:
        print_json({**result.metrics, "energy_by_component_J": result.energy_by_component,
                    "invariants": result.invariants, "inputs": result.inputs,
                    **({"report_dir": out} if out else {})})
    else:
        m = result.metrics
        clocks = (f"{m['gpu_speed_prefill']:.1%} (prefill) and {m['gpu_speed_decode']:.1%} "
                  f"(decode)" if "gpu_speed_prefill" in m else f"{m.get('gpu_speed', 1.0):.1%}")
        capped = (f"; power-limited: SM clock at {clocks} of boost ("
                  f"{m['boost_power_W']:.0f} W at boost, {m['board_power_W']:.0f} W)"
                  if m.get("gpu_speed", 1.0) < 1.0 else "")
        sys.stdout.write(
            f"{model.name} on {arch.name} ({args.fidelity}): TTFT {m['ttft_s'] * 1e3:.2f} ms, "
            f"TPOT {m['tpot_s'] * 1e3:.3f} ms, {m['tokens_per_s']:.1f} tokens/s, "
            f"{m['energy_per_token_J']:.4f} J/token{capped}; invariants passed\n"
            f"report: {out}/report.html\n")
    if not getattr(args, "quiet", False):
        warn_assumptions(arch)
    return 0


def _finetune(args: argparse.Namespace, arch, model, scenario, spec, policies) -> int:
    """``--mode finetune``: one training step; report step time, tokens/s and phases."""
    from sim.finetune import simulate_training
    from workloads.training import Training

    training = Training(recompute=args.recompute, offload=args.offload)
    result = simulate_training(arch, model, scenario, training, fidelity=args.fidelity,
                               seed=args.seed, placement=spec, policies=policies)
    from xpusim.commands._record import attach_record

    attach_record(result, arch, model, scenario, args, spec, policies, "finetune", training)
    out = args.out or (None if args.json else DEFAULT_OUT)
    if out:
        from sim.report import write_run_report

        write_run_report(result, out, args.ops_format, args.timeline)
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
    if not getattr(args, "quiet", False):
        warn_assumptions(arch)
    return 0
