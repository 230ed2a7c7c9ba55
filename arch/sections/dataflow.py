"""The ``dataflow`` section: a reconfigurable dataflow chip of compute and memory units (SN40L).

A dataflow chip (SambaNova RDU, Plasticine-style) is a mesh of pattern compute units (PCUs) and
pattern memory units (PMUs) joined by an on-chip network. A PCU is ``lanes x stages`` functional
units: in **systolic** mode an output-stationary ``stages x lanes`` MAC array (a GEMM's rows on
the stages, its columns on the lanes), in **SIMD** mode ``lanes`` vector lanes each running a
``stages``-deep pipeline of element-wise operators, with a transcendental tail (exp, div, rsqrt,
silu ...) at ``tail_ops_per_cycle`` per lane. A PMU is banked SRAM with its own read and write
ports. The memory tiers live in ``memory``: ``hbm`` (required), ``ddr`` (optional, the capacity
tier behind it) and ``sram`` (the PMUs together; required, for reports and roofs).

``fusion`` chooses how an op graph runs: ``decoder`` (the compiler fuses a whole decoder layer
into one kernel placed as a spatial pipeline) or ``none`` (one kernel per op, every intermediate
through HBM, a program and argument load per call). The model is ``sim/devices/dataflow.py``,
the spatial placement ``mappings/dataflow.py`` (docs/dataflow.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_device_type, register_section


@register_section("dataflow")
@dataclass(kw_only=True)
class DataflowSpec:
    """Compute and memory units of a reconfigurable dataflow chip."""

    clock: float = param("Hz", gt=0, doc="unit clock in Hz")
    pcus: int = param(gt=0, doc="pattern compute units (PCUs)")
    lanes: int = param(gt=0, doc="SIMD lanes per PCU (systolic mode: array columns)")
    stages: int = param(gt=0, doc="pipeline stages per lane (systolic mode: array rows)")
    tail_ops_per_cycle: float = param(gt=0, default=1.0,
                                      doc="transcendental operator applications (exp, div, "
                                          "rsqrt, silu ...) per lane per cycle in the PCU's tail")
    pmus: int = param(gt=0, doc="pattern memory units (PMUs)")
    pmu_capacity: float = param("B", gt=0, doc="SRAM bytes per PMU")
    pmu_banks: int = param(gt=0, default=1, doc="SRAM banks per PMU")
    pmu_read_bandwidth: float = param("B/s", gt=0, doc="read bytes/s of one PMU")
    pmu_write_bandwidth: float = param("B/s", gt=0, doc="write bytes/s of one PMU")
    noc_bandwidth: float = param("B/s", gt=0, doc="on-chip network bytes/s over the chip "
                                                  "(bisection of the PCU/PMU mesh)")
    dtype: str = param(default="bf16", doc="datatype the PCUs compute in")
    accumulate: str = param(choices=("fp32", "bf16"), default="fp32",
                            doc="accumulator datatype of the systolic mode")
    fusion: str = param(choices=("decoder", "none"), default="decoder",
                        doc="'decoder': a decoder layer runs as one fused spatial pipeline; "
                            "'none': one kernel per op, intermediates through HBM")
    program_load: float = param("s", ge=0, default=0.0,
                                doc="time to load a kernel's configuration (program) per call")
    argument_load: float = param("s", ge=0, default=0.0,
                                 doc="time to load a kernel's arguments per call")

    def check_arch(self, arch) -> tuple[str, str] | None:
        memory = arch.sections.get("memory", {})
        for level in ("hbm", "sram"):
            if level not in memory:
                return (f"memory.{level}", "missing required memory level for a dataflow arch "
                                           "(capacity, bandwidth)")
        sram = memory["sram"].capacity
        pmu_total = self.pmus * self.pmu_capacity
        if abs(sram - pmu_total) > 1e-6 * pmu_total:
            return ("dataflow.pmu_capacity", f"pmus x pmu_capacity = {pmu_total:.6g} B must "
                                             f"equal memory.sram.capacity = {sram:.6g} B")
        return None

    @property
    def macs_per_cycle(self) -> int:
        """Multiply-accumulates per cycle of one PCU in systolic mode."""
        return self.lanes * self.stages

    def peak_flops(self) -> float:
        """Systolic-mode FLOP/s of the chip (a MAC is two FLOPs)."""
        return 2.0 * self.pcus * self.macs_per_cycle * self.clock

    def simd_ops_per_s(self) -> float:
        """SIMD-mode operator applications per second of the chip (one per stage per lane)."""
        return self.pcus * self.lanes * self.stages * self.clock

    def tail_ops_per_s(self) -> float:
        """Transcendental applications per second of the chip's PCU tails."""
        return self.pcus * self.lanes * self.tail_ops_per_cycle * self.clock


register_device_type("dataflow", required=("dataflow", "memory", "energy"),
                     optional=("interconnect", "system"))
