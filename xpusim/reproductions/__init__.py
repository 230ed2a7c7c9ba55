"""Reproductions of the seed systems, one module each, run by ``xpusim reproduce NAME``.

A module defines ``NAME``, ``DESCRIPTION``, optionally ``add_arguments(parser)``, and
``reproduce(args) -> dict`` returning the shape every seed shares::

    {"name": NAME,
     "results": [{"claim": str, "measured": float, "target": float, "rel_error": float}, ...],
     "assumptions": [str, ...],
     "points": [{...}, ...]}          # optional per-point detail

Build the dict with :func:`xpusim.reproductions._shape.claim` and ``report``. Never tune a
constant to land on a target: the measured ratio comes from the mechanism.
"""
