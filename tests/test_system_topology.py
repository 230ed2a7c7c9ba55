"""Systems: topology presets, device views, routes, derived PCIe bandwidth and one-line errors."""

from pathlib import Path

import pytest

from arch import SpecError, arch_from_dict, deep_merge, load_arch, load_arch_data
from arch.schema import leaf_paths
from arch.sections.topology import pcie_bandwidth
from arch.spec import DEVICE_TYPES
from arch.topology_view import device_view, primary_component
from sim.devices.base import SimError, device_for
from sim.system import Hop, build_system
from workloads.trace import COLLECTIVE, Collective, Op

GB = 1e9

# The DGX H100 as a `type: gpu` arch before systems existed (h100 + these sections): the device
# view of the `type: system` preset must give the GPU model exactly this.
OLD_DGX_H100 = {
    "name": "dgx-h100", "type": "gpu",
    "interconnect": {
        "nvlink": {"bandwidth": "450 GB/s", "latency": "0.053 us", "efficiency": 0.78},
        "infiniband": {"bandwidth": "50 GB/s", "latency": "2.1 us", "efficiency": 0.9}},
    "energy": {"link": {"infiniband": "20 pJ/bit"}},
    "system": {"devices": 8, "nodes": 1, "intra_node_link": "nvlink",
               "inter_node_link": "infiniband"},
}

SYSTEM = """\
name: box
type: system
components:
  gpu: {kind: device, arch: h100, count: 2}
  nvswitch: {kind: switch}
  host_ddr: {kind: memory, memory: ddr5, capacity: 512 GiB, bandwidth: 300 GB/s}
links:
  nvlink: {between: [gpu, nvswitch], kind: nvlink, bandwidth: 450 GB/s}
  pcie: {between: [gpu, host_ddr], kind: pcie, generation: 5, lanes: 16}
"""


@pytest.fixture(scope="module")
def dgx():
    return build_system(load_arch("dgx-h100"))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sys.yaml"
    p.write_text(text)
    return p


def _bad(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as exc:
        load_arch(_write(tmp_path, text))
    msg = str(exc.value)
    assert "\n" not in msg and "sys.yaml" in msg
    return msg


def test_route_between_gpus_crosses_the_nvswitch(dgx):
    r = dgx.route("gpu0", "gpu5")
    assert r.hops == (Hop("nvlink.gpu0", True), Hop("nvlink.gpu5", False))
    assert r.bottleneck == pytest.approx(450 * GB * 0.78)  # not PCIe (53.6) or IB (45) paths
    assert r.latency == pytest.approx(2 * 0.053e-6)
    assert dgx.route("gpu0", "gpu5") is r  # memoised


def test_route_from_host_memory_is_one_pcie_hop(dgx):
    r = dgx.route("host_ddr", "gpu3")
    assert r.hops == (Hop("pcie.gpu3", False),)
    assert r.bottleneck == pytest.approx(32e9 * 16 * 128 / 130 / 8 * 0.85)
    assert dgx.route("gpu3.hbm", "host_ddr").hops == (Hop("pcie.gpu3", True),)
    own = dgx.route("gpu0.hbm", "gpu0")
    assert own.hops == () and own.latency == 0 and own.bottleneck == float("inf")


def test_dgx_h100_instances_tiers_and_links(dgx):
    gpus = [f"gpu{i}" for i in range(8)]
    assert list(dgx.devices) == gpus + ["cpu0", "cpu1"] and dgx.primary == "gpu"
    assert dgx.switches == ("nvswitch", "ib")
    assert len(dgx.links) == 3 * 8 + 2 and dgx.links["infiniband.gpu7"].b == "ib"
    assert dgx.links["ddr.cpu1"].b == "host_ddr"
    host = dgx.tiers["host_ddr"]
    assert host.kind == "ddr5" and host.capacity == 2 * 2**40 and host.device == ""
    assert host.peak_bandwidth == pytest.approx(16 * 4800e6 * 8)   # 16 channels of DDR5-4800
    assert host.bandwidth == pytest.approx(0.7 * host.peak_bandwidth)
    assert set(host.shared_by) == set(gpus) | {"cpu0", "cpu1"}
    hbm = dgx.tier_of_device("gpu2")
    assert hbm.name == "gpu2.hbm" and hbm.capacity == 80 * 2**30 and hbm.shared_by == ("gpu2",)
    assert hbm.bandwidth == pytest.approx(3.35e12 * 0.92)
    assert [d.name for d in dgx.compute_devices()] == gpus


def test_pcie_bandwidth_from_generation_and_lanes():
    assert pcie_bandwidth(4, 16) == pytest.approx(16e9 * 16 * 128 / 130 / 8)  # 31.5 GB/s
    assert pcie_bandwidth(3, 8) == pytest.approx(8e9 * 8 * 128 / 130 / 8)
    assert pcie_bandwidth(6, 16) == pytest.approx(64e9 * 16 * 242 / 256 / 8)
    offload = build_system(load_arch("a6000-offload"))
    # count-1 components: the links keep their names
    assert list(offload.links) == ["ddr", "pcie"]
    assert offload.links["pcie"].bandwidth == pytest.approx(16e9 * 16 * 128 / 130 / 8)
    assert offload.tiers["host_ddr"].capacity == 256 * 2**30
    assert offload.tiers["host_ddr"].peak_bandwidth == pytest.approx(8 * 25.6e9)


def test_single_device_preset_is_a_one_device_system():
    s = build_system(load_arch("h100"))
    assert list(s.devices) == ["gpu0"] and s.primary == "gpu"
    assert list(s.tiers) == ["gpu0.hbm"] and not s.links and s.switches == ()
    assert s.tiers["gpu0.hbm"].capacity == 80 * 2**30
    assert s.route("gpu0", "gpu0.hbm").hops == ()


def test_multi_device_gpu_arch_gets_a_switch():
    data, label = load_arch_data("h100")
    a = arch_from_dict(deep_merge(data, {"system": {"devices": 4}}), label)
    s = build_system(a)
    assert list(s.links) == [f"nvlink.gpu{i}" for i in range(4)]
    assert {lk.kind for lk in s.links.values()} == {"nvlink"} and s.switches == ("switch",)
    r = s.route("gpu0", "gpu3")
    assert [h.link for h in r.hops] == ["nvlink.gpu0", "nvlink.gpu3"]
    assert r.bottleneck == pytest.approx(450 * GB * 0.78)


def _allreduce(nbytes: float, group: int) -> Op:
    return Op(0, "allreduce", COLLECTIVE, "decode", 0, 0, None, shards=group,
              collective=Collective("allreduce", nbytes, group, "fp16"))


def test_device_view_collectives_equal_the_old_gpu_preset():
    data, label = load_arch_data("h100")
    # the system's GPU overrides (its NCCL values, measured on DGX H100) as a flat preset has them
    overrides = load_arch_data("dgx-h100")[0]["components"]["gpu"]["overrides"]
    old = device_for(arch_from_dict(deep_merge(deep_merge(data, OLD_DGX_H100), overrides),
                                    label), "tile")
    arch = load_arch("dgx-h100")
    assert primary_component(arch) == "gpu"
    new = device_for(arch, "tile")
    assert type(new) is type(old) and new.per_node == 8
    for nbytes in (8.0, 2**20, 2**30):
        for group in (2, 8, 16):  # 16: two nodes, over InfiniBand
            a, b = old.estimate(_allreduce(nbytes, group)), new.estimate(_allreduce(nbytes,
                                                                                    group))
            assert b.latency == a.latency and b.energy == a.energy


def test_device_view_is_a_valid_sourced_device_arch():
    arch = load_arch("dgx-a100")
    view = device_view(arch, "gpu")
    assert view.type == "gpu" and view.system.devices == 8
    assert (view.system.intra_node_link, view.system.inter_node_link) == ("nvlink", "infiniband")
    assert view.interconnect["pcie"].bandwidth == pytest.approx(16e9 * 16 * 128 / 130 / 8)
    assert not set(leaf_paths(view.sections)) - set(view.provenance)
    again = arch_from_dict(view.to_dict(), "view.yaml")  # printed values round to 12 digits
    assert again.system == view.system and again.energy == view.energy
    assert again.interconnect["pcie"].bandwidth == pytest.approx(
        view.interconnect["pcie"].bandwidth, rel=1e-9)
    assert device_view(load_arch("a100"), "gpu").name == "a100"  # a non-system arch: itself


def test_overrides_reach_the_device_with_their_sources(tmp_path):
    text = SYSTEM.replace("count: 2}", "count: 2, overrides: {software: {mode: {value: async, "
                                       "source: measured somewhere}}}}")
    arch = load_arch(_write(tmp_path, text))
    assert arch.provenance["components.gpu.overrides.software.mode"] == "measured somewhere"
    view = device_view(arch, "gpu")
    assert view.software.mode == "async" and view.provenance["software.mode"] == \
        "measured somewhere"
    assert arch.components["gpu"].device.software.mode == "async"
    assert "device" not in arch.to_dict()["components"]["gpu"]


def test_device_arch_path_is_relative_to_the_system_file(tmp_path):
    (tmp_path / "slow_h100.yaml").write_text("name: slow\ntype: gpu\nextends: h100\n"
                                              "gpu: {sm_count: 66}\n")
    arch = load_arch(_write(tmp_path, SYSTEM.replace("arch: h100", "arch: slow_h100.yaml")))
    assert device_view(arch, "gpu").gpu.sm_count == 66


def test_ties_go_to_the_smaller_link_name(tmp_path):
    text = SYSTEM + ("  lb: {between: [gpu, sb], kind: nvlink, bandwidth: 450 GB/s}\n"
                     "  la: {between: [gpu, sa], kind: nvlink, bandwidth: 450 GB/s}\n")
    text = text.replace("  nvswitch: {kind: switch}\n",
                        "  nvswitch: {kind: switch}\n  sa: {kind: switch}\n  sb: {kind: switch}\n")
    s = build_system(load_arch(_write(tmp_path, text)))
    assert [h.link for h in s.route("gpu1", "gpu0").hops] == ["la.gpu1", "la.gpu0"]


def test_no_route_and_unknown_node_are_sim_errors(tmp_path):
    text = SYSTEM.replace("links:\n", "  cxl_mem: {kind: memory, memory: cxl, capacity: 1 TiB, "
                                       "bandwidth: 64 GB/s}\nlinks:\n")
    s = build_system(load_arch(_write(tmp_path, text)))
    with pytest.raises(SimError, match="no route from gpu0 to cxl_mem in system 'box'"):
        s.route("gpu0", "cxl_mem")
    with pytest.raises(SimError, match="did you mean 'host_ddr'"):
        s.route("gpu0", "host_dd")


def test_unknown_component_in_link(tmp_path):
    msg = _bad(tmp_path, SYSTEM.replace("between: [gpu, nvswitch]", "between: [gpu, nvswich]"))
    assert "links.nvlink.between" in msg and "did you mean 'nvswitch'" in msg


def test_link_to_itself_or_to_nowhere(tmp_path):
    msg = _bad(tmp_path, SYSTEM.replace("between: [gpu, nvswitch]", "between: [gpu, gpu]"))
    assert "links.nvlink.between" in msg and "itself" in msg
    msg = _bad(tmp_path, SYSTEM.replace("between: [gpu, nvswitch]", "between: [gpu]"))
    assert "links.nvlink.between" in msg and "two component names" in msg


def test_unequal_counts(tmp_path):
    text = SYSTEM.replace("{kind: switch}", "{kind: switch, count: 4}")
    msg = _bad(tmp_path, text)
    assert "links.nvlink.between" in msg and "count 2" in msg and "count 4" in msg


def test_bad_device_arch_and_overrides(tmp_path):
    msg = _bad(tmp_path, SYSTEM.replace("arch: h100", "arch: h10"))
    assert "components.gpu.arch" in msg and "did you mean 'h100'" in msg
    msg = _bad(tmp_path, SYSTEM.replace("count: 2}", "count: 2, overrides: {software: "
                                                     "{mode: turbo}}}"))
    assert "components.gpu.overrides.software.mode" in msg and "turbo" in msg
    msg = _bad(tmp_path, SYSTEM.replace("arch: h100", "arch: dgx-a100"))
    assert "components.gpu.arch" in msg and "systems do not nest" in msg


def test_bad_memory_and_link_fields(tmp_path):
    msg = _bad(tmp_path, SYSTEM.replace("bandwidth: 300 GB/s}", "bandwidth: 300 GB/s, "
                                                                "channels: 8}"))
    assert "components.host_ddr.bandwidth" in msg and "not both" in msg
    msg = _bad(tmp_path, SYSTEM.replace("generation: 5", "generation: 7"))
    assert "links.pcie.generation" in msg
    msg = _bad(tmp_path, SYSTEM.replace("kind: nvlink, bandwidth: 450 GB/s",
                                        "kind: nvlink, generation: 5, lanes: 16"))
    assert "links.nvlink.generation" in msg and "pcie and cxl" in msg
    msg = _bad(tmp_path, SYSTEM.replace("{kind: device, arch: h100, count: 2}",
                                        "{kind: switch}"))
    assert "components" in msg and "at least one component of kind device" in msg


def test_optional_section_without_schema_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(DEVICE_TYPES, "system", {**DEVICE_TYPES["system"],
                                                 "optional": ("no_such_section",)})
    msg = _bad(tmp_path, SYSTEM + "no_such_section: {}\n")
    assert "no_such_section" in msg and "no schema" in msg


def test_a_memory_behind_another_memory_is_shared_by_no_device(tmp_path):
    # host DDR is reached by each GPU over its own PCIe link; a CXL card hangs off host DDR
    # only: no device reaches it directly or through switches; a pool on the NVSwitch is
    # reached by both GPUs through the switch
    text = SYSTEM.replace("links:\n", "  cxl_mem: {kind: memory, memory: cxl, capacity: 1 TiB, "
                                       "bandwidth: 64 GB/s}\n  pool: {kind: memory, memory: ddr5, "
                                       "capacity: 1 TiB, bandwidth: 64 GB/s}\nlinks:\n")
    text += ("  cxl: {between: [host_ddr, cxl_mem], kind: cxl, bandwidth: 64 GB/s}\n"
             "  fabric: {between: [nvswitch, pool], kind: nvlink, bandwidth: 64 GB/s}\n")
    s = build_system(load_arch(_write(tmp_path, text)))
    assert s.tiers["host_ddr"].shared_by == ("gpu0", "gpu1")
    assert s.tiers["pool"].shared_by == ("gpu0", "gpu1")
    assert s.tiers["cxl_mem"].shared_by == ()
