"""All-reduce on one DGX-H100 node: LL channels at their own rate, NVLS in chunks, the NVLS
roofline; against hand counts, NCCL's source rules and NVIDIA's nccl-tests log
(validation/nccl, suite h100-allreduce-nccltests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.gpu import nccl_tuning as nt
from xpusim.validation import ValidationContext
from xpusim.validation.vidur_allreduce_a100 import allreduce_op, node_device

US = 1e-6
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ctx():
    return ValidationContext(reference_dir=ROOT / "missing-reference",
                             project_data=ROOT / "validation")


def test_channel_bus_by_hand():
    """A call on few channels runs at channels x one channel's rate, up to the full rate; no
    rate given: NCCL's equal share of the full rate per channel."""
    # 128 KB, 8 ranks, ring LL: 4 of 24 channels (32 KB each)
    assert nt.channel_bus("ring", "ll", 131072, 8, 24, 141e9, 17e9) == pytest.approx(68e9)
    # 1 MB: all 24 channels, 24 x 17 = 408 GB/s over the 141 GB/s cap
    assert nt.channel_bus("ring", "ll", 1 << 20, 8, 24, 141e9, 17e9) == pytest.approx(141e9)
    assert nt.channel_bus("ring", "ll", 131072, 8, 24, 141e9, 0.0) == pytest.approx(141e9 / 6)
    assert nt.channel_bus("ring", "ll", 131072, 8, 0, 141e9, 17e9) == 141e9


def test_nvls_chunk_follows_enqueue_rules():
    """enqueue.cc: from 128 KB the chunk halves while the call is under 64, 8 and 2 times
    (lanes x chunk); 8 GPUs x 16 NVLS channels = 128 lanes."""
    assert nt.nvls_chunk(1 << 30, 128) == 131072               # 1 GiB = 64 x 128 x 128 KB
    assert nt.nvls_chunk((1 << 30) - 1, 128) == 65536
    assert nt.nvls_chunk(64 << 20, 128) == 65536               # 64 MiB = 8 x 128 x 64 KB
    assert nt.nvls_chunk((64 << 20) - 1, 128) == 32768
    assert nt.nvls_chunk(8 << 20, 128) == 32768                # 8 MiB = 2 x 128 x 32 KB
    assert nt.nvls_chunk((8 << 20) - 1, 128) == 16384
    assert nt.nvls_chunk(1024, 128) == 16384
    assert nt.nvls_chunk(4 << 20, 64) == 32768                 # 4 GPUs: 64 lanes
    assert nt.nvls_chunk((4 << 20) - 1, 64) == 16384


def test_nvls_chunked_time_by_hand():
    """8 MiB on 8 GPUs: 32 KB chunks on 128 lanes, 2 chunks a lane and one to fill, each 4 us
    plus 32 KB at the lane's 292.5/128 GB/s; 25 us of latency."""
    lane = 0.78 * 450e9 * 5 / 6 / 128
    hand = 25 * US + (2 + 1) * (4 * US + 32768 / lane)
    got = nt.nvls_chunked_time(8 << 20, 0.78 * 450e9, 8, 16, 4 * US, 25 * US)
    assert got == pytest.approx(hand, rel=1e-12)
    # at 16 GiB (128 KB chunks) it tends to NCCL's rating, latency + bytes / algBw
    big = 16 << 30
    rating = nt.nvls_time(big, 0.78 * 450e9, latency=25 * US)
    assert nt.nvls_chunked_time(big, 0.78 * 450e9, 8, 16, 4 * US, 25 * US) / rating == \
        pytest.approx(1 + 4 * US * 0.78 * 450e9 * 5 / 6 / 128 / 131072, rel=1e-3)


def test_dgx_h100_picks_ring_ll_to_1mb_and_nvls_from_2mb():
    """NCCL's own log of one 8x H100 node (NCCL_DEBUG output in nccl-tests issue 309): ring
    LL from 8 B to 1 MB, NVLS from 2 MB. Two GPUs never run NVLS (nvls.cc: gpuCount <= 2)."""
    dev = node_device(8, "dgx-h100")
    for n in (8, 65536, 1 << 20):
        assert dev.estimate(allreduce_op(n, 8)).detail["algorithm"] == "ring"
    for n in (2 << 20, 8 << 20, 1 << 30):
        assert dev.estimate(allreduce_op(n, 8)).detail["algorithm"] == "nvls"
    assert dev.estimate(allreduce_op(1 << 30, 2)).detail["algorithm"] == "ring"


def test_nvls_needs_more_than_two_gpus():
    """nvls.cc: no NVLS for two GPUs, whatever NCCL's rating (an NVLS rated at 1 us against a
    ring of 1 s); three GPUs take it."""
    from sim.gpu.collectives import LinkHw, NcclHw, _nvls

    link = LinkHw(450e9, 0.78, 0.0)
    nccl = NcclHw(nvls=True, nvls_latency=1e-6)
    ring = (1.0, "ring", "simple", 2)
    assert _nvls("allreduce", 1024.0, 2, link, nccl, ring) == ring
    assert _nvls("allreduce", 1024.0, 3, link, nccl, ring)[1] == "nvls"
    assert _nvls("allgather", 1024.0, 3, link, nccl, ring) == ring


def test_nvls_roofline_is_half_the_rings():
    """The switch reduces: each GPU moves (p-1)/p of the buffer, not 2 (p-1)/p; NVIDIA's log's
    16 GiB call (62.6 ms) is under the ring's minimum over 450 GB/s links (66.8 ms)."""
    dev = node_device(8, "dgx-h100")
    op = allreduce_op(16 << 30, 8)
    cost = dev.estimate(op)
    assert cost.roofline == pytest.approx(7 / 8 * (16 << 30) / 450e9)
    assert 62.636e-3 < 2 * 7 / 8 * (16 << 30) / 450e9
    assert cost.latency == pytest.approx(62.636e-3, rel=0.02)
    assert cost.latency >= cost.roofline
    # two GPUs (no NVLS) and A100 (no NVLS) keep the ring's minimum
    assert dev.estimate(allreduce_op(1 << 30, 2)).roofline == pytest.approx((1 << 30) / 450e9)
    a100 = node_device(8, "dgx-a100")
    assert a100.estimate(op).roofline == pytest.approx(2 * 7 / 8 * (16 << 30) / 300e9)


def test_preset_holds_what_the_fit_derives(ctx):
    """The three FITTED dgx-h100 values and the NVLS pipeline fill are the grid optimum on
    the train rows, each point priced by the device's own estimate."""
    from xpusim.validation.h100_allreduce_nccltests import fit

    values, train = fit(ctx)
    dev = node_device(8, "dgx-h100")
    ll = next(p for p in dev.protocols if p.name == "ll")
    assert values["hop"] == pytest.approx(ll.hop)
    assert values["channel_rate"] == pytest.approx(ll.channel_rate)
    assert values["chunk_cost"] == pytest.approx(dev.nccl.nvls_chunk_cost)
    assert values["fill"] == nt.NVLS_FILL_CHUNKS == dev.nccl.nvls_fill_chunks
    assert train < 0.06


def test_suite_on_rows_it_was_not_fitted_on(ctx):
    """Test rows (odd sizes of NVIDIA's log, the single-process logs from 4 MB): MAPE under
    6%, no row over 22% (the 16 B call: +21%); NCCL's own rating (channel share, NVLS in one
    piece) missed them by 15% with rows up to 77% off."""
    from xpusim.validation import mape
    from xpusim.validation.h100_allreduce_nccltests import run

    test = [p for p in run(ctx) if p.split == "test"]
    assert len(test) == 16 + 12 + 12 + 9
    assert mape(test) < 0.06
    assert max(abs(p.error) for p in test) < 0.22


def test_a_channel_twice_as_fast_or_chunks_twice_as_dear_show(ctx):
    """Mutations of the mechanisms move the fitted rows: a channel rate x2 makes the 32 and
    64 KB calls (1 and 2 channels) ~10% faster; a chunk cost x2 makes the 4-16 MB calls
    slower by over 15%."""
    import dataclasses

    from sim.gpu.collectives import collective_time

    dev = node_device(8, "dgx-h100")
    link = dev._link_hw(dev.link)

    def t(protocols, nccl, n):
        return collective_time("allreduce", float(n), 8, link, protocols, 8, None, nccl)["time"]
    fast = tuple(dataclasses.replace(p, channel_rate=2 * p.channel_rate) for p in dev.protocols)
    for n in (32768, 65536):
        assert t(fast, dev.nccl, n) < 0.95 * t(dev.protocols, dev.nccl, n)
    dear = dataclasses.replace(dev.nccl, nvls_chunk_cost=2 * dev.nccl.nvls_chunk_cost)
    for n in (4 << 20, 16 << 20):
        assert t(dev.protocols, dear, n) > 1.15 * t(dev.protocols, dev.nccl, n)


def test_collectives_log_sizes_mean_what_the_suite_reads(ctx):
    """nccl-tests prints an all-gather's gathered buffer and a reduce-scatter's input as
    ``size``: each rank contributes size / 8 to the first, all of it to the second. The file's
    rows hold count x 4 B x 8 = size (rows() refuses a row that does not)."""
    from xpusim.validation.h100_collectives_nccltests import rank_bytes, rows

    got = rows(ctx)
    assert len(got) == 2 * 27
    assert {r["collective"] for r in got} == {"allgather", "reducescatter"}
    assert rank_bytes("allgather", 8 << 30, 8) == 1 << 30
    assert rank_bytes("reducescatter", 8 << 30, 8) == 8 << 30
    # busbw as printed = size / time x 7/8 (the 8 GB rows, in place)
    for r in got:
        if r.int("size_bytes") == 8 << 30:
            bus = r.int("size_bytes") / (r.num("time_us_in_place") * US) * 7 / 8
            assert bus / 1e9 == pytest.approx(r.num("busbw_in_place_GBps"), rel=2e-3)


def test_ring_all_gather_by_hand_and_against_the_log(ctx):
    """8 GB gathered over 8 H100s, ring Simple: base + 7 steps + 7 x 1 GiB at Simple's bus
    bandwidth (the dgx-h100 link, nothing fitted); the log's ring all-gather and
    reduce-scatter from 4 MB (NVLS off, one process) within 4.5% MAPE, no row over 15%."""
    from sim.gpu.collectives import _bus_bw
    from xpusim.commands.op import collective_op
    from xpusim.validation import mape
    from xpusim.validation.h100_allreduce_nccltests import devices
    from xpusim.validation.h100_collectives_nccltests import run

    _, ring = devices()
    link = ring._link_hw(ring.link)
    simple = next(p for p in ring.protocols if p.name == "simple")
    hand = simple.base + 7 * (simple.hop + link.latency) + 7 * (1 << 30) / _bus_bw(link, simple)
    cost = ring.estimate(collective_op("allgather", 1 << 30, 8, "fp32"))
    assert cost.detail["algorithm"] == "ring" and cost.detail["protocol"] == "simple"
    assert cost.latency == pytest.approx(hand + ring.hw.launch, rel=1e-9)
    assert cost.latency == pytest.approx(20.68e-3, rel=0.05)    # the log, in place
    points = run(ctx)
    assert len(points) == 24 and all(p.split == "test" for p in points)
    assert mape(points) < 0.045
    assert max(abs(p.error) for p in points) < 0.15


def test_collectives_log_with_a_wrong_count_is_a_one_line_error(tmp_path):
    """A row whose count does not give its size names the file, the row and the column."""
    from workloads.errors import WorkloadError
    from xpusim.validation.h100_collectives_nccltests import FILE, rows

    text = (ROOT / "validation" / "nccl" / FILE).read_text().splitlines()
    head, first = text[0], text[1].split(",")
    first[6] = str(int(first[6]) * 2)     # count doubled
    (tmp_path / "nccl").mkdir()
    (tmp_path / "nccl" / FILE).write_text("\n".join([head, ",".join(first)]) + "\n")
    bad = ValidationContext(reference_dir=tmp_path, project_data=tmp_path)
    with pytest.raises(WorkloadError, match=r"h100_collectives_nccltests\.csv: row 2 count: "
                                            r"expected count x 4 B x gpus = size_bytes"):
        rows(bad)
