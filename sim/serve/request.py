"""A request's state while it is served (times in seconds of simulated time)."""

from __future__ import annotations

import math
from array import array

#: lifecycle states
WAITING, RUNNING, SWAPPED, DONE, FAILED, REJECTED, HANDED_OFF = (
    "waiting", "running", "swapped", "done", "failed", "rejected", "handed_off")


class Req:
    """One request: lengths, progress through prefill and decode, KV blocks, and times.

    ``computed`` counts tokens whose KV is in the cache. Every iteration a request computes
    some of the tokens up to ``target()`` = prompt + tokens generated so far, and emits one
    token when it reaches it: prefill computes the prompt (a chunk at a time under chunked
    prefill) and emits the first token; a decode step computes the one token fed back and emits
    the next; a request preempted by recompute re-prefills prompt and output alike.
    ``blocks`` are the KV blocks it holds alone; ``shared`` is the prefix group whose cached
    blocks it uses (-1: none).
    """

    __slots__ = ("id", "arrival", "prompt", "output", "group", "prefix", "deadline",
                 "generated", "computed", "blocks", "shared", "state", "replica",
                 "admitted_s", "scheduled_s", "first_token_s", "last_token_s", "finish_s",
                 "tbt_sum", "tbt_max", "preemptions", "cached_tokens", "prefill_tokens",
                 "tokens", "kv_remote", "handoff_s", "events", "swapped_blocks")

    def __init__(self, rid: int, arrival: float, prompt: int, output: int, group: int = -1,
                 prefix: int = 0, timeout: float = math.inf, record_tokens: bool = False):
        self.id = rid
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.group = group
        self.prefix = prefix
        self.deadline = arrival + timeout
        self.generated = 0
        self.computed = 0
        self.blocks = 0
        self.swapped_blocks = 0
        self.shared = -1
        self.state = WAITING
        self.replica = -1
        self.admitted_s = math.nan
        self.scheduled_s = math.nan
        self.first_token_s = math.nan
        self.last_token_s = math.nan
        self.finish_s = math.nan
        self.tbt_sum = 0.0
        self.tbt_max = 0.0
        self.preemptions = 0
        self.cached_tokens = 0      # prompt tokens served from the prefix cache
        self.prefill_tokens = 0     # prompt (and recomputed) tokens actually computed
        self.tokens: array | None = array("d") if record_tokens else None
        self.kv_remote = False      # token-only replica: KV arrives from a prompt replica
        self.handoff_s = math.nan
        self.events: list[str] = []  # lifecycle events, checked by the invariants

    def target(self) -> int:
        """Tokens whose KV must be computed before the next token can be sampled by prefill."""
        return self.prompt + self.generated

    @property
    def in_prefill(self) -> bool:
        return self.computed < self.target()

    def remaining_tokens(self) -> int:
        """Tokens still to compute: a request computes ``prompt + output - 1`` KV tokens in
        all (more after a recompute preemption, which resets ``computed``)."""
        return self.prompt + self.output - 1 - self.computed
