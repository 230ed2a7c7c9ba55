"""Identical channels simulated once (sim/micro/dram_channels.py) give the full run's figures.

Under the per-channel front end a run with one channel of each group of identical request
lists must report what simulating every channel reports: cycles, every statistic, the
per-channel counters, the last completion and the energy. The groups themselves are counted by
hand for a sequential stream.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.micro import dram_run
from sim.micro.dram_channels import channel_groups
from sim.micro.dram_config import DramConfig


def _run(cfg, addrs, writes, times, grouped: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not grouped:
            m.setattr(dram_run, "_grouped", lambda *a: None)
        return dram_run.simulate(cfg, addrs, writes, times, cycles=400 * len(addrs) + 100_000,
                                 frontend="per_channel", until_done=True)


def _figures(s) -> tuple:
    return (s.to_dict(), s.per_channel.tolist(), s.last_done_cycle, s.energy_breakdown_pJ,
            s.dual_issues, s.accepted)


def _configs():
    hbm = DramConfig(protocol="HBM2", channels=8, ranks=2, bankgroups=4, banks_per_group=4,
                     address_mapping="rorabgbachco", dual_command_issue=True)
    return {"default": DramConfig(), "hbm-like": hbm,
            "per-bank queues": DramConfig(channels=4, queue_structure="PER_BANK",
                                                  address_mapping="robgbarachco"),
            "ranks interleaved": DramConfig(channels=4, ranks=2, address_mapping="rochrababgco")}


def _patterns(cfg: DramConfig, rng):
    req, n = cfg.request_bytes, 3000
    seq = np.arange(n, dtype=np.uint64) * np.uint64(req)
    span = cfg.channel_bytes * cfg.channels
    zeros_w, zeros_t = np.zeros(n, np.int8), np.zeros(n, np.int64)
    yield "sequential", seq, zeros_w, zeros_t
    yield "sequential, every third a write", seq, (np.arange(n) % 3 == 0).astype(np.int8), \
        zeros_t
    yield "strided", (seq * np.uint64(5)) % np.uint64(span), zeros_w, zeros_t
    yield "random", rng.integers(0, span // req, n).astype(np.uint64) * np.uint64(req), \
        rng.integers(0, 2, n).astype(np.int8), zeros_t
    yield "repeated addresses", np.tile(seq[:300], 4), np.zeros(1200, np.int8), \
        np.zeros(1200, np.int64)
    yield "arrivals spread", seq, zeros_w, np.arange(n, dtype=np.int64) // 3


@pytest.mark.parametrize("name", list(_configs()))
def test_grouped_run_equals_every_channel_run(name, monkeypatch):
    cfg = _configs()[name]
    rng = np.random.default_rng(7)
    for what, addrs, writes, times in _patterns(cfg, rng):
        full = _run(cfg, addrs, writes, times, False, monkeypatch)
        fast = _run(cfg, addrs, writes, times, True, monkeypatch)
        assert _figures(fast) == _figures(full), (name, what)


def test_a_sequential_stream_forms_groups_by_hand(monkeypatch):
    """'rorabgbachco', 8 channels: a channel takes a row's 32 bursts, then the next channel
    does. 1,000 requests fill 31 blocks and 8 requests of a 32nd: channels 0-6 take 4 blocks
    (128 requests each), channel 7 three blocks and the 8 (104 requests). Channels 0-6 are
    one group and 7 its own; the grouped run simulates two channels and gives the same
    figures."""
    cfg = _configs()["hbm-like"]
    addrs = np.arange(1000, dtype=np.uint64) * np.uint64(cfg.request_bytes)
    fields = cfg.decode(addrs)
    ch = fields["ch"].astype(np.int64)
    assert np.bincount(ch, minlength=8).tolist() == [128] * 7 + [104]
    order = np.argsort(ch, kind="stable").astype(np.int64)
    start = np.searchsorted(ch[order], np.arange(9)).astype(np.int64)
    bank = fields["bg"] * cfg.banks_per_group + fields["ba"]
    cols = tuple(np.asarray(a, np.int64) for a in (fields["ra"], bank, fields["ro"],
                                                   fields["co"], np.zeros(1000), np.zeros(1000)))
    group = channel_groups(order, start, cols, np.arange(1000, dtype=np.int64))
    assert group.tolist() == [0] * 7 + [7]
    z = np.zeros(1000, np.int8)
    t = np.zeros(1000, np.int64)
    assert _figures(_run(cfg, addrs, z, t, True, monkeypatch)) == \
        _figures(_run(cfg, addrs, z, t, False, monkeypatch))


def test_channels_apart_when_they_share_addresses_differently():
    """Equal fields but a different address-sharing pattern (two reads of one address merge,
    two addresses in one burst do not): two groups, not one."""
    order = np.arange(4, dtype=np.int64)
    start = np.array([0, 2, 4], np.int64)
    same = np.zeros(4, np.int64)
    cols = (same,) * 6
    aid = np.array([5, 5, 6, 7], np.int64)   # channel 0: one address twice; channel 1: two
    assert channel_groups(order, start, cols, aid).tolist() == [0, 1]
    assert channel_groups(order, start, cols, np.array([5, 5, 6, 6])).tolist() == [0, 0]


def test_every_field_separates_channels():
    """Channels differing in any one field the kernel reads (rank, bank, row, column, write,
    arrival) are apart."""
    order = np.arange(4, dtype=np.int64)
    start = np.array([0, 2, 4], np.int64)
    aid = np.arange(4, dtype=np.int64)
    for k in range(6):
        cols = [np.zeros(4, np.int64) for _ in range(6)]
        cols[k][3] = 1
        assert channel_groups(order, start, tuple(cols), aid).tolist() == [0, 1], k
    cols = tuple(np.zeros(4, np.int64) for _ in range(6))
    assert channel_groups(order, start, cols, aid).tolist() == [0, 0]
