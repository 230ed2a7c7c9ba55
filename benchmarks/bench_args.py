"""Command-line arguments the benchmarks share: one-line usage errors (exit 2) for a bad
``--repeat`` (or another count) or an unknown case name, never a traceback from an empty
median, an empty pool or a missing case."""

from __future__ import annotations

import argparse


def positive(what: str):
    """An argparse type: a positive integer, its error naming ``what`` it counts."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive number of {what}, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected a positive number of {what}, got {value}")
        return value

    parse.__name__ = what   # argparse names the type in its messages
    return parse


#: ``--repeat``'s type: a positive number of rounds
rounds = positive("rounds")


def chosen_cases(ap: argparse.ArgumentParser, text: str, known) -> list[str]:
    """The case names of a comma-separated ``--cases`` (empty items dropped); a usage error
    naming the unknown ones and the known ones."""
    names = [c for c in text.split(",") if c]
    unknown = [c for c in names if c not in known]
    if unknown:
        ap.error(f"--cases: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return names
