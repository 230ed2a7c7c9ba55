"""Read DRAMsim3 trace files: one request per line, ``ADDRESS OPERATION CYCLE``.

``ADDRESS`` is hexadecimal (``0x`` optional), ``OPERATION`` is a write when it is ``WRITE``,
``write``, ``P_MEM_WR`` or ``BOFF`` (DRAMsim3's write set) and a read otherwise, ``CYCLE`` the
memory cycle the request becomes available (decimal). Returns numpy arrays and whether the file
ends with a newline (DRAMsim3's reader behaves differently at the end of such files).

Plain files (ASCII, hex addresses of at most 16 digits with an optional ``0x``, cycles of at
most 18 decimal digits) are parsed in one compiled pass over the bytes; anything else (signs,
underscores, longer numbers, non-ASCII bytes, malformed lines) goes through the Python reader,
which gives the same arrays or names the bad line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

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
        data = path.read_bytes()
    except OSError as exc:
        raise SimError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    ok, n, addrs, writes, times = _parse_plain(np.frombuffer(data, dtype=np.uint8))
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


@njit(cache=True, inline="always")
def _space(c: int) -> bool:
    # the ASCII characters str.split() separates on: \t \n \v \f \r, \x1c-\x1f, space
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@njit(cache=True)
def _parse_plain(buf):  # pragma: no cover - compiled; checked against _read_text in the tests
    """One pass over the bytes of a plain trace: (ok, requests, addrs, writes, times); ok is
    False for anything the Python reader must handle (see the module docstring)."""
    n = buf.shape[0]
    cap = n // 5 + 1  # a request takes at least 5 bytes: "A R T" plus a separator
    addrs = np.empty(cap, np.uint64)
    writes = np.zeros(cap, np.int8)
    times = np.empty(cap, np.int64)
    i = 0
    k = 0
    while True:
        while i < n and _space(buf[i]):
            i += 1
        if i >= n:
            break
        start = i
        while i < n and not _space(buf[i]):
            if buf[i] >= 128:
                return False, 0, addrs, writes, times
            i += 1
        r = k // 3
        field = k - 3 * r
        if field == 0:
            if i - start >= 2 and buf[start] == 48 and (buf[start + 1] == 120
                                                        or buf[start + 1] == 88):
                start += 2  # 0x / 0X
            if i - start < 1 or i - start > 16:
                return False, 0, addrs, writes, times
            v = np.uint64(0)
            for j in range(start, i):
                c = buf[j]
                if 48 <= c <= 57:
                    d = c - 48
                elif 97 <= c <= 102:
                    d = c - 87
                elif 65 <= c <= 70:
                    d = c - 55
                else:
                    return False, 0, addrs, writes, times
                v = (v << np.uint64(4)) | np.uint64(d)
            addrs[r] = v
        elif field == 1:
            m = i - start
            w = False
            if m == 5:  # WRITE or write
                w = ((buf[start] == 87 and buf[start + 1] == 82 and buf[start + 2] == 73
                      and buf[start + 3] == 84 and buf[start + 4] == 69)
                     or (buf[start] == 119 and buf[start + 1] == 114 and buf[start + 2] == 105
                         and buf[start + 3] == 116 and buf[start + 4] == 101))
            elif m == 4:  # BOFF
                w = (buf[start] == 66 and buf[start + 1] == 79 and buf[start + 2] == 70
                     and buf[start + 3] == 70)
            elif m == 8:  # P_MEM_WR
                w = (buf[start] == 80 and buf[start + 1] == 95 and buf[start + 2] == 77
                     and buf[start + 3] == 69 and buf[start + 4] == 77 and buf[start + 5] == 95
                     and buf[start + 6] == 87 and buf[start + 7] == 82)
            writes[r] = 1 if w else 0
        else:
            if i - start > 18:
                return False, 0, addrs, writes, times
            t = 0
            for j in range(start, i):
                c = buf[j]
                if c < 48 or c > 57:
                    return False, 0, addrs, writes, times
                t = t * 10 + (c - 48)
            times[r] = t
        k += 1
    if k % 3:
        return False, 0, addrs, writes, times
    return True, k // 3, addrs, writes, times
