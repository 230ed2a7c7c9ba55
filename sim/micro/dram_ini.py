"""Read DRAMsim3's own INI configs into a :class:`~sim.micro.dram_config.DramConfig`.

The INI keys, their defaults and the derived quantities follow DRAMsim3's ``Config`` class
(umd-memsys/DRAMsim3, ``configuration.cc``), so a DRAMsim3 config means the same machine here:

* ``burst_cycle`` is ``BL/2`` (``BL/4`` GDDR5, ``BL/8`` GDDR5X, ``BL/16`` GDDR6);
* DRAMsim3 counts HBM columns in 2-prefetch units and GDDR columns in bursts: the physical
  column count is ``columns*2`` (HBM) or ``columns*BL`` (GDDR);
* ranks per channel = ``channel_size`` (MB) / rank size (``columns*device_width/8 * rows *
  banks * bus_width/device_width``), at least one;
* ``bankgroup_enable = false`` folds all banks into one group;
* DDR/LPDDR take ``tRCD`` for both ACT->RD and ACT->WR; GDDR/HBM take ``tRCDRD`` / ``tRCDWR``;
* HBM issues a row and a column command in the same cycle (``hbm_dual_cmd``, default on).

Errors name the file, the section and the key (:class:`~sim.devices.base.SimError`).
"""

from __future__ import annotations

import re
from pathlib import Path

from sim.micro.dram_config import DramConfig, DramConfigError

#: the largest integer an INI value may hold: DRAMsim3's configuration fields are C ints
INT_MAX = 2**31 - 1


def _sim_error(msg: str) -> Exception:
    """``sim.devices.base.SimError(msg)``, imported only when raised: that module loads arch and
    workloads (about 0.05 CPU s of a short ``xpusim import dramsim3``)."""
    from sim.devices.base import SimError

    return SimError(msg)


_PROTOCOLS = {"DDR3", "DDR4", "GDDR5", "GDDR5X", "GDDR6", "LPDDR", "LPDDR3", "LPDDR4", "HBM",
              "HBM2", "DDR5", "LPDDR5", "HBM3"}


def parse_ini(path: str | Path) -> dict[str, dict[str, str]]:
    """INI text -> {section: {key: raw value}} with inih's rules (keys case-insensitive,
    ``;``/``#`` full-line comments, `` ;`` inline comments)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _sim_error(f"{path}: cannot read config ({exc.strerror or exc})") from None
    out: dict[str, dict[str, str]] = {}
    section = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        line = re.split(r"\s;", line, maxsplit=1)[0].strip()
        if line.startswith("["):
            if not line.endswith("]"):
                raise _sim_error(f"{path}: line {lineno}: expected a '[section]' header, "
                               f"got '{raw.strip()}'")
            section = line[1:-1].strip().lower()
            out.setdefault(section, {})
            continue
        if "=" not in line and ":" not in line:
            raise _sim_error(f"{path}: line {lineno}: expected 'key = value', got '{raw.strip()}'")
        key, value = re.split(r"[=:]", line, maxsplit=1)
        out.setdefault(section, {})[key.strip().lower()] = value.strip()
    return out


class _Reader:
    def __init__(self, data: dict[str, dict[str, str]], path: Path):
        self.data = data
        self.path = path

    def raw(self, sec: str, key: str) -> str | None:
        return self.data.get(sec, {}).get(key.lower())

    def int(self, sec: str, key: str, default: int) -> int:
        raw = self.raw(sec, key)
        if raw is None:
            return default
        m = re.match(r"[+-]?(0[xX][0-9a-fA-F]+|\d+)", raw)
        if not m:
            raise _sim_error(f"{self.path}: [{sec}] {key}: expected an integer, got '{raw}'")
        value = int(m.group(0), 0)
        if abs(value) > INT_MAX:   # DRAMsim3 reads these into C ints
            raise _sim_error(f"{self.path}: [{sec}] {key}: expected an integer of at most "
                             f"{INT_MAX:,} (DRAMsim3 reads a 32-bit int), got {raw[:40]}")
        return value

    def real(self, sec: str, key: str, default: float) -> float:
        raw = self.raw(sec, key)
        if raw is None:
            return default
        m = re.match(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)", raw)
        if not m:
            raise _sim_error(f"{self.path}: [{sec}] {key}: expected a number, got '{raw}'")
        return float(m.group(0))

    def str(self, sec: str, key: str, default: str) -> str:
        raw = self.raw(sec, key)
        return default if raw is None else raw

    def bool(self, sec: str, key: str, default: bool) -> bool:
        raw = self.raw(sec, key)
        if raw is None:
            return default
        low = raw.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        return default


def load_dramsim3_ini(path: str | Path) -> DramConfig:
    """A DRAMsim3 INI config as a :class:`DramConfig` (raises :class:`SimError` when invalid)."""
    path = Path(path)
    if not path.is_file():
        raise _sim_error(f"{path}: config file not found")
    r = _Reader(parse_ini(path), path)
    protocol = r.str("dram_structure", "protocol", "DDR3")
    if protocol not in _PROTOCOLS:
        raise _sim_error(f"{path}: [dram_structure] protocol: expected one of "
                       f"{', '.join(sorted(_PROTOCOLS))}, got '{protocol}'")
    gddr = protocol in ("GDDR5", "GDDR5X", "GDDR6")
    hbm = protocol in ("HBM", "HBM2", "HBM3")
    bankgroups = r.int("dram_structure", "bankgroups", 2)
    banks_per_group = r.int("dram_structure", "banks_per_group", 2)
    if not r.bool("dram_structure", "bankgroup_enable", True):
        banks_per_group *= bankgroups
        bankgroups = 1
    rows = r.int("dram_structure", "rows", 1 << 16)
    columns = r.int("dram_structure", "columns", 1 << 10)
    device_width = r.int("dram_structure", "device_width", 8)
    BL = r.int("dram_structure", "BL", 8)
    dual = r.bool("dram_structure", "hbm_dual_cmd", True) and hbm
    divisor = {"GDDR5": 4, "GDDR5X": 8, "GDDR6": 16}.get(protocol, 2)
    if BL < 0:
        raise _sim_error(f"{path}: [dram_structure] BL: expected >= 0, got {BL}")
    burst_cycle = BL // divisor
    if BL == 0:  # DRAMsim3: BL = 0 simulates perfect bandwidth
        BL = 4 if hbm and divisor == 2 else 8
    if gddr:
        columns *= BL
    elif hbm:
        columns *= 2

    channel_size = r.int("system", "channel_size", 1024)
    channels = r.int("system", "channels", 1)
    bus_width = r.int("system", "bus_width", 64)
    if device_width <= 0 or bus_width <= 0:
        raise _sim_error(f"{path}: [system] bus_width / [dram_structure] device_width: "
                       "expected positive integers")
    devices_per_rank = bus_width // device_width
    page_size = columns * device_width // 8
    megs_per_bank = page_size * (rows // 1024) // 1024
    megs_per_rank = megs_per_bank * bankgroups * banks_per_group * devices_per_rank
    ranks = 1 if (megs_per_rank <= 0 or megs_per_rank > channel_size) \
        else channel_size // megs_per_rank

    if r.bool("system", "enable_self_refresh", False):
        raise _sim_error(f"{path}: [system] enable_self_refresh: self-refresh entry is not "
                       "modelled; set it to false")
    queue_structure = r.str("system", "queue_structure", "PER_BANK")
    tRCD = r.int("timing", "tRCD", 10)
    try:
        return DramConfig(
            name=path.stem, protocol=protocol, channels=channels, ranks=ranks,
            bankgroups=bankgroups, banks_per_group=banks_per_group, rows=rows, columns=columns,
            device_width=device_width, bus_width=bus_width, BL=BL, burst_cycle=burst_cycle,
            tCK=r.real("timing", "tCK", 1.0), AL=r.int("timing", "AL", 0),
            CL=r.int("timing", "CL", 12), CWL=r.int("timing", "CWL", 12),
            tRCDRD=r.int("timing", "tRCDRD", 24) if (gddr or hbm) else tRCD,
            tRCDWR=r.int("timing", "tRCDWR", 20) if (gddr or hbm) else tRCD,
            tRP=r.int("timing", "tRP", 10), tRAS=r.int("timing", "tRAS", 24),
            tRRD_S=r.int("timing", "tRRD_S", 4), tRRD_L=r.int("timing", "tRRD_L", 4),
            tFAW=r.int("timing", "tFAW", 50), tCCD_S=r.int("timing", "tCCD_S", 4),
            tCCD_L=r.int("timing", "tCCD_L", 6), tWTR_S=r.int("timing", "tWTR_S", 5),
            tWTR_L=r.int("timing", "tWTR_L", 5), tRTP=r.int("timing", "tRTP", 5),
            tWR=r.int("timing", "tWR", 10), tRFC=r.int("timing", "tRFC", 74),
            tRFCb=r.int("timing", "tRFCb", 20), tREFI=r.int("timing", "tREFI", 7800),
            tREFIb=r.int("timing", "tREFIb", 1950), tRTRS=r.int("timing", "tRTRS", 2),
            tPPD=r.int("timing", "tPPD", 0), t32AW=r.int("timing", "t32AW", 330),
            tCKESR=r.int("timing", "tCKESR", 12), tXS=r.int("timing", "tXS", 432),
            VDD=r.real("power", "VDD", 1.2), IDD0=r.real("power", "IDD0", 48),
            IDD2N=r.real("power", "IDD2N", 34), IDD2P=r.real("power", "IDD2P", 25),
            IDD3N=r.real("power", "IDD3N", 43), IDD4R=r.real("power", "IDD4R", 135),
            IDD4W=r.real("power", "IDD4W", 123), IDD5AB=r.real("power", "IDD5AB", 250),
            IDD5PB=r.real("power", "IDD5PB", 5), IDD6x=r.real("power", "IDD6x", 31),
            address_mapping=r.str("system", "address_mapping", "chrobabgraco"),
            queue_structure=queue_structure,
            row_buf_policy=r.str("system", "row_buf_policy", "OPEN_PAGE"),
            cmd_queue_size=r.int("system", "cmd_queue_size", 16),
            trans_queue_size=r.int("system", "trans_queue_size", 32),
            unified_queue=r.bool("system", "unified_queue", False),
            refresh_policy=r.str("system", "refresh_policy", "RANK_LEVEL_STAGGERED"),
            dual_command_issue=dual,
        )
    except DramConfigError as exc:
        raise _sim_error(f"{path}: {exc}") from None
