"""Pass analysis of Einsum cascades (FuseMax §III): how many times must any mapping traverse a rank?

A *pass* over a rank family ``F`` (a rank and the ranks it is split into, e.g. ``{m}`` or
``{m1, m0}``) is one traversal of all of its elements. An Einsum that iterates ``F`` and reads a
tensor that is a *full reduction* over ``F`` (it lacks every rank of ``F`` but was computed by
traversing them) cannot start before that reduction finished: it belongs to the next pass. Values
carried by an *iterative* rank (``RM[m1+1] = max(RM[m1], LM[m1])``) depend only on elements
already seen, so they do not force another pass — that is what makes FlashAttention/FuseMax 1-pass.

Rules, in cascade order (external inputs: pass 0, not reduced):

* Einsum iterates ``F``: ``pass = max(1, max over inputs of (P[t] + 1 if full[t] else P[t]))``;
  its output is ``full`` when it lacks all ranks of ``F``. Inputs that are the Einsum's own
  iterative state are skipped.
* Einsum does not iterate ``F``: ``P[out] = max P[t]``, ``full[out] = any full[t]`` (it runs
  between or after passes and costs none).

The cascade needs ``max pass`` passes over ``F``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workloads.einsum import Cascade


@dataclass(frozen=True)
class PassReport:
    """Passes a cascade needs over one rank family, and the pass of every Einsum (0: none)."""

    ranks: tuple[str, ...]
    passes: int
    einsum_pass: dict[str, int] = field(default_factory=dict)

    def einsums_in_pass(self, k: int) -> list[str]:
        return [name for name, p in self.einsum_pass.items() if p == k]


def rank_family(cascade: Cascade, rank: str) -> tuple[str, ...]:
    """``rank`` and the ranks it was split into (``m`` -> ``m``, ``m1``, ``m0`` when present)."""
    names = set(cascade.size)
    fam = [r for r in names if r == rank or (r.startswith(rank) and r[len(rank):].isdigit())]
    return tuple(sorted(fam))


def pass_analysis(cascade: Cascade, rank: str) -> PassReport:
    """How many passes over ``rank`` (with its split sub-ranks) every mapping of ``cascade``
    must take."""
    fam = set(rank_family(cascade, rank))
    if not fam:
        raise ValueError(f"cascade {cascade.name} has no rank '{rank}' (ranks: "
                         f"{', '.join(sorted(cascade.size))})")
    p_of: dict[str, int] = {}
    full: dict[str, bool] = {}
    per: dict[str, int] = {}
    for e in cascade.einsums:
        iterates = any(r in fam for r in e.ranks)
        inputs = [t for t in e.inputs if not (e.iterative and t.name == e.output.name)]
        if iterates:
            need = 1
            for t in inputs:
                pt = p_of.get(t.name, 0)
                need = max(need, pt + 1 if full.get(t.name, False) else pt)
            per[e.name] = need
            p_of[e.output.name] = need
            full[e.output.name] = not any(r in fam for r in e.output.ranks)
        else:
            per[e.name] = 0
            p_of[e.output.name] = max((p_of.get(t.name, 0) for t in inputs), default=0)
            full[e.output.name] = any(full.get(t.name, False) for t in inputs)
    return PassReport(tuple(sorted(fam)), max(per.values(), default=0), per)


def passes(cascade: Cascade, rank: str = "m") -> int:
    """Number of passes over ``rank`` (default: the key/value sequence rank of attention)."""
    return pass_analysis(cascade, rank).passes
