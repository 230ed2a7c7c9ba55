"""The FPGA sections: the board's resources and HBM (``fpga``) and the accelerator built on it
(``fpga_design``). Device type ``fpga`` (docs/fpga.md).

``fpga`` is the chip and card as the vendor ships them: LUTs, flip-flops, DSP slices, BRAM36 and
URAM blocks, and the HBM stack seen as pseudo-channels behind AXI ports (per-channel bandwidth,
port width and port clock, the fraction of the channel peak a port reaches on its own channel
and through the switch to another). ``fpga_design`` is one bitstream: its clock, the DSPs of its
matrix engine and the MACs one DSP does per cycle per datatype, its vector engine, the
structured sparsity it skips, how it uses the HBM (channels, port clock, cross-channel share),
whether decode activations stay on chip, and the instruction/control cycles each op costs.
Memories (``hbm``, ``ddr``, ``onchip``) live in the ``memory`` section, energy per action in
``energy`` (``compute`` per FLOP by datatype, ``memory.*`` per bit, ``static_power``).
"""

from __future__ import annotations

from dataclasses import dataclass

from arch.schema import param
from arch.spec import register_device_type, register_section

#: datatypes the matrix engine may list in ``macs_per_dsp``
ENGINE_DTYPES = ("int2", "int4", "int8", "fp16", "bf16", "fp32")


@dataclass(kw_only=True)
class FpgaHbm:
    """The HBM as the fabric sees it: pseudo-channels behind AXI ports (Xilinx PG276)."""

    channels: int = param(gt=0, doc="HBM pseudo-channels (one AXI port each)")
    channel_bandwidth: float = param("B/s", gt=0, doc="peak bytes/s of one pseudo-channel")
    port_bits: int = param(gt=0, doc="data width of one AXI port in bits")
    port_clock: float = param("Hz", gt=0, doc="highest AXI port clock in Hz")
    same_channel_efficiency: float = param(gt=0, le=1, doc="fraction of the channel peak a "
                                           "port streams from its own pseudo-channel")
    cross_channel_efficiency: float = param(gt=0, le=1, doc="fraction of the channel peak a "
                                            "port streams from another pseudo-channel through "
                                            "the switch")


@register_section("fpga")
@dataclass(kw_only=True)
class FpgaSpec:
    """An FPGA card: programmable resources and its HBM."""

    luts: int = param(gt=0, doc="6-input LUTs")
    ffs: int = param(gt=0, doc="flip-flops")
    dsps: int = param(gt=0, doc="DSP slices (DSP48E2: 27x18 multiplier + 48-bit accumulator)")
    bram36: int = param(gt=0, doc="36 Kb block RAMs")
    uram: int = param(ge=0, default=0, doc="288 Kb UltraRAM blocks")
    hbm: FpgaHbm = param(doc="the HBM pseudo-channels and their AXI ports")

    @property
    def onchip_bytes(self) -> float:
        """Bytes of BRAM36 (36 Kb) and URAM (288 Kb) together."""
        return (self.bram36 * 36 + self.uram * 288) * 1024 / 8


@register_section("fpga_design")
@dataclass(kw_only=True)
class FpgaDesign:
    """One accelerator bitstream on the card: its engines, sized from the card's resources."""

    clock: float = param("Hz", gt=0, doc="design (kernel) clock in Hz")
    dsps: int = param(gt=0, doc="DSP slices of the matrix engine")
    macs_per_dsp: dict[str, float] = param(
        gt=0, doc="multiply-accumulates one DSP does per cycle, by the narrower operand's "
                  "datatype (int2/int4: low-bit weights or KV against 8-bit activations, "
                  "packed several per DSP; int8; fp16)")
    efficiency: float = param(gt=0, le=1, default=1.0,
                              doc="fraction of the matrix-engine peak a large op sustains "
                                  "(tiling edges, pipeline bubbles)")
    sparsity: str = param(default="", doc="structured sparsity N:M the matrix engine skips "
                                          "(a weight stored N:M runs at M/N x the dense MAC "
                                          "rate); '' = none")
    vector_lanes: int = param(gt=0, doc="lanes of the vector engine (norms, softmax, "
                                        "activations), one operation per lane per cycle")
    vector_dsps_per_lane: float = param(ge=0, default=1.0, doc="DSPs one vector lane uses")
    op_cycles: dict[str, float] = param(gt=0, default_factory=dict,
                                        doc="cycles one lane needs per operator application "
                                            "(exp, div, rsqrt ...); unlisted operators take 1")
    hbm_channels: int = param(gt=0, doc="HBM pseudo-channels the design reads")
    hbm_port_clock: float = param("Hz", gt=0, doc="clock of the design's HBM AXI ports in Hz")
    cross_channel_fraction: float = param(ge=0, le=1, default=0.0,
                                          doc="share of HBM bytes a port reads from another "
                                              "pseudo-channel through the switch")
    activations_on_chip: bool = param(default=False,
                                      doc="decode activations stay in BRAM/URAM between ops "
                                          "(only weights and KV cache move over HBM)")
    op_overhead_cycles: float = param(ge=0, default=0.0,
                                      doc="instruction fetch/decode, engine configuration and "
                                          "pipeline fill/drain per op, in design cycles")

    def check(self) -> tuple[str, str] | None:
        for key in self.macs_per_dsp:
            if key not in ENGINE_DTYPES:
                return (f"macs_per_dsp.{key}", f"expected a datatype among "
                                               f"{', '.join(ENGINE_DTYPES)}")
        if self.sparsity:
            n, _, m = self.sparsity.partition(":")
            if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m) <= 64):
                return ("sparsity", f"expected N:M with 0 < N < M <= 64 (e.g. 2:4), "
                                    f"got '{self.sparsity}'")
        return None

    def check_arch(self, arch) -> tuple[str, str] | None:
        fpga = arch.sections.get("fpga")
        if fpga is None:
            return ("fpga", "an fpga_design needs the fpga section of its card")
        used = self.dsps + self.vector_lanes * self.vector_dsps_per_lane
        if used > fpga.dsps:
            return ("fpga_design.dsps", f"matrix engine {self.dsps} + vector engine "
                                        f"{self.vector_lanes} x {self.vector_dsps_per_lane:g} "
                                        f"DSPs = {used:g} exceed the card's {fpga.dsps}")
        if self.hbm_channels > fpga.hbm.channels:
            return ("fpga_design.hbm_channels", f"{self.hbm_channels} exceed the card's "
                                                f"{fpga.hbm.channels} pseudo-channels")
        if self.hbm_port_clock > fpga.hbm.port_clock * (1 + 1e-12):
            return ("fpga_design.hbm_port_clock", f"{self.hbm_port_clock / 1e6:g} MHz exceeds "
                                                  f"the ports' {fpga.hbm.port_clock / 1e6:g} MHz")
        memory = arch.sections.get("memory", {})
        if "hbm" not in memory:
            return ("memory.hbm", "missing required memory level for an fpga arch "
                                  "(capacity, bandwidth)")
        return None

    @property
    def sparse_speedup(self) -> float:
        """M/N of the engine's structured sparsity (1 without)."""
        if not self.sparsity:
            return 1.0
        n, _, m = self.sparsity.partition(":")
        return int(m) / int(n)


register_device_type("fpga", required=("fpga", "fpga_design", "memory", "energy"),
                     optional=("interconnect", "system"))
