"""NCCL fp16 all-reduce on DGX-A100 nodes (Vidur profiling) vs the dgx-a100 preset."""

from __future__ import annotations

from functools import lru_cache

from xpusim.validation import Point, ValidationContext
from xpusim.validation._vidur import LAUNCH_GAP, allreduce_rows

NAME = "a100-allreduce-vidur"
DESCRIPTION = ("DGX-A100 NCCL fp16 all-reduce kernel time, 2-16 GPUs on 1-2 nodes (NVSwitch; "
               "across nodes the profiled cluster's shared network, preset dgx-a100x2-vidur), "
               "2 KB-8.4 MB (microsoft/vidur profiling); train odd sizes")
MULTI_NODE_SYSTEM = "dgx-a100x2-vidur"  # one shared network path per node, FITTED bandwidth
THRESHOLD = 0.15


@lru_cache(maxsize=16)
def node_device(per_node: int, system: str = "dgx-a100"):
    """The system's GPU with ``per_node`` GPUs in each node (the rest across InfiniBand)."""
    import dataclasses

    from arch import load_arch
    from arch.topology_view import device_view, primary_component
    from sim.devices.base import device_for

    arch = load_arch(system)
    view = device_view(arch, primary_component(arch))
    sections = dict(view.sections)
    sections["system"] = dataclasses.replace(sections["system"], devices=per_node)
    return device_for(dataclasses.replace(view, sections=sections), "tile")


def allreduce_op(nbytes: int, group: int):
    """One fp16 all-reduce of ``nbytes`` per rank among ``group`` GPUs."""
    from workloads.trace import COLLECTIVE, Collective, Op

    return Op(0, "allreduce", COLLECTIVE, "decode", 0, 0, None, op_class="communication",
              collective=Collective("allreduce", nbytes, group, "fp16"))


def run(ctx: ValidationContext, device_for_node=None) -> list[Point]:
    make = device_for_node or node_device
    out = []
    for r, split in allreduce_rows(ctx):
        group, per_node = int(r["num_workers"]), int(r["devices_per_node"])
        nbytes = int(r["size_bytes"])
        nodes = -(-group // per_node)
        dev = make(per_node) if nodes == 1 or device_for_node else \
            node_device(per_node, MULTI_NODE_SYSTEM)
        cost = dev.estimate(allreduce_op(nbytes, group))
        out.append(Point(f"{group} GPUs ({nodes} node{'s' if nodes > 1 else ''}) {nbytes} B",
                         float(r["median_ms"]) * 1e-3, cost.latency - LAUNCH_GAP, split,
                         note=f"{cost.detail.get('algorithm', '')}/"
                              f"{cost.detail.get('protocol', '')}"))
    return out


# grid of the per-node network bandwidth fit (B/s), 4-10 GB/s (the measured 8.4 MB rows' range)
FIT_GRID = (4e9, 5e9, 6e9, 6.5e9, 7e9, 7.5e9, 8e9, 10e9)


def fit_network_bandwidth(ctx: ValidationContext, grid=FIT_GRID) -> tuple[float, float]:
    """(bandwidth B/s, train MAPE) of the dgx-a100x2-vidur network that minimises the train MAPE
    of the multi-node rows (the preset's FITTED ``interconnect.infiniband.bandwidth``)."""
    import dataclasses

    from arch import arch_from_dict, deep_merge, load_arch_data
    from arch.topology_view import device_view, primary_component
    from sim.devices.base import device_for

    data, label = load_arch_data(MULTI_NODE_SYSTEM)
    rows = [(r, s) for r, s in allreduce_rows(ctx)
            if s == "train" and int(r["num_workers"]) > int(r["devices_per_node"])]
    best = (0.0, float("inf"))
    for bw in grid:
        arch = arch_from_dict(deep_merge(data, {"interconnect": {"infiniband": {
            "bandwidth": bw}}}), label)
        view = device_view(arch, primary_component(arch))
        errs = []
        for r, _ in rows:
            sections = dict(view.sections)
            sections["system"] = dataclasses.replace(sections["system"],
                                                     devices=int(r["devices_per_node"]))
            dev = device_for(dataclasses.replace(view, sections=sections), "tile")
            cost = dev.estimate(allreduce_op(int(r["size_bytes"]), int(r["num_workers"])))
            measured = float(r["median_ms"]) * 1e-3
            errs.append(abs(cost.latency - LAUNCH_GAP - measured) / measured)
        score = sum(errs) / len(errs)
        if score < best[1]:
            best = (bw, score)
    return best
