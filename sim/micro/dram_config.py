"""DRAM organisation, JEDEC timing and IDD currents in one flat, hashable record.

:class:`DramConfig` is what the cycle model (:mod:`sim.micro.dram`) runs on. It is built from an
arch ``dram`` section (:func:`sim.micro.dram_config.from_spec`) or from a DRAMsim3 INI file
(:mod:`sim.micro.dram_ini`). All timing fields are integers in memory-clock cycles (``tCK`` in
ns), currents in mA, ``VDD`` in V. The per-command energies follow the IDD method (Micron
TN-41-01) in DRAMsim3's form, which counts cycles where the method counts time:

* ACT+PRE pair: ``VDD * (IDD0*tRC - (IDD3N*tRAS + IDD2N*tRP)) * devices``
* RD / WR burst: ``VDD * (IDD4R|IDD4W - IDD3N) * burst_cycles * devices``
* REF (all-bank): ``VDD * (IDD5AB - IDD3N) * tRFC * devices``; per-bank REF with IDD5PB, tRFCb
* background per cycle: ``VDD * IDD3N * devices`` with a row open in the rank, ``IDD2N`` without

(mA x V x cycles, what DRAMsim3 reports as pJ and :meth:`DramConfig.energies_pJ` gives, so
that peer runs compare like for like: picojoules only at ``tCK`` = 1 ns; each cycle lasts
``tCK`` ns, so :meth:`DramConfig.joules` turns them into joules; the currents are per device,
``devices = bus_width / device_width`` chips switch together in a rank).

Command-to-command delays are tabulated by :func:`timing_table` for the five scopes a command
constrains (same bank, other banks of its bank group, other bank groups of its rank, other ranks,
the whole rank), following the JEDEC constraints the standards define (tRCD, tRP, tRAS, tRC,
tRRD_S/L, tCCD_S/L, tWTR_S/L, tRTP, tWR, tRFC, tRTRS, tPPD) the way DRAMsim3's ``timing.cc``
combines them, so that peer runs compare like for like.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False  # typing's flag without importing typing (5 ms of a short run)
if TYPE_CHECKING:  # numpy loads where used: a short `xpusim import dramsim3` never needs it
    import numpy as np

# command types (indices of the timing tables and of the per-bank "earliest issue" vectors)
READ, READ_P, WRITE, WRITE_P, ACT, PRE, REF_BANK, REF, SREF_ENTER, SREF_EXIT = range(10)
N_CMD = 10
COMMAND_NAMES = ("READ", "READ_P", "WRITE", "WRITE_P", "ACT", "PRE", "REFb", "REF", "SREFE",
                 "SREFX")
# timing-table scopes
SAME_BANK, OTHER_BANKS_SAME_BG, OTHER_BGS_SAME_RANK, OTHER_RANKS, SAME_RANK = range(5)

PROTOCOLS = ("DDR3", "DDR4", "DDR5", "LPDDR", "LPDDR3", "LPDDR4", "LPDDR5", "GDDR5", "GDDR5X",
             "GDDR6", "HBM", "HBM2", "HBM2E", "HBM3")
GDDR = ("GDDR5", "GDDR5X", "GDDR6")
HBM = ("HBM", "HBM2", "HBM2E", "HBM3")
FIELDS = ("ch", "ra", "bg", "ba", "ro", "co")
REFRESH_POLICIES = ("RANK_LEVEL_STAGGERED", "RANK_LEVEL_SIMULTANEOUS", "BANK_LEVEL_STAGGERED")


#: entries of a command or transaction queue at most (arch.plausible.DRAM_QUEUE_MAX: not
#: imported, this module loads without arch for ``xpusim import dramsim3``)
MAX_QUEUE = 4096


class DramConfigError(ValueError):
    """An inconsistent DRAM description (message names the field)."""


def log2_exact(value: int, name: str) -> int:
    """log2 of a power of two; raise :class:`DramConfigError` naming ``name`` otherwise."""
    if value < 1 or value & (value - 1):
        raise DramConfigError(f"{name}: expected a power of two, got {value}")
    return int(math.log2(value))


class DramConfig:
    """One memory system: ``channels`` independent controllers, each with ``ranks`` ranks of
    ``bankgroups x banks_per_group`` banks of ``rows`` rows; ``columns`` physical columns of
    ``device_width`` bits per row per device; ``bus_width`` bits per channel; bursts of ``BL``
    beats taking ``burst_cycle`` clock cycles. One request moves ``bus_width/8 * BL`` bytes.

    A frozen record built by keyword (``DramConfig(channels=2, CL=22)``; unset fields keep the
    defaults below), compared and hashed by every field but ``sources``. Written out rather than
    a dataclass: the ``dataclasses`` import (with ``inspect``) and the generated methods cost a
    short ``xpusim import dramsim3`` about 20 ms of CPU.
    """

    name: str = "dram"
    protocol: str = "DDR4"
    channels: int = 1
    ranks: int = 1
    bankgroups: int = 4
    banks_per_group: int = 4
    rows: int = 65536
    columns: int = 1024
    device_width: int = 8
    bus_width: int = 64
    BL: int = 8
    burst_cycle: int = 4
    tCK: float = 1.0  # ns
    # timing, memory-clock cycles
    AL: int = 0
    CL: int = 12
    CWL: int = 12
    tRCDRD: int = 10
    tRCDWR: int = 10
    tRP: int = 10
    tRAS: int = 24
    tRRD_S: int = 4
    tRRD_L: int = 4
    tFAW: int = 50
    tCCD_S: int = 4
    tCCD_L: int = 6
    tWTR_S: int = 5
    tWTR_L: int = 5
    tRTP: int = 5
    tWR: int = 10
    tRFC: int = 74
    tRFCb: int = 20
    tREFI: int = 7800
    tREFIb: int = 1950
    tRTRS: int = 2
    tPPD: int = 0
    t32AW: int = 330
    tCKESR: int = 12
    tXS: int = 432
    # power: V and mA per device
    VDD: float = 1.2
    IDD0: float = 48.0
    IDD2N: float = 34.0
    IDD2P: float = 25.0
    IDD3N: float = 43.0
    IDD4R: float = 135.0
    IDD4W: float = 123.0
    IDD5AB: float = 250.0
    IDD5PB: float = 5.0
    IDD6x: float = 31.0
    # controller
    address_mapping: str = "rochrababgco"
    queue_structure: str = "PER_BANK"
    row_buf_policy: str = "OPEN_PAGE"
    cmd_queue_size: int = 8
    trans_queue_size: int = 32
    unified_queue: bool = False
    write_drain_threshold: int = 8
    row_hit_cap: int = 4
    refresh_policy: str = "RANK_LEVEL_STAGGERED"
    dual_command_issue: bool = False
    sources: tuple[tuple[str, str], ...] = ()  # not compared

    def __init__(self, **values) -> None:
        unknown = values.keys() - _FIELD_SET
        if unknown:
            raise TypeError(f"DramConfig: unexpected field(s) {', '.join(sorted(unknown))}")
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self.__post_init__()
        key = tuple(getattr(self, n) for n in _COMPARED)  # frozen: compared and hashed once
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"cannot assign to field '{name}' (DramConfig is frozen; use "
                             "with_())")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}' (DramConfig is frozen)")

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self is other or (self._hash == other._hash and self._key == other._key)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):  # pickles and copies rebuild (string hashes differ per process)
        return (_make, ({n: getattr(self, n) for n in _FIELDS},))

    def __repr__(self) -> str:
        return f"DramConfig({', '.join(f'{n}={getattr(self, n)!r}' for n in _FIELDS)})"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise DramConfigError(f"protocol: expected one of {', '.join(PROTOCOLS)}, "
                                  f"got '{self.protocol}'")
        for name in ("channels", "ranks", "bankgroups", "banks_per_group", "rows", "columns",
                     "device_width", "bus_width", "BL"):
            log2_exact(getattr(self, name), name)
        if self.bus_width % self.device_width:
            raise DramConfigError(f"bus_width: {self.bus_width} is not a multiple of "
                                  f"device_width {self.device_width}")
        if self.columns < self.BL:
            raise DramConfigError(f"columns: {self.columns} is fewer than one burst ({self.BL})")
        if self.queue_structure not in ("PER_BANK", "PER_RANK"):
            raise DramConfigError("queue_structure: expected PER_BANK or PER_RANK, got "
                                  f"'{self.queue_structure}'")
        if self.row_buf_policy not in ("OPEN_PAGE", "CLOSE_PAGE"):
            raise DramConfigError("row_buf_policy: expected OPEN_PAGE or CLOSE_PAGE, got "
                                  f"'{self.row_buf_policy}'")
        if self.refresh_policy not in REFRESH_POLICIES:
            raise DramConfigError(f"refresh_policy: expected one of {', '.join(REFRESH_POLICIES)}"
                                  f", got '{self.refresh_policy}'")
        for name in ("cmd_queue_size", "trans_queue_size"):   # the kernel allocates them
            if not 1 <= getattr(self, name) <= MAX_QUEUE:
                raise DramConfigError(f"{name}: expected 1..{MAX_QUEUE:,}, "
                                      f"got {getattr(self, name):,}")
        if self.tCK <= 0:
            raise DramConfigError(f"tCK: expected > 0 ns, got {self.tCK}")
        for name in ("tREFI", "tREFIb"):
            if getattr(self, name) < 1:
                raise DramConfigError(f"{name}: expected >= 1 cycle")
        if self.refresh_interval < 1:
            raise DramConfigError(f"tREFI: {self.tREFI} cycles over {self.ranks} ranks leaves a "
                                  "refresh interval below one cycle")
        self.field_positions()  # validates the mapping string

    # --- derived organisation ----------------------------------------------------------------
    @property
    def banks(self) -> int:
        """Banks per rank."""
        return self.bankgroups * self.banks_per_group

    @property
    def devices_per_rank(self) -> int:
        return self.bus_width // self.device_width

    @property
    def request_bytes(self) -> int:
        """Bytes one read or write request moves (one burst on the channel)."""
        return self.bus_width // 8 * self.BL

    @property
    def page_bytes(self) -> int:
        """Row-buffer size per rank (all devices of the rank together), bytes."""
        return self.columns * self.device_width // 8 * self.devices_per_rank

    @property
    def channel_bytes(self) -> int:
        return self.page_bytes * self.rows * self.banks * self.ranks

    @property
    def capacity_bytes(self) -> int:
        return self.channel_bytes * self.channels

    @property
    def is_gddr(self) -> bool:
        return self.protocol in GDDR

    @property
    def is_hbm(self) -> bool:
        return self.protocol in HBM

    @property
    def uses_ppd(self) -> bool:
        """tPPD (PRE to PRE) applies to GDDR and LPDDR4/5 (DRAMsim3 models it for these)."""
        return self.is_gddr or self.protocol in ("LPDDR4", "LPDDR5")

    @property
    def RL(self) -> int:
        return self.AL + self.CL

    @property
    def WL(self) -> int:
        return self.AL + self.CWL

    @property
    def read_delay(self) -> int:
        """Cycles from READ command to the last data beat (RL + burst)."""
        return self.RL + self.burst_cycle

    @property
    def write_delay(self) -> int:
        return self.WL + self.burst_cycle

    @property
    def tRC(self) -> int:
        return self.tRAS + self.tRP

    @property
    def refresh_interval(self) -> int:
        """Cycles between refresh insertions under the refresh policy."""
        if self.refresh_policy == "RANK_LEVEL_SIMULTANEOUS":
            return self.tREFI
        if self.refresh_policy == "BANK_LEVEL_STAGGERED":
            return self.tREFIb
        return self.tREFI // self.ranks

    @property
    def peak_bandwidth(self) -> float:
        """Peak data bandwidth of all channels in bytes/s (one request per burst_cycle)."""
        if self.burst_cycle == 0:
            return float("inf")
        per_channel = self.request_bytes / (self.burst_cycle * self.tCK * 1e-9)
        return per_channel * self.channels

    # --- address mapping ---------------------------------------------------------------------
    def field_widths(self) -> dict[str, int]:
        return {"ch": log2_exact(self.channels, "channels"),
                "ra": log2_exact(self.ranks, "ranks"),
                "bg": log2_exact(self.bankgroups, "bankgroups"),
                "ba": log2_exact(self.banks_per_group, "banks_per_group"),
                "ro": log2_exact(self.rows, "rows"),
                "co": log2_exact(self.columns, "columns") - log2_exact(self.BL, "BL")}

    def field_positions(self) -> dict[str, int]:
        """Bit position of each field in ``addr >> shift_bits`` (last field = lowest bits)."""
        m = self.address_mapping
        tokens = [m[i:i + 2] for i in range(0, len(m), 2)]
        if len(m) != 12 or sorted(tokens) != sorted(FIELDS):
            raise DramConfigError(f"address_mapping: expected the six two-letter fields "
                                  f"{', '.join(FIELDS)} each once (e.g. 'rochrababgco'), got '{m}'")
        widths = self.field_widths()
        pos, out = 0, {}
        for tok in reversed(tokens):
            out[tok] = pos
            pos += widths[tok]
        return out

    @property
    def shift_bits(self) -> int:
        return log2_exact(self.request_bytes, "bus_width/8*BL")

    def decode(self, addrs: np.ndarray) -> dict[str, np.ndarray]:
        """Vectorised address mapping: byte addresses -> ch, ra, bg, ba, ro, co arrays."""
        import numpy as np

        a = np.asarray(addrs, dtype=np.uint64) >> np.uint64(self.shift_bits)
        widths, pos = self.field_widths(), self.field_positions()
        return {f: ((a >> np.uint64(pos[f])) & np.uint64((1 << widths[f]) - 1)).astype(np.int64)
                for f in FIELDS}

    def encode(self, ch: int = 0, ra: int = 0, bg: int = 0, ba: int = 0, ro: int = 0,
               co: int = 0) -> int:
        """The byte address of a (channel, rank, bank group, bank, row, column-burst) tuple."""
        pos = self.field_positions()
        vals = {"ch": ch, "ra": ra, "bg": bg, "ba": ba, "ro": ro, "co": co}
        widths = self.field_widths()
        out = 0
        for f, v in vals.items():
            if not 0 <= v < (1 << widths[f]):
                raise DramConfigError(f"{f}={v} outside its {widths[f]}-bit field")
            out |= v << pos[f]
        return out << self.shift_bits

    # --- energy (pJ) -------------------------------------------------------------------------
    def energies_pJ(self) -> dict[str, float]:
        """Per-command and per-cycle energies by the IDD method in DRAMsim3's units, mA x V x
        cycles (pJ where ``tCK`` is 1 ns; :meth:`joules` converts; module doc)."""
        dev = float(self.devices_per_rank)
        v = self.VDD
        return {
            "act": v * (self.IDD0 * self.tRC - (self.IDD3N * self.tRAS + self.IDD2N * self.tRP))
            * dev,
            "read": v * (self.IDD4R - self.IDD3N) * self.burst_cycle * dev,
            "write": v * (self.IDD4W - self.IDD3N) * self.burst_cycle * dev,
            "ref": v * (self.IDD5AB - self.IDD3N) * self.tRFC * dev,
            "refb": v * (self.IDD5PB - self.IDD3N) * self.tRFCb * dev,
            "act_standby": v * self.IDD3N * dev,
            "pre_standby": v * self.IDD2N * dev,
        }

    def joules(self, energy: float) -> float:
        """Joules of an energy in :meth:`energies_pJ`'s units (mA x V x cycles of ``tCK`` ns:
        1 unit = ``tCK`` pJ)."""
        return energy * self.tCK * 1e-12

    def with_(self, **changes) -> DramConfig:
        """A copy with fields changed (validated again)."""
        return DramConfig(**{**{n: getattr(self, n) for n in _FIELDS}, **changes})


def _make(fields: dict) -> DramConfig:
    return DramConfig(**fields)


#: the fields in declaration order; those compared and hashed
_FIELDS = tuple(DramConfig.__annotations__)
_FIELD_SET = frozenset(_FIELDS)
_COMPARED = tuple(n for n in _FIELDS if n != "sources")


def timing_table(cfg: DramConfig) -> np.ndarray:
    """Delays ``T[scope, issued, target]`` in cycles (-1: no constraint), int64 array of shape
    (5, N_CMD, N_CMD): :func:`timing_flat` as an array.

    After a command of type ``issued`` at cycle ``t``, a command of type ``target`` may issue to
    a bank in ``scope`` (relative to the issuing bank) no earlier than ``t + T``.
    """
    import numpy as np

    return np.array(timing_flat(cfg), dtype=np.int64).reshape(5, N_CMD, N_CMD)


def timing_flat(cfg: DramConfig) -> list[int]:
    """:func:`timing_table` as a flat list in C order (``scope*N_CMD*N_CMD + issued*N_CMD +
    target``), built without numpy."""
    bc = cfg.burst_cycle
    rtr_l = max(bc, cfg.tCCD_L)
    rtr_s = max(bc, cfg.tCCD_S)
    rtr_o = bc + cfg.tRTRS
    rtw = cfg.RL + bc - cfg.WL + cfg.tRTRS
    rtw_o = cfg.read_delay + bc + cfg.tRTRS - cfg.write_delay
    rtp = cfg.AL + cfg.tRTP
    rp_act = cfg.AL + bc + cfg.tRTP + cfg.tRP
    wtr_l = cfg.write_delay + cfg.tWTR_L
    wtr_s = cfg.write_delay + cfg.tWTR_S
    wtr_o = cfg.write_delay + bc + cfg.tRTRS - cfg.read_delay
    wtw_l = max(bc, cfg.tCCD_L)
    wtw_s = max(bc, cfg.tCCD_S)
    wtw_o = bc
    wtp = cfg.WL + bc + cfg.tWR
    rd_act = rtp + cfg.tRP
    wr_act = wtp + cfg.tRP
    act_act_l, act_act_s = cfg.tRRD_L, cfg.tRRD_S
    if cfg.bankgroups == 1:  # no bank groups: the short constraints apply everywhere
        rtr_l, wtr_l, wtw_l, act_act_l = rtr_s, wtr_s, wtw_s, cfg.tRRD_S
    act_rd = cfg.tRCDRD - (0 if (cfg.is_gddr or cfg.is_hbm) else cfg.AL)
    act_wr = cfg.tRCDWR - (0 if (cfg.is_gddr or cfg.is_hbm) else cfg.AL)

    T = [-1] * (5 * N_CMD * N_CMD)

    def put(scope: int, issued: int, pairs: dict[int, int]) -> None:
        for target, delay in pairs.items():
            T[(scope * N_CMD + issued) * N_CMD + target] = delay

    rd_others_l = {READ: rtr_l, WRITE: rtw, READ_P: rtr_l, WRITE_P: rtw}
    rd_others_s = {READ: rtr_s, WRITE: rtw, READ_P: rtr_s, WRITE_P: rtw}
    rd_others_o = {READ: rtr_o, WRITE: rtw_o, READ_P: rtr_o, WRITE_P: rtw_o}
    wr_others_l = {READ: wtr_l, WRITE: wtw_l, READ_P: wtr_l, WRITE_P: wtw_l}
    wr_others_s = {READ: wtr_s, WRITE: wtw_s, READ_P: wtr_s, WRITE_P: wtw_s}
    wr_others_o = {READ: wtr_o, WRITE: wtw_o, READ_P: wtr_o, WRITE_P: wtw_o}
    # READ
    put(SAME_BANK, READ, {**rd_others_l, PRE: rtp})
    put(OTHER_BANKS_SAME_BG, READ, rd_others_l)
    put(OTHER_BGS_SAME_RANK, READ, rd_others_s)
    put(OTHER_RANKS, READ, rd_others_o)
    # WRITE
    put(SAME_BANK, WRITE, {**wr_others_l, PRE: wtp})
    put(OTHER_BANKS_SAME_BG, WRITE, wr_others_l)
    put(OTHER_BGS_SAME_RANK, WRITE, wr_others_s)
    put(OTHER_RANKS, WRITE, wr_others_o)
    # READ with auto-precharge
    put(SAME_BANK, READ_P, {ACT: rp_act, REF: rd_act, REF_BANK: rd_act, SREF_ENTER: rd_act})
    put(OTHER_BANKS_SAME_BG, READ_P, rd_others_l)
    put(OTHER_BGS_SAME_RANK, READ_P, rd_others_s)
    put(OTHER_RANKS, READ_P, rd_others_o)
    # WRITE with auto-precharge
    put(SAME_BANK, WRITE_P, {ACT: wr_act, REF: wr_act, REF_BANK: wr_act, SREF_ENTER: wr_act})
    put(OTHER_BANKS_SAME_BG, WRITE_P, wr_others_l)
    put(OTHER_BGS_SAME_RANK, WRITE_P, wr_others_s)
    put(OTHER_RANKS, WRITE_P, wr_others_o)
    # ACTIVATE
    put(SAME_BANK, ACT, {ACT: cfg.tRC, READ: act_rd, WRITE: act_wr, READ_P: act_rd,
                         WRITE_P: act_wr, PRE: cfg.tRAS})
    put(OTHER_BANKS_SAME_BG, ACT, {ACT: act_act_l, REF_BANK: cfg.tRC})
    put(OTHER_BGS_SAME_RANK, ACT, {ACT: act_act_s, REF_BANK: cfg.tRC})
    # PRECHARGE
    put(SAME_BANK, PRE, {ACT: cfg.tRP, REF: cfg.tRP, REF_BANK: cfg.tRP, SREF_ENTER: cfg.tRP})
    if cfg.uses_ppd:
        put(OTHER_BANKS_SAME_BG, PRE, {PRE: cfg.tPPD})
        put(OTHER_BGS_SAME_RANK, PRE, {PRE: cfg.tPPD})
    # per-bank refresh (DRAMsim3 tabulates its own-bank delay under the rank scope, which
    # a bank-scoped command never applies; mirrored for compatibility)
    put(SAME_RANK, REF_BANK, {ACT: cfg.tRFCb, REF: cfg.tRFCb, REF_BANK: cfg.tRFCb,
                              SREF_ENTER: cfg.tRFCb})
    put(OTHER_BANKS_SAME_BG, REF_BANK, {ACT: cfg.tRFC, REF_BANK: cfg.tREFI})
    put(OTHER_BGS_SAME_RANK, REF_BANK, {ACT: cfg.tRFC, REF_BANK: cfg.tREFI})
    # all-bank refresh and self refresh (rank scope)
    put(SAME_RANK, REF, {ACT: cfg.tRFC, REF: cfg.tRFC, SREF_ENTER: cfg.tRFC})
    put(SAME_RANK, SREF_ENTER, {SREF_EXIT: cfg.tCKESR})
    put(SAME_RANK, SREF_EXIT, {ACT: cfg.tXS, REF: cfg.tXS, REF_BANK: cfg.tXS,
                               SREF_ENTER: cfg.tXS})
    return T


def config_from_spec(spec, name: str = "dram", channels: int | None = None) -> DramConfig:
    """A :class:`DramConfig` from an arch ``dram`` section (:class:`arch.sections.dram.DramSpec`).

    ``channels`` overrides the channel count (default: the section's when a power of two, else
    the largest power of two below it; channels are independent, so per-channel figures scale).
    """
    t, p, c = spec.timing, spec.power, spec.controller
    if channels is None:
        channels = spec.channels
        if channels & (channels - 1):
            channels = 1 << (channels.bit_length() - 1)
    try:
        return DramConfig(
            name=name, protocol=spec.protocol, channels=channels, ranks=spec.ranks,
            bankgroups=spec.bankgroups, banks_per_group=spec.banks_per_group, rows=spec.rows,
            columns=spec.columns, device_width=spec.device_width, bus_width=spec.bus_width,
            BL=spec.burst_length, burst_cycle=spec.burst_cycles, tCK=spec.tCK * 1e9,
            AL=t.AL or 0, CL=t.CL, CWL=t.CWL, tRCDRD=t.tRCDRD, tRCDWR=t.tRCDWR, tRP=t.tRP,
            tRAS=t.tRAS, tRRD_S=t.tRRD_S, tRRD_L=t.tRRD_L, tFAW=t.tFAW, tCCD_S=t.tCCD_S,
            tCCD_L=t.tCCD_L, tWTR_S=t.tWTR_S, tWTR_L=t.tWTR_L, tRTP=t.tRTP, tWR=t.tWR,
            tRFC=t.tRFC, tRFCb=t.tRFCb or max(1, t.tRFC // 2), tREFI=t.tREFI,
            tREFIb=t.tREFIb or max(1, t.tREFI // max(1, spec.banks)), tRTRS=t.tRTRS,
            tPPD=t.tPPD or 0, t32AW=t.t32AW or 8 * t.tFAW,
            VDD=p.VDD, IDD0=p.IDD0, IDD2N=p.IDD2N, IDD3N=p.IDD3N, IDD4R=p.IDD4R, IDD4W=p.IDD4W,
            IDD5AB=p.IDD5AB, IDD5PB=p.IDD5PB or p.IDD3N,
            address_mapping=c.address_mapping, queue_structure=c.queue_structure,
            row_buf_policy=c.row_buf_policy, cmd_queue_size=c.cmd_queue_size,
            trans_queue_size=c.trans_queue_size, refresh_policy=c.refresh_policy,
            dual_command_issue=c.dual_command_issue, row_hit_cap=c.row_hit_cap,
            write_drain_threshold=c.write_drain_threshold)
    except DramConfigError as exc:
        raise DramConfigError(f"dram.{exc}") from None


def config_from_arch(arch, channels: int | None = None) -> DramConfig:
    """The :class:`DramConfig` of an arch that carries a ``dram`` section."""
    if not arch.has("dram"):
        raise DramConfigError(f"arch '{arch.name}' has no dram section")
    return config_from_spec(arch.dram, arch.name, channels)
