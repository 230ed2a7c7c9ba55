"""``xpusim import dramsim3``: run a DRAMsim3 config and trace on xpusim's cycle-level DRAM model.

Reads DRAMsim3's own INI config and trace format and mirrors its trace front end (one request
per memory cycle at most, in trace order, blocking while the controller refuses it), so the
figures compare with ``dramsim3main CONFIG -t TRACE -c CYCLES`` summed over channels.
"""

from __future__ import annotations

import argparse

from xpusim.commands._common import positive_int

NAME = "dramsim3"
DESCRIPTION = "run a DRAMsim3 INI config and trace (reads, latency, activates, bandwidth, energy)"

KEYS = ("reads_done", "writes_done", "avg_read_latency_cycles", "activates", "read_row_hits",
        "refreshes", "bandwidth_GBps", "energy_pJ")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="DRAMsim3 INI config file")
    p.add_argument("--trace", required=True,
                   help="DRAMsim3 trace file: lines 'HEX_ADDRESS READ|WRITE CYCLE'")
    p.add_argument("--cycles", required=True, type=positive_int,
                   help="memory cycles to simulate (as dramsim3main -c)")


def run(args: argparse.Namespace) -> dict:
    from sim.micro.dram import simulate
    from sim.micro.dram_ini import load_dramsim3_ini
    from sim.micro.dram_trace import read_trace

    cfg = load_dramsim3_ini(args.config)
    trace = read_trace(args.trace)
    stats = simulate(cfg, trace.addrs, trace.writes, trace.times, args.cycles,
                     frontend="dramsim3",
                     tail="newline" if trace.trailing_newline else "no_newline")
    out = {k: v for k, v in stats.to_dict().items() if k in KEYS}
    # no read finished: DRAMsim3 prints nan; JSON gets null
    out = {k: (None if isinstance(out[k], float) and out[k] != out[k] else out[k])
           for k in KEYS}
    return out


def format_text(out: dict) -> str:
    lines = [f"{k:26s} {v:,.4f}" if isinstance(v, float) else
             f"{k:26s} {'n/a' if v is None else format(v, ',')}" for k, v in out.items()]
    return "\n".join(lines) + "\n"
