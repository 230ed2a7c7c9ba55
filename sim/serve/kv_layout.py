"""KV blocks of models whose layers attend through a window, as vLLM v1's hybrid KV cache
manager holds them (vLLM docs/design/hybrid_kv_cache_manager.md, commit 1153c0c).

The layers are split into KV cache groups of one attention type each and of one size: the
smallest layer count among the types (Gemma 2 and gpt-oss: 1 full : 1 windowed group; Gemma 3
27B: 10 layers a group, 1 full group and ceil(52 / 10) = 6 windowed ones, the last padded). A
block is ``block_size`` tokens of one group's layers, from one pool. A full-attention group
holds every token's block; a sliding-window group frees the blocks wholly before its window,
``computed - window + 1`` tokens skipped (``SlidingWindowManager``), a chunked group
(Llama 4) those before its current chunk (``ChunkedLocalAttentionManager``). A model without a
window is one group of all its layers: a block of every layer, as before.

Prefix caching is kept on the one-group layout (windowed layers hold every block): its hits
across groups (``HybridKVCacheCoordinator``) are not modelled.

A hybrid's recurrent layers (Mamba, Gated DeltaNet) keep a state per request whatever its
length: ``state_blocks`` blocks (its state's bytes over a block's, rounded up) held from its
first token to its end, as vLLM's ``MambaSpec`` group holds one state page per request (vLLM
pads the attention page to the state page's size instead; the bytes held are the same but for
that rounding). A model without attention (Mamba-Codestral) holds its state alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workloads.models import ModelConfig


@dataclass(frozen=True)
class KVLayout:
    """``group_layers`` layers a block, ``full_groups`` groups holding every token,
    ``window_groups`` holding the last ``window`` tokens (``chunked``: their chunk's)."""

    group_layers: int
    full_groups: int = 1
    window_groups: int = 0
    window: int = 0
    chunked: bool = False
    state_blocks: int = 0

    @classmethod
    def of(cls, model: ModelConfig, prefix_caching: bool = False) -> KVLayout:
        """The layout vLLM v1 gives ``model``'s decoder layers."""
        layers = model.n_layers
        windowed = model.windowed_layers() if model.kind == "decoder" else 0
        if not windowed or prefix_caching:
            return cls(group_layers=layers)
        full = layers - windowed
        size = min(full, windowed) if full else windowed
        return cls(group_layers=size, full_groups=math.ceil(full / size),
                   window_groups=math.ceil(windowed / size), window=model.sliding_window,
                   chunked=model.window_kind == "chunked")

    def blocks(self, tokens: int, computed: int, block_size: int) -> int:
        """Blocks a request holds with ``tokens`` tokens in its cache after a step that
        started with ``computed`` of them computed."""
        every = -(-tokens // block_size)
        state = self.state_blocks if tokens > 0 else 0
        if not self.window_groups:
            return self.full_groups * every + state
        if self.chunked:
            skipped = computed // self.window * self.window
        else:
            skipped = max(0, computed - self.window + 1)
        return self.full_groups * every + self.window_groups * (every - skipped // block_size) \
            + state

    def peak(self, prompt: int, total: int, chunk: int, block_size: int) -> int:
        """The most blocks a request of ``prompt`` tokens growing to ``total`` holds, its
        prompt computed ``chunk`` tokens a step: at the end of its last whole chunk, of its
        prompt, or of its last token (a full group only grows; a windowed group holds at most
        a chunk and a window, so within the prompt the most falls at a whole chunk's end)."""
        chunk = max(1, min(prompt, chunk))
        whole = prompt // chunk * chunk
        ends = [(whole, whole - chunk), (prompt, whole if whole < prompt else whole - chunk),
                (total, max(prompt, total - 1))]
        return max(self.blocks(t, c, block_size) for t, c in ends)
