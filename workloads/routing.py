"""How many tokens each MoE expert receives: uniform, or skewed as routers are in practice.

``expert_token_counts(tokens, experts, top_k, skew, rotation)`` gives each expert a share of the
``tokens x top_k`` assignments proportional to ``(rank + 1) ** -skew`` (a Zipf law; ``skew = 0``
is uniform), the most loaded expert being ``rotation mod experts`` so different layers have
different hot experts. Counts are whole tokens (largest remainder), and no expert receives a
token twice, so none gets more than ``tokens``; what a capped expert cannot take goes to the
others in proportion to their shares.
"""

from __future__ import annotations

import math


def expert_token_counts(tokens: int, experts: int, top_k: int, skew: float = 0.0,
                        rotation: int = 0) -> list[int]:
    """Tokens routed to each of ``experts`` experts (they sum to ``tokens * top_k``)."""
    if experts < 1 or top_k < 1 or top_k > experts or tokens < 0:
        raise ValueError(f"bad routing: {tokens} tokens, {experts} experts, top-{top_k}")
    total = tokens * top_k
    weights = [(k + 1) ** -skew for k in range(experts)]
    counts = [0] * experts
    open_ = list(range(experts))
    left = total
    while left > 0 and open_:
        wsum = sum(weights[k] for k in open_)
        raw = {k: left * weights[k] / wsum for k in open_}
        cap = {k: tokens - counts[k] for k in open_}
        over = [k for k in open_ if raw[k] >= cap[k]]
        if over:  # capped experts take all they can; the rest is shared again
            for k in over:
                counts[k] += cap[k]
                left -= cap[k]
                open_.remove(k)
            continue
        base = {k: math.floor(raw[k]) for k in open_}
        rest = left - sum(base.values())
        order = sorted(open_, key=lambda k: (-(raw[k] - base[k]), k))
        for k in order[:rest]:
            base[k] += 1
        for k in open_:
            counts[k] += base[k]
        left = 0
    # the k-th most loaded share lands on expert (rotation + k) mod experts
    out = [0] * experts
    for k, c in enumerate(counts):
        out[(rotation + k) % experts] = c
    return out
