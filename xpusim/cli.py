"""The ``xpusim`` command: subcommands live in ``xpusim/commands/``, one module each.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
modules are discovered, so adding a command touches no other file. Heavy imports happen inside
``run`` so that ``xpusim --help`` and ``xpusim arch list`` answer at once. Bad input ends with
one line on stderr naming the file or option and the field, and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from xpusim import __version__
from xpusim.heap import tune_allocation

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


#: longest message printed; longer ones keep their start and end
MAX_MESSAGE = 400
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one printable line: control and line-separator characters escaped, and the
    middle of a text longer than ``limit`` characters cut (start and end kept)."""
    out = []
    for ch in str(text):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    line = "".join(out)
    if len(line) > limit:
        cut = len(line) - limit
        line = f"{line[: limit - 100]} ...[{cut:,} characters cut]... {line[-100:]}"
    return line


def write_error(message: str, kind: str = "error") -> None:
    """``xpusim: error: MESSAGE`` as exactly one line on stderr."""
    sys.stderr.write(f"xpusim: {kind}: {one_line(message)}\n")


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil (which loads the bz2
    and lzma modules: about 5 ms of a short run): ``$COLUMNS``, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, its width found by :func:`_terminal_columns` (argparse
    builds one for every ``add_argument``)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors as a single line and exits with 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        write_error(f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_BAD_INPUT)


def _named_command(name: str):
    """The module of command ``name`` (file ``name.py`` or ``name_.py``, as ``import_.py``
    holds ``import``), or None when no such module defines that NAME."""
    from pathlib import Path

    from xpusim import commands

    for stem in (name, f"{name}_"):
        if stem.isidentifier() and not stem.startswith("_") and \
                Path(commands.__path__[0], f"{stem}.py").is_file():
            mod = importlib.import_module(f"xpusim.commands.{stem}")
            if getattr(mod, "NAME", None) == name:
                return mod
    return None


def _commands(alone: str = ""):
    """Command modules: only the one named ``alone`` where a module holds it (starting one
    command imports no other command's module), else all of them."""
    mod = _named_command(alone) if alone else None
    if mod is not None:
        return [mod]
    import pkgutil

    from xpusim import commands

    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"xpusim.commands.{info.name}")
        if hasattr(mod, "NAME"):
            mods.append(mod)
    return mods


def build_parser(only: str | None = "", alone: bool = False) -> OneLineParser:
    """The ``xpusim`` parser. ``only=""`` (default) gives every command its options; with
    ``only`` a command name, the others are listed (for ``--help``) without their options, so
    starting one command neither imports nor builds what the others need (importer, reproduction
    and validation plugins); ``only=None`` lists every command without options. ``alone``
    (with ``only`` a command name) leaves the other commands out, so their modules are not even
    imported: right where ``only`` is the first word, as nothing then prints the command list."""
    parser = OneLineParser(prog="xpusim", description="Event-driven simulator and design-space "
                           "explorer for transformer workloads.")
    parser.add_argument("--version", action="version", version=f"xpusim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for mod in _commands(only if alone and only else ""):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        if only == "" or only == mod.NAME:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _command_named(argv: list[str]) -> str | None:
    """The command word of ``argv`` (its first token not starting with '-'), else None."""
    return next((a for a in argv if not a.startswith("-")), None)


def _input_errors() -> tuple[type[BaseException], ...]:
    from arch import SpecError, UnitError
    from workloads.errors import WorkloadError

    errors: list[type[BaseException]] = [SpecError, UnitError, WorkloadError]
    try:  # sim is optional for commands that never load it
        from sim.devices.base import SimError

        errors.append(SimError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


#: thread-count variables numpy's BLAS reads (OpenBLAS, in its order of precedence; MKL)
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS")


def single_thread_blas() -> None:
    """Ask numpy's BLAS (OpenBLAS or MKL) for one thread unless the user set any of
    :data:`_BLAS_THREADS`. Has an effect only before numpy loads.

    Why: starting OpenBLAS's thread pool costs about 0.1 s of CPU on every ``import numpy``
    (issue 18: 0.29 s vs 0.17 s CPU for ``import numpy`` on a 2-core machine), while the
    simulator does no large BLAS work (timings are arithmetic on op counts; ``xpusim check``
    multiplies layer-sized matrices and measured no slower in wall time and less CPU with one
    thread), and sweeps get their parallelism from worker processes, which inherit this.
    ``OMP_NUM_THREADS`` is never set, so numba's parallel kernels keep their threads.
    """
    import os

    if not any(os.environ.get(name) for name in _BLAS_THREADS):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"


def main(argv: list[str] | None = None) -> int:
    single_thread_blas()
    tune_allocation()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = None
    if len(argv) > 1 and argv[0] == "import":  # build only that importer's parser
        from xpusim.commands.import_ import single_importer_parser

        parser = single_importer_parser(OneLineParser, argv[1])
    name = _command_named(argv)
    parser = parser or build_parser(name, alone=bool(argv) and argv[0] == name)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return int(exc.code or 0)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args._run(args) or 0)
    except _input_errors() as exc:
        write_error(str(exc))
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `xpusim models list | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        name = getattr(exc, "filename", None)
        write_error(f"{str(name) + ': ' if name else ''}{exc.strerror or exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("xpusim: interrupted\n")
        return 130
    except AssertionError as exc:  # invariant violations are bugs, not bad input
        write_error(f"{exc} (please report this)", "internal error")
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
