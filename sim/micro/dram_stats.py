"""The figures of one DRAM run from the kernel's totals (plain Python, no numpy).

Shared by :func:`sim.micro.dram_run.simulate` (numpy arrays summed over channels) and the C-ABI
entry :mod:`sim.micro.dram_capi` (totals summed in compiled code), so both give the same floats.
"""

from __future__ import annotations

from sim.micro.dram_layout import (
    S_ACT,
    S_DUAL,
    S_LAT,
    S_PRE,
    S_RDCMD,
    S_RDHIT,
    S_READS,
    S_REF,
    S_REFB,
    S_WRCMD,
    S_WRHIT,
    S_WRITES,
)


def run_figures(cfg, tot, act_cycles: int, idle_cycles: int, ticks: int, n: int,
                accepted: int) -> dict:
    """:class:`~sim.micro.dram_run.DramStats` fields but ``per_channel`` and
    ``last_done_cycle``: ``tot`` the per-channel statistics summed (``S_*`` order),
    ``act_cycles`` / ``idle_cycles`` rank-cycles with a row open / all banks closed, ``ticks``
    memory cycles run, ``n`` requests, ``accepted`` of them taken. Energies in pJ (IDD method,
    :meth:`~sim.micro.dram_config.DramConfig.energies_pJ`), bandwidth in GB/s."""
    tot = [int(v) for v in tot]
    e = cfg.energies_pJ()
    breakdown = {
        "act": float(tot[S_ACT] * e["act"]),
        "read": float(tot[S_RDCMD] * e["read"]),
        "write": float(tot[S_WRCMD] * e["write"]),
        "refresh": float(tot[S_REF] * e["ref"] + tot[S_REFB] * e["refb"]),
        "background": float(int(act_cycles) * e["act_standby"]
                            + int(idle_cycles) * e["pre_standby"]),
    }
    reads = tot[S_READS]
    done = reads + tot[S_WRITES]
    seconds = ticks * cfg.tCK * 1e-9
    return dict(
        cycles=ticks, requests=n, accepted=accepted, reads_done=reads,
        writes_done=tot[S_WRITES],
        avg_read_latency_cycles=float(tot[S_LAT]) / reads if reads else float("nan"),
        read_cmds=tot[S_RDCMD], write_cmds=tot[S_WRCMD], activates=tot[S_ACT],
        precharges=tot[S_PRE], refreshes=tot[S_REF], bank_refreshes=tot[S_REFB],
        read_row_hits=tot[S_RDHIT], write_row_hits=tot[S_WRHIT], dual_issues=tot[S_DUAL],
        bandwidth_GBps=done * cfg.request_bytes / seconds / 1e9 if seconds > 0 else 0.0,
        energy_pJ=float(sum(breakdown.values())), energy_breakdown_pJ=breakdown)
