"""Peer-tool importers run by ``xpusim import TOOL``: read the peer's own input files.

A module defines ``NAME`` (the tool, e.g. ``scalesim``), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> dict`` (the JSON printed with ``--json``) and
optionally ``format_text(result) -> str`` for the terminal.
"""
