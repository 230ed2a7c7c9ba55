"""Read DRAMsim3 trace files: one request per line, ``ADDRESS OPERATION CYCLE``.

``ADDRESS`` is hexadecimal (``0x`` optional), ``OPERATION`` is a write when it is ``WRITE``,
``write``, ``P_MEM_WR`` or ``BOFF`` (DRAMsim3's write set) and a read otherwise, ``CYCLE`` the
memory cycle the request becomes available (decimal). Returns numpy arrays and whether the file
ends with a newline (DRAMsim3's reader behaves differently at the end of such files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.devices.base import SimError

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
    """Parse a DRAMsim3 trace; a malformed line raises :class:`SimError` naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise SimError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
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
        raise SimError(f"{path}: request {int(np.argmax(times < 0)) + 1}: negative cycle")
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
            raise SimError(f"{path}: line {lineno}: expected 'HEX_ADDRESS READ|WRITE CYCLE', "
                           f"got '{line.strip()[:60]}'")
    raise SimError(f"{path}: expected lines of 'HEX_ADDRESS READ|WRITE CYCLE'")
