"""CXL Type-3 memory tiers: the spr-a100 presets, routes through the host, and the
read/write-mix efficiency table (schema checks and interpolation by hand)."""

from pathlib import Path

import pytest

from arch import SpecError, load_arch
from arch.schema import leaf_paths
from arch.topology_view import primary_component
from sim.devices.base import SimError
from sim.devices.cpu import CpuDevice
from sim.system import build_system
from sim.system.topology import Tier

GB = 1e9
PCIE4_X16 = 16e9 * 16 * (128 / 130) / 8   # 31.5 GB/s per direction
PCIE5_X8 = 32e9 * 8 * (128 / 130) / 8     # 31.5 GB/s per direction
PRESETS = ("spr-a100", "spr-a100-cxl1", "spr-a100-cxl2")


@pytest.fixture(scope="module")
def systems():
    return {name: build_system(load_arch(name)) for name in PRESETS}


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_with_gpu_primary(name, systems):
    arch = load_arch(name)
    assert primary_component(arch) == "gpu"
    sys = systems[name]
    assert sys.primary == "gpu"
    assert set(sys.devices) == {"gpu0", "cpu0"}
    assert isinstance(sys.devices["cpu0"].arch.sections["cpu"].cores, int)
    # the A100 PCIe's HBM bandwidth replaces the SXM value of the a100 preset
    assert sys.tiers["gpu0.hbm"].peak_bandwidth == pytest.approx(1935 * GB)
    host = sys.tiers["host_ddr"]
    assert host.peak_bandwidth == pytest.approx(8 * 38.4 * GB)
    assert host.bandwidth == pytest.approx(8 * 38.4 * GB * 0.7)


@pytest.mark.parametrize("name", PRESETS)
def test_every_leaf_sourced(name):
    arch = load_arch(name)
    missing = set(leaf_paths(arch.sections)) - set(arch.provenance)
    assert not missing, sorted(missing)
    assert "components.cxl.read_write_efficiency.0.667" in arch.provenance or \
        name != "spr-a100-cxl2"


def test_card_counts(systems):
    assert not [t for t in systems["spr-a100"].tiers if t.startswith("cxl")]
    assert [t for t in systems["spr-a100-cxl1"].tiers if t.startswith("cxl")] == ["cxl0"]
    assert [t for t in systems["spr-a100-cxl2"].tiers if t.startswith("cxl")] == ["cxl0", "cxl1"]
    card = systems["spr-a100-cxl2"].tiers["cxl1"]
    assert (card.kind, card.capacity, card.peak_bandwidth) == ("cxl", 256 * GB, 36 * GB)


def test_gpu_to_cxl_goes_through_the_host(systems):
    one = systems["spr-a100-cxl1"].route("gpu0", "cxl0")
    assert [h.link for h in one.hops] == ["pcie", "cxl"]
    two = systems["spr-a100-cxl2"].route("gpu0", "cxl1")
    assert [h.link for h in two.hops] == ["pcie", "cxl.cxl1"]
    # the slowest hop: PCIe 4.0 x16 at 85% (26.8 GB/s) below CXL x8 at 64/68 (29.7 GB/s)
    pcie, cxl = PCIE4_X16 * 0.85, PCIE5_X8 * 0.941
    assert pcie < cxl
    assert one.bottleneck == pytest.approx(pcie)
    assert two.bottleneck == pytest.approx(pcie)
    assert one.latency == pytest.approx(1e-6)  # the pcie hop; the card's latency is its tier's
    host = systems["spr-a100-cxl2"].route("cpu0", "cxl0")
    assert [h.link for h in host.hops] == ["cxl.cxl0"]
    assert host.bottleneck == pytest.approx(cxl)
    ddr = systems["spr-a100"].route("gpu0", "host_ddr")
    assert [h.link for h in ddr.hops] == ["pcie", "ddr"]


def test_card_mix_curve_by_hand(systems):
    card = systems["spr-a100-cxl1"].tiers["cxl0"]
    assert card.latency == pytest.approx(250e-9)
    # derived end points: one direction of PCIe 5.0 x8 x 64/68 over the card's 36 GB/s
    assert PCIE5_X8 * 64 / 68 / (36 * GB) == pytest.approx(0.824, abs=5e-4)
    assert card.efficiency_at(2 / 3) == pytest.approx(0.824 + 0.176 * (2 / 3) / 0.667)
    assert card.efficiency_at(0.667) == pytest.approx(1.0)
    assert card.efficiency_at(1.0) == pytest.approx(0.824)
    assert card.efficiency_at(0.0) == pytest.approx(0.824)
    assert card.efficiency_at(0.5) == pytest.approx(0.824 + 0.176 * 0.5 / 0.667)
    assert card.efficiency_at(0.8) == pytest.approx(1.0 - 0.176 * (0.8 - 0.667) / 0.333)
    assert card.bandwidth_at(1.0) == pytest.approx(36 * GB * 0.824)
    assert card.bandwidth == pytest.approx(36 * GB)  # efficiency 1.0 at its measured mix


def test_tier_without_table_keeps_its_efficiency(systems):
    host = systems["spr-a100-cxl1"].tiers["host_ddr"]
    assert host.read_write_efficiency == ()
    for r in (0.0, 0.3, 1.0):
        assert host.efficiency_at(r) == pytest.approx(0.7)
    with pytest.raises(SimError, match="read fraction"):
        host.efficiency_at(1.5)


def test_interpolation_is_flat_beyond_the_points():
    tier = Tier("t", "cxl", 1.0, 0.8, 1.0, 0.0, 0.0,
                read_write_efficiency=((0.5, 0.8), (0.9, 0.6)))
    assert tier.efficiency_at(0.2) == pytest.approx(0.8)
    assert tier.efficiency_at(1.0) == pytest.approx(0.6)
    assert tier.efficiency_at(0.7) == pytest.approx(0.7)


def test_engine_model_bytes_at_mix(systems):
    """The intended engine model (docs/cxl.md): B bytes at read fraction r occupy the tier
    as B / efficiency_at(r) bytes at peak, i.e. take B / (peak x efficiency_at(r))."""
    card = systems["spr-a100-cxl1"].tiers["cxl0"]
    nbytes = 28e9  # an fp32-gradient Adam step over 1e9 parameters: 16 B read, 12 B written
    r = 16 / 28
    t = nbytes / card.efficiency_at(r) / card.peak_bandwidth
    eff = 0.824 + 0.176 * r / 0.667
    assert t == pytest.approx(28e9 / (36e9 * eff))


def test_cpu_view_in_system_is_a_cpu_device(systems):
    from sim.devices.base import device_for

    view = systems["spr-a100-cxl2"].devices["cpu0"].arch
    dev = device_for(view, "tile")
    assert isinstance(dev, CpuDevice)
    assert set(view.sections["interconnect"]) == {"pcie", "ddr", "cxl"}


# --- schema -------------------------------------------------------------------------------------
BASE = """\
name: box
type: system
components:
  gpu: {{kind: device, arch: a100}}
  card: {{kind: memory, memory: cxl, capacity: 128 GB, bandwidth: 36 GB/s{extra}}}
links:
  cxl: {{between: [gpu, card], kind: cxl, generation: 5, lanes: 8}}
"""


def _load(tmp_path: Path, extra: str):
    p = tmp_path / "sys.yaml"
    p.write_text(BASE.format(extra=extra))
    return load_arch(p)


def test_table_loads_with_numeric_keys(tmp_path):
    arch = _load(tmp_path, ", read_write_efficiency: {1.0: 0.9, 0.5: 0.7}")
    tier = build_system(arch).tiers["card"]
    assert tier.read_write_efficiency == ((0.5, 0.7), (1.0, 0.9))
    assert tier.efficiency_at(0.75) == pytest.approx(0.8)


@pytest.mark.parametrize(("extra", "message"), [
    (", read_write_efficiency: {1.5: 0.9}", "read fractions 0..1"),
    (", read_write_efficiency: {reads: 0.9}", "read fractions 0..1"),
    (", read_write_efficiency: {0.5: 1.2}", "<= 1"),
    (", read_write_efficiency: {}", "at least one point"),
    (', read_write_efficiency: {"0.5": 0.9, "0.50": 0.8}', "given twice"),
])
def test_bad_tables_are_one_line_errors(tmp_path, extra, message):
    with pytest.raises(SpecError) as exc:
        _load(tmp_path, extra)
    text = str(exc.value)
    assert "\n" not in text and "components.card.read_write_efficiency" in text
    assert message in text


def test_table_on_a_device_is_rejected(tmp_path):
    p = tmp_path / "sys.yaml"
    p.write_text(BASE.format(extra="").replace(
        "arch: a100}", "arch: a100, read_write_efficiency: {1.0: 0.9}}"))
    with pytest.raises(SpecError, match="only a memory component"):
        load_arch(p)
