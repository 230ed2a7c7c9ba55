"""PIM sections: bank-level PIM units, the host ASIC of a PIM-only system, logic-die PIM.

* ``pim`` — MAC units beside the banks of the ``dram`` section (Newton, NeuPIMs, Samsung
  HBM-PIM, SK hynix GDDR6-AiM): lanes per unit, banks per unit, unit clock, how many banks one
  activation command opens, single or dual row buffers, global buffer per channel.
* ``pim_host`` — the small ASIC of a PIM-only system (PIM-GPT): vector units for softmax,
  normalisation and activations, an SRAM, and its link to the DRAM chips.
* ``logic_pim`` — compute on the HBM logic die (Duplex): extra internal bandwidth per stack
  (bank bundles read over extra TSVs) and the die's FLOP rate.

Device types: ``pim`` (a PIM memory plus host ASIC, runs whole models), ``npu_pim`` (an NPU whose
DRAM is bank-level PIM: NeuPIMs), ``xpu_pim`` (a GPU-class xPU with logic-die PIM: Duplex).
"""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_device_type, register_section


@register_section("pim")
@dataclass(kw_only=True)
class PimSpec:
    """Bank-level PIM units of the ``dram`` section's memory."""

    lanes: int = param(gt=0, doc="multipliers per unit: elements one MAC command processes")
    banks_per_unit: int = param(gt=0, doc="banks sharing one unit (HBM-PIM: 2)")
    unit_clock: float = param("Hz", gt=0, doc="clock of the PIM units, Hz")
    dtype: str = param(choices=("fp16", "bf16", "int8"), doc="datatype the units compute in")
    act_group: int = param(gt=0, doc="banks one PIM activation command opens (tFAW-limited)")
    row_buffers: int = param(ge=1, le=2, doc="row buffers per bank: 2 lets normal reads and "
                                             "PIM proceed together (NeuPIMs), 1 blocks")
    global_buffer: float = param("B", gt=0, doc="global (input-vector) buffer per channel, bytes")
    double_buffered_gb: bool = param(doc="the next input slice is written while the current "
                                         "one is used")
    gwrite_cycles_per_32B: int = param(gt=0, doc="DRAM cycles to write 32 B of input vector "
                                                 "into the global buffer")
    command_priority: str = param(choices=("pim", "memory"),
                                  doc="who wins the command bus when both are ready")

    def check_arch(self, arch) -> tuple[str, str] | None:
        if not arch.has("dram"):
            return ("dram", "a pim section needs the dram section it computes in")
        banks = arch.dram.bankgroups * arch.dram.banks_per_group
        if banks % self.banks_per_unit:
            return ("pim.banks_per_unit", f"{banks} banks per rank are not a multiple of "
                                          f"{self.banks_per_unit}")
        if banks % self.act_group and self.act_group < banks:
            return ("pim.act_group", f"{banks} banks per rank are not a multiple of "
                                     f"{self.act_group}")
        return None


@register_section("pim_host")
@dataclass(kw_only=True)
class PimHostSpec:
    """The ASIC beside a PIM memory: non-GEMV work and data movement."""

    clock: float = param("Hz", gt=0, doc="ASIC clock, Hz")
    vector_lanes: int = param(gt=0, doc="vector lanes, one operator application per cycle each")
    op_cycles: dict[str, float] = param(gt=0, doc="lane cycles per application of an operator "
                                                  "(exp, rsqrt, gelu ...); unlisted take 1")
    sram: float = param("B", gt=0, doc="on-chip buffer, bytes")
    link_bandwidth: float = param("B/s", gt=0, doc="ASIC <-> DRAM chips bandwidth, bytes/s")
    link_latency: float = param("s", ge=0, doc="one transfer's latency, s")


@register_section("logic_pim")
@dataclass(kw_only=True)
class LogicPimSpec:
    """Compute units on the HBM logic dies (one set per stack)."""

    stacks: int = param(gt=0, doc="HBM stacks with logic-die PIM")
    bandwidth_multiplier: float = param(gt=0, doc="internal bandwidth per stack as a multiple of "
                                                  "its external (xPU-side) bandwidth")
    flops_per_stack: float = param("FLOP/s", gt=0, doc="peak FP16 FLOP/s of one stack's units")
    energy_per_bit: float = param("J/bit", gt=0, doc="energy per bit read inside the stack "
                                                     "(no off-package I/O)")
    energy_per_flop: float = param("J/FLOP", gt=0, doc="energy per FLOP of the logic-die units")
    bank_pim_bandwidth_multiplier: float = param(gt=0, doc="bank-level PIM's internal bandwidth "
                                                           "multiple (comparison point)")
    bank_pim_op_per_byte: float = param(gt=0, doc="bank-level PIM's compute per byte read (Op/B)")


register_device_type("pim", required=("dram", "pim", "pim_host", "energy"),
                     optional=("system",))
register_device_type("npu_pim", required=("npu", "memory", "energy", "dram", "pim"),
                     optional=("interconnect", "system"))
register_device_type("xpu_pim", required=("gpu", "memory", "energy", "dram", "logic_pim"),
                     optional=("interconnect", "system", "software"))
