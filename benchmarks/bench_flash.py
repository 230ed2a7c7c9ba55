"""Flash model vs MQSim on the reference cases: figures and wall time side by side.

    python benchmarks/bench_flash.py [--repeat 3] [--markdown]

Runs every case of ``shared/reference/ssd/mqsim_cases.csv`` through ``xpusim import mqsim``'s
path (XML parsing included, best of ``--repeat``; the numba kernel is compiled and cached before
timing) and prints IOPS, bandwidth, mean latency and wall time next to MQSim's recorded ones.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from bench_args import rounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.micro.flash import simulate  # noqa: E402
from sim.micro.mqsim_xml import load_ssd_config, load_workload  # noqa: E402


def reference_dir() -> Path:
    import os

    return Path(os.environ.get("XPUSIM_REFERENCE_DIR", ROOT.parent / "shared" / "reference"))


def run_case(ssd: Path, row: dict) -> tuple[object, float]:
    inputs = ssd / "mqsim_inputs"
    t0 = time.perf_counter()
    cfg = load_ssd_config(inputs / row["config_file"])
    flow = load_workload(inputs / row["workload_file"], cfg)
    st = simulate(cfg, flow)
    return st, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=rounds, default=3)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    ssd = reference_dir() / "ssd"
    if not (ssd / "mqsim_cases.csv").is_file():
        print(f"reference data not found at {ssd}")
        return 0
    rows = list(csv.DictReader(open(ssd / "mqsim_cases.csv")))
    run_case(ssd, rows[0])  # compile / load the numba cache
    if args.markdown:
        print("| case | IOPS ours | IOPS MQSim | err | BW GB/s ours | BW MQSim | err | "
              "lat us ours | lat MQSim | err | wall s ours | MQSim wall / CPU s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst = {"iops": 0.0, "bw": 0.0, "lat": 0.0}
    slower = []
    for row in rows:
        best, st = float("inf"), None
        for _ in range(args.repeat):
            st, wall = run_case(ssd, row)
            best = min(best, wall)
        m_iops, m_bw = float(row["iops_per_s"]), float(row["bandwidth_Bps"])
        m_lat = float(row["avg_device_response_us"])
        e_iops = st.iops_per_s / m_iops - 1
        e_bw = st.bandwidth_Bps / m_bw - 1
        e_lat = st.avg_device_response_us / m_lat - 1
        worst["iops"] = max(worst["iops"], abs(e_iops))
        worst["bw"] = max(worst["bw"], abs(e_bw))
        worst["lat"] = max(worst["lat"], abs(e_lat))
        m_wall, m_cpu = float(row["mqsim_wall_s"]), float(row["mqsim_cpu_s"])
        if best >= m_wall:
            slower.append(row["case"])
        if args.markdown:
            print(f"| {row['case']} | {st.iops_per_s:,.0f} | {m_iops:,.0f} | {e_iops:+.2%} | "
                  f"{st.bandwidth_Bps / 1e9:.3f} | {m_bw / 1e9:.3f} | {e_bw:+.2%} | "
                  f"{st.avg_device_response_us:.1f} | {m_lat:.0f} | {e_lat:+.2%} | "
                  f"{best:.2f} | {m_wall:.2f} / {m_cpu:.2f} |")
        else:
            print(f"{row['case']:28s} IOPS {st.iops_per_s:10,.0f} vs {m_iops:10,.0f} "
                  f"({e_iops:+6.2%})  BW {st.bandwidth_Bps / 1e9:6.3f} vs {m_bw / 1e9:6.3f} GB/s "
                  f"({e_bw:+6.2%})  lat {st.avg_device_response_us:7.1f} vs {m_lat:5.0f} us "
                  f"({e_lat:+6.2%})  wall {best:5.2f} s vs MQSim {m_wall:.2f} s "
                  f"(CPU {m_cpu:.2f} s)")
    print(f"worst |error|: IOPS {worst['iops']:.2%}, bandwidth {worst['bw']:.2%}, "
          f"latency {worst['lat']:.2%}; slower than MQSim's wall time on: "
          f"{', '.join(slower) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
