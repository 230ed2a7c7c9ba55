"""Benchmark: a whole `xpusim run`, phase by phase, against bare SimPy measured in the same run.

Usage: python benchmarks/bench_run.py [--repeat N] [--cases NAME,...] [--json]

Every figure is CPU time (``time.process_time``, the median of ``--repeat`` runs), so other
work on the machine does not inflate it. Per case it reports:

* **start-up**: CPU of a fresh interpreter importing what ``xpusim run`` needs (a child
  process, measured with ``RUSAGE_CHILDREN``);
* **trace**, **plan**, **engine**, **tables** (op / transfer / resource tables and every
  invariant): the phases of one in-process ``simulate()`` call, the same call the CLI makes;
* **output**: ``write_run_report`` of that result into a temporary directory, CPU of both
  its threads (Arrow writes ops.parquet in a second one) and **out-wall**, its wall time;
  and its parts (``--output-parts``, which runs the parquet write in the caller's thread so
  that the parts add up): rollups, ops.parquet, timeline.json (sampling included), the
  SVG figures, report.html (with its tables) and the rest (summary, CSVs, the directory);
* **tasks/s**: tasks (ops and transfers; one SimPy event each in the one-event-per-op engine)
  per CPU second of the whole ``simulate()`` call, and its **ratio to bare SimPy**: one process
  yielding plain timeouts, measured in this process right after the case (not a warm second
  ``Engine.run``);
* **engine events**: the SimPy events the coarsened engine actually waited on (0: a run
  without contention, timed as one longest path, sim/engine_dag.py, or with it, as one
  compiled event loop, sim/engine_shared.py; a run whose contention ends early, where that
  loop gives up: those of the ops before, the rest one longest path, sim/engine_split.py);
* **per decode step**: the marginal CPU of one more generated token, between consecutive
  cases of one model (``(simulate(b) - simulate(a)) / (gen_len(b) - gen_len(a))``, also for
  trace, engine and tables).

``--cold`` clears the process-wide memo caches (the ``lru_cache`` of every micro-model)
before each run, so every op shape is priced afresh as in a new ``xpusim run`` process;
without it, repeats after the first find the shapes of earlier runs already priced.

Cases: Llama-2-7B (batch 8, prompt 512) on one H100 at 256 to 2,048 generated tokens (cost
against tokens), Llama-2-70B on a DGX-H100 at TP8 (batch 8, prompt 512, 2,048 tokens), and
Llama-2-7B on a DGX-H100 in two pipeline stages of two micro-batches (256 tokens): several
streams per device; Llama-2-13B at TP2 in two stages of four micro-batches and Mixtral-8x7B at
TP4 with its experts on four ranks (512 tokens each): several streams whose collectives,
sends and expert ranks contend for links and wait on each other (an event per loaded op);
the 13B case at 128 tokens with collectives overlapped on their own streams (``--overlap``:
compute and communication streams share each GPU's HBM, taking turns), and Llama-2-70B at TP8
in two micro-batches with ``--overlap`` (128 tokens): each collective runs beside the other
micro-batch's compute ops, their HBM traffic shared; and the Mixtral case with ``--overlap``.
``--cases 7b-g2048,7b-g8192`` adds a longer run (not in the default set): the marginal cost
per token over 2,048 -> 8,192 tokens; ``--cases 70b-tp8-mb2-ovl-g2048,70b-tp2-pp4-mb4-g2048``
runs the 70B 2,048-token runs on several streams (batch 32 in two micro-batches at TP8 with
``--overlap``; batch 8 on four TP2 stages in four micro-batches; ``70b-pp8-mb8-g2048``: batch
8 on eight stages in eight micro-batches, the largest op table, 17.2M ops).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import simpy
from bench_args import chosen_cases, rounds  # noqa: E402

CASES = {
    "7b-g256": ("h100", "llama2-7b", {"batch": 8, "prompt_len": 512, "gen_len": 256}),
    "7b-g512": ("h100", "llama2-7b", {"batch": 8, "prompt_len": 512, "gen_len": 512}),
    "7b-g1024": ("h100", "llama2-7b", {"batch": 8, "prompt_len": 512, "gen_len": 1024}),
    "7b-g2048": ("h100", "llama2-7b", {"batch": 8, "prompt_len": 512, "gen_len": 2048}),
    "7b-g8192": ("h100", "llama2-7b", {"batch": 8, "prompt_len": 512, "gen_len": 8192}),
    "70b-tp8-g2048": ("dgx-h100", "llama2-70b", {"batch": 8, "prompt_len": 512,
                                                 "gen_len": 2048, "tp": 8}),
    # pipeline stages with micro-batches: several streams per device, an event per op
    "7b-pp2-mb2-g256": ("dgx-h100", "llama2-7b", {"batch": 8, "prompt_len": 512,
                                                  "gen_len": 256, "pp": 2, "microbatches": 2}),
    # collectives and pipeline sends contending for NVLink ports: an event per loaded op
    "13b-tp2-pp2-mb4-g512": ("dgx-h100", "llama2-13b", {"batch": 8, "prompt_len": 512,
                                                        "gen_len": 512, "tp": 2, "pp": 2,
                                                        "microbatches": 4}),
    # collectives overlapped on their own stream: compute and comm streams share HBM
    "13b-pp2mb4-ovl-g128": ("dgx-h100", "llama2-13b", {"batch": 8, "prompt_len": 512,
                                                            "gen_len": 128, "tp": 2, "pp": 2,
                                                            "microbatches": 4},
                                 {"overlap": True}),
    # two micro-batches in one stage, collectives overlapped: each collective runs beside
    # the other micro-batch's compute ops, sharing HBM with them
    "70b-tp8-mb2-ovl-g128": ("dgx-h100", "llama2-70b", {"batch": 32, "prompt_len": 512,
                                                        "gen_len": 128, "tp": 8,
                                                        "microbatches": 2},
                             {"overlap": True}),
    # four stages of two tensor-parallel GPUs: each stage's all-reduces and the sends into it
    # load the same NVLink ports (runs take the loaded ops that are alone on their links)
    "70b-tp2-pp4-mb4-g256": ("dgx-h100", "llama2-70b", {"batch": 8, "prompt_len": 512,
                                                        "gen_len": 256, "tp": 2, "pp": 4,
                                                        "microbatches": 4}),
    # expert-parallel ranks: a stream per device, waits on each other at every layer
    "mixtral-tp4-ep4-g512": ("dgx-h100", "mixtral-8x7b", {"batch": 8, "prompt_len": 512,
                                                          "gen_len": 512, "tp": 4, "ep": 4}),
    # the same with collectives on their own streams: each rank's comm stream waits on every
    # rank's compute (an event per wait; the slowest case, issue 18)
    "mixtral-ep4-ovl-g512": ("dgx-h100", "mixtral-8x7b", {"batch": 8, "prompt_len": 512,
                                                          "gen_len": 512, "tp": 4, "ep": 4},
                             {"overlap": True}),
}


def _longer(name: str, gen_len: int) -> tuple:
    """Case ``name`` generating ``gen_len`` tokens."""
    arch, model, scenario, *policies = CASES[name]
    return (arch, model, {**scenario, "gen_len": gen_len}, *policies)


# issue 18's 2,048-token 70B runs on several streams (on request: 5-7 s each)
CASES["70b-tp8-mb2-ovl-g2048"] = _longer("70b-tp8-mb2-ovl-g128", 2048)
CASES["70b-tp2-pp4-mb4-g2048"] = _longer("70b-tp2-pp4-mb4-g256", 2048)
# the slowest of bench_cli_run.py's runs: the four stages with collectives overlapped
CASES["70b-tp2-pp4-mb4-ovl-g2048"] = (*_longer("70b-tp2-pp4-mb4-g256", 2048), {"overlap": True})
# the largest op table of bench_cli_run.py's runs (17.2M ops): eight stages, a micro-batch each
CASES["70b-pp8-mb8-g2048"] = ("dgx-h100", "llama2-70b", {"batch": 8, "prompt_len": 512,
                                                         "gen_len": 2048, "pp": 8,
                                                         "microbatches": 8})
# twice its micro-batches: the longest op table timed by the sharing pass and replay (19.8M)
CASES["70b-tp2-pp4-mb8-ovl-g2048"] = (
    *_longer("70b-tp2-pp4-mb4-g256", 2048)[:2],
    {**_longer("70b-tp2-pp4-mb4-g256", 2048)[2], "microbatches": 8}, {"overlap": True})
#: cases only run on request: the longest 7B run and the several-stream 2,048-token 70B runs
LONG_CASES = ("7b-g8192", "70b-tp8-mb2-ovl-g2048", "70b-tp2-pp4-mb4-g2048",
              "70b-tp2-pp4-mb4-ovl-g2048", "70b-pp8-mb8-g2048", "70b-tp2-pp4-mb8-ovl-g2048")
#: cases run when ``--cases`` is not given
DEFAULT_CASES = tuple(c for c in CASES if c not in LONG_CASES)
#: what ``xpusim run --out`` imports, after the CLI's one-BLAS-thread default (xpusim.cli) and
#: its allocation settings (xpusim.heap)
STARTUP = ("from xpusim.cli import single_thread_blas; single_thread_blas(); "
           "from xpusim.heap import tune_allocation; tune_allocation(); "
           "import arch, sim.run, sim.report.writer, workloads.models, xpusim.commands.run")


def bare_simpy_events_per_s(n: int = 300_000) -> float:
    """Plain SimPy: one process yielding ``n`` timeouts, events per CPU second."""
    env = simpy.Environment()

    def proc():
        for _ in range(n):
            yield env.timeout(1e-6)

    env.process(proc())
    t = time.process_time()
    env.run()
    return n / (time.process_time() - t)


def startup_cpu_s() -> float:
    """CPU seconds of a fresh interpreter importing what a run needs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", STARTUP], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


class _Phases:
    """CPU time of each phase of ``simulate()``, by wrapping the functions it calls."""

    def __init__(self) -> None:
        import sim.run as run_mod
        import sim.system.execute as exe

        self.times: dict[str, float] = {}
        self._wrap(run_mod, "trace_model", "trace")
        self._wrap(run_mod, "build_plan", "plan")
        self._wrap(exe.Engine, "run", "engine")

    def _wrap(self, owner, attr: str, phase: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a, **k):
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.times[phase] = self.times.get(phase, 0.0) + time.process_time() - t

        setattr(owner, attr, timed)


#: the report writer's functions per part of the output (``--output-parts``)
OUTPUT_PARTS = {"rollups": ("text_keys", "rollups"), "parquet": ("_write_parquet",),
                "timeline": ("decode_stride", "sample_ops", "sample_transfers", "chrome_trace"),
                "figures": ("bandwidth_roofs", "roofline_svg", "energy_svg", "breakdown_svg",
                            "timeline_svg", "take_rows"),
                "page": ("utilisation_rows", "bound_rows", "mfu", "run_report_html")}


class _OutputParts(_Phases):
    """CPU time of each part of ``write_run_report`` (:data:`OUTPUT_PARTS`)."""

    def __init__(self) -> None:
        import sim.report.writer as writer
        from sim.report.background import Background

        # parts timed by process CPU must not overlap: the parquet file in this thread
        Background.inline = True
        self.times = {}
        for part, names in OUTPUT_PARTS.items():
            for name in names:
                self._wrap(writer, name, part)


#: module-level memo dicts (module, name) a cold run starts without: a SN40L run's mapper
#: results per PCU share, its stages' placements, PMUs and recent allocations, op roles'
#: bytes, flash pattern bandwidths, Einsum rank orders, NeuPIMs' shared layer costs (the
#: mapper's own memos: ``mappings.mapper.clear_memos``)
MEMO_DICTS = (("mappings.dataflow", "_MAPPED"), ("mappings.dataflow", "_BY_STAGE"),
              ("mappings.dataflow", "_RECENT"), ("mappings.dataflow", "_PMUS"),
              ("sim.system.layer_runs", "_ROLE_BYTES"),
              ("sim.system.storage", "_MEMO"), ("workloads.einsum", "_RANKS"),
              ("sim.serving.decode", "_SHARED"))


def clear_memo_caches() -> int:
    """Clear every ``functools`` cache of our packages' loaded modules and the memo dicts of
    :data:`MEMO_DICTS` that are loaded, so a timed run is as cold as a fresh process's (the
    compiled kernels and parsed presets stay loaded); how many were cleared."""
    cleared = 0
    for name, mod in list(sys.modules.items()):
        if name.split(".")[0] not in ("arch", "kernels_ref", "mappings", "sim", "workloads"):
            continue
        for value in list(vars(mod).values()):
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
                cleared += 1
    for module, attr in MEMO_DICTS:
        if module in sys.modules:
            getattr(sys.modules[module], attr).clear()
            cleared += 1
    if "mappings.mapper" in sys.modules:
        sys.modules["mappings.mapper"].clear_memos()
        cleared += 1
    return cleared


def run_case(case: tuple, phases: _Phases, parts: _OutputParts | None = None) -> dict:
    """One whole run of ``case`` (arch, model, scenario[, policies], as in :data:`CASES`):
    simulate, then write its report; CPU seconds per phase."""
    from arch import load_arch
    from sim.report import write_run_report
    from sim.run import simulate
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    arch_name, model_name, scenario, *policies = case
    phases.times.clear()
    arch, model = load_arch(arch_name), get_model(model_name)
    t = time.process_time()
    policy = Policies(**(policies[0] if policies else {}))
    res = simulate(arch, model, Scenario(**scenario), policies=policy)
    total = time.process_time() - t
    if parts is not None:
        parts.times.clear()
    with tempfile.TemporaryDirectory() as out:
        t, wall = time.process_time(), time.perf_counter()
        write_run_report(res, out)
        output, output_wall = time.process_time() - t, time.perf_counter() - wall
    p = dict(phases.times)
    q = {f"output_{k}_s": (parts.times.get(k, 0.0) if parts else 0.0) for k in OUTPUT_PARTS}
    q["output_rest_s"] = output - sum(q.values()) if parts else 0.0
    tasks = res.metrics["events"]
    return {"simulate_s": total, "trace_s": p.get("trace", 0.0), "plan_s": p.get("plan", 0.0),
            "engine_s": p.get("engine", 0.0),
            "tables_s": total - sum(p.values()), "output_s": output,
            "output_wall_s": output_wall, "tasks": tasks,
            "engine_events": res.metrics.get("engine_events", tasks),
            "latency_s": res.metrics["latency_s"], **q}


def cli_process_settings() -> None:
    """The CLI's process settings, before numpy loads (xpusim/cli.py, xpusim/heap.py): one
    BLAS thread, freed memory kept for the next arrays, numpy's arrays on ordinary pages."""
    from xpusim.cli import single_thread_blas
    from xpusim.heap import tune_allocation

    single_thread_blas()
    tune_allocation()


def main() -> None:
    cli_process_settings()
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=rounds, default=3)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES),
                    help=f"comma-separated case names ({', '.join(CASES)}; default all but "
                         "7b-g8192)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--output-parts", action="store_true",
                    help="time the report's parts (rollups, parquet, timeline, figures, page)")
    ap.add_argument("--cold", action="store_true",
                    help="clear the micro-models' memo caches before every run")
    args = ap.parse_args()
    names = chosen_cases(ap, args.cases, CASES)
    startup = statistics.median(startup_cpu_s() for _ in range(args.repeat))
    # the engine's compiled loops: built once per kernel version (sim/engine_aot.py), then
    # loaded in milliseconds; made ready here so that no case times their one-time build
    t = time.process_time()
    from sim.engine_aot import kernels

    kind = kernels().kind
    engine_kernels = {"kind": kind, "ready_cpu_s": time.process_time() - t}
    phases = _Phases()
    parts = _OutputParts() if args.output_parts else None
    rows = []
    for name in names:
        runs, bares = [], []
        for _ in range(args.repeat):
            if args.cold:
                clear_memo_caches()
            runs.append(run_case(CASES[name], phases, parts))
            bares.append(bare_simpy_events_per_s())
        row = {"case": name, **{k: statistics.median(r[k] for r in runs) for k in runs[0]}}
        row["bare_simpy_events_per_s"] = statistics.median(bares)
        row["tasks_per_s"] = row["tasks"] / row["simulate_s"]
        row["ratio_to_simpy"] = row["tasks_per_s"] / row["bare_simpy_events_per_s"]
        row["trace_share"] = row["trace_s"] / row["simulate_s"]
        # of the whole run a user waits for: start-up, simulate() and the report
        row["trace_run_share"] = row["trace_s"] / (startup + row["simulate_s"] + row["output_s"])
        rows.append(row)
    steps = marginal_per_step(rows)
    if args.json:
        print(json.dumps({"startup_cpu_s": startup, "engine_kernels": engine_kernels,
                          "cold": args.cold, "runs": rows,
                          "per_decode_step": steps}, indent=2))
        return
    print(f"start-up (imports, fresh interpreter): {startup:.2f} CPU s; the engine's compiled "
          f"loops ({engine_kernels['kind']}) ready in {engine_kernels['ready_cpu_s']:.2f} CPU s "
          "(a build, once per kernel version, else a load)")
    print(f"{'case':20s} {'trace':>6s} {'plan':>6s} {'engine':>6s} {'tables':>6s} "
          f"{'sim':>6s} {'output':>6s} {'o-wall':>6s} {'tasks':>8s} {'ev':>7s} {'trace%':>6s} "
          f"{'tr/run':>6s} "
          f"{'tasks/s':>9s} {'SimPy/s':>9s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['case']:20s} {r['trace_s']:6.2f} {r['plan_s']:6.2f} {r['engine_s']:6.2f} "
              f"{r['tables_s']:6.2f} {r['simulate_s']:6.2f} {r['output_s']:6.2f} "
              f"{r['output_wall_s']:6.2f} "
              f"{r['tasks']:8.0f} {r['engine_events']:7.0f} {r['trace_share']:6.0%} "
              f"{r['trace_run_share']:6.0%} "
              f"{r['tasks_per_s']:9.0f} {r['bare_simpy_events_per_s']:9.0f} "
              f"{r['ratio_to_simpy']:6.0%}")
    if args.output_parts:
        for r in rows:
            print(f"output of {r['case']}: " + ", ".join(
                f"{k} {r[f'output_{k}_s']:.3f}" for k in (*OUTPUT_PARTS, "rest")) + " CPU s")
    for st in steps:
        print(f"per decode step {st['from']} -> {st['to']}: simulate "
              f"{st['simulate_ms']:.3f} ms, trace {st['trace_ms']:.3f} ms, engine "
              f"{st['engine_ms']:.3f} ms, tables {st['tables_ms']:.3f} ms")
    print("CPU seconds (o-wall: wall seconds of the output), medians; trace% = trace over "
          "simulate(), tr/run = over start-up + simulate() + output; tasks/s = ops and "
          "transfers per CPU second of simulate(); ratio = that over bare SimPy timeouts/s "
          "measured in this run"
          + ("; memo caches cleared before every run" if args.cold else ""))


def marginal_per_step(rows: list[dict]) -> list[dict]:
    """CPU ms of one more generated token between consecutive cases of one arch, model,
    scenario and policies (only the generated tokens differ)."""
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        (arch_a, model_a, sc_a), (arch_b, model_b, sc_b) = (CASES[r["case"]][:3]
                                                            for r in (a, b))
        extra = sc_b["gen_len"] - sc_a["gen_len"]
        same_policies = CASES[a["case"]][3:] == CASES[b["case"]][3:]
        if (arch_a, model_a) != (arch_b, model_b) or extra <= 0 or not same_policies or \
                {k: v for k, v in sc_a.items() if k != "gen_len"} != \
                {k: v for k, v in sc_b.items() if k != "gen_len"}:
            continue
        out.append({"from": a["case"], "to": b["case"],
                    **{f"{k}_ms": 1e3 * (b[f"{k}_s"] - a[f"{k}_s"]) / extra
                       for k in ("simulate", "trace", "engine", "tables")}})
    return out


if __name__ == "__main__":
    main()
