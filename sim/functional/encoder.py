"""``xpusim check`` for an encoder layer (BERT, TrXL, XLM): the decoder's ops with
bidirectional attention, every query attending to all ``prompt`` keys. The fused 1-pass
cascade is checked for decoders only (``--attention unfused`` here)."""

from __future__ import annotations

import numpy as np

from sim.devices.base import SimError
from sim.functional.layer import _LayerRun
from workloads.trace import Op


class EncoderRun(_LayerRun):
    """Rows of the softmax see every key (no causal limit)."""

    def _limits(self, rows_per_query_block: int) -> np.ndarray:
        return np.full(rows_per_query_block * self.s, self.n, dtype=np.int64)

    def _op_attention(self, op: Op, checked: bool) -> tuple:
        raise SimError(f"check: the fused attention of an encoder ({self.m.name}) is not "
                       "checked; use --attention unfused")
