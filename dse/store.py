"""The crash-safe result store of a sweep: one SQLite file, one committed row per finished point.

``DIR/points.sqlite`` holds a ``points`` table keyed by ``point_id`` (so a point can be stored
once only) and a ``meta`` table with the spec, its fingerprint and the column names. Each point is
written in its own transaction (WAL journal), so a sweep killed with ``kill -9`` keeps every point
that finished and none half-written; ``--resume`` skips the stored ids and runs the rest. WAL with
``synchronous=NORMAL`` survives a crash of the process (not necessarily a power cut of the
machine: the last few commits may be lost then, and rerun on resume).

:func:`load_results` turns a store into a pandas DataFrame in one call (also while the sweep is
still running); :func:`export_results` writes ``results.csv`` and, when pyarrow is installed,
``results.parquet`` atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from arch import SpecError

STORE_FILE = "points.sqlite"
LOCK_FILE = ".lock"
BASE_COLUMNS = ("point_id", "seq", "status", "reason")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    point_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    params TEXT NOT NULL, metrics TEXT NOT NULL, eval_s REAL NOT NULL);
"""


class Store:
    """An open store; the sweep's process is its only writer (a lock file makes sure)."""

    def __init__(self, out: Path, conn: sqlite3.Connection, lock: Any):
        self.out = out
        self.conn = conn
        self._lock = lock
        self.records: dict[str, dict] = {}
        for row in conn.execute("SELECT point_id, seq, status, reason, params, metrics, eval_s "
                                "FROM points"):
            self.records[row[0]] = _record(row)

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, out: str | Path, spec, resume: bool = False) -> Store:
        """Create ``out`` (or reopen it with ``resume``); raise :class:`SpecError` on misuse."""
        out = Path(out)
        db = out / STORE_FILE
        if out.exists() and not out.is_dir():
            raise SpecError(str(out), "--out", "exists and is not a directory")
        if db.exists() and not resume:
            n = _count(db)
            raise SpecError(str(out), "--out", f"holds a sweep already ({n} points); pass "
                                               "--resume to continue it, or choose another --out")
        if not db.exists() and out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise SpecError(str(out), "--out", "is a non-empty directory without a sweep store; "
                                               "choose a new or empty --out")
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock(out)
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        fingerprint = spec.fingerprint()
        fingerprint["axes"] = ",".join(sorted(a.path for a in spec.axes))
        if meta:
            old = json.loads(meta["fingerprint"])
            changed = sorted(k for k in set(old) | set(fingerprint)
                             if old.get(k) != fingerprint.get(k))
            if changed:
                conn.close()
                raise SpecError(str(out), "--resume", "the store was made by a different sweep "
                                f"(differs in: {', '.join(changed)}); use a new --out")
        else:
            rows = {"fingerprint": json.dumps(fingerprint), "name": spec.name,
                    "spec_file": spec.file, "spec_text": spec.text,
                    "params": json.dumps(list(spec.param_names)),
                    "axes": json.dumps([a.path for a in spec.axes]),
                    "objectives": json.dumps([[o.metric, o.goal] for o in spec.objectives]),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with conn:
                conn.executemany("INSERT INTO meta VALUES (?, ?)", list(rows.items()))
        return cls(out, conn, lock)

    # -- use ----------------------------------------------------------------------------------
    def __contains__(self, pid: str) -> bool:
        return pid in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, pid: str) -> dict:
        return self.records[pid]

    def add(self, record: dict) -> None:
        """Commit one finished point (its own transaction)."""
        row = (record["point_id"], int(record["seq"]), record["status"], record["reason"],
               json.dumps(record["params"]), json.dumps(record["metrics"]),
               float(record.get("eval_s", 0.0)))
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.records[record["point_id"]] = dict(record)

    def close(self) -> None:
        self.conn.close()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.close()


def _lock(out: Path) -> Any:
    """Hold an exclusive lock on ``out/.lock`` (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (no locking on platforms without fcntl)
        return None
    fh = open(out / LOCK_FILE, "a")  # noqa: SIM115  (held open while the sweep runs)
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise SpecError(str(out), "--out", "another sweep is running in this directory") from None
    return fh


def _reader(db: Path) -> sqlite3.Connection:
    """A connection for reading (read-write when allowed, so that closing it tidies the WAL
    files away instead of leaving them beside a finished store)."""
    return sqlite3.connect(db, timeout=30)


def _count(db: Path) -> int:
    with contextlib.closing(_reader(db)) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM points").fetchone()[0])
        except sqlite3.DatabaseError:
            return 0


def _record(row: tuple) -> dict:
    return {"point_id": row[0], "seq": row[1], "status": row[2], "reason": row[3],
            "params": json.loads(row[4]), "metrics": json.loads(row[5]), "eval_s": row[6]}


def read_meta(out: str | Path) -> dict[str, Any]:
    """The store's meta table (spec text, fingerprint, parameter and objective names)."""
    db = Path(out) / STORE_FILE
    if not db.is_file():
        raise SpecError(str(out), "", f"no sweep store ({STORE_FILE}) in this directory")
    with contextlib.closing(_reader(db)) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    for key in ("params", "axes", "objectives", "fingerprint"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    return meta


def records_frame(records: list[dict], params: list[str] | None = None) -> pd.DataFrame:
    """One row per point: id, seq, status, reason, parameters, metrics, eval_s (sorted by seq)."""
    records = sorted(records, key=lambda r: r["seq"])
    if params is None:
        params = list(dict.fromkeys(k for r in records for k in r["params"]))
    metric_cols = list(dict.fromkeys(k for r in records for k in r["metrics"]))
    rows = []
    for r in records:
        row = {c: r[c] for c in BASE_COLUMNS}
        row.update({p: r["params"].get(p) for p in params})
        row.update({m: r["metrics"].get(m, float("nan")) for m in metric_cols})
        row["eval_s"] = r["eval_s"]
        rows.append(row)
    cols = [*BASE_COLUMNS, *params, *metric_cols, "eval_s"]
    df = pd.DataFrame(rows, columns=cols)
    for m in metric_cols:
        df[m] = df[m].astype(float)
    return df


def load_results(out: str | Path) -> pd.DataFrame:
    """All stored points of the sweep in ``out`` as a DataFrame.

    ``df.attrs`` names the sweep (``name``), its parameter columns (``params``), the swept ones
    (``axes``) and the objectives (``objectives``: ``[[metric, "min"|"max"], ...]``).
    """
    meta = read_meta(out)
    db = Path(out) / STORE_FILE
    with contextlib.closing(_reader(db)) as conn:
        rows = conn.execute("SELECT point_id, seq, status, reason, params, metrics, eval_s "
                            "FROM points").fetchall()
    df = records_frame([_record(r) for r in rows], meta.get("params"))
    df.attrs.update({"name": meta.get("name", ""), "params": meta.get("params", []),
                     "axes": meta.get("axes", []), "objectives": meta.get("objectives", [])})
    return df


def _readable(path: str | Path) -> None:
    """Give a file written through mkstemp (0600) the usual permissions under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def export_results(df: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write ``results.csv`` (always) and ``results.parquet`` (when pyarrow is available)."""
    from sim.report.atomic import write_text_atomic  # (sim.report pulls in matplotlib)

    out = Path(out)
    write_text_atomic(out / "results.csv", df.to_csv(index=False))
    _readable(out / "results.csv")
    written = [out / "results.csv"]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    fd, tmp = tempfile.mkstemp(prefix=".results.parquet.", dir=out)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        _readable(tmp)
        os.replace(tmp, out / "results.parquet")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    written.append(out / "results.parquet")
    return written
