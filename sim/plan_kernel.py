"""Each op's stage and stream key of a several-stream plan, in one pass (numba).

:func:`sim.system.array_plan.streams_plan` puts an op on a stream by its kind and layer: the
stage of its layer (a pipeline send's: the stage before the boundary) and its category on
that stage (compute, communication, expert rank). Per kind the figures are a few; per op
they were a dozen numpy passes over the trace (~0.5 s at 10M ops), here one.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def stream_keys(kind, layer, stage_at, send_k, cat_k, grouped_k, ported, width,
                stage, here, code, loaded, key_of_code, first_of_code):
    """Per op ``i`` (``kind[i]``, ``layer[i]``, int32): ``here[i] = stage_at[layer[i] + 1]``
    (its layer's stage), ``stage[i]`` the same but ``stage_at[layer[i]]`` for a send
    (``send_k``, per kind), and ``code[i]``: the number, in order of first appearance, of
    its key ``stage[i] * width + cat_k[kind[i]]``; ``loaded[i]``: a send, or a collective of a
    group (``grouped_k``) on a stage with ports (``ported``, per stage). Per code:
    ``key_of_code``, ``first_of_code`` (its first op). The number of codes.
    ``key_of_code`` must hold every key (stages x ``width``)."""
    table = np.full(len(key_of_code), -1, dtype=np.int64)
    n_codes = 0
    for i in range(len(kind)):
        k = kind[i]
        h = stage_at[layer[i] + 1]
        s = stage_at[layer[i]] if send_k[k] else h
        here[i] = h
        stage[i] = s
        loaded[i] = send_k[k] or (grouped_k[k] and ported[s])
        key = s * width + cat_k[k]
        c = table[key]
        if c < 0:
            c = n_codes
            table[key] = c
            key_of_code[c] = key
            first_of_code[c] = i
            n_codes += 1
        code[i] = c
    return n_codes
