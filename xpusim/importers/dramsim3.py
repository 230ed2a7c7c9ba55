"""``xpusim import dramsim3``: run a DRAMsim3 config and trace on xpusim's cycle-level DRAM model.

Reads DRAMsim3's own INI config and trace format and mirrors its trace front end (one request
per memory cycle at most, in trace order, blocking while the controller refuses it), so the
figures compare with ``dramsim3main CONFIG -t TRACE -c CYCLES`` summed over channels.

Several traces in one call (``--trace A B ...``, with one ``--config``/``--cycles`` for all or
one per trace) run in one process: start-up is paid once. The figures of each run are the
same as from separate calls. A plain trace runs through :mod:`sim.micro.dram_capi` (the kernel
in a C shared library: no numpy or numba import); other traces, or no library, through numpy.
"""

from __future__ import annotations

import argparse

from xpusim.commands._common import positive_int

NAME = "dramsim3"
DESCRIPTION = "run a DRAMsim3 INI config and trace (reads, latency, activates, bandwidth, energy)"

KEYS = ("reads_done", "writes_done", "avg_read_latency_cycles", "activates", "read_row_hits",
        "refreshes", "bandwidth_GBps", "energy_pJ")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, nargs="+",
                   help="DRAMsim3 INI config file (one, or one per trace)")
    p.add_argument("--trace", required=True, nargs="+",
                   help="DRAMsim3 trace file(s): lines 'HEX_ADDRESS READ|WRITE CYCLE'")
    p.add_argument("--cycles", required=True, type=positive_int, nargs="+",
                   help="memory cycles to simulate (as dramsim3main -c; one, or one per trace)")


def _per_trace(args: argparse.Namespace, name: str) -> list:
    vals, n = getattr(args, name), len(args.trace)
    if len(vals) not in (1, n):
        from sim.devices.base import SimError

        raise SimError(f"--{name}: expected one value or one per trace ({n}), got {len(vals)}")
    return vals * n if len(vals) == 1 else vals


def run(args: argparse.Namespace) -> dict:
    from sim.micro.dram_capi import run_trace_file  # no numpy, no numba: see its docstring
    from sim.micro.dram_ini import load_dramsim3_ini

    configs, cycles = _per_trace(args, "config"), _per_trace(args, "cycles")
    loaded: dict = {}
    runs = []
    for cfg_path, trace_path, cyc in zip(configs, args.trace, cycles, strict=True):
        if cfg_path not in loaded:
            loaded[cfg_path] = load_dramsim3_ini(cfg_path)
        out = run_trace_file(loaded[cfg_path], trace_path, cyc)
        if out is None:  # no library here, or a trace only the Python reader takes
            out = _run_numpy(loaded[cfg_path], trace_path, cyc)
        # no read finished: DRAMsim3 prints nan; JSON gets null
        runs.append({k: (None if isinstance(out[k], float) and out[k] != out[k] else out[k])
                     for k in KEYS})
    if len(runs) == 1:
        return runs[0]
    return {"runs": [{"config": str(c), "trace": str(t), "cycles": n, **r}
                     for c, t, n, r in zip(configs, args.trace, cycles, runs, strict=True)]}


def _run_numpy(cfg, trace_path: str, cycles: int) -> dict:
    """The same run through numpy (:func:`sim.micro.dram_run.simulate`)."""
    from sim.micro.dram_run import simulate
    from sim.micro.dram_tracefile import read_trace

    trace = read_trace(trace_path)
    return simulate(cfg, trace.addrs, trace.writes, trace.times, cycles, frontend="dramsim3",
                    tail="newline" if trace.trailing_newline else "no_newline").to_dict()


def _lines(out: dict) -> list[str]:
    return [f"{k:26s} {v:,.4f}" if isinstance(v, float) else
            f"{k:26s} {'n/a' if v is None else format(v, ',')}" for k, v in out.items()]


def format_text(out: dict) -> str:
    if "runs" not in out:
        return "\n".join(_lines(out)) + "\n"
    blocks = []
    for r in out["runs"]:
        head = f"{r['trace']} on {r['config']} ({r['cycles']:,} cycles)"
        blocks.append("\n".join([head] + ["  " + s for s in _lines(
            {k: v for k, v in r.items() if k in KEYS})]))
    return "\n\n".join(blocks) + "\n"
