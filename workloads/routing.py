"""How many tokens each MoE expert receives: uniform, or skewed as routers are in practice.

``expert_token_counts(tokens, experts, top_k, skew, rotation)`` gives each expert a share of the
``tokens x top_k`` assignments proportional to ``(rank + 1) ** -skew`` (a Zipf law; ``skew = 0``
is uniform), the most loaded expert being ``rotation mod experts`` so different layers have
different hot experts. Counts are whole tokens (largest remainder), and no expert receives a
token twice, so none gets more than ``tokens``; what a capped expert cannot take goes to the
others in proportion to their shares.

``weights`` replaces the Zipf law by measured per-expert loads (e.g. token counts a router
produced on a real data set, :func:`load_expert_counts`): expert ``e`` gets a share proportional
to ``weights[e]``, the same for every layer (``rotation`` is ignored).
"""

from __future__ import annotations

import math


def expert_token_counts(tokens: int, experts: int, top_k: int, skew: float = 0.0,
                        rotation: int = 0,
                        weights: tuple[float, ...] | None = None) -> list[int]:
    """Tokens routed to each of ``experts`` experts (they sum to ``tokens * top_k``)."""
    if experts < 1 or top_k < 1 or top_k > experts or tokens < 0:
        raise ValueError(f"bad routing: {tokens} tokens, {experts} experts, top-{top_k}")
    if weights:
        if len(weights) != experts or any(w < 0 for w in weights) or not sum(weights) > 0:
            raise ValueError(f"bad routing weights: {len(weights)} for {experts} experts")
        rotation = 0
    else:
        weights = tuple((k + 1) ** -skew for k in range(experts))
    total = tokens * top_k
    counts = [0] * experts
    open_ = list(range(experts))
    left = total
    while left > 0 and open_:
        wsum = sum(weights[k] for k in open_)
        if wsum > 0:
            raw = {k: left * weights[k] / wsum for k in open_}
        else:  # only unloaded experts are left: they share what the capped ones could not take
            raw = {k: left / len(open_) for k in open_}
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


def load_expert_counts(path: str, experts: int | None = None) -> tuple[float, ...]:
    """Per-expert token counts from a CSV file, in expert order (relative loads).

    The file has a header with a ``tokens`` column (and optionally ``expert``, the expert index
    0..E-1 in any order), or no header and one count per line. Raises
    :class:`~workloads.errors.WorkloadError` naming the file, row and field on bad input, and
    when ``experts`` is given and the file does not list exactly that many.
    """
    import csv

    from workloads.errors import WorkloadError

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            lines = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(path, "", f"cannot read expert counts ({exc.__class__.__name__}: "
                                      f"{getattr(exc, 'strerror', None) or exc})") from None
    if not lines:
        raise WorkloadError(path, "", "empty file (expected one token count per expert)")
    head = [c.strip().lower() for c in lines[0]]
    has_header = "tokens" in head
    if not has_header and any(h and not _is_number(h) for h in head):
        raise WorkloadError(path, "header", "expected a 'tokens' column (and optionally "
                                            f"'expert'), got {', '.join(head)[:80]}")
    col = head.index("tokens") if has_header else 0
    ecol = head.index("expert") if has_header and "expert" in head else None
    rows = lines[1:] if has_header else lines
    counts: dict[int, float] = {}
    for i, row in enumerate(rows, start=2 if has_header else 1):
        cell = row[col].strip() if col < len(row) else ""
        try:
            value = float(cell)
        except ValueError:
            raise WorkloadError(path, f"row {i}: tokens",
                                f"expected a number >= 0, got {cell[:40]!r}") from None
        if not math.isfinite(value) or value < 0:
            raise WorkloadError(path, f"row {i}: tokens", f"expected a number >= 0, got {cell!r}")
        index = len(counts)
        if ecol is not None:
            raw = row[ecol].strip() if ecol < len(row) else ""
            if not raw.isdigit():
                raise WorkloadError(path, f"row {i}: expert",
                                    f"expected an expert index 0, 1, ..., got {raw[:40]!r}")
            index = int(raw)
            if index in counts:
                raise WorkloadError(path, f"row {i}: expert", f"expert {index} listed twice")
        counts[index] = value
    n = len(counts)
    if sorted(counts) != list(range(n)):   # (n rows, not the largest index: it may be huge)
        missing = [e for e in range(n) if e not in counts][:5]
        raise WorkloadError(path, "expert", f"experts must be 0..{n - 1} without gaps "
                                            f"(missing {missing})")
    if experts is not None and n != experts:
        raise WorkloadError(path, "", f"lists {n} experts, the model has {experts}")
    if not sum(counts.values()) > 0:
        raise WorkloadError(path, "tokens", "all counts are 0 (expected some routed tokens)")
    return tuple(counts[e] for e in range(n))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
