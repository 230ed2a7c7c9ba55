"""Read DRAMsim3 trace files: one request per line, ``ADDRESS OPERATION CYCLE``.

``ADDRESS`` is hexadecimal (``0x`` optional), ``OPERATION`` is a write when it is ``WRITE``,
``write``, ``P_MEM_WR`` or ``BOFF`` (DRAMsim3's write set) and a read otherwise, ``CYCLE`` the
memory cycle the request becomes available (decimal). Returns numpy arrays and whether the file
ends with a newline (DRAMsim3's reader behaves differently at the end of such files).

Plain files (ASCII, hex addresses of at most 16 digits with an optional ``0x``, cycles of at
most 18 decimal digits) are parsed in one compiled pass over the bytes; anything else (signs,
underscores, longer numbers, non-ASCII bytes, malformed lines) goes through the Python reader,
which gives the same arrays or names the bad line. The compiled pass is
:func:`sim.micro.dram_trace._parse_plain`, taken from :func:`sim.micro.dram_aot.kernels` (the
ahead-of-time build when there is one: this module imports no numba).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.micro.dram_aot import kernels


def _sim_error(msg: str) -> Exception:
    """``sim.devices.base.SimError(msg)``, imported only when raised: that module loads arch and
    workloads (about 0.05 CPU s of a short ``xpusim import dramsim3``)."""
    from sim.devices.base import SimError

    return SimError(msg)


WRITE_OPS = frozenset({"WRITE", "write", "P_MEM_WR", "BOFF"})


@dataclass
class DramTrace:
    """Requests of a trace: byte addresses, write flags, arrival cycles."""

    addrs: np.ndarray
    writes: np.ndarray
    times: np.ndarray
    trailing_newline: bool

    def __len__(self) -> int:
        return int(self.addrs.shape[0])


def read_trace(path: str | Path) -> DramTrace:
    """Parse a DRAMsim3 trace; a malformed line raises
    :class:`~sim.devices.base.SimError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _sim_error(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    ok, n, addrs, writes, times = kernels().parse_plain(np.frombuffer(data, dtype=np.uint8))
    if ok:
        return DramTrace(addrs[:n].copy(), writes[:n].copy(), times[:n].copy(),
                         data.endswith((b"\n", b"\r")))
    return _read_text(path, data.decode("ascii", errors="replace"))


def _read_text(path: Path, text: str) -> DramTrace:
    """The general reader (``str.split`` and Python ``int``), for files the fast pass declines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as read_text's newline mode
    tokens = text.split()
    if len(tokens) % 3:
        _locate_bad_line(path, text)
    n = len(tokens) // 3
    try:
        addrs = np.array([int(a, 16) for a in tokens[0::3]], dtype=np.uint64)
        writes = np.array([op in WRITE_OPS for op in tokens[1::3]], dtype=np.int8)
        times = np.array([int(t) for t in tokens[2::3]], dtype=np.int64)
    except (ValueError, OverflowError):
        _locate_bad_line(path, text)
    if n == 0:
        addrs, writes, times = (np.zeros(0, np.uint64), np.zeros(0, np.int8),
                                np.zeros(0, np.int64))
    if n and np.any(times < 0):
        raise _sim_error(f"{path}: request {int(np.argmax(times < 0)) + 1}: negative cycle")
    return DramTrace(addrs, writes, times, text.endswith(("\n", "\r")))


def _locate_bad_line(path: Path, text: str) -> None:
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        ok = len(parts) == 3
        if ok:
            try:
                int(parts[0], 16)
                int(parts[2])
                ok = int(parts[2]) >= 0
            except ValueError:
                ok = False
        if not ok:
            raise _sim_error(f"{path}: line {lineno}: expected 'HEX_ADDRESS READ|WRITE CYCLE', "
                           f"got '{line.strip()[:60]}'")
    raise _sim_error(f"{path}: expected lines of 'HEX_ADDRESS READ|WRITE CYCLE'")
