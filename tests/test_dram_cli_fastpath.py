"""`xpusim import TOOL ...` parses with a parser that knows only that importer
(xpusim.commands.import_.single_importer_parser): the same arguments, defaults, errors and help
as the full parser, without importing every command first (issue 18: a short `xpusim import
dramsim3` paid more for that than for its simulation)."""

from __future__ import annotations

import argparse

import pytest

from xpusim.cli import OneLineParser, build_parser, main
from xpusim.commands.import_ import _terminal_columns, single_importer_parser

ARGVS = (
    ["import", "dramsim3", "--config", "a.ini", "--trace", "t1", "t2", "--cycles", "10", "--json"],
    ["import", "dramsim3", "--config", "a.ini", "b.ini", "--trace", "t", "u", "--cycles", "5",
     "6", "--quiet"],
    ["import", "scalesim", "--help"],
    ["import", "dramsim3", "--config", "a.ini", "--trace", "t", "--cycles", "0"],
    ["import", "dramsim3", "--config", "a.ini", "--trace", "t"],
    ["import", "dramsim3", "--bogus"],
)


def _parse(parser: argparse.ArgumentParser, argv: list[str], capsys) -> tuple:
    try:
        ns = vars(parser.parse_args(argv))
        code = None
    except SystemExit as exc:
        ns, code = None, exc.code
    out = capsys.readouterr()
    if ns is not None:  # the same functions and modules, compared by name
        ns = {k: (getattr(v, "__module__", None), getattr(v, "__name__", None))
              if callable(v) or k == "_module" else v for k, v in ns.items()}
    return ns, code, out.out, out.err


@pytest.mark.parametrize("argv", ARGVS, ids=lambda a: " ".join(a[1:4]))
def test_single_importer_parser_parses_as_the_full_one(argv, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # both formatters wrap --help at the same width
    fast = single_importer_parser(OneLineParser, argv[1])
    assert fast is not None
    got = _parse(fast, argv, capsys)
    want = _parse(build_parser("import"), argv, capsys)
    assert got == want
    if argv[-1] == "--help":
        assert "usage: xpusim import scalesim" in got[2]
    elif got[1] is not None:  # a usage error: one line on stderr, exit 2
        assert got[1] == 2 and got[3].count("\n") == 1


def test_unknown_tools_go_to_the_full_parser(capsys):
    for tool in ("dramsim4", "_common", "x.y", "../etc"):
        assert single_importer_parser(OneLineParser, tool) is None
    assert main(["import", "dramsim4", "--config", "x"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'dramsim4'" in err and "dramsim3" in err  # the full list


def test_terminal_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "123")
    assert _terminal_columns() == 123
    monkeypatch.setenv("COLUMNS", "junk")
    import shutil

    assert _terminal_columns() == shutil.get_terminal_size().columns
