"""Benchmark: what one more decode step costs on every device class, against bare SimPy.

Usage: python benchmarks/bench_devices.py [--repeat N] [--cases NAME,...] [--json]

``bench_run.py`` follows the GPU runs of issue 18 phase by phase; this script asks the same
question of every other kind of device and model family a user may pick: a power-limited GPU
(AMD MI300X/MI325X, whose runs are priced again at the clock the limit allows), a dataflow
chip (SN40L socket and node), NPU+PIM (NeuPIMs, naive PIM, Duplex), computational storage,
CXL memory, a CPU, an FPGA, a spatial NPU (FuseMax), Mamba and T5, and runs that place
tensors on other tiers (the KV cache on a CXL card, half the weights in host DDR) or run the
attention on another component (the InstInfer drive, the host CPU), and NeuPIMs and Duplex at
``--fidelity cycle`` (DRAM streams and PIM command schedules cycle by cycle). Each case is
simulated at two lengths of generation, each run in-process after the micro-models' memo
caches are cleared (as a fresh process starts), and the script prints, as CPU seconds (medians
of ``--repeat`` runs):

* ``short`` / ``long``: ``simulate()`` at ``gen_len`` = the case's two lengths;
* ``ms/step``: ``(long - short) / (steps between them)``, the marginal cost of one more
  generated token;
* ``us/op``: the long run's CPU per op of its trace;
* ``ratio``: the long run's ops (each one SimPy event in the one-event-per-op engine) per CPU
  second over bare SimPy's timeouts per CPU second, measured right after it in this process;
* ``ev``: the SimPy events the long run's engine waited on (1 or 0: a run without the event
  loop; more: a run the event loop times);
* ``cycle ev`` and ``w/ cyc`` (``--fidelity cycle`` cases): what the long run's compiled cycle
  models processed, each an event a cycle simulator schedules (:class:`CycleEvents`: DRAM
  requests through the cycle DRAM model, PIM commands of each GEMV's schedule; those of a
  memoised result once), and the ratio counting them with the ops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

from bench_args import chosen_cases, rounds  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import (  # noqa: E402
    bare_simpy_events_per_s,
    clear_memo_caches,
    cli_process_settings,
)

_B = {"batch": 8, "prompt_len": 512}
#: name -> (arch, model, scenario without gen_len, (short gen_len, long gen_len)[, run
#: options: ``placement`` as ``--placement`` takes it, ``attention_on``, ``fidelity``])
CASES = {
    "mi300x-7b": ("mi300x", "llama2-7b", _B, (256, 1024)),
    "mi325x-70b": ("mi325x", "llama3-70b", _B, (256, 1024)),
    "sn40l-7b": ("sn40l", "llama2-7b", _B, (128, 512)),
    "sn40l-node-70b-tp8": ("sn40l-node", "llama2-70b", {**_B, "tp": 8}, (128, 512)),
    "neupims-gpt3-7b": ("neupims", "gpt3-7b", _B, (64, 256)),
    "neupims-naive-gpt3-7b": ("neupims-naive", "gpt3-7b", _B, (256, 1024)),
    "duplex-7b": ("duplex", "llama2-7b", _B, (64, 256)),
    "csd-7b": ("a6000-storage", "llama2-7b", _B, (256, 1024)),
    "cxl-7b": ("spr-a100-cxl1", "llama2-7b", _B, (256, 1024)),
    "cpu-7b": ("spr-8480", "llama2-7b", _B, (256, 1024)),
    "fusemax-7b": ("fusemax", "llama2-7b", _B, (256, 1024)),
    "fpga-gpt2-xl": ("accllm-u280", "gpt2-xl", _B, (128, 448)),
    "mamba-2.8b": ("h100", "mamba-2.8b", _B, (256, 1024)),
    "t5-large": ("h100", "t5-large", _B, (256, 1024)),
    "cxl-kv-7b": ("spr-a100-cxl1", "llama2-7b", _B, (64, 256), {"placement": "kv_cache=cxl0"}),
    "offload-13b": ("a6000-offload", "llama2-13b", _B, (64, 256),
                    {"placement": "weights=gpu.hbm:0.5,host_ddr:0.5"}),
    "csd-attention-7b": ("a6000-storage", "llama2-7b", _B, (64, 256), {"attention_on": "csd"}),
    "cpu-attention-7b": ("spr-a100", "llama2-7b", _B, (64, 256), {"attention_on": "cpu"}),
    # --fidelity cycle: each step's NPU stream through the cycle DRAM model, every PIM
    # GEMV's whole command schedule
    "neupims-cycle-gpt3-7b": ("neupims", "gpt3-7b", {"batch": 8, "prompt_len": 256},
                              (64, 256), {"fidelity": "cycle"}),
    "duplex-cycle-7b": ("duplex", "llama2-7b", _B, (16, 64), {"fidelity": "cycle"}),
}


class CycleEvents:
    """Counts, while entered, the events the compiled cycle models process: each request a
    cycle DRAM run simulates (:func:`sim.micro.dram_run.simulate`, as the cycle streams and
    the DRAM patterns call it: its ``addrs``, each issued, scheduled and completed through
    its bank cycle by cycle) and each command a PIM GEMV's schedule issues
    (:func:`sim.micro.cycle_pim.sweep`: its ``bus_commands``). A memoised result is counted
    where it was computed. ``dram``, ``pim``: the counts."""

    def __enter__(self) -> CycleEvents:
        import sim.micro.cycle_pim as cycle_pim
        import sim.micro.dram as dram
        import sim.micro.dram_patterns as patterns
        import sim.micro.dram_run as dram_run

        self.dram = self.pim = 0
        run, sweep = dram_run.simulate, cycle_pim.sweep
        self._saved = [(m, "simulate", run) for m in (dram, patterns)] + \
            [(cycle_pim, "sweep", sweep)]

        def counted_run(cfg, addrs, *args, **kwargs):
            self.dram += len(addrs)
            return run(cfg, addrs, *args, **kwargs)

        def counted_sweep(*args, **kwargs):
            res = sweep(*args, **kwargs)
            self.pim += res.bus_commands
            return res

        dram.simulate = patterns.simulate = counted_run
        cycle_pim.sweep = counted_sweep
        return self

    def __exit__(self, *exc) -> None:
        for module, name, fn in self._saved:
            setattr(module, name, fn)


def simulate_cpu(arch_name: str, model_name: str, scenario: dict,
                 options: dict | None = None) -> tuple[float, dict]:
    """CPU seconds of one ``simulate()`` (memo caches cleared first) and its metrics;
    ``options``: ``placement`` (``--placement``'s text), ``attention_on`` and ``fidelity``."""
    from arch import load_arch
    from sim.run import simulate
    from sim.system.schedule import Policies
    from workloads.models import get_model
    from workloads.scenario import Scenario

    options = options or {}
    arch, model = load_arch(arch_name), get_model(model_name)
    spec = None
    if "placement" in options:
        from sim.system.placement import parse_placement

        spec = parse_placement(options["placement"])
    policies = Policies(attention_on=options.get("attention_on", ""))
    clear_memo_caches()
    t = time.process_time()
    res = simulate(arch, model, Scenario(**scenario), placement=spec, policies=policies,
                   fidelity=options.get("fidelity", "tile"))
    return time.process_time() - t, res.metrics


def main() -> None:
    cli_process_settings()
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=rounds, default=1)
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated case names ({', '.join(CASES)})")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = chosen_cases(ap, args.cases, CASES)
    rows = []
    for name in names:
        arch, model, scenario, (short, long), *options = CASES[name]
        runs = {short: [], long: []}
        bare = []
        metrics: dict = {}
        cycle = bool(options) and options[0].get("fidelity") == "cycle"
        counted = CycleEvents()
        for _ in range(args.repeat):
            for gen in (short, long):
                with counted if cycle and gen == long else contextlib.nullcontext():
                    cpu, metrics = simulate_cpu(arch, model, {**scenario, "gen_len": gen},
                                                *options)
                runs[gen].append(cpu)
            bare.append(bare_simpy_events_per_s())
        a, b = statistics.median(runs[short]), statistics.median(runs[long])
        ops = metrics["ops"]
        simpy_rate = statistics.median(bare)
        cycle_events = counted.dram + counted.pim if cycle else 0
        rows.append({"case": name, "short_gen": short, "long_gen": long, "short_s": a,
                     "long_s": b, "ms_per_step": (b - a) / (long - short) * 1e3,
                     "us_per_op": b / ops * 1e6, "ops": ops,
                     "ratio_to_simpy": ops / b / simpy_rate,
                     "engine_events": metrics.get("engine_events", ops),
                     "cycle_events": cycle_events,
                     "cycle_dram_requests": counted.dram if cycle else 0,
                     "cycle_pim_commands": counted.pim if cycle else 0,
                     "ratio_with_cycle_events": (ops + cycle_events) / b / simpy_rate})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'case':24s} {'gens':>10s} {'short':>7s} {'long':>7s} {'ms/step':>8s} "
          f"{'us/op':>6s} {'ops':>9s} {'ratio':>7s} {'ev':>8s} {'cycle ev':>10s} "
          f"{'w/ cyc':>7s}")
    for r in rows:
        print(f"{r['case']:24s} {r['short_gen']:>4d}/{r['long_gen']:<5d} {r['short_s']:7.2f} "
              f"{r['long_s']:7.2f} {r['ms_per_step']:8.3f} {r['us_per_op']:6.2f} "
              f"{r['ops']:9.0f} {r['ratio_to_simpy']:6.0%} {r['engine_events']:8.0f} "
              + (f"{r['cycle_events']:10.0f} {r['ratio_with_cycle_events']:6.0%}"
                 if r["cycle_events"] else f"{'':>10s} {'':>7s}"))
    print("CPU seconds of simulate(), medians; ms/step: the marginal CPU of one more generated "
          "token; ratio: the long run's ops per CPU second over bare SimPy timeouts per CPU "
          "second, measured in this run; cycle ev: DRAM requests and PIM commands the long "
          "cycle-fidelity run's compiled models processed (the last round), w/ cyc: the ratio "
          "counting them with the ops")


if __name__ == "__main__":
    main()
