"""NPU device model: systolic arrays, vector units, double-buffered SRAM, DRAM (type ``npu``).

Public interface (stable; composite devices such as NPU+PIM call these directly):

* ``matmul_cost(op) -> Cost`` — a contraction (GEMM, batched GEMM, GEMV) on the 2D arrays;
* ``vector_cost(op) -> Cost`` — element-wise / reduction Einsums or cascades (softmax, norms,
  activations) on the vector units;
* ``attention_cost(op) -> Cost`` — a fused attention cascade: its contractions on the arrays, the
  rest on the vector units, intermediates kept on chip;
* ``cascade_cost(op) -> Cost`` — an attention cascade op of ``op_class`` ``mapped_cascade``
  mapped by :mod:`mappings.cascade_map` (2D/1D interleave, epoch pipeline: FuseMax, FLAT);
* ``gemm_cost(batch, m, n, k, dtype, a_bytes, b_bytes, c_bytes) -> Cost`` and
  ``vector_ops_cost(op_counts, nbytes, dtype) -> Cost`` — the same models on bare shapes;
* ``_estimate(op)`` dispatches on ``op.kind`` to the above.

Mechanisms (tile fidelity):

* **Arrays** — cycle-exact fill/drain per fold from :func:`sim.micro.systolic.gemm_cycles`
  (SCALE-Sim-compatible; ``npu.overlap_folds`` lets the stationary operand of the next fold
  preload during the current one). A GEMM is spread over ``npu.arrays`` arrays by its column
  dimension, or, for batched GEMMs, batch items go to different arrays, whichever is faster.
* **SRAM and DRAM** — the operands are blocked into tiles ``(tm, tn, tk)`` that fit the ifmap,
  filter and ofmap buffers (``npu.sram_split`` of ``memory.sram``; half of each when
  ``npu.double_buffered``). DRAM traffic is the minimum over tile shapes and the two loop orders
  (A or B resident across the middle loop); with double buffering the tile loads overlap compute,
  so a GEMM takes ``first tile load + max(compute, DRAM time)``; without, their sum.
  ``npu.dram_unlimited`` drops the DRAM time (traffic is still counted). ``npu.tiling:
  halving`` replaces the search by the ONNXim/NeuPIMs MatMul tiler (:func:`_halving_traffic`).
* **Vector units** — ``vector_units x vector_lanes`` lanes, one operator application per lane per
  cycle, ``npu.op_cycles`` for multi-cycle operators (FuseMax: exp = 6), streaming the op's bytes
  from DRAM in parallel.

Energy: FLOPs x ``energy.compute[dtype]``, DRAM bits x ``energy.memory.dram``, SRAM bits (array
operand reads/writes counted as SCALE-Sim does, plus DRAM fills) x ``energy.memory.sram``.
"""

from __future__ import annotations

import math
from functools import lru_cache

from arch import Arch
from mappings.cascade_map import CASCADE_CLASS
from sim.devices.base import (
    Cost,
    MainTierDevice,
    SimError,
    collective_min_bytes,
    op_dtype,
    register_device,
)
from sim.micro.systolic import gemm_cycles, multi_array_cycles
from workloads.einsum import Cascade, Einsum, dtype_bytes
from workloads.trace import ATTENTION, COLLECTIVE, MATMUL, MEMORY, Op

ACC_BYTES = 4  # partial sums are held in fp32 in the output buffer


@register_device
class NpuDevice(MainTierDevice):
    """A systolic-array NPU described by an arch of type ``npu``."""

    arch_type = "npu"

    def __init__(self, arch: Arch, fidelity: str = "tile"):
        super().__init__(arch, fidelity)
        self.n = arch.npu
        self.dram = arch.memory["dram"]
        self.main_tier = self.dram
        self.sram = arch.memory["sram"]
        self.energy_table = arch.energy
        self.link_name, self.link = self.system_link("intra_node_link")
        self._dram_cfg = _cycle_dram_config(arch) if fidelity == "cycle" else None

    @classmethod
    def fidelities(cls) -> tuple[str, ...]:
        return ("roofline", "tile", "cycle")

    @classmethod
    def fidelities_for(cls, arch: Arch) -> tuple[str, ...]:
        """cycle needs a ``dram`` section (unless the arch ignores DRAM time)."""
        if arch.has("dram") or arch.npu.dram_unlimited:
            return cls.fidelities()
        return ("roofline", "tile")

    # --- peaks -------------------------------------------------------------------------------
    def peak_flops(self, op: Op) -> float:
        if op.kind in (MATMUL, ATTENTION):
            return 2.0 * self.n.peak_macs_per_s()
        return self.n.vector_ops_per_s()

    def roof_lines(self, dtype: str) -> dict[str, float]:
        return {"systolic arrays": 2.0 * self.n.peak_macs_per_s(),
                "vector units": self.n.vector_ops_per_s()}

    def roofline(self, op: Op) -> float:
        if self.n.dram_unlimited and op.kind != COLLECTIVE:
            shards = max(op.shards, 1)
            return op.flops / shards / self.peak_flops(op)
        return super().roofline(op)

    # --- buffers -----------------------------------------------------------------------------
    def buffer_bytes(self) -> tuple[float, float, float]:
        """Usable (active) bytes of the ifmap, filter and ofmap buffers."""
        frac = 0.5 if self.n.double_buffered else 1.0
        cap = self.sram.capacity
        s_if, s_f, s_of = self.n.sram_split
        return cap * s_if * frac, cap * s_f * frac, cap * s_of * frac

    def scratchpad_bytes(self) -> float:
        """Active bytes of the shared input+weight scratchpad (``sram_split[0] + [1]`` of
        ``memory.sram``, half of it when double-buffered): the budget of ``tiling: halving``."""
        frac = 0.5 if self.n.double_buffered else 1.0
        s_if, s_f, _ = self.n.sram_split
        return self.sram.capacity * (s_if + s_f) * frac

    def _dram_time(self, nbytes: float) -> float:
        if self.n.dram_unlimited or nbytes <= 0:
            return 0.0
        if self._dram_cfg is not None:  # cycle: a sequential stream through the DRAM model
            from sim.micro.cycle_dram import run_segments, stream_segments

            return run_segments(self._dram_cfg, stream_segments(nbytes)).seconds
        return nbytes / (self.dram.bandwidth * self.dram.efficiency)

    def _energy(self, flops: float, dtype: str, dram_bytes: float, sram_bytes: float,
                link_bytes: float = 0.0) -> dict[str, float]:
        t = self.energy_table
        per_flop = t.compute.get(dtype) or t.compute.get("fp16") or next(iter(t.compute.values()))
        out = {"compute": flops * per_flop,
               "dram": dram_bytes * 8 * t.memory.get("dram", 0.0),
               "sram": sram_bytes * 8 * t.memory.get("sram", 0.0)}
        if link_bytes:
            out["link"] = link_bytes * 8 * t.link.get(self.link_name, 0.0)
        return out

    def _gemm_plan(self, batch: int, m: int, n: int, k: int, dtype: str, a_bytes: float,
                   b_bytes: float, c_bytes: float) -> tuple:
        """What tile and cycle fidelity share for a GEMM: (FLOPs, roofline s, array cycles, detail,
        compute s, element bytes, the tiling's DRAM traffic)."""
        npu = self.n
        flops = 2.0 * batch * m * n * k
        roof = max(flops / (2.0 * npu.peak_macs_per_s()),
                   0.0 if npu.dram_unlimited else (a_bytes + b_bytes + c_bytes) /
                   self.dram.bandwidth)
        cyc, detail = self._array_cycles(batch, m, n, k)
        elem = dtype_bytes(dtype)
        if getattr(npu, "tiling", "min_traffic") == "halving":
            traffic = _halving_traffic(batch, m, n, k, c_bytes, elem, self.scratchpad_bytes(),
                                       npu.array_rows, npu.array_cols)
        else:
            traffic = _gemm_traffic(batch, m, n, k, a_bytes, b_bytes, c_bytes, elem,
                                    self.buffer_bytes(), npu.array_rows, npu.array_cols)
        return flops, roof, cyc, detail, cyc / npu.clock, elem, traffic

    # --- public cost models ------------------------------------------------------------------
    def gemm_cost(self, batch: int, m: int, n: int, k: int, dtype: str, a_bytes: float,
                  b_bytes: float, c_bytes: float) -> Cost:
        """A batch of ``batch`` (M, N, K) GEMMs; ``*_bytes`` are whole-operand sizes in B."""
        if self.fidelity == "cycle":
            return self._gemm_cost_cycle(batch, m, n, k, dtype, a_bytes, b_bytes, c_bytes)
        npu = self.n
        flops, roof, cyc, detail, t_compute, elem, traffic = self._gemm_plan(
            batch, m, n, k, dtype, a_bytes, b_bytes, c_bytes)
        dram_bytes = traffic["dram_bytes"]
        t_dram = self._dram_time(dram_bytes)
        t_first = self._dram_time(traffic["first_tile_bytes"])
        if npu.double_buffered:
            body = max(t_compute, t_dram)
            latency = min(t_first, t_dram) + body
        else:
            body = t_compute + t_dram
            latency = body
        latency = max(latency, roof) + (0.0 if npu.dram_unlimited else self.dram.latency)
        bound = "compute" if t_compute >= t_dram else "memory"
        sram_bytes = detail["sram_elems"] * elem + dram_bytes
        detail.update(traffic, t_compute=t_compute, t_dram=t_dram, cycles=cyc,
                      stall_s=max(0.0, latency - t_compute))
        return Cost(latency, roof, bound, self._energy(flops, dtype, dram_bytes, sram_bytes),
                    dram_bytes, detail)

    def vector_ops_cost(self, op_counts: dict[str, float], nbytes: float, dtype: str,
                        flops: float | None = None) -> Cost:
        """Operator applications (``{"exp": n, "add": n, ...}``) on the vector units while
        ``nbytes`` stream from DRAM."""
        npu = self.n
        lane_cycles = sum(cnt * npu.op_cycles.get(op_name, 1.0)
                          for op_name, cnt in op_counts.items() if op_name not in ("copy",
                                                                                  "select"))
        lanes = npu.vector_units * npu.vector_lanes
        t_compute = math.ceil(lane_cycles / lanes) / npu.clock if lane_cycles else 0.0
        t_dram = self._dram_time(nbytes)
        n_ops = float(sum(op_counts.values()))
        flops = n_ops if flops is None else flops
        roof = max(flops / npu.vector_ops_per_s(), t_dram if not npu.dram_unlimited else 0.0)
        body = max(t_compute, t_dram)
        latency = max(body, roof) + (self.dram.latency if nbytes and not npu.dram_unlimited
                                     else 0.0)
        bound = "compute" if t_compute >= t_dram else "memory"
        sram_bytes = 2.0 * nbytes
        return Cost(latency, roof, bound, self._energy(flops, dtype, nbytes, sram_bytes), nbytes,
                    {"t_compute": t_compute, "t_dram": t_dram, "lane_cycles": lane_cycles})

    def matmul_cost(self, op: Op) -> Cost:
        """Cost of one shard of a contraction op on the arrays."""
        e = op.compute
        if not isinstance(e, Einsum) or not e.is_contraction:
            raise SimError(f"op '{op.name}': matmul_cost needs a contraction Einsum")
        b, m, n, k = e.gemm_shape
        a, w = e.inputs
        return self.gemm_cost(b, m, n, k, op_dtype(op), a.nbytes(e.size), w.nbytes(e.size),
                              e.output.nbytes(e.size))

    def vector_cost(self, op: Op) -> Cost:
        """Cost of one shard of an element-wise/reduction op on the vector units."""
        comp = op.compute
        if comp is None:
            raise SimError(f"op '{op.name}': vector_cost needs an Einsum or cascade")
        return self.vector_ops_cost(comp.op_counts, comp.min_bytes, op_dtype(op), comp.flops)

    def attention_cost(self, op: Op) -> Cost:
        """A fused attention cascade: contractions on the arrays, the rest on the vector units,
        run one after the other; intermediates stay on chip, so DRAM sees the cascade's
        boundary tensors only."""
        casc = op.compute
        if not isinstance(casc, Cascade):
            return self.vector_cost(op) if op.kind != MATMUL else self.matmul_cost(op)
        dtype = op_dtype(op)
        t_array = t_vector = 0.0
        vec_counts: dict[str, float] = {}
        sram_elems = 0.0
        for e in casc.einsums:
            if e.is_contraction:
                b, m, n, k = e.gemm_shape
                cyc, det = self._array_cycles(b, m, n, k)
                t_array += cyc / self.n.clock
                sram_elems += det["sram_elems"]
            else:
                for name, cnt in e.op_counts.items():
                    vec_counts[name] = vec_counts.get(name, 0.0) + cnt
        if vec_counts:
            vcost = self.vector_ops_cost(vec_counts, 0.0, dtype)
            t_vector = vcost.detail["t_compute"]
        nbytes = casc.min_bytes
        sched = self.cascade_schedule(casc)   # npu.schedule: spills of whole intermediates
        if sched is not None:
            nbytes = sched["traffic_bytes"]
        t_dram = self._dram_time(nbytes)
        roof = self.roofline(op)
        t_compute = t_array + t_vector
        latency = max(max(t_compute, t_dram), roof)
        bound = "compute" if t_compute >= t_dram else "memory"
        elem = dtype_bytes(dtype)
        energy = self._energy(casc.flops, dtype, nbytes, sram_elems * elem + nbytes)
        detail = {"t_array": t_array, "t_vector": t_vector, "t_dram": t_dram}
        if sched is not None:
            detail["schedule"] = sched
        return Cost(latency, roof, bound, energy, nbytes, detail)

    def cascade_schedule(self, casc: Cascade) -> dict | None:
        """With ``npu.schedule: ilp | greedy``, the cascade's Einsums scheduled as whole tensors
        in the active scratchpad (``memory.sram``, half when double-buffered) by
        :func:`mappings.schedule_ilp.schedule` (order, addresses, spills): its summary, whose
        ``traffic_bytes`` (compulsory + spill/reload bytes) replace the cascade's minimum bytes.
        ``None`` with ``npu.schedule: none`` (intermediates assumed to stay on chip)."""
        mode = getattr(self.n, "schedule", "none")
        if mode == "none":
            return None
        budget = self.sram.capacity * (0.5 if self.n.double_buffered else 1.0)
        return _cascade_schedule(casc, budget, mode, float(self.n.schedule_time_limit),
                                 self.arch.origin or self.arch.name)

    def cascade_cost(self, op: Op) -> Cost:
        """A fused attention cascade (``op_class`` :data:`mappings.cascade_map.CASCADE_CLASS`)
        mapped by :func:`mappings.cascade_map.map_cascade` onto the 2D array and the vector
        lanes (FuseMax / FLAT: interleave, epoch pipeline, query blocks, cross-pass policy)."""
        from mappings.cascade_map import cascade_arch, map_cascade

        c = map_cascade(op.compute, cascade_arch(self.arch))
        roof = self.roofline(op)
        latency = max(c.latency, roof)
        bound = "compute" if c.compute_cycles >= c.cycles - 1e-9 else "memory"
        return Cost(latency, roof, bound, dict(c.energy), c.dram_bytes,
                    {"mapping": c.mapping.describe(), "util2d": c.util2d,
                     "busy": dict(c.busy), "spilled": c.spilled, "cycles": c.cycles,
                     "evaluated": c.evaluated})

    def memory_cost(self, op: Op) -> Cost:
        """Pure data movement (gathers, copies): read and write through DRAM."""
        nbytes = op.bytes / max(op.shards, 1)
        roof = self.roofline(op)
        t = max(self._dram_time(nbytes), roof) + self.dram.latency
        return Cost(t, roof, "memory", self._energy(0.0, op_dtype(op), nbytes, nbytes), nbytes)

    def collective_cost(self, op: Op) -> Cost:
        c = op.collective
        if c is None or c.group <= 1:
            return Cost(0.0, 0.0, "none")
        if self.link is None:
            raise SimError(f"{self.arch.origin or self.arch.name}: tensor parallelism needs "
                           "system.intra_node_link naming a link in interconnect")
        sent = collective_min_bytes(c.kind, c.bytes_per_rank, c.group)
        roof = self.roofline(op)
        steps = 2 * (c.group - 1) if c.kind == "allreduce" else (c.group - 1)
        t = steps * self.link.latency + sent / (self.link.bandwidth * self.link.efficiency)
        return Cost(max(t, roof), roof, "link",
                    self._energy(c.reduce_flops / c.group, c.dtype, sent, sent, sent), sent)

    # --- dispatch ----------------------------------------------------------------------------
    def _estimate(self, op: Op) -> Cost:
        if op.kind == COLLECTIVE:
            return self.collective_cost(op)
        if self.fidelity == "roofline":
            roof = self.roofline(op)
            shards = max(op.shards, 1)
            nbytes = op.bytes / shards
            return Cost(roof, roof, "roofline",
                        self._energy(op.flops / shards, op_dtype(op), nbytes, nbytes), nbytes)
        if op.kind == MEMORY or op.compute is None:
            return self.memory_cost(op)
        if op.kind == MATMUL and isinstance(op.compute, Einsum) and op.compute.is_contraction:
            return self.matmul_cost(op)
        if op.kind == ATTENTION:
            if op.op_class == CASCADE_CLASS and isinstance(op.compute, Cascade):
                return self.cascade_cost(op)
            return self.attention_cost(op)
        return self.vector_cost(op)

    # --- helpers -----------------------------------------------------------------------------
    def _array_cycles(self, batch: int, m: int, n: int, k: int,
                      closed_form: bool = False) -> tuple[int, dict]:
        """Cycles of ``batch`` GEMMs on the arrays: the faster of spreading each GEMM over all
        arrays, or giving batch items to different arrays (``closed_form``: the fold formula
        even at cycle fidelity)."""
        npu = self.n
        rows, cols, arrays, df = npu.array_rows, npu.array_cols, npu.arrays, npu.dataflow
        if self.fidelity == "cycle" and not closed_form:
            return self._array_cycles_cycle(batch, m, n, k)
        spread = multi_array_cycles(m, n, k, rows, cols, arrays, df, npu.overlap_folds)
        cyc_spread = batch * spread.cycles
        one = gemm_cycles(m, n, k, rows, cols, df, npu.overlap_folds)
        cyc_batch = math.ceil(batch / arrays) * one.cycles
        cyc = min(cyc_spread, cyc_batch)
        sr_folds, sc_folds = one.row_folds, one.col_folds
        # operand words the arrays read from / write to SRAM (SCALE-Sim's counting)
        if df == "os":
            sram = batch * (sc_folds * m * k + sr_folds * k * n + m * n)
        elif df == "ws":
            sram = batch * (sc_folds * m * k + k * n + sr_folds * m * n)
        else:
            sram = batch * (m * k + sc_folds * k * n + sr_folds * m * n)
        return cyc, {"folds": batch * one.folds, "cycles_per_fold": one.cycles_per_fold,
                     "utilization": 2.0 * batch * m * n * k / (2.0 * cyc * rows * cols * arrays),
                     "mapping_efficiency": one.mapping_efficiency, "sram_elems": float(sram),
                     "batch_over_arrays": cyc_batch < cyc_spread}

    # --- cycle fidelity (docs/fidelity.md) ---------------------------------------------------
    def _array_cycles_cycle(self, batch: int, m: int, n: int, k: int) -> tuple[int, dict]:
        """:meth:`_array_cycles` with every fold run through the SCALE-Sim-compatible array
        model (:func:`sim.micro.cycle_npu.array_cycles`), same split choice."""
        from sim.micro.cycle_npu import array_cycles
        from sim.micro.systolic import spatial_dims

        npu = self.n
        rows, cols, arrays, df = npu.array_rows, npu.array_cols, npu.arrays, npu.dataflow
        words = tuple(int(b // dtype_bytes(npu.dtype)) for b in self.buffer_bytes())

        def run(mm: int, nn: int, kk: int) -> tuple[int, int, str]:
            return array_cycles(mm, nn, kk, rows, cols, df, bool(npu.overlap_folds), *words)

        _, sc, _ = spatial_dims(m, n, k, df)
        per_array = math.ceil(math.ceil(sc / cols) / max(arrays, 1)) * cols
        if arrays > 1 and per_array < sc:
            sl = min(sc, per_array)
            spread = run(sl, n, k) if df == "is" else run(m, sl, k)
        else:
            spread = run(m, n, k)
        one = run(m, n, k)
        cyc_spread, cyc_batch = batch * spread[0], math.ceil(batch / arrays) * one[0]
        cyc = min(cyc_spread, cyc_batch)
        _, det = self._array_cycles(batch, m, n, k, closed_form=True)
        det.update(utilization=2.0 * batch * m * n * k / (2.0 * cyc * rows * cols * arrays),
                   batch_over_arrays=cyc_batch < cyc_spread, systolic=one[2],
                   write_stall_cycles=(spread if cyc_spread <= cyc_batch else one)[1])
        return cyc, det

    def _gemm_cost_cycle(self, batch: int, m: int, n: int, k: int, dtype: str, a_bytes: float,
                         b_bytes: float, c_bytes: float) -> Cost:
        """Cycle fidelity of a GEMM: array cycles from the SCALE-Sim-compatible run plus the
        stall of its tile loads run through the cycle DRAM model (docs/fidelity.md)."""
        from sim.micro.cycle_dram import DEFAULT_CAP, run_segments
        from sim.micro.cycle_npu import gemm_segments

        npu = self.n
        flops, roof, cyc, detail, t_compute, elem, traffic = self._gemm_plan(
            batch, m, n, k, dtype, a_bytes, b_bytes, c_bytes)
        dram_bytes = traffic["dram_bytes"]
        t_dram = t_first = 0.0
        run = None
        if not npu.dram_unlimited:
            cfg = self._dram_cfg
            a_batched = batch > 1 and a_bytes >= batch * m * k * elem * 0.999
            b_batched = batch > 1 and b_bytes >= batch * k * n * elem * 0.999
            b_once = (batch > 1 and not b_batched and traffic["order"] != "nmk"
                      and b_bytes <= self.buffer_bytes()[1])
            c_elem = max(1, int(round(c_bytes / max(batch * m * n, 1))))
            cap_bytes = DEFAULT_CAP * cfg.request_bytes
            segs, _ = gemm_segments(batch, m, n, k, int(elem), c_elem, traffic["tile"],
                                        traffic["order"], a_batched, b_batched, b_once,
                                        cap_bytes)
            total = math.ceil(dram_bytes / cfg.request_bytes)
            run = run_segments(cfg, segs, DEFAULT_CAP, total)
            t_dram = run.seconds
            first_req = max(1, math.ceil(traffic["first_tile_bytes"] / cfg.request_bytes))
            t_first = run_segments(cfg, segs, min(first_req, DEFAULT_CAP),
                                   prefix_only=True).seconds
        if npu.double_buffered:
            stall = min(t_first, t_dram) + max(0.0, t_dram - t_compute)
        else:
            stall = t_dram
        latency = max(t_compute + stall, roof)
        bound = "compute" if t_compute >= t_dram else "memory"
        sram_bytes = detail["sram_elems"] * elem + dram_bytes
        detail.update(traffic, t_compute=t_compute, t_dram=t_dram, t_first_tile=t_first,
                      cycles=cyc, stall_s=stall, fidelity="cycle",
                      dram_simulated_fraction=run.simulated_fraction if run else 0.0,
                      dram_row_hit_rate=run.row_hit_rate if run else 0.0)
        return Cost(latency, roof, bound, self._energy(flops, dtype, dram_bytes, sram_bytes),
                    dram_bytes, detail)


def _cycle_dram_config(arch: Arch):
    """The JEDEC configuration ``--fidelity cycle`` runs DRAM traffic through: the arch's
    ``dram`` section (required unless ``npu.dram_unlimited``)."""
    if arch.npu.dram_unlimited:
        return None
    if not arch.has("dram"):
        raise SimError(f"--fidelity cycle: {arch.origin or arch.name}: the npu model runs DRAM "
                       "traffic through the cycle DRAM model, which needs a 'dram' section "
                       "(JEDEC organisation and timing, as in preset dram-hbm2e); this arch "
                       "has none (or use --fidelity tile)")
    from sim.micro.dram_config import DramConfigError, config_from_arch

    try:
        return config_from_arch(arch)
    except DramConfigError as exc:
        raise SimError(f"{arch.origin or arch.name}: {exc}") from None


@lru_cache(maxsize=1024)
def _cascade_schedule(casc: Cascade, budget: float, mode: str, time_limit_s: float,
                      where: str) -> dict:
    """Memoised schedule summary of one distinct cascade (see ``cascade_schedule``)."""
    from mappings.dag import ScheduleError, dag_from_cascade
    from mappings.schedule_ilp import schedule

    dag = dag_from_cascade(casc)
    try:
        return schedule(dag, budget, mode, time_limit_s).summary(dag)
    except ScheduleError as exc:
        raise SimError(f"{where}: npu.schedule: {mode}: cascade '{casc.name}': {exc}") from None


def _candidates(full: int, base: int) -> list[int]:
    out = {full}
    t = base
    while t < full:
        out.add(t)
        t *= 2
    return sorted(out)


@lru_cache(maxsize=65536)
def _gemm_traffic(batch: int, m: int, n: int, k: int, a_bytes: float, b_bytes: float,
                  c_bytes: float, elem: float, buf: tuple[float, float, float], rows: int,
                  cols: int) -> dict:
    """Minimum DRAM traffic of a blocked GEMM whose tiles fit the three buffers.

    Loop nest per batch item: two outer tile loops (order ``nm`` or ``mn``) and the reduction
    ``k`` innermost, so an output tile accumulates in the ofmap buffer and is written once. With
    ``tk == K`` the operand indexed by the outer loop only stays resident across the middle loop
    and is read once; otherwise A is read ``ceil(N/tn)`` and B ``ceil(M/tm)`` times. Operands that
    do not depend on the batch (weights) are read once per batch item when not resident.
    """
    buf_if, buf_f, buf_of = buf
    b_batched = b_bytes >= batch * k * n * elem * 0.999 and batch > 1
    best: dict | None = None
    for tk in _candidates(k, rows):
        for tm in _candidates(m, rows):
            if tm * tk * elem > buf_if and not (tm == 1 and tk == 1):
                continue
            for tn in _candidates(n, cols):
                if tk * tn * elem > buf_f or tm * tn * ACC_BYTES > buf_of:
                    continue
                nm, nn = math.ceil(m / tm), math.ceil(n / tn)
                for order in ("nm", "mn"):
                    a_reads = nn
                    b_reads = nm
                    if tk == k and order == "nm":
                        b_reads = 1      # B tile (K x tn) stays while m iterates
                    if tk == k and order == "mn":
                        a_reads = 1      # A tile (tm x K) stays while n iterates
                    # whole B resident across the batch when it fits and is shared
                    b_total = b_bytes * b_reads
                    if not b_batched and batch > 1 and b_bytes > buf_f:
                        b_total *= batch
                    dram = a_bytes * a_reads + b_total + c_bytes
                    if best is None or dram < best["dram_bytes"]:
                        first = (tm * tk + tk * tn) * elem
                        best = {"dram_bytes": float(dram), "tile": (tm, tn, tk), "order": order,
                                "first_tile_bytes": float(first)}
    if best is None:  # nothing fits: stream element tiles, every operand re-read per use
        best = {"dram_bytes": float(a_bytes * n + b_bytes * m + c_bytes), "tile": (1, 1, 1),
                "order": "nm", "first_tile_bytes": 2.0 * elem}
    return best


def _pad(x: int, base: int) -> int:
    return -(-x // base) * base


@lru_cache(maxsize=65536)
def _halving_traffic(batch: int, m: int, n: int, k: int, c_bytes: float, elem: float,
                     budget: float, rows: int, cols: int) -> dict:
    """DRAM traffic of the ONNXim/NeuPIMs MatMul tiler (``npu.tiling: halving``).

    Mechanism of the NeuPIMs artifact (``src/operations/MatMul.cc``: ``calculate_loops``,
    ``initialize_tiles``): the tile starts as the whole (M, K, N) GEMM and the largest dimension
    is halved (rounded up) until the A, B and C tiles, each padded to multiples of the array
    width, fit ``budget`` bytes (half the scratchpad; the other half prefetches the next tile).
    Tiles run batch item by batch item, then N, M, K tiles (the artifact transposes the GEMM:
    the activation tile is the arrays' stationary operand, the weights stream through them in
    array-wide column chunks); every tile loads its own A and B
    sub-tiles (the scratchpad half is flushed at each tile issue), so A is read once per N tile
    and B once per M tile, and C, accumulated over the K tiles, is written once. Compute starts
    as the first array-sized sub-tiles arrive (loads are issued per 128x128 sub-tile).
    """
    dims = [m, k, n]
    width = max(rows, cols)

    def need(d: list[int]) -> float:
        pm, pk, pn = (_pad(x, width) for x in d)
        return (pm * pk + pk * pn + pm * pn) * elem

    while need(dims) > budget and max(dims) > 1:
        i = dims.index(max(dims))
        dims[i] = (dims[i] + 1) // 2
    tm, tk, tn = dims
    nm, nn = math.ceil(m / tm), math.ceil(n / tn)
    a_item, b_item = m * k * elem, k * n * elem
    dram = batch * (a_item * nn + b_item * nm) + c_bytes
    first = (min(tm, rows) * min(tk, rows) + min(tk, rows) * min(tn, cols)) * elem
    return {"dram_bytes": float(dram), "tile": (tm, tn, tk), "order": "nmk",
            "first_tile_bytes": float(first)}
