"""Reproductions of the seed systems, run by ``xpusim reproduce NAME``.

Every one is an experiment file, ``experiments/NAME.yaml``, run by :mod:`xpusim.experiments`
(see docs/experiments.md); the modules left here are thin shims whose ``reproduce(args)`` runs the
experiment. A module that still defines ``NAME``, ``DESCRIPTION``, optionally
``add_arguments(parser)`` and ``reproduce(args) -> dict`` is listed beside them. Either returns
the shape every seed shares::

    {"name": NAME,
     "results": [{"claim": str, "measured": float, "target": float, "rel_error": float}, ...],
     "assumptions": [str, ...],
     "points": [{...}, ...]}          # optional per-point detail

Build the dict with :func:`xpusim.reproductions._shape.claim` and ``report``. Never tune a
constant to land on a target: the measured ratio comes from the mechanism.
"""
