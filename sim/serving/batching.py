"""Iteration-level (Orca-style) batching with a paged KV cache placed on memory channels.

Up to ``batch`` requests decode together; every iteration each active request produces one
token. A finished request leaves at once and the next waiting request takes its slot (its prompt
already in the KV cache: prefill is outside this decode model). The KV cache is paged: a request
holds ``ceil(context / page_tokens)`` pages, all in one memory channel (NeuPIMs keeps a request's
K and V in one channel so its attention GEMVs are channel-local). A request is admitted only if
its channel has a free page; the channel is chosen at admission by

* ``round_robin`` — the next channel in turn (skipping full ones);
* ``greedy`` — the channel with the least KV tokens resident (NeuPIMs' min-load assignment).

Every request is accounted for: it is waiting, active or finished (checked by ``invariant``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.devices.base import SimError

PLACEMENTS = ("round_robin", "greedy")


@dataclass(frozen=True)
class BatchingConfig:
    """Sizes of the batch and of the paged KV cache (per device)."""

    batch: int
    channels: int
    page_tokens: int
    kv_bytes_per_token: float
    kv_capacity_bytes: float
    placement: str = "greedy"

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise SimError(f"placement: expected one of {', '.join(PLACEMENTS)}, "
                           f"got '{self.placement}'")
        if self.batch < 1 or self.channels < 1 or self.page_tokens < 1:
            raise SimError("batch, channels and page_tokens must be positive")

    @property
    def pages_per_channel(self) -> int:
        page_bytes = self.page_tokens * self.kv_bytes_per_token
        return int(self.kv_capacity_bytes // page_bytes // self.channels)


class IterationBatcher:
    """Slots of active requests over a stream of (input, output) lengths."""

    def __init__(self, cfg: BatchingConfig, in_lens: np.ndarray, out_lens: np.ndarray):
        if cfg.pages_per_channel < 1:
            raise SimError("the KV cache budget leaves no page per channel (model too large "
                           "for the device?)")
        self.cfg = cfg
        self.in_lens = np.asarray(in_lens, np.int64)
        self.out_lens = np.asarray(out_lens, np.int64)
        B = cfg.batch
        self.req = np.full(B, -1, np.int64)
        self.ctx = np.zeros(B, np.int64)
        self.left = np.zeros(B, np.int64)
        self.chan = np.full(B, -1, np.int64)
        self.pages = np.zeros(B, np.int64)
        self.chan_pages = np.zeros(cfg.channels, np.int64)
        self.chan_tokens = np.zeros(cfg.channels, np.int64)
        self.next_req = 0
        self.rr = 0
        self.finished = 0
        self.tokens = 0
        self.blocked = 0

    # --- admission -----------------------------------------------------------------------------
    def _pick_channel(self, pages: int) -> int:
        C = self.cfg.channels
        free = self.cfg.pages_per_channel - self.chan_pages
        if self.cfg.placement == "greedy":
            ok = np.flatnonzero(free >= pages)
            if ok.size == 0:
                return -1
            return int(ok[np.argmin(self.chan_tokens[ok])])
        for i in range(C):
            c = (self.rr + i) % C
            if free[c] >= pages:
                self.rr = (c + 1) % C
                return c
        return -1

    def admit(self) -> None:
        """Fill empty slots from the request stream while KV pages allow."""
        pt = self.cfg.page_tokens
        for s in np.flatnonzero(self.req < 0):
            if self.next_req >= self.in_lens.shape[0]:
                return
            r = self.next_req
            ctx = int(self.in_lens[r])
            pages = -(-(ctx + 1) // pt)
            c = self._pick_channel(pages)
            if c < 0:
                self.blocked += 1
                return
            self.req[s], self.ctx[s], self.left[s] = r, ctx, int(self.out_lens[r])
            self.chan[s], self.pages[s] = c, pages
            self.chan_pages[c] += pages
            self.chan_tokens[c] += ctx
            self.next_req += 1

    # --- one decode iteration ------------------------------------------------------------------
    def active(self) -> np.ndarray:
        return np.flatnonzero(self.req >= 0)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(context lengths, channels) of the requests decoding this iteration (the new
        token attends over ``context`` cached tokens plus itself)."""
        a = self.active()
        return self.ctx[a] + 1, self.chan[a]

    def step(self) -> int:
        """Advance every active request by one token; return tokens produced."""
        a = self.active()
        pt = self.cfg.page_tokens
        self.ctx[a] += 1
        self.left[a] -= 1
        np.add.at(self.chan_tokens, self.chan[a], 1)
        need = -(-(self.ctx[a] + 1) // pt)
        grow = a[need > self.pages[a]]
        for s in grow:  # a new page in the request's channel (overcommit is counted)
            self.pages[s] += 1
            self.chan_pages[self.chan[s]] += 1
        done = a[self.left[a] <= 0]
        for s in done:
            c = self.chan[s]
            self.chan_pages[c] -= self.pages[s]
            self.chan_tokens[c] -= self.ctx[s]
            self.req[s] = -1
            self.chan[s] = -1
            self.pages[s] = 0
            self.finished += 1
        self.tokens += a.shape[0]
        return int(a.shape[0])

    def invariant(self) -> None:
        """No request lost: waiting + active + finished = stream length."""
        waiting = self.in_lens.shape[0] - self.next_req
        active = int((self.req >= 0).sum())
        assert waiting + active + self.finished == self.in_lens.shape[0], "request lost"
        assert (self.chan_pages >= 0).all() and (self.chan_tokens >= 0).all()
