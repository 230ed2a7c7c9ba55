"""``xpusim import mqsim``: run MQSim's SSD config and workload XML on xpusim's flash model.

Reads MQSim's own ``ssdconfig.xml`` / ``workload.xml`` unchanged (synthetic QUEUE_DEPTH flows)
and prints what MQSim's ``workload_scenario_1.xml`` reports, under the column names of
``shared/reference/ssd/mqsim_cases.csv``: IOPS and bandwidth per second of simulated time,
device response time in microseconds, requests served, flash commands.
"""

from __future__ import annotations

import argparse

NAME = "mqsim"
DESCRIPTION = "run an MQSim SSD config and synthetic workload (IOPS, bandwidth, latency, flash ops)"

KEYS = ("requests_served", "read_requests", "write_requests", "iops_per_s", "bandwidth_Bps",
        "read_bandwidth_Bps", "write_bandwidth_Bps", "bytes_transferred",
        "avg_device_response_us", "min_device_response_us", "max_device_response_us",
        "p99_device_response_us", "avg_read_txn_turnaround_us", "avg_read_txn_execution_us",
        "avg_read_txn_transfer_us", "avg_read_txn_waiting_us", "avg_write_txn_turnaround_us",
        "avg_write_txn_execution_us", "avg_write_txn_transfer_us", "avg_write_txn_waiting_us",
        "flash_read_cmds", "flash_multiplane_read_cmds", "flash_program_cmds",
        "flash_multiplane_program_cmds", "flash_page_reads", "flash_page_programs",
        "sim_time_s")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="MQSim SSD configuration XML (ssdconfig.xml)")
    p.add_argument("--workload", required=True,
                   help="MQSim workload XML with one synthetic QUEUE_DEPTH flow")


def run(args: argparse.Namespace) -> dict:
    from sim.micro.flash import simulate
    from sim.micro.mqsim_xml import load_ssd_config, load_workload

    cfg = load_ssd_config(args.config)
    flow = load_workload(args.workload, cfg)
    stats = simulate(cfg, flow).to_dict()
    out = {k: stats[k] for k in KEYS}
    out["avg_end_to_end_delay_us"] = out["avg_device_response_us"]
    return out


def format_text(out: dict) -> str:
    lines = [f"{k:32s} {v:,.3f}" if isinstance(v, float) else f"{k:32s} {v:,}"
             for k, v in out.items()]
    return "\n".join(lines) + "\n"
