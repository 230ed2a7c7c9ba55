"""Which collectives a compute stream may stamp in its own run (sim/stream_chains.py).

A hand-built trace: compute ops 0, 1, 3, 4, 6, 7 on stream 0 and collectives 2, 5 on stream
1, both moving bytes through one memory; collective 2 waits for op 1 and op 3 for it,
collective 5 waits for op 4 and op 6 for it. Only collective 2 may be adopted (after op 1):
collective 5 is the comm stream's last op, so nothing would keep that stream asleep after it.
"""

import numpy as np

from sim.stream_chains import handoffs

STREAM = np.array([0, 0, 1, 0, 0, 1, 0, 0])
POSITION = np.array([0, 1, 0, 2, 3, 1, 4, 5])
NEXT = np.array([1, 3, 5, 4, 6, -1, 7, -1])
WAITER = np.array([2, 3, 5, 6])
WAITED = np.array([1, 2, 4, 5])
SAME_MEMORY = np.array([0, 0])
NO_STOPS = np.zeros(8, dtype=bool)


def _adopt(**change):
    args = dict(stream=STREAM, position=POSITION, next_op=NEXT, waiter=WAITER,
                waited=WAITED, memory_code=SAME_MEMORY, stops=NO_STOPS)
    args.update(change)
    return handoffs(**args)[0].tolist()


def test_collective_between_compute_ops_is_adopted():
    assert _adopt() == [-1, 2, -1, -1, -1, -1, -1, -1]


def test_last_collective_of_its_stream_is_not_adopted():
    # collective 5 has no next op: its stream would have nothing left to sleep on
    assert _adopt()[4] == -1


def test_streams_on_different_memories_take_no_turns():
    assert _adopt(memory_code=np.array([0, 1])) == [-1] * 8
    assert _adopt(memory_code=np.array([-1, -1])) == [-1] * 8


def test_collective_with_a_second_dependency_is_not_adopted():
    waiter, waited = np.array([2, 2, 3, 5, 6]), np.array([0, 1, 2, 4, 5])
    assert _adopt(waiter=waiter, waited=waited)[1] == -1


def test_collective_another_op_also_waits_for_is_not_adopted():
    # op 4 waits for collective 2 too: more than the op after op 1 waits for it
    waiter, waited = np.array([2, 3, 4, 5, 6]), np.array([1, 2, 2, 4, 5])
    assert _adopt(waiter=waiter, waited=waited)[1] == -1


def test_comm_stream_that_would_wake_too_soon_is_not_adopted_from():
    # the collective after 2 waits for op 0, before op 1: once 2 is stamped the comm stream
    # could start it at once, while the compute stream's run goes on
    waiter, waited = np.array([2, 3, 5, 6]), np.array([1, 2, 0, 5])
    assert _adopt(waiter=waiter, waited=waited)[1] == -1


def test_comm_stream_that_wakes_on_the_op_after_is_adopted_from():
    # the collective after 2 waits for op 3, the op right after op 1: a run that stamps 1, 2
    # and 3 ends at 3 (the comm stream's next op waits for it), so the comm stream sleeps
    # until the run ends (a last collective of a stage, then its pipeline send)
    waiter, waited = np.array([2, 3, 5, 6]), np.array([1, 2, 3, 5])
    assert _adopt(waiter=waiter, waited=waited)[1] == 2


def test_op_no_run_may_stamp_is_not_adopted():
    stops = NO_STOPS.copy()
    stops[2] = True
    assert _adopt(stops=stops)[1] == -1


# two micro-batches: collective 1 (of op 0) runs beside compute op 2 of the other
# micro-batch, and op 5 waits for it later; collective 4 (of op 3) is the comm stream's last
IL_STREAM = np.array([0, 1, 0, 0, 1, 0, 0, 0])
IL_POSITION = np.array([0, 0, 1, 2, 1, 3, 4, 5])
IL_NEXT = np.array([2, 4, 3, 5, -1, 6, 7, -1])
IL_WAITER = np.array([1, 4, 5, 6])
IL_WAITED = np.array([0, 3, 1, 4])


def _beside(**change):
    args = dict(stream=IL_STREAM, position=IL_POSITION, next_op=IL_NEXT, waiter=IL_WAITER,
                waited=IL_WAITED, memory_code=SAME_MEMORY, stops=np.zeros(8, dtype=bool))
    args.update(change)
    adopt, beside, _ = handoffs(**args)
    return adopt.tolist(), beside.tolist()


def test_collective_of_one_micro_batch_runs_beside_the_next():
    adopt, beside = _beside()
    assert adopt == [-1] * 8                  # no turns taken: op 2 does not wait for it
    # and the other way round: the comm stream may run op 5, which alone waits for
    # collective 1, beside its own next op (the compute stream then sleeps until 4)
    assert beside == [1, 5, -1, -1, -1, -1, -1, -1]


def test_collective_whose_stream_would_not_sleep_on_runs_alone():
    # collective 4 waits for nothing of the compute stream: after collective 1 its stream
    # would go straight on, so nothing may run collective 1 for it
    _, beside = _beside(waiter=np.array([1, 5, 6]), waited=np.array([0, 1, 4]))
    assert beside[0] == -1
    assert beside == [-1, 5, -1, -1, -1, -1, -1, -1]


def test_turns_taken_are_adoptions_not_ops_beside():
    adopt, beside = _adopt_and_beside()
    assert adopt[1] == 2 and beside == [-1] * 8


def test_one_dependency_on_another_stream():
    only_wait = handoffs(stream=STREAM, position=POSITION, next_op=NEXT, waiter=WAITER,
                         waited=WAITED, memory_code=SAME_MEMORY, stops=NO_STOPS)[2]
    assert only_wait.tolist() == [-1, -1, 1, 2, -1, 4, 5, -1]


def _adopt_and_beside():
    args = dict(stream=STREAM, position=POSITION, next_op=NEXT, waiter=WAITER,
                waited=WAITED, memory_code=SAME_MEMORY, stops=NO_STOPS)
    adopt, beside, _ = handoffs(**args)
    return adopt.tolist(), beside.tolist()
