"""The six MQSim reference cases (shared/reference/ssd): IOPS and bandwidth within 5 %, mean
device response time within 10 %, flash page reads and programs within 5 %."""

from __future__ import annotations

import csv

import pytest

from sim.micro.flash import simulate
from sim.micro.mqsim_xml import load_ssd_config, load_workload


def _rows(ref_dir):
    path = ref_dir / "ssd" / "mqsim_cases.csv"
    if not path.is_file():
        pytest.skip(f"MQSim reference cases not found at {path}")
    return list(csv.DictReader(open(path)))


@pytest.mark.parametrize("index", range(6))
def test_mqsim_reference_case(ref_dir, index):
    rows = _rows(ref_dir)
    row = rows[index]
    inputs = ref_dir / "ssd" / "mqsim_inputs"
    cfg = load_ssd_config(inputs / row["config_file"])
    flow = load_workload(inputs / row["workload_file"], cfg)
    st = simulate(cfg, flow)
    case = row["case"]
    assert st.iops_per_s == pytest.approx(float(row["iops_per_s"]), rel=0.05), case
    assert st.bandwidth_Bps == pytest.approx(float(row["bandwidth_Bps"]), rel=0.05), case
    assert st.read_bandwidth_Bps == pytest.approx(float(row["read_bandwidth_Bps"]), rel=0.05,
                                                  abs=1e6), case
    assert st.write_bandwidth_Bps == pytest.approx(float(row["write_bandwidth_Bps"]),
                                                   rel=0.05, abs=1e6), case
    assert st.avg_device_response_us == pytest.approx(
        float(row["avg_device_response_us"]), rel=0.10), case
    assert st.flash_page_reads == pytest.approx(int(row["flash_page_reads"]), rel=0.05), case
    assert st.flash_page_programs == pytest.approx(int(row["flash_page_programs"]), rel=0.05,
                                                   abs=5), case
    # same random streams as MQSim (MRG32k3a, its seeding): the counts agree to the request
    assert st.requests_served == pytest.approx(int(row["requests_served"]), rel=0.002), case
    # the case's inputs are what the CSV says they are
    assert cfg.channels == int(row["channels"]) and flow.queue_depth == int(row["queue_depth"])
    assert flow.request_bytes == int(row["request_bytes"])
