"""The serving event loop: arrivals, a router, replicas' iterations, hand-offs, timeouts.

An event queue (a heap of ``(time, sequence, callback, argument)``; equal times run in the
order they were scheduled, arrivals before the iteration that ends at the same instant) at
iteration granularity: a request arrives, the router sends it to a replica, an idle replica
starts an iteration at once and a busy one at the end of its current iteration. Other
components (Splitwise's KV transfers) schedule their own events with :meth:`Simulation.at`
and hand requests to token replicas with :meth:`Replica.accept`.

Routers: ``round_robin`` (next replica in turn) and ``least_tokens`` (the replica with the
fewest tokens of outstanding work: prompt tokens not yet computed plus outputs not yet made;
ties to the lower index). Only ``mixed`` and ``prompt`` replicas take new requests.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np

from sim.devices.base import SimError
from sim.serve.replica import Replica
from sim.serve.request import DONE, FAILED, HANDED_OFF, REJECTED, Req
from workloads.errors import WorkloadError
from workloads.requests import Requests

ROUTERS = ("round_robin", "least_tokens")
TERMINAL = (DONE, FAILED, REJECTED)


def check_requests(requests: Requests, replicas: list[Replica]) -> None:
    """Refuse a request table the engine cannot serve, with a :class:`WorkloadError` naming the
    first bad request (its row): lengths < 1, a shared prefix longer than its prompt, arrival
    times not finite or out of order, or prompt + output over the context the replicas serve
    (the model's, or ``max_model_len`` when larger; vLLM's API server refuses such a request
    too). :func:`workloads.requests.check_context` truncates or skips over-long requests first.
    Requests within the context but over a smaller ``max_model_len`` are the engine's to
    reject (counted in ``requests_rejected``)."""
    where = requests.source or "requests"
    n = len(requests)
    arrival, prompt, output = requests.arrival_s, requests.prompt, requests.output
    if not (len(prompt) == len(output) == len(requests.group) == len(requests.prefix) == n):
        raise WorkloadError(where, "", "arrival_s, prompt, output, group and prefix differ in "
                                       "length")

    def bad(mask: np.ndarray, field: str, what: str) -> None:
        if n and mask.any():
            i = int(np.argmax(mask))
            text = what.format(prompt=int(prompt[i]), output=int(output[i]),
                               arrival=float(arrival[i]), prefix=int(requests.prefix[i]))
            name = f"{field} " if field else ""
            raise WorkloadError(where, f"row {i + 1}", f"request {i}: {name}{text}")
    bad(~np.isfinite(arrival) | (arrival < 0), "arrival_s",
        "{arrival} is not a finite time >= 0 s")
    bad(np.r_[False, np.diff(arrival) < 0] if n else np.zeros(0, bool), "arrival_s",
        "{arrival:.6g} s is earlier than the request before it (arrivals must be in order)")
    bad(prompt < 1, "prompt", "{prompt} tokens: expected >= 1")
    bad(output < 1, "output", "{output} tokens: expected >= 1")
    bad((requests.prefix < 0) | (requests.prefix > prompt), "prefix",
        "{prefix} tokens: expected 0 .. the prompt's {prompt}")
    limit = min(max(r.max_model_len, r.model.model.max_positions) for r in replicas)
    name = replicas[0].model.model.name
    bad(prompt + output > limit, "", f"prompt {{prompt:,}} + output {{output:,}} tokens "
        f"exceed {name}'s context of {limit:,} tokens (max_model_len); truncate or skip such "
        "requests first (workloads.requests.check_context, xpusim serve --over-context)")


class Simulation:
    """Serve ``requests`` on ``replicas``; :meth:`run` returns the requests with their times."""

    def __init__(self, replicas: list[Replica], requests: Requests, router: str = "round_robin",
                 timeout: float = math.inf, record_tokens: bool | None = None,
                 progress: Callable[[int], None] | None = None):
        if router not in ROUTERS:
            raise SimError(f"--router: expected one of {', '.join(ROUTERS)}, got '{router}'")
        if not replicas:
            raise SimError("a serving run needs at least one replica")
        self.replicas = replicas
        for r in replicas:
            r.sim = self
        self.entry = [r for r in replicas if r.role in ("mixed", "prompt")]
        if not self.entry:
            raise SimError("no replica takes new requests (roles: mixed or prompt)")
        self.router = router
        self.timeout = timeout
        check_requests(requests, replicas)
        self.requests = requests
        record = len(requests) <= 20_000 if record_tokens is None else record_tokens
        self.reqs = [Req(i, float(requests.arrival_s[i]), int(requests.prompt[i]),
                         int(requests.output[i]), int(requests.group[i]),
                         int(requests.prefix[i]), timeout, record)
                     for i in range(len(requests))]
        self._heap: list[tuple[float, int, Callable, object]] = []
        self._seq = 0
        self._rr = 0
        self.now = 0.0
        self.finished = 0
        self.progress = progress
        self.events = 0

    # --- scheduling primitives ----------------------------------------------------------------
    def at(self, t: float, fn: Callable[[float, object], None], arg: object = None) -> None:
        """Call ``fn(t, arg)`` at simulated time ``t`` (not before now)."""
        if t < self.now:
            raise AssertionError(f"event scheduled in the past ({t} < {self.now})")
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn, arg))

    def wake(self, replica: Replica, t: float) -> None:
        """Start an idle ``replica`` at ``t``, after every other event of that instant (so
        requests arriving together are batched together)."""
        if replica.busy or replica.woken:
            return
        replica.woken = True
        self.at(t, self._wake, replica)

    def _wake(self, t: float, replica) -> None:
        replica.woken = False
        self.kick(replica, t)

    def kick(self, replica: Replica, t: float) -> None:
        """Start ``replica``'s next iteration at ``t`` if it is idle and has work."""
        if replica.busy:
            return
        batch = replica.schedule(t)
        if batch is None:
            return
        replica.busy = True
        self.at(t + batch.duration, self._end_iteration, (replica, batch))

    def _end_iteration(self, t: float, arg) -> None:
        replica, batch = arg
        replica.busy = False
        replica.complete(batch, t)
        self.kick(replica, t)

    def done(self, req: Req) -> None:
        """A request reached a terminal state (finished, failed or rejected)."""
        self.finished += 1
        if self.progress is not None:
            self.progress(1)

    def route(self, req: Req) -> Replica:
        if self.router == "round_robin":
            rep = self.entry[self._rr % len(self.entry)]
            self._rr += 1
            return rep
        return min(self.entry, key=lambda r: (r.outstanding, r.index))

    # --- run --------------------------------------------------------------------------------
    def run(self) -> Simulation:
        """Run until every request is finished, failed or rejected."""
        heap, reqs = self._heap, self.reqs
        i, n = 0, len(reqs)
        while i < n or heap:
            if i < n and (not heap or reqs[i].arrival <= heap[0][0]):
                req = reqs[i]
                i += 1
                self.now = req.arrival
                req.events.append("arrive")
                self.route(req).submit(req, self.now)
            else:
                t, _, fn, arg = heapq.heappop(heap)
                self.now = t
                fn(t, arg)
            self.events += 1
        for req in reqs:  # left waiting with nothing running: only a timeout ends them
            if req.state not in TERMINAL:
                if math.isfinite(req.deadline):
                    req.state = FAILED
                    req.finish_s = req.deadline
                    req.events.append("fail")
                    self.done(req)
                elif req.state != HANDED_OFF:
                    raise AssertionError(f"request {req.id} never finished ({req.state})")
        return self

    @property
    def makespan(self) -> float:
        ends = [r.finish_s for r in self.reqs if not math.isnan(r.finish_s)]
        return max(ends) if ends else 0.0

    def tbts(self) -> np.ndarray:
        """Every time between tokens (s) of every replica."""
        parts = [np.asarray(r.tbts, float) for r in self.replicas]
        return np.concatenate(parts) if parts else np.zeros(0)
