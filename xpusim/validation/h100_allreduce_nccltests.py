"""NCCL all-reduce on one H100 SXM node (public nccl-tests logs) vs the dgx-h100 preset.

Data: ``validation/nccl/h100_allreduce_nccltests.csv`` (sources and how each was run in its
README): ``all_reduce_perf`` (float sum, 5 warm-up and 20 timed calls back to back, no CUDA
graph) on DGX/HGX H100 nodes, 8 B to 16 GB.

* ``nvidia-dgxc-sample`` (NVIDIA's sample output of its DGX benchmarking recipe, one process
  per GPU, default NCCL: ring LL up to 1 MB, NVLS above): the suite's fitted rows. Sizes at
  even positions **train** (16 of 32), odd positions test.
* ``together-h100-nvls``, ``together-h100-ring`` (NVLS off) on 8 GPUs, ``digitalocean-h100``
  on 2: **test** only, and only their calls of 4 MB and more. These logs drive every GPU from
  one thread (``-g N``), which launches the GPUs' kernels one after the other: below a few MB
  that sets the pace (Together's 8-GPU floor is 35 us against 13 us with a process per GPU),
  above it the kernels hide it (4 MB: 55.1 against 53.8 us).

A row's time is the in-place column (the out-of-place one has two one-off outliers in the
NVIDIA log, 32 B and 4 KB); nccl-tests times calls issued back to back, so the model's time
is compared whole (``gpu.launch_overhead`` included, as the dgx presets' link latency
assumes).

Three values of the dgx-h100 preset are FITTED on the train rows (:func:`fit`): the LL hop
latency, the bus bandwidth one LL channel moves alone, and the fixed cost of an NVLS chunk;
with the last, the chunks that fill an NVLS call's pipeline
(:data:`sim.gpu.nccl_tuning.NVLS_FILL_CHUNKS`)."""

from __future__ import annotations

import dataclasses
import itertools

from xpusim.validation import Point, ValidationContext, alternate_split

NAME = "h100-allreduce-nccltests"
DESCRIPTION = ("NCCL all-reduce on one 8x H100 node, 8 B-16 GB (public nccl-tests logs, "
               "validation/nccl); train even sizes of NVIDIA's DGX H100 log")
THRESHOLD = 0.15
TAG, FILE = "nccl", "h100_allreduce_nccltests.csv"
SYSTEM = "dgx-h100"
#: the log whose calls are timed with a process per GPU (the fitted one)
FITTED_SOURCE = "nvidia-dgxc-sample"
#: single-process logs: only calls of at least this many bytes (module docstring)
ONE_PROCESS_MIN_BYTES = 4 << 20


def rows(ctx: ValidationContext) -> list:
    """The table's rows, checked (a bad value: a one-line error naming file, row and
    column); the suite is skipped without the file."""
    from xpusim.validation._own_gpu import rows as own_rows

    path = ctx.project_data / TAG / FILE
    got = own_rows(ctx, FILE, TAG, absent=f"{path} not found (project validation data absent)")
    for r in got:
        r.int("gpus"), r.int("size_bytes"), r.num("time_us_in_place")
    return got


def split_rows(ctx: ValidationContext) -> list[tuple[object, str]]:
    """(row, split) of the rows the suite compares (module docstring)."""
    fitted = [r for r in rows(ctx) if r["source"] == FITTED_SOURCE]
    out = list(zip(fitted, alternate_split(len(fitted)), strict=True))
    out += [(r, "test") for r in rows(ctx) if r["source"] != FITTED_SOURCE
            and r.int("size_bytes") >= ONE_PROCESS_MIN_BYTES]
    return out


def nvls_off(r) -> bool:
    """Whether the row's run had NVLS disabled (``NCCL_NVLS_ENABLE=0``)."""
    return "NCCL_NVLS_ENABLE=0" in r["nccl_env"]


def predicted(dev, nbytes: int, gpus: int) -> tuple[float, str]:
    """(seconds, algorithm/protocol) of one all-reduce of ``nbytes`` per rank among ``gpus``
    of ``dev``'s node, as the device prices it."""
    from xpusim.validation.vidur_allreduce_a100 import allreduce_op

    cost = dev.estimate(allreduce_op(nbytes, gpus))
    return cost.latency, f"{cost.detail.get('algorithm', '')}/{cost.detail.get('protocol', '')}"


def devices() -> tuple:
    """(the dgx-h100 GPU, the same with NVLS off: ``collective_nvls: false`` in the preset's
    GPU overrides, as a user turns it off), eight per node."""
    from arch import load_arch_data
    from xpusim.validation.vidur_allreduce_a100 import devices_with, node_device

    data, label = load_arch_data(SYSTEM)
    off = devices_with(data, label, {"components": {"gpu": {"overrides": {"software": {
        "collective_nvls": False}}}}})
    return node_device(8, SYSTEM), off(8)


def run(ctx: ValidationContext) -> list[Point]:
    dev, no_nvls = devices()
    out = []
    for r, split in split_rows(ctx):
        nbytes, gpus = r.int("size_bytes"), r.int("gpus")
        t, how = predicted(no_nvls if nvls_off(r) else dev, nbytes, gpus)
        out.append(Point(f"{r['source']} {gpus} GPUs {nbytes} B", r.num("time_us_in_place")
                         * 1e-6, t, split, note=how))
    return out


#: the grid of :func:`fit`: LL hop latency (s), LL bus bandwidth of one channel (B/s), NVLS
#: chunk cost (s), chunks that fill an NVLS call's pipeline
FIT_GRID = {"hop": tuple(x * 1e-8 for x in range(20, 62, 2)),
            "channel_rate": tuple(x * 0.5e9 for x in range(16, 61)),
            "chunk_cost": tuple(x * 0.25e-6 for x in range(4, 41)),
            "fill": (0, 1, 2, 3)}


def with_collectives(dev, protocols: tuple, nccl):
    """A copy of GPU device ``dev`` whose collectives run with ``protocols`` and ``nccl``
    (its own estimate memo): what a preset with those values gives, without building one."""
    import copy

    other = copy.copy(dev)
    other._memo = {}
    other.protocols, other.nccl = protocols, nccl
    return other


def fit(ctx: ValidationContext, grid: dict = FIT_GRID) -> tuple[dict[str, float], float]:
    """(values, train MAPE) of the grid point minimising the train rows' MAPE: the LL hop
    latency and channel rate (sizes NCCL runs as ring LL) and then the NVLS chunk cost and
    pipeline fill, each priced by the device's own ``estimate`` (:func:`predicted`) as the
    suite prices it."""
    from xpusim.validation import mape

    dev, _ = devices()
    train = [(r, s) for r, s in split_rows(ctx) if s == "train"]

    def score(protocols, nccl) -> float:
        other = with_collectives(dev, protocols, nccl)
        return mape([Point("", r.num("time_us_in_place") * 1e-6,
                           predicted(other, r.int("size_bytes"), r.int("gpus"))[0])
                     for r, _ in train])

    def with_ll(hop: float, rate: float) -> tuple:
        return tuple(dataclasses.replace(p, hop=hop, channel_rate=rate) if p.name == "ll"
                     else p for p in dev.protocols)

    _, hop, rate = min((score(with_ll(h, c), dev.nccl), h, c)
                       for h, c in itertools.product(grid["hop"], grid["channel_rate"]))
    protocols = with_ll(hop, rate)
    best, cost, fill = min(
        (score(protocols, dataclasses.replace(dev.nccl, nvls_chunk_cost=c, nvls_fill_chunks=f)),
         c, f) for f, c in itertools.product(grid["fill"], grid["chunk_cost"]))
    return {"hop": hop, "channel_rate": rate, "chunk_cost": cost, "fill": fill}, best
