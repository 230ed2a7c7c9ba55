"""Contended resources for the event engine: a memory or link whose bandwidth concurrent
transfers share.

:class:`SharedBandwidth` is processor sharing: ``n`` transfers in flight each move at
``bandwidth / n`` bytes/s, so a transfer's completion moves later when another starts and earlier
when one ends. It costs one event per arrival or departure, never per byte. A task may also
:meth:`~SharedBandwidth.reserve` a fixed share of the bandwidth while it runs (a PIM program's
command-bus slots): the transfers then share what is left.

A resource's timer (when its next transfer finishes) is a SimPy event of URGENT priority: at
its time it fires before every normal event (op timeouts, conditions, process steps), so a
transfer that finishes at ``t`` leaves before any transfer that starts at ``t`` shares the
bandwidth, whichever order the events were scheduled in (at NORMAL priority SimPy takes the
events of one time in the order they were scheduled, which follows how the engine batches a
stream's ops: a tie the compiled passes of sim/shared_kernel.py could not always order).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: SimPy loads with the engine's first event (issue 18)
    import simpy


#: relative float slack a finished transfer may leave: what moves in a picosecond
FINISH_TOL = 1e-12


class SharedBandwidth:
    """A bandwidth (bytes/s) shared equally among the transfers in flight."""

    def __init__(self, env: simpy.Environment, bandwidth: float, name: str = ""):
        if bandwidth <= 0:
            raise ValueError(f"{name or 'resource'}: bandwidth must be positive")
        self.env = env
        self.bandwidth = bandwidth
        self.name = name
        self._left: dict[int, float] = {}       # transfer id -> bytes still to move
        self._done: dict[int, simpy.Event] = {}
        self._last = env.now
        self._next_id = 0
        self._epoch = 0                         # invalidates timers scheduled before a change
        self.bytes_moved = 0.0
        self.busy_time = 0.0
        self.reserved = 0.0                     # share of the bandwidth held by reservations

    @property
    def rate(self) -> float:
        """Bytes/s the transfers in flight share (the bandwidth less what is reserved)."""
        return self.bandwidth * (1.0 - self.reserved)

    def reserve(self, share: float) -> None:
        """Hold ``share`` (0 <= share < 1) of the bandwidth until :meth:`release`: transfers in
        flight slow down to the rest; reservations add up and must stay below 1."""
        if not 0.0 <= share < 1.0 or self.reserved + share >= 1.0 - 1e-12:
            raise ValueError(f"{self.name or 'resource'}: cannot reserve {share:.3g} of the "
                             f"bandwidth with {self.reserved:.3g} already reserved (total < 1)")
        self._advance()
        self.reserved += share
        self._reschedule()

    def release(self, share: float) -> None:
        """Give back a share taken by :meth:`reserve`."""
        self._advance()
        self.reserved = max(0.0, self.reserved - share)
        self._reschedule()

    def transfer(self, nbytes: float) -> simpy.Event:
        """An event that fires when ``nbytes`` have moved under fair sharing."""
        event = self.env.event()
        if nbytes <= 0:
            event.succeed()
            return event
        self._advance()
        tid = self._next_id
        self._next_id += 1
        self._left[tid] = float(nbytes)
        self._done[tid] = event
        self.bytes_moved += nbytes
        self._reschedule()
        return event

    def _advance(self) -> None:
        """Charge the time since the last change to every transfer in flight."""
        now = self.env.now
        busy = _charge(self._left, self._last, now, self.rate)
        if busy is not None:
            self.busy_time += busy
        self._last = now

    def _reschedule(self) -> None:
        self._epoch += 1
        if not self._left:
            return
        timer = _urgent_timeout(self.env, _first_finish(self._left, self.rate))
        epoch = self._epoch
        timer.callbacks.append(lambda _e, epoch=epoch: self._on_timer(epoch))

    def _on_timer(self, epoch: int) -> None:
        if epoch != self._epoch:
            return  # a transfer started or ended since this timer was set
        stalled = self.env.now == self._last
        self._advance()
        for tid in _finished(self._left, self.rate, stalled):
            del self._left[tid]
            self._done.pop(tid).succeed()
        self._reschedule()

    def solo_end(self, nbytes: float, t: float) -> float | None:
        """When a transfer of ``nbytes`` (> 0) started at ``t`` (s) alone would finish: the
        time its timer fires, as :meth:`transfer`, :meth:`_reschedule` and :meth:`_on_timer`
        compute it with one transfer in flight. None when a transfer is in flight or a share
        is reserved now, or when that timer would leave it unfinished. The caller must know
        that nothing else starts on this resource before the returned time
        (sim/engine_arrays.py)."""
        if self._left or self.reserved:
            return None
        rate = self.rate
        timer = t + max(0.0, nbytes / rate)
        if nbytes - (timer - t) * rate > rate * FINISH_TOL:
            return None
        return timer

    def add_solo(self, nbytes: float, t: float, timer: float) -> None:
        """Count a transfer :meth:`solo_end` timed as its own events would count it: its
        bytes, busy time from ``t`` to ``timer`` (s), the last change at ``timer``."""
        self.bytes_moved += nbytes
        self.busy_time += timer - t
        self._last = timer

    def solo_ends(self, nbytes: np.ndarray, starts: np.ndarray, moves: np.ndarray) -> np.ndarray:
        """:meth:`solo_end` of each transfer ``nbytes[j]`` started at ``starts[j]`` (s) where
        ``moves[j]``, one after the other: NaN where it would return None (and everywhere
        while a transfer is in flight or a share is reserved)."""
        if self._left or self.reserved:
            return np.full(len(nbytes), np.nan)
        rate = self.rate
        timer = starts + np.maximum(0.0, nbytes / rate)
        left = moves & (nbytes - (timer - starts) * rate > rate * FINISH_TOL)
        timer[left] = np.nan
        return timer

    def add_solos(self, nbytes: np.ndarray, starts: np.ndarray, timers: np.ndarray,
                  moves: np.ndarray) -> None:
        """:meth:`add_solo` of each transfer where ``moves``, in order (the same sequential
        additions, by ``np.cumsum``)."""
        nb, t0, t1 = nbytes[moves], starts[moves], timers[moves]
        acc = np.empty(len(nb) + 1)
        acc[0], acc[1:] = self.bytes_moved, nb
        self.bytes_moved = float(np.cumsum(acc)[-1])
        acc[0], acc[1:] = self.busy_time, t1 - t0
        self.busy_time = float(np.cumsum(acc)[-1])
        self._last = float(t1[-1])

    def pair_replay(self, y_bytes: float, y_start: float) -> PairReplay | None:
        """A :class:`PairReplay` of a transfer of ``y_bytes`` arriving at ``y_start`` (s) beside
        a run's transfers, or None while a transfer is in flight or a share is reserved."""
        return None if self._left or self.reserved else PairReplay(self, y_bytes, y_start)

    def utilisation(self, elapsed: float) -> float:
        """Fraction of ``elapsed`` seconds the resource moved data at full rate."""
        return self.bytes_moved / (self.bandwidth * elapsed) if elapsed > 0 else 0.0

    def __repr__(self) -> str:  # pragma: no cover
        return f"SharedBandwidth({self.name!r}, {self.bandwidth:.3g} B/s)"


def _urgent_timeout(env: simpy.Environment, delay: float) -> simpy.Event:
    """A timeout of ``delay`` (s) at SimPy's URGENT priority (module docstring): the same
    time as ``env.timeout(delay)`` (SimPy adds ``now + delay`` the same way)."""
    import simpy

    event = simpy.Event(env)
    event._ok, event._value = True, None      # as simpy.Timeout sets them
    env.schedule(event, simpy.events.URGENT, delay)
    return event


class PairReplay:
    """:class:`SharedBandwidth`'s arithmetic, replayed ahead of the simulated clock for the
    arrays engine's windows (sim/engine_arrays.py): one transfer ``y`` of another stream,
    arriving at ``y_start`` (s), beside a run's transfers that arrive one at a time (each
    after the one before has finished), so that at most two are in flight. The engine feeds
    the run's arrivals in its processes' order; :meth:`step` makes the next change (``y``'s
    arrival or a timer) as SimPy would, and every share, timer and completion is the float
    the real resource would compute (the same operations as :func:`_charge`,
    :func:`_first_finish` and :func:`_finished`, unrolled for two transfers). :meth:`commit`
    then counts its bytes, busy time and last change on the resource, which must have
    stayed idle meanwhile."""

    __slots__ = ("shared", "rate", "last", "timer", "y_bytes", "y_due", "y_left", "y_done",
                 "op_left", "moved", "busy")

    def __init__(self, shared: SharedBandwidth, y_bytes: float, y_start: float):
        self.shared = shared
        self.rate = shared.rate
        self.last = shared._last
        self.timer = math.inf                # when the next transfer may finish (s)
        self.y_bytes = float(y_bytes)
        self.y_due = y_start                 # when ``y`` arrives (inf once it has)
        self.y_left: float | None = None     # bytes ``y`` still has to move (None: not in flight)
        self.y_done: float | None = None     # when ``y`` finished
        self.op_left: float | None = None    # the same for the run's transfer in flight
        self.moved = shared.bytes_moved
        self.busy = shared.busy_time

    @property
    def in_flight(self) -> bool:
        """Whether a transfer is still moving."""
        return self.y_left is not None or self.op_left is not None

    def arrive_op(self, nbytes: float, now: float) -> None:
        """The run's transfer of ``nbytes`` (> 0) starts at ``now`` (s), as
        :meth:`SharedBandwidth.transfer` starts one."""
        self._advance(now)
        self.op_left = float(nbytes)
        self.moved += nbytes
        self._reschedule(now)

    def arrive_y(self, now: float) -> None:
        """``y`` starts at ``now`` (s)."""
        self._advance(now)
        self.y_left = self.y_bytes
        self.moved += self.y_bytes
        self.y_due = math.inf
        self._reschedule(now)

    def step(self) -> float:
        """Make the next change (a timer, or ``y``'s arrival); when. inf: none left; NaN: two
        at one time (the engine fires the timer first, URGENT; the caller leaves such a
        window to the per-op engine rather than replay that order here)."""
        timer, due = self.timer, self.y_due
        if timer == due:
            return math.nan if timer < math.inf else timer
        if due < timer:
            self.arrive_y(due)
            return due
        self._fire(timer)
        return timer

    def upto(self, t_end: float, y_after: bool) -> bool:
        """Make every change before ``t_end`` (s); False on a tie with it, unless it is
        ``y``'s arrival and ``y_after`` (it comes after the run's transfer arriving then)."""
        while True:
            timer, due = self.timer, self.y_due
            if min(timer, due) >= t_end:
                return timer != t_end and (due != t_end or y_after)
            at = self.step()
            if at != at:            # NaN: a tie
                return False

    def commit(self) -> None:
        """Count what was replayed on the resource (every transfer must have finished)."""
        shared = self.shared
        shared.bytes_moved, shared.busy_time, shared._last = self.moved, self.busy, self.last

    def _fire(self, now: float) -> None:
        """The timer fires at ``now``, as :meth:`SharedBandwidth._on_timer`."""
        stalled = now == self.last
        self._advance(now)
        y_left, op_left = self.y_left, self.op_left
        tol = self.rate / ((y_left is not None) + (op_left is not None)) * FINISH_TOL
        y_end = y_left is not None and y_left <= tol
        op_end = op_left is not None and op_left <= tol
        if not (y_end or op_end) and stalled:
            first = min(x for x in (y_left, op_left) if x is not None)
            y_end, op_end = y_left == first, op_left == first
        if y_end:
            self.y_left, self.y_done = None, now
        if op_end:
            self.op_left = None
        self._reschedule(now)

    def _advance(self, now: float) -> None:
        y_left, op_left = self.y_left, self.op_left
        n = (y_left is not None) + (op_left is not None)
        if n and now > self.last:
            share = (now - self.last) * self.rate / n
            if y_left is not None:
                self.y_left = y_left - share
            if op_left is not None:
                self.op_left = op_left - share
            self.busy += now - self.last
        self.last = now

    def _reschedule(self, now: float) -> None:
        # SimPy schedules a timeout at ``now + delay``: the same addition
        y_left, op_left = self.y_left, self.op_left
        if y_left is None and op_left is None:
            self.timer = math.inf
        elif op_left is None or y_left is None:
            left = op_left if y_left is None else y_left
            self.timer = now + max(0.0, left / (self.rate / 1))
        else:
            self.timer = now + max(0.0, min(y_left, op_left) / (self.rate / 2))


def _charge(left: dict, last: float, now: float, rate: float) -> float | None:
    """Move every transfer in flight (``left``: bytes still to move) by its fair share of
    ``rate`` (B/s) from ``last`` to ``now`` (s); the busy time that adds (None: nothing in
    flight, or no time passed)."""
    if not left or not now > last:
        return None
    share = (now - last) * rate / len(left)
    for key in left:
        left[key] -= share
    return now - last


def _first_finish(left: dict, rate: float) -> float:
    """Seconds until the first transfer in flight finishes at its fair share of ``rate``."""
    return max(0.0, min(left.values()) / (rate / len(left)))


def _finished(left: dict, rate: float, stalled: bool) -> list:
    """The transfers in flight a timer finds done: within the float slack of the
    subtraction (``FINISH_TOL`` of a second at the fair share of ``rate``). ``stalled``: the
    timer fired at the time of the last change, because the time the first transfer needs
    is below the clock's resolution there (tens of bytes after a day of simulated time):
    that transfer is done too, or the timer would fire again and again at that time."""
    tol = rate / len(left) * FINISH_TOL
    done = [key for key, bytes_left in left.items() if bytes_left <= tol]
    if not done and stalled:
        first = min(left.values())
        done = [key for key, bytes_left in left.items() if bytes_left == first]
    return done


def occupy(env: simpy.Environment, latency: float, loads: list | None,
           memory: SharedBandwidth | None, nbytes: float, share: float | None) -> Generator:
    """An op of a device that holds for its latency (s), as a process step (``yield from``):
    it moves each ``(resource, bytes)`` of ``loads`` and, through a shared ``memory``, its
    ``nbytes`` of DRAM traffic, and ends when its latency and every transfer are done; a
    ``share`` (with no loads: a unit inside the memory, PIM) reserves that fraction of the
    memory's bandwidth while it runs instead of moving bytes through it."""
    if share is not None and loads is None:
        if share > 0.0:
            memory.reserve(share)
        yield env.timeout(latency)
        if share > 0.0:
            memory.release(share)
    elif loads is not None:
        events = [res.transfer(x) for res, x in loads]
        if memory is not None and nbytes > 0:
            events.append(memory.transfer(nbytes))
        events.append(env.timeout(latency))
        yield env.all_of(events)
    elif memory is not None:
        yield hold(env, latency, memory, nbytes)
    else:
        yield env.timeout(latency)


def hold(env: simpy.Environment, latency: float, memory: SharedBandwidth | None,
         nbytes: float) -> Any:
    """The event of an op that takes ``latency`` on its own and moves ``nbytes`` through a
    shared ``memory``: done when both are (contention can only lengthen it)."""
    if memory is None or nbytes <= 0:
        return env.timeout(latency)
    return env.all_of([env.timeout(latency), memory.transfer(nbytes)])
