"""Write files and whole output directories so that a failure leaves nothing half-written."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: a staging or replaced folder whose name carries no process id counts as stale after this
LEGACY_STALE_S = 3600.0
_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|replaced)-(?:(?P<pid>\d+)-)?[^/]*$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale(out_dir: str | Path) -> list[Path]:
    """Remove ``.NAME.staging-*`` folders of ``out_dir`` left by processes that no longer run
    (killed mid-write), and restore ``out_dir`` from a ``.NAME.replaced-*`` folder when a kill
    fell between the two renames of a replacement; return what was removed or restored."""
    out_dir = Path(out_dir)
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    done: list[Path] = []
    try:
        siblings = [p for p in parent.iterdir() if p.name.startswith(f".{out_dir.name}.")]
    except OSError:
        return done
    for path in sorted(siblings):
        m = _SIBLING.match(path.name)
        if not m or m["name"] != out_dir.name or not path.is_dir() or path.is_symlink():
            continue
        if m["pid"] is not None:
            if _alive(int(m["pid"])):
                continue
        else:
            try:
                if time.time() - path.stat().st_mtime < LEGACY_STALE_S:
                    continue
            except OSError:
                continue
        if m["kind"] == "replaced" and not out_dir.exists():
            with contextlib.suppress(OSError):
                os.rename(path, out_dir)
                done.append(path)
                continue
        shutil.rmtree(path, ignore_errors=True)
        done.append(path)
    return done


def _link_into(src: Path, dst: Path) -> None:
    """Put ``src`` (file, folder or symlink) at ``dst`` by hard links, copying where a link is
    not possible; ``src`` is left as it was."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def staged_directory(out_dir: str | Path, owned: Collection[str] = ()) -> Iterator[Path]:
    """Yield a staging directory; on success it becomes ``out_dir`` as a whole, else it vanishes.

    A new ``out_dir`` appears in one rename. An existing one is replaced whole: files of it the
    stage does not write (a sweep's ``points.sqlite``, anything else the user keeps there) are
    hard-linked into the stage first, then two renames swap the folders, so no reader ever sees
    files of two runs side by side. ``owned``: names of the files this kind of report writes
    (some only for some runs: a system run's ``transfers.parquet``, ``ops.csv`` instead of
    ``ops.parquet``); those of an earlier report the stage does not write are not kept.
    Staging folders of killed runs are removed first (:func:`clean_stale`).
    """
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        out_dir = out_dir.resolve()
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    clean_stale(out_dir)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-{os.getpid()}-",
                                      dir=parent))
    except OSError as exc:  # name the directory the user asked for, not our staging one
        raise OSError(exc.errno, f"cannot write the output directory ({exc.strerror})",
                      str(out_dir)) from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)
    try:
        yield stage
        if not out_dir.exists():
            os.rename(stage, out_dir)
            return
        if not out_dir.is_dir():
            raise NotADirectoryError(f"{out_dir} exists and is not a directory")
        for item in out_dir.iterdir():
            if item.name not in owned and not (stage / item.name).exists() and \
                    not (stage / item.name).is_symlink():
                _link_into(item, stage / item.name)
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.replaced-{os.getpid()}-",
                                    dir=parent))
        os.rmdir(old)
        os.rename(out_dir, old)
        try:
            os.rename(stage, out_dir)
        except BaseException:
            os.rename(old, out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
