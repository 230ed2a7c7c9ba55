"""Every command's and every reproduction's ``--help`` prints its usage (argparse treats help
strings as %-templates: a reproduction description saying "20%" once broke `reproduce --help`)."""

from __future__ import annotations

from xpusim.cli import main


def _help(argv: list[str], capsys) -> str:
    assert main([*argv, "--help"]) == 0, argv
    return capsys.readouterr().out


def _commands() -> list[str]:
    from xpusim.cli import _commands as command_modules
    return [mod.NAME for mod in command_modules()]


def test_every_command_help(capsys):
    for name in _commands():
        assert _help([name], capsys).startswith(f"usage: xpusim {name}"), name


def test_every_reproduction_help(capsys):
    import argparse

    from xpusim.commands.reproduce import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    names = [a for a in parser._subparsers._group_actions[0].choices if a != "file"]
    assert {"neupims", "splitwise", "sn40l"} <= set(names)
    for name in names:
        text = _help(["reproduce", name], capsys)
        assert text.startswith(f"usage: xpusim reproduce {name}"), name
    assert "%%" not in _help(["reproduce"], capsys)
