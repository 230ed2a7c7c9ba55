"""A serving replica: its engine knobs, scheduler, paged KV cache and iteration loop.

Schedulers (``EngineConfig.scheduler``), each at iteration granularity:

* ``static`` — a batch of up to ``max_num_seqs`` waiting requests is admitted when the replica
  is empty, with KV blocks for their whole output reserved; it prefills together, decodes
  until its last request finishes, and only then admits the next batch.
* ``continuous`` — Orca / vLLM (v0 default): a finished request leaves at once; waiting
  prompts are admitted whenever KV blocks and ``max_num_seqs`` / ``max_num_batched_tokens``
  allow, and an iteration with new prompts runs those prompts only (prefill first); otherwise
  every running request decodes one token.
* ``chunked`` — Sarathi-Serve / vLLM chunked prefill: each iteration fills a budget of
  ``max_num_batched_tokens``: first every decode (one token each), then unfinished prefills,
  then new prompts, the last one cut to the budget left; prefill and decode share the
  iteration.

KV blocks are allocated as tokens enter the cache; when a step needs a block and none is free
the most recently admitted running request is preempted: ``recompute`` frees its blocks and
puts it back at the head of the queue (it re-prefills prompt and output so far), ``swap``
copies its blocks to host memory over the PCIe link (the copy time adds to the iteration) and
brings them back before new prompts are admitted. A ``prompt`` replica hands a request off
after its prefill (first token) through ``on_prefill_done``; a ``token`` replica takes
requests whose KV arrives (:meth:`Replica.accept`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sim.devices.base import SimError
from sim.serve.costs import IterationModel
from sim.serve.kv_layout import KVLayout
from sim.serve.kvcache import KVCache
from sim.serve.request import (
    DONE,
    FAILED,
    HANDED_OFF,
    REJECTED,
    RUNNING,
    SWAPPED,
    WAITING,
    Req,
)

SCHEDULERS = ("static", "continuous", "chunked")
ROLES = ("mixed", "prompt", "token")
PREEMPTION = ("recompute", "swap")


@dataclass
class EngineConfig:
    """vLLM engine knobs (same names) and the scheduler. ``max_num_batched_tokens`` 0 means
    vLLM's default: ``max(max_model_len, 2048)`` without chunked prefill, 2048 with it (an
    assumption: vLLM's chunked default moved between 512 and 8192 across versions).
    ``kv_blocks`` > 0 sets the cache size in blocks instead of deriving it from memory.
    ``swap_space`` is host bytes per device for swapped KV (vLLM's default 4 GiB)."""

    scheduler: str = "continuous"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 0
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool = False
    preemption: str = "recompute"
    swap_space: float = 4 * 2**30
    kv_blocks: int = 0
    max_model_len: int = 0

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise SimError(f"--scheduler: expected one of {', '.join(SCHEDULERS)}, got "
                           f"'{self.scheduler}'")
        if self.preemption not in PREEMPTION:
            raise SimError(f"--preemption: expected one of {', '.join(PREEMPTION)}, got "
                           f"'{self.preemption}'")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise SimError("--gpu-memory-utilization: expected a fraction in (0, 1], got "
                           f"{self.gpu_memory_utilization}")
        for name in ("max_num_seqs", "block_size"):
            if getattr(self, name) < 1:
                raise SimError(f"--{name.replace('_', '-')}: expected a positive integer")
        for name, option in (("max_num_batched_tokens", "max-num-batched-tokens"),
                             ("kv_blocks", "num-gpu-blocks-override"),
                             ("max_model_len", "max-model-len"), ("swap_space", "swap-space")):
            value = getattr(self, name)
            if not value >= 0:   # a negative budget or cache would leave requests waiting
                raise SimError(f"--{option}: expected a value >= 0 (0: the default), got "
                               f"{value}")

    def token_budget(self, max_model_len: int) -> int:
        if self.max_num_batched_tokens:
            return self.max_num_batched_tokens
        return 2048 if self.scheduler == "chunked" else max(max_model_len, 2048)


@dataclass
class Batch:
    """One iteration: ``(request, new tokens)`` entries, swap traffic and timing."""

    entries: list[tuple[Req, int]]
    start: float
    duration: float = 0.0
    energy_J: float = 0.0
    swap_bytes: float = 0.0
    n_decode: int = 0
    tokens: int = 0
    preempted: list[Req] = field(default_factory=list)


class Replica:
    """One model replica (``tp`` x ``pp`` devices) with its scheduler and KV cache."""

    def __init__(self, index: int, model: IterationModel, cfg: EngineConfig,
                 role: str = "mixed", name: str = ""):
        if role not in ROLES:
            raise SimError(f"role: expected one of {', '.join(ROLES)}, got '{role}'")
        self.index = index
        self.name = name or f"replica{index}"
        self.model = model
        self.cfg = cfg
        self.role = role
        self.max_model_len = cfg.max_model_len or model.model.max_positions
        self.budget = cfg.token_budget(self.max_model_len)
        if cfg.scheduler == "continuous" and self.budget < self.max_model_len:
            raise SimError(f"--max-num-batched-tokens: {self.budget:,} is smaller than "
                           f"--max-model-len {self.max_model_len:,}; a prompt could never be "
                           "scheduled without --enable-chunked-prefill (as vLLM refuses)")
        self.layout = KVLayout.of(model.model, cfg.enable_prefix_caching)
        self.block_bytes = cfg.block_size * model.kv_bytes_per_token()
        if self.layout.group_layers != model.model.n_layers:   # a block of one group's layers
            self.block_bytes *= self.layout.group_layers / model.model.n_layers
        state = state_bytes(model)
        if state:   # a hybrid's recurrent states: whole blocks per request (kv_layout.py)
            if cfg.enable_prefix_caching:
                raise SimError(f"--enable-prefix-caching: {model.model.name}'s recurrent "
                               "layers keep a state per request; caching prefixes of it is "
                               "not modelled")
            if self.block_bytes:
                self.layout = replace(self.layout, state_blocks=math.ceil(
                    state / self.block_bytes))
            else:   # no attention at all: a block is one request's state
                self.block_bytes = state
                self.layout = replace(self.layout, full_groups=0, state_blocks=1)
        swap = min(cfg.swap_space / self.block_bytes, 2.0**62) \
            if cfg.preemption == "swap" else 0.0
        self.kv = KVCache(self.kv_capacity_blocks(), cfg.block_size, cfg.enable_prefix_caching,
                          int(swap), self.layout)
        self.swap_bw = model.host_link()[1] if cfg.preemption == "swap" else math.inf
        self.waiting: deque[Req] = deque()
        self.running: list[Req] = []
        self.swapped: deque[Req] = deque()
        self.busy = False
        self.woken = False     # a start event is pending
        self.busy_s = 0.0
        self.energy_J = 0.0
        self.outstanding = 0   # tokens of work routed here and not yet done (router)
        self.on_prefill_done: Callable[[Req, Replica, float], None] | None = None
        self.on_finish: Callable[[Req, float], None] | None = None
        self.log: list[tuple] = []   # per iteration (see ITER_COLUMNS)
        self.tbts: list[float] = []
        self.sim = None

    # --- sizing -------------------------------------------------------------------------------
    def kv_capacity_blocks(self) -> int:
        """Blocks that fit in ``gpu_memory_utilization`` of a device's memory after its weights
        and the activations of a full token budget (or ``kv_blocks`` when given)."""
        cfg, m = self.cfg, self.model
        if cfg.kv_blocks:
            return cfg.kv_blocks
        room = cfg.gpu_memory_utilization * m.memory_capacity() - m.weight_bytes() \
            - m.activation_bytes(self.budget)
        blocks = int(room // self.block_bytes) if room > 0 else 0
        if blocks < 1:
            raise SimError(f"--model: {m.model.name} leaves no room for a KV cache on "
                           f"'{m.arch.name}' at --tp {m.tp} --pp {m.pp} (weights "
                           f"{m.weight_bytes() / 2**30:.1f} GiB per device, activations of "
                           f"{self.budget:,} batched tokens "
                           f"{m.activation_bytes(self.budget) / 2**30:.3g} GiB, "
                           f"{cfg.gpu_memory_utilization:g} of "
                           f"{m.memory_capacity() / 2**30:.1f} GiB usable); use a larger --tp, "
                           "a higher --gpu-memory-utilization or a smaller "
                           "--max-num-batched-tokens")
        return blocks

    # --- requests in ----------------------------------------------------------------------------
    def submit(self, req: Req, t: float) -> None:
        """A new request (router)."""
        req.replica = self.index
        req.state = WAITING
        self.waiting.append(req)
        self.outstanding += req.remaining_tokens()
        if self.sim is not None and not self.busy:
            self.sim.wake(self, t)

    def accept(self, req: Req, t: float) -> None:
        """A request whose prefill ran elsewhere and whose KV has arrived (token replica):
        it needs blocks for its context, then decodes."""
        req.replica = self.index
        req.state = WAITING
        req.kv_remote = True
        req.events.append("accept")
        self.waiting.append(req)
        self.outstanding += req.remaining_tokens()
        if self.sim is not None and not self.busy:
            self.sim.wake(self, t)

    # --- KV helpers -----------------------------------------------------------------------------
    def _shared_blocks(self, r: Req) -> int:
        return self.kv.lookup(r.shared) if r.shared >= 0 else 0

    def _need(self, r: Req, upto: int) -> int:
        return self.kv.blocks_for(upto, r.computed) - self._shared_blocks(r) - r.blocks

    def _release(self, r: Req) -> None:
        self.kv.release(r.blocks)
        r.blocks = 0
        if r.shared >= 0:
            self.kv.detach(r.shared)
            r.shared = -1

    def _fits_ever(self, r: Req) -> bool:
        """Whether ``r`` can ever be served here: within ``max_model_len`` (vLLM's engine
        ignores longer requests) and its whole KV within the cache."""
        return r.prompt + r.output <= self.max_model_len and \
            self._peak(r) <= self.kv.capacity

    def _peak(self, r: Req) -> int:
        """The most blocks ``r`` holds here (its prompt in chunks of the token budget)."""
        return self.kv.peak_blocks(r.prompt, r.prompt + r.output - 1, self.budget)

    def _end(self, r: Req, state: str, t: float) -> None:
        self._release(r)
        if r.swapped_blocks:
            self.kv.swap_used -= r.swapped_blocks
            r.swapped_blocks = 0
        r.state = state
        self.outstanding -= r.remaining_tokens()
        if state == FAILED:
            r.finish_s = r.deadline
            r.events.append("fail")
        elif state == REJECTED:
            r.finish_s = t
            r.events.append("reject")
        if self.sim is not None:
            self.sim.done(r)

    def _admit(self, r: Req, t: float) -> None:
        r.state = RUNNING
        if math.isnan(r.admitted_s):
            r.admitted_s = t
            r.events.append("admit")
        self.running.append(r)

    def _prefix_hit(self, r: Req) -> None:
        """Start a new prompt after its cached shared prefix (full blocks; at least one token
        is left to compute, as vLLM recomputes the last one)."""
        if r.kv_remote or r.computed or r.group < 0 or not self.kv.prefix_caching:
            return
        cached = self.kv.lookup(r.group)
        if cached and cached == self.kv.prefix_blocks(r.prefix):
            skip = min(cached * self.kv.block_size, r.target() - 1)
            if skip > 0:
                self.kv.attach(r.group)
                r.shared = r.group
                r.computed = skip
                r.cached_tokens += skip

    def _preempt(self, victim: Req, batch: Batch) -> None:
        victim.preemptions += 1
        self.running.remove(victim)
        batch.preempted.append(victim)
        if self.cfg.preemption == "swap" and victim.blocks and \
                self.kv.can_swap_out(victim.blocks):
            batch.swap_bytes += victim.blocks * self.block_bytes
            victim.swapped_blocks = victim.blocks
            self.kv.swap_out(victim.blocks)
            victim.blocks = 0
            victim.state = SWAPPED
            self.swapped.append(victim)
            return
        self.outstanding -= victim.remaining_tokens()
        self._release(victim)
        victim.computed = 0
        victim.state = WAITING
        self.outstanding += victim.remaining_tokens()
        self.waiting.appendleft(victim)

    def _grow(self, r: Req, chunk: int, batch: Batch) -> bool:
        """Allocate blocks for ``chunk`` more tokens of running ``r``, preempting the latest
        running requests while none are free; False if ``r`` itself was preempted."""
        kv = self.kv
        if kv.layout is None and r.shared < 0:   # (most steps: within the last block)
            need = -(-(r.computed + chunk) // kv.block_size) - r.blocks
            if need <= 0:
                return True
        need = kv.blocks_for(r.computed + chunk, r.computed) - r.blocks
        if r.shared >= 0:
            need -= kv.lookup(r.shared)
        if need < 0 and kv.layout is not None:   # a window moved past blocks: freed
            kv.release(-need)
            r.blocks += need
        if need <= 0:
            return True
        while not kv.can_allocate(need):
            victim = self.running[-1]
            self._preempt(victim, batch)
            if victim is r:
                return False
        kv.allocate(need)
        r.blocks += need
        return True

    # --- scheduling -----------------------------------------------------------------------------
    def _expire(self, t: float) -> None:
        while self.waiting and self.waiting[0].deadline <= t:
            self._end(self.waiting.popleft(), FAILED, t)
        late = [r for r in self.running if r.deadline <= t]
        for r in late:
            self.running.remove(r)
            self._end(r, FAILED, t)
        late = [r for r in self.swapped if r.deadline <= t]
        for r in late:
            self.swapped.remove(r)
            self._end(r, FAILED, t)

    def schedule(self, t: float) -> Batch | None:
        """The next iteration's batch at time ``t`` (None when there is nothing to run)."""
        self._expire(t)
        batch = Batch([], t)
        sched = self.cfg.scheduler
        if sched == "static":
            self._schedule_static(batch, t)
        elif sched == "continuous":
            self._schedule_continuous(batch, t)
        else:
            self._schedule_chunked(batch, t)
        if not batch.entries:
            return None
        return self._cost(batch)

    def _take_remote(self, t: float) -> None:
        """Admit waiting requests whose KV came from a prompt replica (blocks only)."""
        while self.waiting and self.waiting[0].kv_remote and \
                len(self.running) < self.cfg.max_num_seqs:
            r = self.waiting[0]
            if not self._fits_ever(r):
                self.waiting.popleft()
                self._end(r, REJECTED, t)
                continue
            need = self._need(r, r.computed)
            if not self.kv.can_allocate(need):
                break
            self.waiting.popleft()
            self.kv.allocate(need)
            r.blocks += need
            self._admit(r, t)

    def _new_prompt(self, t: float, budget_left: int, chunked: bool, seqs: int) -> int:
        """Tokens of the next waiting prompt that can start now (0: none), admitting it."""
        while self.waiting:
            r = self.waiting[0]
            if r.kv_remote:
                return 0
            if not self._fits_ever(r) or (not chunked and r.target() > self.budget):
                self.waiting.popleft()   # could never be scheduled: vLLM ignores it too
                self._end(r, REJECTED, t)
                continue
            if seqs >= self.cfg.max_num_seqs:
                return 0
            self._prefix_hit(r)
            want = r.target() - r.computed
            chunk = min(want, budget_left) if chunked else want
            if chunk <= 0 or chunk > budget_left:
                self._undo_hit(r)
                return 0
            need = self._need(r, r.computed + chunk)
            if not self.kv.can_allocate(need):
                self._undo_hit(r)
                return 0
            self.waiting.popleft()
            self.kv.allocate(need)
            r.blocks += need
            self._admit(r, t)
            return chunk
        return 0

    def _undo_hit(self, r: Req) -> None:
        if r.shared >= 0 and r.blocks == 0:
            r.cached_tokens -= r.computed
            r.computed = 0
            self.kv.detach(r.shared)
            r.shared = -1

    def _swap_in(self, batch: Batch) -> None:
        while self.swapped and len(self.running) < self.cfg.max_num_seqs:
            r = self.swapped[0]
            need = max(r.swapped_blocks, self.kv.blocks_for(r.computed + 1, r.computed)
                       - self._shared_blocks(r))
            if not self.kv.can_allocate(need):
                break
            self.swapped.popleft()
            self.kv.swap_in(r.swapped_blocks)
            r.blocks = r.swapped_blocks
            r.swapped_blocks = 0
            batch.swap_bytes += r.blocks * self.block_bytes
            r.state = RUNNING
            self.running.append(r)

    def _schedule_continuous(self, batch: Batch, t: float) -> None:
        self._take_remote(t)
        if not self.swapped:
            left = self.budget
            while True:
                chunk = self._new_prompt(t, left, False, len(self.running))
                if not chunk:
                    break
                r = self.running[-1]
                r.scheduled_s = t if math.isnan(r.scheduled_s) else r.scheduled_s
                batch.entries.append((r, chunk))
                left -= chunk
            if batch.entries:
                return
        self._decode_running(batch, t)
        if not batch.preempted:
            before = len(self.running)
            self._swap_in(batch)
            for r in self.running[before:]:
                if self._grow(r, 1, batch):
                    batch.entries.append((r, 1))

    def _decode_running(self, batch: Batch, t: float, budget: int | None = None) -> int:
        """Schedule every running request's next tokens (a decode step, or its next prefill
        chunk within ``budget``); returns the budget left. Under a budget, decodes go first
        and unfinished prefills take what is left (Sarathi-Serve: decodes never stall)."""
        left = budget if budget is not None else 1 << 62
        order = self.running
        if budget is not None:
            order = [r for r in order if r.generated and r.computed + 1 == r.target()] + \
                [r for r in order if not (r.generated and r.computed + 1 == r.target())]
        for r in list(order):
            if r.state != RUNNING:
                continue  # preempted while scheduling an earlier request
            want = r.prompt + r.generated - r.computed     # r.target() - r.computed
            chunk = min(want, left)
            if chunk <= 0:
                continue
            if self._grow(r, chunk, batch):
                if math.isnan(r.scheduled_s):
                    r.scheduled_s = t
                batch.entries.append((r, chunk))
                left -= chunk
        return left

    def _schedule_chunked(self, batch: Batch, t: float) -> None:
        self._take_remote(t)
        left = self._decode_running(batch, t, self.budget)
        if not batch.preempted:
            before = len(self.running)
            self._swap_in(batch)
            for r in self.running[before:]:
                if left > 0 and self._grow(r, 1, batch):
                    batch.entries.append((r, 1))
                    left -= 1
        if batch.preempted or self.swapped:
            return
        while left > 0:
            chunk = self._new_prompt(t, left, True, len(self.running))
            if not chunk:
                break
            r = self.running[-1]
            r.scheduled_s = t
            batch.entries.append((r, chunk))
            left -= chunk

    def _schedule_static(self, batch: Batch, t: float) -> None:
        if not self.running:
            while self.waiting and len(self.running) < self.cfg.max_num_seqs:
                r = self.waiting[0]
                full = self._peak(r)
                if not self._fits_ever(r):
                    self.waiting.popleft()
                    self._end(r, REJECTED, t)
                    continue
                if not self.kv.can_allocate(full):
                    break
                self.waiting.popleft()
                self.kv.allocate(full)
                r.blocks = full
                self._admit(r, t)
                r.scheduled_s = t
        for r in self.running:
            batch.entries.append((r, r.target() - r.computed))

    # --- cost and completion --------------------------------------------------------------------
    def _cost(self, batch: Batch) -> Batch:
        n_decode = decode_ctx = n_logits = 0
        prefills = []
        for r, chunk in batch.entries:
            computed = r.computed
            if chunk == 1 and computed >= r.prompt:
                n_decode += 1
                decode_ctx += computed + 1
            else:
                prefills.append((chunk, computed + chunk))
            if computed + chunk == r.prompt + r.generated:     # r.target()
                n_logits += 1
        it = self.model.iteration(n_decode, decode_ctx, prefills, n_logits)
        batch.n_decode = n_decode
        batch.tokens = n_decode + sum(s for s, _ in prefills) if prefills else n_decode
        batch.duration = it.seconds + batch.swap_bytes / self.swap_bw
        batch.energy_J = it.energy_J
        return batch

    def complete(self, batch: Batch, t: float) -> None:
        """Apply an iteration that ended at ``t``: KV advances, tokens are emitted."""
        self.busy_s += batch.duration
        self.energy_J += batch.energy_J
        kv = self.kv
        leaving = False
        for r, chunk in batch.entries:
            if r.state != RUNNING:
                continue
            if t > r.deadline:
                self.running.remove(r)
                self._end(r, FAILED, t)
                continue
            before = r.computed
            r.computed += chunk
            self.outstanding -= chunk
            if chunk > 1 or before < r.prompt:
                r.prefill_tokens += chunk
                self._publish(r)
            if r.computed < r.prompt + r.generated:     # r.target()
                continue
            # the iteration samples this request's next token at its end
            if r.generated:
                gap = t - r.last_token_s
                assert gap >= 0, "tokens out of order"
                r.tbt_sum += gap
                if gap > r.tbt_max:
                    r.tbt_max = gap
                self.tbts.append(gap)
            else:
                r.first_token_s = t
            r.generated += 1
            r.last_token_s = t
            if r.tokens is not None:
                r.tokens.append(t)
            if r.generated >= r.output:
                r.state = DONE
                r.finish_s = t
                r.events.append("finish")
                self._release(r)
                leaving = True
                if self.sim is not None:
                    self.sim.done(r)
            elif self.role == "prompt" and r.generated == 1:
                r.state = HANDED_OFF
                r.handoff_s = t
                r.events.append("handoff")
                self.outstanding -= r.remaining_tokens()
                self._release(r)
                leaving = True
                if self.on_prefill_done is not None:
                    self.on_prefill_done(r, self, t)
        if leaving:
            self.running = [r for r in self.running if r.state == RUNNING]
        self.log.append((batch.start, t, len(batch.entries), batch.tokens, batch.n_decode,
                         kv.used, len(self.waiting), len(self.running), batch.energy_J,
                         len(batch.preempted)))

    def _publish(self, r: Req) -> None:
        """Share a freshly computed system prompt's full blocks with later requests."""
        if r.group < 0 or r.shared >= 0 or not self.kv.prefix_caching or r.kv_remote:
            return
        pb = self.kv.prefix_blocks(r.prefix)
        if pb and r.computed >= pb * self.kv.block_size and r.blocks >= pb:
            if self.kv.publish(r.group, pb):
                r.blocks -= pb
                r.shared = r.group


ITER_COLUMNS = ("start_s", "end_s", "seqs", "tokens", "decode_seqs", "kv_blocks", "waiting",
                "running", "energy_J", "preempted")


def state_bytes(model) -> float:
    """Bytes one device holds per running request for ``model``'s recurrent states (an
    iteration model without a ``state_bytes_per_request``, a test's stand-in: none)."""
    per_request = getattr(model, "state_bytes_per_request", None)
    return per_request() if per_request is not None else 0.0
