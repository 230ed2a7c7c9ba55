"""Splitwise: prompt and token machine pools, the KV cache sent layer by layer, a mixed pool.

A cluster is a list of pools, each ``count`` machines of one :class:`MachineType` in one role
(``prompt``, ``token`` or ``mixed``; the serving engine's replica roles). Every machine is one
replica at tensor parallelism ``tp`` (Splitwise: TP8 per DGX). The router sends a new request to
a prompt or mixed machine; a prompt machine runs its prefill, emits the first token and hands the
request to the token machine with the least outstanding work, which admits it once its KV cache
has arrived over InfiniBand.

KV transfer (Splitwise §IV-C, layer-wise): the prompt pass computes the layers one after another,
so layer ``i``'s KV (``kv_bytes / L``) is ready at ``start + (i + 1) * pass / L`` and the link
sends the layers in order. With ``x = kv_bytes / (L * bw)`` the last layer lands
``x`` after the pass ends when the link keeps up (``x <= pass / L``), else
``L * x - (L - 1) * pass / L`` after it; plus the link latency. ``bw`` is the machine's
InfiniBand: every GPU sends its own KV shard over its own NIC (``tp`` links in parallel).
``serialized=True`` sends the whole cache after the pass (``L * x``), Splitwise's baseline.
Simplifications: the pass is the iteration in which the prompt finished (under chunked prefill
the earlier chunks' KV is counted as sent during that last pass: conservative); the prompt
machine frees the request's blocks at hand-off, not when the transfer ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.devices.base import SimError
from sim.serve.replica import Batch, EngineConfig, Replica, state_bytes
from sim.serve.request import Req
from workloads.tracer import held_tokens

ROLES = ("prompt", "token", "mixed")
#: Splitwise's cluster prices and power (its Table of machine costs, as used by splitwise-sim)
PRICE_SOURCE = ("Splitwise (ISCA'24) machine costs: DGX-A100 $17.6/h, DGX-H100 $38/h (cloud "
                "rental; the paper's H100-vs-A100 comparison: 2.16x cost = 38 / 17.6); "
                "cross-check: splitwise-sim configs/cluster/isocost_{h100,hybrid}.yaml "
                "put 40 DGX-H100 at the cost of 51 DGX-A100 + 16 DGX-H100 (17.6 x 51 + 38 x 16 = "
                "1,506 vs 38 x 40 = 1,520 $/h)")


#: the dynamic power of CMOS logic is C V^2 f and DVFS lowers V with f, so P ~ f^3 (Hennessy &
#: Patterson, Computer Architecture, power and energy section): a cap to a fraction c of the
#: power that already limits the sustained GEMM clock scales that clock by c^(1/3)
CAP_EXPONENT = 1.0 / 3.0


@dataclass(frozen=True)
class MachineType:
    """A machine a pool is made of: arch preset, price ($/h), provisioned power (W) and an
    optional GPU power cap (fraction of the GPUs' power limit)."""

    name: str
    arch: str
    price_per_hour: float
    power_W: float
    source: str
    power_cap: float = 1.0

    def load_arch(self, software: str):
        """The machine's arch under ``software``; a power cap scales the GPUs' sustained
        tensor rate (``gpu.tensor_efficiency`` and each ``tensor_efficiency_by_dtype`` entry, the
        clock under the power limit) by
        ``power_cap ** (1/3)``; memory-bound kernels (HBM-limited) are unchanged."""
        from arch import arch_from_dict, deep_merge, load_arch_data
        from arch.software import with_software

        data, label = load_arch_data(self.arch)
        data = with_software(data, software, label)
        arch = arch_from_dict(data, label)
        if self.power_cap >= 1.0:
            return arch
        for name, comp in arch.sections["components"].items():
            dev = getattr(comp, "device", None)
            if dev is None or "gpu" not in dev.sections:
                continue
            gpu = dev.sections["gpu"]
            scale = self.power_cap ** CAP_EXPONENT
            by_dtype = {dt: e * scale for dt, e in gpu.tensor_efficiency_by_dtype.items()}
            data = deep_merge(data, {"components": {name: {"overrides": {"gpu": {
                "tensor_efficiency": gpu.tensor_efficiency * scale,
                **({"tensor_efficiency_by_dtype": by_dtype} if by_dtype else {})}}}}})
        return arch_from_dict(data, label)


MACHINES: dict[str, MachineType] = {
    "dgx-a100": MachineType("dgx-a100", "dgx-a100", 17.6, 6500.0,
                            "NVIDIA DGX A100 datasheet: 6.5 kW max (splitwise-sim "
                            "skus/dgx-a100.yaml tdp 6500); price: " + PRICE_SOURCE),
    "dgx-h100": MachineType("dgx-h100", "dgx-h100", 38.0, 10200.0,
                            "NVIDIA DGX H100 datasheet: ~10.2 kW max (splitwise-sim "
                            "skus/dgx-h100.yaml tdp 10200); price: " + PRICE_SOURCE),
    # Splitwise-HHcap: H100 GPUs capped at 70% of their power; the cap slows compute-bound
    # (prompt) passes by the c^(1/3) clock law and leaves memory-bound decode nearly unchanged
    "dgx-h100-pcap": MachineType("dgx-h100-pcap", "dgx-h100", 38.0, 7140.0,
                                 "Splitwise-HHcap: DGX-H100 with GPUs capped at 70% power "
                                 "(splitwise-sim skus/dgx-h100-pcap.yaml tdp 7140 = 0.7 x "
                                 "10200); same price as DGX-H100", power_cap=0.7),
}


@dataclass(frozen=True)
class Pool:
    """``count`` machines of type ``machine`` serving in ``role``."""

    machine: str
    count: int
    role: str

    def check(self) -> None:
        if self.machine not in MACHINES:
            raise SimError(f"pool: unknown machine '{self.machine}'; machines: "
                           f"{', '.join(MACHINES)}")
        if self.role not in ROLES:
            raise SimError(f"pool: role expected one of {', '.join(ROLES)}, got '{self.role}'")
        if self.count < 0:
            raise SimError(f"pool: count expected >= 0, got {self.count}")


def cluster_cost(pools: list[Pool]) -> float:
    """$/h of a cluster."""
    return sum(MACHINES[p.machine].price_per_hour * p.count for p in pools)


def cluster_power(pools: list[Pool]) -> float:
    """Provisioned power (W) of a cluster."""
    return sum(MACHINES[p.machine].power_W * p.count for p in pools)


def kv_transfer_delay(kv_bytes: float, pass_s: float, layers: int, bandwidth: float,
                      latency: float = 0.0, serialized: bool = False) -> float:
    """Seconds from the end of the prompt pass until its KV cache is on the token machine."""
    if kv_bytes <= 0:
        return latency
    x = kv_bytes / (layers * bandwidth)
    if serialized:
        return layers * x + latency
    step = pass_s / layers
    if x <= step:
        return x + latency
    return layers * x - (layers - 1) * step + latency


def infiniband(arch, tp: int) -> tuple[float, float]:
    """(achievable bytes/s of ``tp`` GPUs' NICs together, latency s) of a system arch."""
    links = arch.sections.get("links") or {}
    for link in links.values():
        if getattr(link, "kind", "") == "infiniband":
            return link.bandwidth * link.efficiency * tp, link.latency
    raise SimError(f"arch '{arch.name}' has no infiniband link for the KV transfer")


class PoolReplica(Replica):
    """A replica that remembers when its current iteration started (the prompt pass)."""

    iter_start = 0.0

    def schedule(self, t: float) -> Batch | None:
        batch = super().schedule(t)
        if batch is not None:
            self.iter_start = t
        return batch


class Cluster:
    """Replicas of all pools, wired so prompt machines hand requests to token machines."""

    def __init__(self, pools: list[Pool], model_name: str, cfg: EngineConfig,
                 software: str = "vllm", tp: int = 8, serialized: bool = False,
                 models: dict | None = None):
        from workloads.models import get_model

        for p in pools:
            p.check()
        roles = {p.role for p in pools if p.count}
        if "prompt" in roles and "token" not in roles:
            raise SimError("pool: a prompt pool needs a token pool to hand requests to")
        if "token" in roles and "prompt" not in roles:
            raise SimError("pool: a token pool needs a prompt pool to feed it")
        self.pools, self.tp, self.serialized = pools, tp, serialized
        self.model = get_model(model_name)
        self.models = models if models is not None else {}
        self.replicas: list[PoolReplica] = []
        self.links: dict[int, tuple[float, float]] = {}
        for p in pools:
            im = self.iteration_model(MACHINES[p.machine], software)
            for _ in range(p.count):
                rep = PoolReplica(len(self.replicas), im, cfg, p.role,
                                  f"{p.machine}.{p.role}{len(self.replicas)}")
                if p.role == "prompt":
                    rep.on_prefill_done = self._handoff
                    self.links[rep.index] = infiniband(im.arch, tp)
                self.replicas.append(rep)
        self.token = [r for r in self.replicas if r.role == "token"]
        self.transfers: list[tuple[int, float, float]] = []   # (request, bytes, delay s)

    def iteration_model(self, machine: MachineType, software: str):
        """One memoised :class:`IterationModel` per (machine type, software)."""
        key = (machine.name, software, self.model.name, self.tp)
        hit = self.models.get(key)
        if hit is None:
            from sim.serve.costs import IterationModel

            hit = self.models[key] = IterationModel(machine.load_arch(software), self.model,
                                                    tp=self.tp, attention="flash")
        return hit

    def _handoff(self, req: Req, rep: Replica, t: float) -> None:
        im = rep.model   # windowed layers send their last sliding_window tokens' KV only
        kv = im.kv_bytes_per_token() * im.devices * held_tokens(im.model, req.computed) \
            + state_bytes(im) * im.devices   # a hybrid's recurrent states too
        bw, lat = self.links[rep.index]
        delay = kv_transfer_delay(kv, t - rep.iter_start, im.layers, bw, lat, self.serialized)
        self.transfers.append((req.id, kv, delay))
        dest = min(self.token, key=lambda r: (r.outstanding, r.index))
        rep.sim.at(t + delay, lambda when, r: dest.accept(r, when), req)

    def cost_per_hour(self) -> float:
        return cluster_cost(self.pools)

    def power_W(self) -> float:
        return cluster_power(self.pools)


def run_cluster(cluster: Cluster, requests, slo=None, ref=None, router: str = "least_tokens",
                timeout: float = math.inf):
    """Serve ``requests`` on ``cluster``; the serving engine's :class:`ServeResult`."""
    from sim.serve import finish
    from sim.serve.loop import Simulation

    sim = Simulation(cluster.replicas, requests, router, timeout, record_tokens=False).run()
    return finish(sim, slo, ref)
