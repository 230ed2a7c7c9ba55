"""How a whole ``xpusim run`` grows with generated tokens (issue 18, item 3: "cost grows
sub-linearly in tokens"), per device class.

Each run is a fresh ``python -m xpusim run ARGS --gen G --force --quiet --out DIR`` (start-up,
tracing, the engine, the tables and the report; ``bench_cli_run.run_command``: user + system
CPU from the child's own ``rusage``, wall around it), for every ``G`` of a ladder of token
counts (default 256, 512, 1,024, 2,048). Runs alternate within each round; figures are the
median of ``--repeat`` rounds, after a warm-up run of each with 8 tokens.

Per run it prints the CPU seconds at each count and how they grow:

* **x cost / x tokens**: the CPU at the largest count over that at the smallest, next to the
  tokens' ratio (8 for 256 -> 2,048): below it, the whole command grows less than in proportion
  to its tokens over that range;
* **exponent**: ``log(cost ratio) / log(token ratio)`` over the ladder (:func:`exponents`;
  1: linear, 0: flat) and over its last pair (the local growth at the long end);
* **fixed s / ms per token**: the least-squares line ``cost = fixed + per_token x G``
  (:func:`affine_fit`); the fixed part is start-up, the prompt and the report's set-up, the
  per-token part what each more decode step costs (its ops through the engine, the tables and
  ``ops.parquet``, one row each);
* **/SimPy**: the events (ops and transfers) per CPU second of the largest run, whole command,
  over bare SimPy's timeouts per CPU second measured in this process right after it
  (``bench_run.bare_simpy_events_per_s``; the median over the rounds of each round's ratio,
  ``bench_cli_run.paired_ratio``: this host's speed drifts by up to 2x over minutes).

    python benchmarks/bench_scaling.py [--repeat 3] [--runs 7b 70b-tp8 ...] [--gens 256 2048]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_args import positive, rounds
from bench_cli_run import ROOT, child_env, paired, paired_ratio, run_command, simpy_span

#: name -> the run's options (``--gen`` is added per count)
RUNS: dict[str, list[str]] = {
    "7b": ["--arch", "h100", "--model", "llama2-7b", "--batch", "8", "--prompt", "512"],
    "70b-tp8": ["--arch", "dgx-h100", "--model", "llama2-70b", "--batch", "8",
                "--prompt", "512", "--tp", "8"],
    "70b-tp2-pp4-mb4": ["--arch", "dgx-h100", "--model", "llama2-70b", "--batch", "8",
                        "--prompt", "512", "--tp", "2", "--pp", "4", "--microbatches", "4"],
    "7b-kv-on-cxl": ["--arch", "spr-a100-cxl1", "--model", "llama2-7b",
                     "--placement", "kv_cache=cxl0"],
    "13b-half-weights-on-host": ["--arch", "a6000-offload", "--model", "llama2-13b",
                                 "--placement", "weights=gpu.hbm:0.5,host_ddr:0.5"],
    "7b-attention-on-cpu": ["--arch", "spr-a100", "--model", "llama2-7b", "--batch", "32",
                            "--attention-on", "cpu"],
    "7b-duplex": ["--arch", "duplex", "--model", "llama2-7b"],
    "7b-sn40l": ["--arch", "sn40l", "--model", "llama2-7b", "--batch", "8"],
}
GENS = (256, 512, 1024, 2048)


def exponents(gens: list[int], costs: list[float]) -> tuple[float, float]:
    """(growth exponent over the whole ladder, over its last pair): ``log(c_b / c_a) /
    log(g_b / g_a)``; 1 for a cost in proportion to the tokens, below 1 for less."""
    def exponent(a: int, b: int) -> float:
        return math.log(costs[b] / costs[a]) / math.log(gens[b] / gens[a])

    return exponent(0, len(gens) - 1), exponent(len(gens) - 2, len(gens) - 1)


def affine_fit(gens: list[int], costs: list[float]) -> tuple[float, float]:
    """(fixed s, s per token) of the least-squares line ``cost = fixed + per_token x gen``."""
    mg, mc = statistics.fmean(gens), statistics.fmean(costs)
    sxx = sum((g - mg) ** 2 for g in gens)
    per_token = sum((g - mg) * (c - mc) for g, c in zip(gens, costs, strict=True)) / sxx
    return mc - per_token * mg, per_token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=rounds, default=3, help="rounds (default 3)")
    ap.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS),
                    help="runs to time (default: all)")
    ap.add_argument("--gens", nargs="+", type=positive("tokens"), default=list(GENS),
                    help="generated-token counts, at least two (default 256 512 1024 2048)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    opts = ap.parse_args()
    gens = sorted(set(opts.gens))
    if len(gens) < 2:
        ap.error(f"--gens: expected at least two distinct token counts, got {gens}")
    with tempfile.TemporaryDirectory() as tmp:
        env, out = child_env(tmp), Path(tmp, "report")
        for name in opts.runs:      # bytecode and compiled loops, written once
            subprocess.run([sys.executable, "-m", "xpusim", "run", *RUNS[name], "--gen", "8",
                            "--force", "--quiet", "--out", str(out)], cwd=ROOT, env=env,
                           check=True, stdout=subprocess.DEVNULL)
        got: dict[tuple[str, int], list[dict]] = {(n, g): [] for n in opts.runs for g in gens}
        for _ in range(opts.repeat):
            for name in opts.runs:
                for g in gens:
                    run = run_command([*RUNS[name], "--gen", str(g), "--force"], out, env)
                    got[name, g].append(paired(run) if g == gens[-1] else run)
    rows = []
    for name in opts.runs:
        cpu = [statistics.median(r["user_s"] + r["sys_s"] for r in got[name, g]) for g in gens]
        wall = [statistics.median(r["wall_s"] for r in got[name, g]) for g in gens]
        whole, last = exponents(gens, cpu)
        fixed, per_token = affine_fit(gens, cpu)
        rows.append({"run": name, "gens": gens, "cpu_s": cpu, "wall_s": wall,
                     "ops": [got[name, g][0]["ops"] for g in gens],
                     "cost_ratio": cpu[-1] / cpu[0], "token_ratio": gens[-1] / gens[0],
                     "exponent": whole, "exponent_last_pair": last, "fixed_s": fixed,
                     "ms_per_token": per_token * 1e3,
                     "events": [got[name, g][0]["events"] for g in gens],
                     "simpy_ratio": paired_ratio(got[name, gens[-1]], "events"),
                     "simpy_per_s": [r["simpy_per_s"] for r in got[name, gens[-1]]]})
    if opts.json:
        print(json.dumps(rows, indent=1))
        return
    counts = "/".join(str(g) for g in gens)
    print(f"{'run':26s} {'CPU s at ' + counts:32s} {'x cost':>6s} {'x tok':>5s} "
          f"{'exp':>5s} {'last':>5s} {'fixed s':>7s} {'ms/tok':>6s} {'/SimPy':>6s}")
    for r in rows:
        print(f"{r['run']:26s} {'/'.join(f'{c:.2f}' for c in r['cpu_s']):32s} "
              f"{r['cost_ratio']:6.2f} {r['token_ratio']:5.0f} {r['exponent']:5.2f} "
              f"{r['exponent_last_pair']:5.2f} {r['fixed_s']:7.2f} {r['ms_per_token']:6.3f} "
              f"{r['simpy_ratio']:6.0%}")
    print(f"whole `xpusim run` commands (user + system CPU, median of {opts.repeat} rounds); "
          f"x cost: CPU at {gens[-1]} tokens over CPU at {gens[0]}; exp: log(x cost) / "
          f"log(x tok), 1 = linear (last: over the last pair); fixed s + ms/tok: the "
          f"least-squares line; /SimPy: events per CPU s of the {gens[-1]}-token run over bare "
          f"SimPy's timeouts per CPU s measured right after it "
          f"({simpy_span([r for n in opts.runs for r in got[n, gens[-1]]])} in this run), "
          f"median of the rounds")


if __name__ == "__main__":
    main()
