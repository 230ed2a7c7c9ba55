"""NAND-flash SSD model: hand-counted timings, bandwidth bounds, pattern API, bad MQSim input."""

from __future__ import annotations

import pytest
from conftest import assert_refused

from sim.devices.base import SimError
from sim.micro.flash import FlashConfig, FlowSpec, page_group_read, pattern_timing, simulate
from sim.micro.flash_config import CQE_BYTES, DOORBELL_BYTES, RB_DELAY_READ_NS, SQE_BYTES
from xpusim.cli import main

CFG = FlashConfig()


def _one_read(cfg: FlashConfig, nbytes: int) -> float:
    flow = FlowSpec(kind="rand", request_bytes=nbytes, queue_depth=1, stop_time_s=0.0,
                    total_requests=1, alignment_bytes=nbytes)
    st = simulate(cfg, flow)
    assert st.requests_served == 1
    return st.avg_device_response_us * 1000.0  # ns


def _hand_read_ns(cfg: FlashConfig, nbytes: int) -> int:
    """Doorbell, SQ-entry fetch, firmware, read command, tR, channel data out, PCIe data with
    28 B per 128 B TLP, completion entry."""
    return (cfg.pcie_ns(DOORBELL_BYTES) + cfg.pcie_ns(0, read_request=True)
            + cfg.pcie_ns(SQE_BYTES) + cfg.controller_ns + cfg.read_cmd_ns(1)
            + cfg.read_ns[0] + RB_DELAY_READ_NS + cfg.data_ns(nbytes) + cfg.pcie_ns(nbytes)
            + cfg.pcie_ns(CQE_BYTES))


def test_one_page_read_qd1_is_hand_count():
    got = _one_read(CFG, 16384)
    assert got == pytest.approx(_hand_read_ns(CFG, 16384), abs=0.5)
    # the parts in SI: 45 us tR + 16.4 us on a 1 GB/s channel + 16384*(156/128) B at 7.876 GB/s
    assert 45e3 + 16384 + 16384 * 156 / 128 / 7.876 < got < 45e3 + 16384 + 3400


def test_controller_latency_adds_once_per_command():
    slow = CFG.with_(controller_ns=5000)
    assert _one_read(slow, 16384) - _one_read(CFG, 16384) == pytest.approx(5000, abs=0.5)


def test_page_type_latency_tlc():
    # MSB pages slower: the first never-written page of a plane is page 0 (LSB)
    cfg = CFG.with_(read_ns=(30000, 60000, 90000))
    assert _one_read(cfg, 4096) == pytest.approx(_hand_read_ns(cfg, 4096), abs=0.5)


def test_sequential_stream_is_bounded_by_channels_and_pcie():
    for cfg in (CFG, CFG.with_(channels=2, chips_per_channel=8),
                CFG.with_(channels=4, chips_per_channel=4, pcie_lanes=2)):
        bound = min(cfg.channels * cfg.channel_Bps, cfg.pcie_payload_Bps)
        bw, _, _ = pattern_timing(cfg, "seq", 131072, 64)
        assert bw <= bound * 1.0001
        # below the bound by the command cycles on the bus and by chips that take no new
        # command until their data has left (MQSim's PHY): 85-92 % here
        assert bw >= 0.8 * bound, (cfg.channels, bw / bound)


def test_pattern_timing_monotone_in_queue_depth_and_size():
    bws, lats = [], []
    for qd in (1, 4, 16, 64):
        bw, lat, iops = pattern_timing(CFG, "rand", 4096, qd)
        assert iops == pytest.approx(bw / 4096, rel=1e-9)
        bws.append(bw)
        lats.append(lat)
    assert bws == sorted(bws) and lats == sorted(lats)
    sizes = [pattern_timing(CFG, "seq", s, 8)[0] for s in (4096, 16384, 65536, 262144)]
    assert sizes == sorted(sizes)
    # sustained writes are bounded by programs (the write-back buffer holds one page per
    # plane), so a write stream is slower per request than its DRAM completion alone
    _, wlat, _ = pattern_timing(CFG, "rand", 16384, 1, read_fraction=0.0)
    assert wlat > 2 * _one_write_ns(CFG, 16384) * 1e-9


def _one_write_ns(cfg: FlashConfig, nbytes: int) -> float:
    flow = FlowSpec(kind="rand", read_fraction=0.0, request_bytes=nbytes, queue_depth=1,
                    stop_time_s=0.0, total_requests=1, alignment_bytes=nbytes)
    return simulate(cfg, flow).avg_device_response_us * 1000.0


def test_one_write_completes_in_dram():
    # doorbell, SQ-entry fetch, write-data fetch (read request + data with TLP overhead),
    # DRAM buffer write, completion entry: no flash program on the way
    hand = (cfg_ns := CFG.pcie_ns(DOORBELL_BYTES)) + CFG.pcie_ns(0, read_request=True) \
        + CFG.pcie_ns(SQE_BYTES) + CFG.pcie_ns(0, read_request=True) + CFG.pcie_ns(16384) \
        + CFG.dram_ns(16384) + CFG.pcie_ns(CQE_BYTES)
    assert cfg_ns > 0
    assert _one_write_ns(CFG, 16384) == pytest.approx(hand, abs=0.5)


def test_page_group_read_scales_with_pages():
    t1, _ = page_group_read(CFG, 64)
    t2, bw2 = page_group_read(CFG, 512)
    assert t2 > t1
    assert bw2 <= CFG.channels * CFG.channel_Bps
    with pytest.raises(SimError):
        page_group_read(CFG, 0)


def test_deterministic_for_a_seed():
    flow = FlowSpec(kind="rand", read_fraction=0.5, request_bytes=8192, queue_depth=8,
                    stop_time_s=0.005, seed=7)
    assert simulate(CFG, flow) == simulate(CFG, flow)


def test_bad_config_values():
    with pytest.raises(SimError, match="channels"):
        FlashConfig(channels=0)
    with pytest.raises(SimError, match="plane_scheme"):
        FlashConfig(plane_scheme="XYZW")
    with pytest.raises(SimError, match="queue_depth"):
        FlowSpec(queue_depth=0)


# --- MQSim XML: bad input is one line naming file and field, exit 2 ---------------------------

_CONFIG = """<?xml version="1.0" encoding="us-ascii"?>
<Execution_Parameter_Set>
  <Host_Parameter_Set><PCIe_Lane_Bandwidth>1.969</PCIe_Lane_Bandwidth>
    <PCIe_Lane_Count>4</PCIe_Lane_Count></Host_Parameter_Set>
  <Device_Parameter_Set>
    <Flash_Channel_Count>{channels}</Flash_Channel_Count><Flash_Channel_Width>1</Flash_Channel_Width>
    <Channel_Transfer_Rate>1000</Channel_Transfer_Rate><Chip_No_Per_Channel>2</Chip_No_Per_Channel>
    <Plane_Allocation_Scheme>CWDP</Plane_Allocation_Scheme>{extra}
    <Flash_Parameter_Set><Flash_Technology>TLC</Flash_Technology>
      <Page_Read_Latency_LSB>45000</Page_Read_Latency_LSB>
      <Page_Program_Latency_LSB>450000</Page_Program_Latency_LSB>
      <Die_No_Per_Chip>1</Die_No_Per_Chip><Plane_No_Per_Die>2</Plane_No_Per_Die>
      <Block_No_Per_Plane>64</Block_No_Per_Plane><Page_No_Per_Block>128</Page_No_Per_Block>
      <Page_Capacity>16384</Page_Capacity></Flash_Parameter_Set>
  </Device_Parameter_Set>
</Execution_Parameter_Set>
"""

_FLOW = """<?xml version="1.0" encoding="us-ascii"?>
<MQSim_IO_Scenarios><IO_Scenario><{tag}>
  <Synthetic_Generator_Type>{gen}</Synthetic_Generator_Type><Read_Percentage>100</Read_Percentage>
  <Address_Distribution>RANDOM_UNIFORM</Address_Distribution>
  <Average_Request_Size>8</Average_Request_Size><Seed>3</Seed>
  <Average_No_of_Reqs_in_Queue>{qd}</Average_No_of_Reqs_in_Queue>
  <Stop_Time>2000000</Stop_Time>
</{tag}></IO_Scenario></MQSim_IO_Scenarios>
"""


def _files(tmp_path, channels="4", extra="", tag="IO_Flow_Parameter_Set_Synthetic",
           gen="QUEUE_DEPTH", qd="4"):
    c = tmp_path / "ssd.xml"
    w = tmp_path / "wl.xml"
    c.write_text(_CONFIG.format(channels=channels, extra=extra))
    w.write_text(_FLOW.format(tag=tag, gen=gen, qd=qd))
    return ["import", "mqsim", "--config", str(c), "--workload", str(w), "--json"]


def test_small_mqsim_files_run(tmp_path, capsys):
    assert main(_files(tmp_path)) == 0
    out = capsys.readouterr().out
    assert '"iops_per_s"' in out and '"flash_read_cmds"' in out


@pytest.mark.parametrize("kw, file, field", [
    (dict(extra="<Flash_Colour>red</Flash_Colour>"), "ssd.xml", "Flash_Colour"),
    (dict(channels="eight"), "ssd.xml", "Flash_Channel_Count"),
    (dict(extra="<HostInterface_Type>SATA</HostInterface_Type>"), "ssd.xml",
     "HostInterface_Type"),
    (dict(extra="<Ideal_Mapping_Table>false</Ideal_Mapping_Table>"), "ssd.xml",
     "Ideal_Mapping_Table"),
    (dict(qd="0"), "wl.xml", "Average_No_of_Reqs_in_Queue"),
    (dict(qd="x"), "wl.xml", "Average_No_of_Reqs_in_Queue"),
    (dict(gen="BANDWIDTH"), "wl.xml", "Synthetic_Generator_Type"),
    (dict(tag="IO_Flow_Parameter_Set_Trace_Based"), "wl.xml", "Trace_Based"),
    # 23 digits (found by fuzzing): past int64, it overflowed the flash model's arrays
    (dict(channels="9" * 23), "ssd.xml", "Flash_Channel_Count: expected at most"),
    (dict(qd=str(2**40 + 1)), "wl.xml", "Average_No_of_Reqs_in_Queue: expected at most"),
])
def test_bad_mqsim_input_is_one_line(tmp_path, capsys, kw, file, field):
    assert_refused(main(_files(tmp_path, **kw)), capsys, file, field)


def test_unknown_encoding_in_the_declaration(tmp_path, capsys):
    # found by fuzzing: the parser's LookupError escaped as a traceback
    argv = _files(tmp_path)
    c = tmp_path / "ssd.xml"
    c.write_text(c.read_text().replace('encoding="us-ascii"', 'encoding="us-a0"'))
    assert_refused(main(argv), capsys, "ssd.xml: not readable XML")


def test_missing_field_and_bad_xml(tmp_path, capsys):
    args = _files(tmp_path)
    cfg = tmp_path / "ssd.xml"
    cfg.write_text(cfg.read_text().replace("<Page_Capacity>16384</Page_Capacity>", ""))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ssd.xml" in err and "Page_Capacity" in err
    cfg.write_text("<Execution_Parameter_Set><oops></Execution_Parameter_Set>")
    assert main(args) == 2
    assert "ssd.xml" in capsys.readouterr().err


def test_mqsim_random_streams():
    # MQSim's Utils::RandomGenerator(103).Uniform_ulong(0, 336978200), from its own C++ code
    from sim.micro.flash_rng import mqsim_state, next_double, uniform_ulong

    assert uniform_ulong(mqsim_state(103), 0, 336978200) == 31499258
    s = mqsim_state(102)
    assert [next_double(s) for _ in range(3)] == [0.9239342613560908, 0.81119927850771933,
                                                  0.44938195926869468]


def test_pattern_timing_takes_an_arch_flash_section():
    from types import SimpleNamespace

    spec = SimpleNamespace(capacity=1e12, channels=8, chips_per_channel=4, dies_per_chip=1,
                           planes_per_die=2, page_size=4096.0, read_latency=40e-6,
                           program_latency=400e-6, erase_latency=3e-3,
                           channel_bandwidth=1.4e9, controller_latency=5e-6)
    cfg = FlashConfig.from_spec(spec)
    assert cfg.channel_Bps == pytest.approx(1.4e9, rel=1e-3)  # exact rate, not MQSim's ns
    assert cfg.controller_ns == 5000 and cfg.page_bytes == 4096
    bw, lat, iops = pattern_timing(cfg, "seq", 131072.0, 32)
    assert 0 < bw <= min(8 * 1.4e9, cfg.pcie_payload_Bps)
    with pytest.raises(TypeError, match="from_spec"):
        pattern_timing(spec, "seq", 131072, 32)
