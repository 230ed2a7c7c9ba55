"""Attention cascades bound to a 2D + 1D spatial array: FLAT (3-pass) and FuseMax (1-pass).

Both run on an ``npu`` arch with one ``R x R`` 2D array and ``R`` 1D PEs (presets ``flat`` and
``fusemax``). Per (batch, head), with ``N`` queries/keys and head dimensions ``E = F``:

**FLAT** (:func:`workloads.cascades.attention_3pass`). ``QK`` and ``AV`` run on the 2D array with
the head dimension spatial on one array edge (FLAT's mappings), so only ``min(E, R)/R`` of the PEs
work: ``N² E / (R · min(E, R))`` cycles each. The four softmax Einsums (max, exp-sub, sum,
divide) run on the 1D array at one element per PE per cycle (multi-cycle ops pipelined):
``4 N² / R`` cycles. The QK/SN/A rows of a block of ``P1`` queries live in the global buffer; when
``2 · P1 · N`` words do not fit, the overflowing fraction is written to DRAM and read back by each
of the passes (4 transfers per spilled word). ``P1`` is chosen (multiples of R) for the least
latency. Latency = max(2D, 1D, DRAM) — the components run concurrently over row blocks.

**FuseMax** (:func:`workloads.cascades.attention_1pass`, m0 = R). Queries on the PE columns,
the key tile on the PE rows: every 2D Einsum uses all PEs. Cycles per (b, h), with ``X = N²/R²``
tiles and ``Y = N·(N/R)/R`` running-statistics elements per 1D PE: ``QK = E X``, ``LM = X``,
``SLN = 7 X`` (exp = 6 MACs + 1 add), ``SLD = X``, ``SLNV = F X`` on 2D; ``RM = Y``,
``PRM = 7 Y``, ``SPD = Y``, ``SPNV = F Y``, ``RD = Y``, ``RNV = F Y``, ``AV = N F / R`` on 1D.
The epoch pipeline overlaps 2D and 1D work stage by stage:
``max(QK+LM, RD+RNV+AV) + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV)``. DRAM: Q and AV once,
K and V once per block of ``P1`` query tiles that fits the buffer. Latency = max(compute, DRAM).

**Linear layers** (end to end): QKV and output projections and the FFN, ``B N (4 D² + 2 D S)``
MACs on the 2D array at full use when every GEMM dimension is a multiple of R (the encoders'
are), weights and activations streamed once.

Energy: every operator application at ``npu.op_energy`` (exp = 6 MAC + 1 add, as the 1D/2D PEs
compute it), buffer words at ``energy.memory.sram``, DRAM bytes at ``energy.memory.dram`` and
leakage at ``energy.static_power`` over the latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from arch import Arch


@dataclass(frozen=True)
class Encoder:
    """An encoder's shape (FuseMax artifact ``flat_validation.csv``): hidden D, head dim E,
    heads H, FFN width S; batch 64."""

    name: str
    d: int
    e: int
    h: int
    s: int
    batch: int = 64


ENCODERS = {
    "BERT": Encoder("BERT", 768, 64, 12, 3072),
    "TrXL": Encoder("TrXL", 1024, 64, 16, 4096),
    "T5": Encoder("T5", 512, 64, 8, 2048),
    "XLM": Encoder("XLM", 2048, 128, 16, 8192),
}
SEQ_LENS = {"1K": 1 << 10, "4K": 1 << 12, "16K": 1 << 14, "64K": 1 << 16, "256K": 1 << 18,
            "1M": 1 << 20}
WORD = 2  # bytes per 16-bit word


@dataclass
class PhaseCost:
    """Latency (s), energy (J by component) and 2D-array utilisation of one phase."""

    latency: float
    energy: dict[str, float] = field(default_factory=dict)
    util2d: float = 0.0
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def energy_total(self) -> float:
        return float(sum(self.energy.values()))


def _ops_energy(arch: Arch, counts: dict[str, float]) -> float:
    """Energy of operator applications; ``exp`` is 6 MACs + 1 add (FuseMax's PE)."""
    op = arch.npu.op_energy
    per_flop = arch.energy.compute.get("fp16", 0.0)
    mac = op.get("mac", 2 * per_flop)
    add = op.get("add", per_flop)
    table = {"mac": mac, "add": add, "max": op.get("max", add), "div": op.get("div", add),
             "exp": arch.npu.op_cycles.get("exp", 6.0) * mac + add}
    return sum(n * table[k] for k, n in counts.items())


def _energy(arch: Arch, counts: dict[str, float], buf_words: float, dram_bytes: float,
            latency: float) -> dict[str, float]:
    e = arch.energy
    return {"compute": _ops_energy(arch, counts),
            "buffer": buf_words * WORD * 8 * e.memory.get("sram", 0.0),
            "dram": dram_bytes * 8 * e.memory.get("dram", 0.0),
            "leakage": e.static_power * latency}


def _dims(arch: Arch) -> tuple[int, float, float, float]:
    n = arch.npu
    return n.array_rows, n.clock, arch.memory["dram"].bandwidth, arch.memory["sram"].capacity


def flat_attention(enc: Encoder, n: int, arch: Arch) -> PhaseCost:
    """FLAT's 3-pass attention (see the module docstring)."""
    r, clock, bw, buf = _dims(arch)
    e = f = enc.e
    bh = enc.batch * enc.h
    n2 = float(n) * n
    util_active = min(e, r) / r
    c2d = 2 * n2 * e / (r * r * util_active)          # QK + AV
    c1d = 4 * n2 / r                                   # M, SN, SD, A
    best: tuple | None = None
    p1 = r
    while p1 <= n:
        tiles = p1 * (e + f) * 2 * WORD + 2 * r * (e + f) * WORD   # Q/AV block + K/V tiles
        avail = max(0.0, buf - tiles)
        need = 2.0 * p1 * n * WORD                                  # QK/SN and A rows
        spilled = 1.0 - min(1.0, avail / need) if need else 0.0
        blocks = math.ceil(n / p1)
        dram = (n * e + n * f) * WORD + blocks * n * (e + f) * WORD + 4 * spilled * n2 * WORD
        t_mem = dram / bw
        cyc = max(c2d, c1d, t_mem * clock)
        if best is None or cyc < best[0]:
            best = (cyc, p1, spilled, dram, t_mem)
        p1 *= 2
    cyc, p1, spilled, dram, t_mem = best
    latency = bh * cyc / clock
    counts = {"mac": bh * 2 * n2 * e, "max": bh * n2, "exp": bh * n2, "add": bh * 2 * n2,
              "div": bh * n2}
    buf_words = bh * (8 * n2 * (1 - spilled) + 2 * n * (e + f) * math.ceil(n / r))
    energy = _energy(arch, counts, buf_words, bh * dram, latency)
    util2d = bh * c2d * util_active / clock / latency
    return PhaseCost(latency, energy, util2d,
                     {"cycles_2d": c2d, "cycles_1d": c1d, "cycles_mem": t_mem * clock,
                      "P1": p1, "spilled": spilled, "dram_bytes": bh * dram})


def fusemax_attention(enc: Encoder, n: int, arch: Arch) -> PhaseCost:
    """FuseMax's 1-pass cascade with the 2D/1D interleave and epoch pipeline."""
    r, clock, bw, buf = _dims(arch)
    e = f = enc.e
    bh = enc.batch * enc.h
    x = float(n) * n / (r * r)
    y = float(n) * (n / r) / r
    exp_c = arch.npu.op_cycles.get("exp", 6.0) + 1    # exp + the subtraction before it
    qk, lm, sln, sld, slnv = e * x, x, exp_c * x, x, f * x
    rm, prm, spd, spnv, rd, rnv = y, exp_c * y, y, f * y, y, f * y
    av = n * f / r
    cyc = max(qk + lm, rd + rnv + av) + rm + max(sln + sld, prm + spd) + max(slnv, spnv)
    c2d = qk + lm + sln + sld + slnv
    # DRAM: Q and AV once; K and V once per block of P1 query tiles resident in the buffer
    kv_tiles = r * (e + f) * WORD
    per_query = (e + 1 + 1 + f) * WORD                  # Q row, RM, RD, RNV
    p1_tiles = max(1, min(n // r, int((buf - kv_tiles) // (per_query * r))))
    blocks = math.ceil((n / r) / p1_tiles)
    dram = (n * e + n * f) * WORD + blocks * n * (e + f) * WORD
    t_mem = dram / bw
    cyc = max(cyc, t_mem * clock)
    latency = bh * cyc / clock
    n2 = float(n) * n
    nr = n * n / r
    counts = {"mac": bh * (n2 * e + n2 * f + nr + nr * f), "max": bh * (n2 + nr),
              "exp": bh * (n2 + nr), "add": bh * (n2 + nr + nr * f), "div": bh * n * f}
    buf_words = bh * (n * (e + f) * (n / r) + 2 * n * (e + f))
    energy = _energy(arch, counts, buf_words, bh * dram, latency)
    return PhaseCost(latency, energy, bh * c2d / clock / latency,
                     {"cycles": cyc, "cycles_2d": c2d, "P1_tiles": p1_tiles,
                      "dram_bytes": bh * dram})


def linear_layers(enc: Encoder, n: int, arch: Arch) -> PhaseCost:
    """QKV/output projections and FFN of one encoder layer on the 2D array."""
    r, clock, bw, _ = _dims(arch)
    tokens = enc.batch * n
    macs = tokens * (4 * enc.d * enc.d + 2 * enc.d * enc.s)
    t_comp = macs / (r * r * clock)
    weights = (4 * enc.d * enc.d + 2 * enc.d * enc.s) * WORD
    acts = tokens * (4 * enc.d + 2 * enc.d + enc.s * 2) * WORD
    t_mem = (weights + acts) / bw
    latency = max(t_comp, t_mem)
    energy = _energy(arch, {"mac": macs}, macs / r * 2, weights + acts, latency)
    return PhaseCost(latency, energy, t_comp / latency, {"macs": macs})


def compare(enc: Encoder, n: int, fusemax: Arch, flat: Arch) -> dict[str, float]:
    """One point of the FuseMax-vs-FLAT table: latencies, ratios and utilisations."""
    fm, fl = fusemax_attention(enc, n, fusemax), flat_attention(enc, n, flat)
    lin_fm, lin_fl = linear_layers(enc, n, fusemax), linear_layers(enc, n, flat)
    e2e_fm = fm.latency + lin_fm.latency
    e2e_fl = fl.latency + lin_fl.latency
    return {"attn_latency_fusemax_s": fm.latency, "attn_latency_flat_s": fl.latency,
            "attn_speedup": fl.latency / fm.latency,
            "attn_energy_ratio": fm.energy_total / fl.energy_total,
            "e2e_speedup": e2e_fl / e2e_fm,
            "e2e_energy_ratio": (fm.energy_total + lin_fm.energy_total) /
                                (fl.energy_total + lin_fl.energy_total),
            "util2d_fusemax": fm.util2d, "util2d_flat": fl.util2d}
