"""Subcommands of ``xpusim``; each module is one command (see ``xpusim.cli``)."""
