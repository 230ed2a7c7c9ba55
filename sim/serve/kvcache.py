"""A paged KV cache (vLLM's block manager): fixed-size blocks, prefix caching, swap space.

``capacity`` blocks of ``block_size`` tokens. A request holds ``ceil(tokens / block_size)``
blocks (windowed layers: fewer, :mod:`sim.serve.kv_layout`); with prefix caching the full
blocks of a shared system prompt (``prefix // block_size`` blocks) are held once per prefix
group and reference-counted; a group nobody uses stays cached (evictable, least recently
used first) until its room is needed. Swapped-out blocks live in a host pool of
``swap_capacity`` blocks. ``used`` never exceeds ``capacity`` (asserted on every allocation;
``peak`` records the high-water mark).
"""

from __future__ import annotations

from collections import OrderedDict

from sim.serve.kv_layout import KVLayout


class KVCache:
    """Block accounting of one replica's KV cache (counts per device: every device of a
    tensor-parallel replica holds its heads' share of every block)."""

    def __init__(self, capacity: int, block_size: int, prefix_caching: bool = False,
                 swap_capacity: int = 0, layout: KVLayout | None = None):
        self.capacity = int(capacity)
        self.block_size = int(block_size)
        #: windowed layers' groups, recurrent states (sim/serve/kv_layout.py); None: a block
        #: of every layer
        self.layout = layout if layout is not None and (
            layout.window_groups or layout.state_blocks) else None
        self.prefix_caching = prefix_caching
        self.swap_capacity = int(swap_capacity)
        self.used = 0            # private blocks + every cached prefix's blocks
        self.peak = 0
        self.swap_used = 0
        #: prefix group -> [blocks, references]; order = least recently used first
        self.prefixes: OrderedDict[int, list[int]] = OrderedDict()
        self.evictable = 0       # blocks of cached prefixes with no reference
        self.evictions = 0
        self.violations = 0      # allocations that would have exceeded capacity (must stay 0)

    def blocks_for(self, tokens: int, computed: int | None = None) -> int:
        """Blocks of a request with ``tokens`` in its cache after a step that started with
        ``computed`` computed (default ``tokens - 1``; only windowed layers free blocks)."""
        if self.layout is None:
            return -(-tokens // self.block_size)
        return self.layout.blocks(tokens, tokens - 1 if computed is None else computed,
                                  self.block_size)

    def peak_blocks(self, prompt: int, total: int, chunk: int) -> int:
        """The most blocks a request ever holds (:meth:`KVLayout.peak`)."""
        if self.layout is None:
            return self.blocks_for(total)
        return self.layout.peak(prompt, total, chunk, self.block_size)

    @property
    def free(self) -> int:
        return self.capacity - self.used

    def can_allocate(self, n: int) -> bool:
        return n <= self.free + self.evictable

    def allocate(self, n: int) -> None:
        """Take ``n`` blocks, evicting unreferenced cached prefixes if needed."""
        if n <= 0:
            return
        while n > self.free and self.evictable:
            for g, (blocks, refs) in self.prefixes.items():
                if refs == 0:
                    del self.prefixes[g]
                    self.used -= blocks
                    self.evictable -= blocks
                    self.evictions += 1
                    break
        if n > self.free:
            self.violations += 1
            raise AssertionError(f"KV cache over capacity: {self.used} + {n} > {self.capacity}")
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def release(self, n: int) -> None:
        self.used -= n
        assert self.used >= 0, "KV cache released more blocks than it holds"

    # --- prefix caching -------------------------------------------------------------------------
    def prefix_blocks(self, prefix_tokens: int) -> int:
        """Full blocks of a shared prefix (only full blocks are shared, as in vLLM)."""
        return prefix_tokens // self.block_size if self.prefix_caching else 0

    def lookup(self, group: int) -> int:
        """Cached blocks of ``group`` (0 if not cached)."""
        entry = self.prefixes.get(group) if group >= 0 else None
        return entry[0] if entry else 0

    def attach(self, group: int) -> None:
        entry = self.prefixes[group]
        if entry[1] == 0:
            self.evictable -= entry[0]
        entry[1] += 1
        self.prefixes.move_to_end(group)

    def detach(self, group: int) -> None:
        entry = self.prefixes[group]
        entry[1] -= 1
        assert entry[1] >= 0
        if entry[1] == 0:
            self.evictable += entry[0]

    def publish(self, group: int, blocks: int) -> bool:
        """Turn ``blocks`` private blocks of a request into the cached prefix of ``group``
        (referenced once, by that request); False if the group is cached already."""
        if group < 0 or blocks <= 0 or group in self.prefixes:
            return False
        self.prefixes[group] = [blocks, 1]
        return True

    # --- swap ---------------------------------------------------------------------------------
    def can_swap_out(self, n: int) -> bool:
        return self.swap_used + n <= self.swap_capacity

    def swap_out(self, n: int) -> None:
        self.release(n)
        self.swap_used += n

    def swap_in(self, n: int) -> None:
        self.allocate(n)
        self.swap_used -= n
