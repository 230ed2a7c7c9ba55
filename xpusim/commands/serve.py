"""``xpusim serve``: request-level serving simulation (docs/serving.md).

Engine knobs carry vLLM's names so a deployment can be copied: ``--max-num-seqs``,
``--max-num-batched-tokens``, ``--gpu-memory-utilization``, ``--block-size``,
``--enable-prefix-caching``, ``--enable-chunked-prefill``, ``--preemption-mode``,
``--swap-space``, ``--num-gpu-blocks-override``, ``--max-model-len``.
"""

from __future__ import annotations

import argparse
import math
import sys

from xpusim.commands._common import (
    add_arch_arg,
    positive_int,
    print_json,
    seed_int,
    warn,
)
from xpusim.progress import add_quiet_arg

NAME = "serve"
HELP = "simulate serving a stream of requests (arrivals, batching, KV cache, SLOs)"
DEFAULT_OUT = "xpusim-serve"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, got '{text[:40]}'") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text[:40]}'") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_arch_arg(p, "dgx-h100")
    p.add_argument("--software", default=None, metavar="STACK",
                   help="software stack on the arch's GPUs: ideal (CUDA graphs), vllm, eager, "
                        "trtllm, or a stack YAML (docs/software.md); default: the arch's own")
    p.add_argument("--model", default="llama2-70b",
                   help="model preset or config.json path (default llama2-70b)")
    p.add_argument("--tp", type=positive_int, default=8, help="tensor-parallel devices per "
                                                              "replica (8)")
    p.add_argument("--pp", type=positive_int, default=1, help="pipeline stages per replica (1)")
    p.add_argument("--replicas", type=positive_int, default=1, help="model replicas (1)")
    p.add_argument("--router", default="round_robin", choices=("round_robin", "least_tokens"),
                   help="how requests are spread over replicas (round_robin)")
    p.add_argument("--dtype", default="fp16", help="weight and activation dtype (fp16)")
    p.add_argument("--kv-dtype", default="", help="KV-cache dtype (default: --dtype)")
    p.add_argument("--attention", default="flash", choices=("unfused", "flash"),
                   help="attention kernels (flash: fused, as vLLM runs them)")
    p.add_argument("--fidelity", default="tile", choices=("roofline", "tile"),
                   help="device model depth (tile)")
    w = p.add_argument_group("workload")
    w.add_argument("--trace", default=None, metavar="NAME|CSV",
                   help="replay azure-code, azure-conv (reference folder) or a CSV "
                        "(TIMESTAMP,ContextTokens,GeneratedTokens or "
                        "arrival_s,prompt_tokens,output_tokens); with --rate only its lengths "
                        "are used and arrivals are Poisson")
    w.add_argument("--rate", default=None, metavar="R[@DUR],...",
                   help="arrival rate in requests/s, or a piecewise schedule '5@600s,10@600s' "
                        "(default 1 without --trace)")
    w.add_argument("--burstiness", type=float, default=1.0, metavar="CV",
                   help="coefficient of variation of inter-arrival gaps: 1 Poisson (default), "
                        ">1 bursty (gamma)")
    w.add_argument("--duration", default=None, metavar="DUR",
                   help="stop arrivals after this long, e.g. 600s or 10min")
    w.add_argument("--requests", type=positive_int, default=None,
                   help="number of requests (default: 100 for an open-ended --rate without "
                        "--duration; with --trace: its first N rows)")
    w.add_argument("--prompt", default="512", metavar="SPEC",
                   help="prompt tokens: N, uniform:LO:HI, zipf:S:LO:HI or lognormal:MEAN:SIGMA "
                        "(512)")
    w.add_argument("--gen", default="128", metavar="SPEC",
                   help="output tokens, same forms as --prompt (128)")
    w.add_argument("--prompt-file", default=None, metavar="FILE",
                   help="prompt lengths sampled from a file, one token count per line")
    w.add_argument("--shared-prefix", type=positive_int, default=None, metavar="TOKENS",
                   help="every prompt starts with one of --prefix-groups system prompts of "
                        "this many tokens")
    w.add_argument("--prefix-groups", type=positive_int, default=1, metavar="N",
                   help="distinct shared system prompts (1)")
    w.add_argument("--over-context", default="error", choices=("error", "truncate", "skip"),
                   help="requests longer than --max-model-len: error (default), truncate the "
                        "prompt, or skip them (after --requests picks trace rows)")
    w.add_argument("--timeout", default=None, metavar="DUR",
                   help="client timeout, e.g. 300s: a request not finished by then fails")
    w.add_argument("--seed", type=seed_int, default=0, help="random seed (0)")
    e = p.add_argument_group("engine (vLLM names)")
    e.add_argument("--scheduler", default=None, choices=("static", "continuous", "chunked"),
                   help="static batching, continuous batching (default) or chunked prefill")
    e.add_argument("--enable-chunked-prefill", action="store_true",
                   help="chunked prefill (Sarathi): same as --scheduler chunked")
    e.add_argument("--max-num-seqs", type=positive_int, default=256,
                   help="most sequences in one iteration (256)")
    e.add_argument("--max-num-batched-tokens", type=positive_int, default=None,
                   help="token budget of one iteration (default max(max-model-len, 2048); "
                        "2048 with chunked prefill)")
    e.add_argument("--gpu-memory-utilization", type=_fraction, default=0.9,
                   help="fraction of device memory for weights, activations and KV (0.9)")
    e.add_argument("--block-size", type=positive_int, default=16, help="tokens per KV block "
                                                                       "(16)")
    e.add_argument("--enable-prefix-caching", action="store_true",
                   help="reuse the KV blocks of shared prompt prefixes")
    e.add_argument("--preemption-mode", default="recompute", choices=("recompute", "swap"),
                   help="when the KV cache is full: recompute, or swap to host over PCIe")
    e.add_argument("--swap-space", type=_positive_float, default=4.0, metavar="GIB",
                   help="host memory per device for swapped KV blocks, GiB (4)")
    e.add_argument("--num-gpu-blocks-override", type=positive_int, default=None,
                   help="KV-cache blocks instead of the number that fits in memory")
    e.add_argument("--max-model-len", type=positive_int, default=None,
                   help="longest prompt + output (default: the model's context)")
    o = p.add_argument_group("metrics and output")
    o.add_argument("--slo", default="", metavar="SPEC",
                   help="goodput SLOs: 'splitwise' (slowdown P50/P90/P99) or "
                        "ttft=2s,tbt=100ms,e2e=60s")
    o.add_argument("--price-per-hour", type=_positive_float, default=0.0, metavar="USD",
                   help="price of one replica's machine per hour, for cost metrics")
    o.add_argument("--price-source", default="--price-per-hour",
                   help="where the price comes from (recorded with the cost)")
    o.add_argument("--out", default=None,
                   help=f"report directory (default {DEFAULT_OUT}; with --json, none unless "
                        "given)")
    o.add_argument("--format", dest="table_format", default="auto",
                   choices=("auto", "parquet", "csv"), help="request and iteration tables")
    o.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    add_quiet_arg(p)


def build_requests(args: argparse.Namespace, max_len: int, model_name: str):
    """The request table the options describe (seeded; see workloads.requests)."""
    from workloads.requests import RequestSpec
    from workloads.requests import build_requests as build
    from xpusim.paths import reference_dir

    spec = RequestSpec(seed=args.seed, rate=args.rate, duration=args.duration,
                       requests=args.requests or 0, trace=args.trace,
                       burstiness=args.burstiness, prompt=args.prompt, gen=args.gen,
                       prompt_file=args.prompt_file, shared_prefix=args.shared_prefix or 0,
                       prefix_groups=args.prefix_groups, over_context=args.over_context)
    ref = reference_dir()
    return build(spec, max_len, model_name, ref if ref.is_dir() else None)


def load_arch_for_serving(args: argparse.Namespace):
    """The arch of ``--arch`` (a ``--software`` stack is composed here when given)."""
    from arch.software import load_arch_with_software

    return load_arch_with_software(args.arch, getattr(args, "software", None))


def run(args: argparse.Namespace) -> int:
    from sim.serve import EngineConfig, IterationModel, Simulation, build_replicas, finish
    from sim.serve.metrics import parse_slo
    from workloads.requests import parse_duration
    from xpusim.commands._common import load_model
    from xpusim.progress import bar, enabled

    arch = load_arch_for_serving(args)
    model = load_model(args.model)
    max_len = args.max_model_len or model.max_positions
    note = "" if max_len <= model.max_positions else (
        f"--max-model-len: {max_len:,} exceeds {model.name}'s trained context of "
        f"{model.max_positions:,}; quality beyond it is not modelled")
    scheduler = args.scheduler or ("chunked" if args.enable_chunked_prefill else "continuous")
    cfg = EngineConfig(scheduler=scheduler, max_num_seqs=args.max_num_seqs,
                       max_num_batched_tokens=args.max_num_batched_tokens or 0,
                       block_size=args.block_size,
                       gpu_memory_utilization=args.gpu_memory_utilization,
                       enable_prefix_caching=args.enable_prefix_caching,
                       preemption=args.preemption_mode, swap_space=args.swap_space * 2**30,
                       kv_blocks=args.num_gpu_blocks_override or 0, max_model_len=max_len)
    slo = parse_slo(args.slo)
    timeout = parse_duration(args.timeout, "--timeout") if args.timeout else math.inf
    im = IterationModel(arch, model, tp=args.tp, pp=args.pp, dtype=args.dtype,
                        kv_dtype=args.kv_dtype, attention=args.attention,
                        fidelity=args.fidelity)
    requests = build_requests(args, max_len, model.name)
    replicas = build_replicas(im, cfg, args.replicas)
    progress = bar(len(requests), "serve", "req", enabled(args))
    sim = Simulation(replicas, requests, args.router, timeout, progress=progress.update)
    try:
        sim.run()
    finally:
        progress.close()
    inputs = {"arch": arch.name, "arch_origin": arch.origin, "model": model.name,
              "tp": args.tp, "pp": args.pp, "replicas": args.replicas, "router": args.router,
              "dtype": args.dtype, "kv_dtype": args.kv_dtype or args.dtype,
              "attention": args.attention, "fidelity": args.fidelity, "seed": args.seed,
              "workload": {"trace": args.trace, "rate": args.rate,
                           "burstiness": args.burstiness, "duration": args.duration,
                           "requests": len(requests), "prompt": args.prompt, "gen": args.gen,
                           "prompt_file": args.prompt_file,
                           "shared_prefix": args.shared_prefix,
                           "prefix_groups": args.prefix_groups, "timeout": args.timeout},
              "engine": {**cfg.__dict__, "max_num_batched_tokens": replicas[0].budget,
                         "kv_blocks": replicas[0].kv.capacity},
              "software": getattr(im.software, "name", "")}
    result = finish(sim, slo, None, args.price_per_hour, args.price_source, inputs)
    out = args.out or (None if args.json else DEFAULT_OUT)
    if out:
        from sim.serve.report import write_serve_report

        write_serve_report(result, out, args.table_format)
    m = result.metrics
    if note and not args.quiet:
        warn(note)
    if args.json:
        print_json({**m, "invariants": result.invariants, "inputs": inputs,
                    **({"report_dir": out} if out else {})})
        return 0
    sys.stdout.write(
        f"{model.name} on {arch.name} (TP{args.tp} PP{args.pp} x{args.replicas}, {scheduler}): "
        f"{m['requests_completed']} of {m['requests']} requests done, "
        f"{m['requests_failed']} failed; TTFT p50 {m['ttft_p50_s'] * 1e3:.1f} ms p99 "
        f"{m['ttft_p99_s'] * 1e3:.1f} ms; TBT p50 {m['tbt_p50_s'] * 1e3:.2f} ms p99 "
        f"{m['tbt_p99_s'] * 1e3:.2f} ms; E2E p50 {m['e2e_p50_s']:.2f} s; "
        f"{m['throughput_tok_s']:.0f} tok/s, goodput {m['goodput_req_s']:.3g} req/s; "
        f"invariants passed\nreport: {out}/report.html\n")
    return 0
