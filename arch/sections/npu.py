"""The NPU section: systolic arrays, vector units, on-chip SRAM and how DRAM is modelled.

One section describes spatial accelerators built from 2D systolic arrays plus 1D vector units:
the NeuPIMs NPU (8 weight-stationary 128x128 arrays + 8 vector units), and the FuseMax / FLAT
spatial array (one 256x256 2D array + 256 1D PEs). Memories live in the ``memory`` section:
``dram`` (off-chip, required) and ``sram`` (the global buffer / scratchpads, required); energy per
action in ``energy`` (``compute`` per FLOP by dtype, ``memory.dram`` / ``memory.sram`` per bit).
"""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_device_type, register_section


@register_section("npu")
@dataclass(kw_only=True)
class NpuSpec:
    """Compute side of a systolic-array NPU."""

    clock: float = param("Hz", gt=0, doc="core clock in Hz")
    arrays: int = param(gt=0, default=1, doc="systolic arrays per chip")
    array_rows: int = param(gt=0, doc="PE rows per array")
    array_cols: int = param(gt=0, doc="PE columns per array")
    dataflow: str = param(choices=("os", "ws", "is"), default="ws",
                          doc="output-, weight- or input-stationary")
    dtype: str = param(default="fp16", doc="datatype the arrays and vector units compute in")
    overlap_folds: bool = param(default=False,
                                doc="stationary operand double-buffered in the PEs, so consecutive "
                                    "folds overlap (false: SCALE-Sim's back-to-back folds)")
    vector_units: int = param(gt=0, default=1, doc="1D vector units (softmax, norms, activations)")
    vector_lanes: int = param(gt=0, doc="lanes (PEs) per vector unit, one op per lane per cycle")
    op_cycles: dict[str, float] = param(gt=0, default_factory=dict,
                                        doc="cycles one lane needs per application of an operator "
                                            "(e.g. exp: 6); unlisted operators take 1")
    op_energy: dict[str, float] = param("J", gt=0, default_factory=dict,
                                        doc="energy of one operator application on a PE, J "
                                            "(e.g. mac, add, max, div, exp); used by cascade "
                                            "models, unlisted operators fall back to "
                                            "energy.compute")
    array_ops: list[str] = param(default_factory=lambda: ["mac"],
                                 doc="operators the 2D array's PEs execute (mac always; FuseMax "
                                     "adds add, max, sub, mul, div, exp); a cascade mapping may "
                                     "place an Einsum on the 2D array only if its operators are "
                                     "listed, otherwise it runs on the vector units")
    sram_split: list[float] = param(default_factory=lambda: [0.5, 0.25, 0.25],
                                    doc="fractions of memory.sram for the input (ifmap), weight "
                                        "(filter) and output (ofmap) buffers")
    double_buffered: bool = param(default=True,
                                  doc="SRAM buffers are double-buffered (half active, half "
                                      "prefetching), so DRAM transfers overlap compute")
    dram_unlimited: bool = param(default=False,
                                 doc="ignore memory.dram.bandwidth (SCALE-Sim CALC-style "
                                     "no-stall run); traffic is still counted")
    tiling: str = param(choices=("min_traffic", "halving"), default="min_traffic",
                        doc="how GEMMs are blocked for the SRAM: 'min_traffic' searches tile "
                            "shapes and loop orders for the least DRAM traffic; 'halving' is the "
                            "ONNXim/NeuPIMs MatMul tiler (start from the whole GEMM, halve the "
                            "largest dimension until A+B+C tiles fit half the scratchpad = "
                            "sram_split[0]+[1]; every tile loads its A and B sub-tiles, no reuse "
                            "across tiles)")

    schedule: str = param(choices=("none", "greedy", "ilp"), default="none",
                          doc="fused cascades (attention): 'none' keeps every intermediate on "
                              "chip; 'ilp' (COSMA-style, docs/cosma.md) or 'greedy' (program "
                              "order, first fit, Belady) schedule whole tensors in the active "
                              "SRAM and charge their spills and reloads to DRAM")
    schedule_time_limit: float = param("s", gt=0, default=10.0,
                                       doc="seconds the ILP solver may take per distinct "
                                           "cascade before its best incumbent is used")

    def check(self) -> tuple[str, str] | None:
        known = ("mac", "add", "sub", "mul", "div", "max", "min", "exp")
        bad = [x for x in self.array_ops if not isinstance(x, str) or x not in known]
        if bad:
            return ("array_ops", f"expected operators among {', '.join(known)}, got {bad}")
        if len(self.sram_split) != 3 or any((not isinstance(x, (int, float))) or x <= 0
                                            for x in self.sram_split):
            return ("sram_split", f"expected three positive fractions [ifmap, filter, ofmap], "
                                  f"got {self.sram_split}")
        if sum(self.sram_split) > 1.0 + 1e-9:
            return ("sram_split", f"fractions must sum to at most 1, got {sum(self.sram_split)}")
        return None

    def check_arch(self, arch) -> tuple[str, str] | None:
        memory = arch.sections.get("memory", {})
        for level in ("dram", "sram"):
            if level not in memory:
                return (f"memory.{level}", "missing required memory level for an npu arch "
                                           "(capacity, bandwidth)")
        return None

    @property
    def pes(self) -> int:
        """PEs over all 2D arrays."""
        return self.arrays * self.array_rows * self.array_cols

    def peak_macs_per_s(self) -> float:
        """Multiply-accumulates per second of all 2D arrays."""
        return self.pes * self.clock

    def vector_ops_per_s(self) -> float:
        """Single-cycle operator applications per second of all vector units."""
        return self.vector_units * self.vector_lanes * self.clock


register_device_type("npu", required=("npu", "memory", "energy"),
                     optional=("interconnect", "system", "dram"))  # dram: --fidelity cycle
