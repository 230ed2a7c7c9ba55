"""sim/step_kernel.py: a quiet run's four compiled steps in one call.

Its parameter list is declared once (``STEP_PARAMS``, from which the ahead-of-time signature
and the argument checks are formed) and must name the kernel's parameters in order; the
ahead-of-time build and numba's JIT give the same several-stream run bit for bit (the
op-by-op comparison of tests/test_array_plan.py runs the build the process loads). The
engine's other shortcuts around it - links filled in first, the clock moved on without an
event - give the same run as without them.
"""

import inspect
import os

import numpy as np
import pytest

import sim.engine_arrays as engine_arrays
from arch import load_arch
from sim import engine_aot
from sim.run import simulate
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.fixture(autouse=True)
def _simpy_event_loop(monkeypatch):
    """These tests exercise the SimPy event loop's machinery: the compiled pass that times
    contended runs without it (sim/engine_shared.py) is off."""
    monkeypatch.setattr(engine_arrays, "SHARED_RUNS", False)


def test_declared_parameters_are_the_kernels():
    from sim.step_kernel import quiet_step, quiet_step_at

    names = list(inspect.signature(quiet_step.py_func).parameters)
    assert [p.split(":")[0] for p in engine_aot.STEP_PARAMS] == names
    assert len(engine_aot.STEP_ARGS) == len(names)
    assert engine_aot.STEP_SIG.count("[::1]") == sum(a is not None for a in engine_aot.STEP_ARGS)
    # by address: the nine leading scalars, the two others, each array's address and length
    at = list(inspect.signature(quiet_step_at.py_func).parameters)
    assert at == [*names[:9], "n_streams", "slack", "addr", "lens"]
    assert len(engine_aot.STEP_ARRAYS) == sum(a is not None for a in engine_aot.STEP_ARGS)
    assert len(engine_aot.STEP_AT_ARGS) == len(at)


def test_arrays_by_address_are_the_arrays_by_argument(monkeypatch):
    """quiet_step_at, given the arrays by address (step_addresses), makes the call quiet_step
    makes with them as arguments: every call of a real run (222), made again by quiet_step
    on copies of its arrays, gives the same return and the same arrays after (a swapped or
    misread array would differ); a wrong dtype is refused when the addresses are taken."""
    import sim.engine_arrays as engine_arrays

    real = engine_aot.kernels()
    by_address = real.quiet_step_at.unchecked
    tails: dict[int, tuple] = {}
    compared = [0]

    def addresses(tail):
        got = engine_aot.step_addresses(tail)
        tails[id(got[2])] = tail
        return got

    def both(*args):
        tail = tails[id(args[11])]
        copies = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in tail)
        want = real.quiet_step(*args[:9], *copies)
        got = by_address(*args)
        assert got == want
        for a, b in zip(tail, copies, strict=True):
            assert np.array_equal(a, b, equal_nan=True) if isinstance(a, np.ndarray) else a == b
        compared[0] += 1
        return got
    both.unchecked = both
    monkeypatch.setattr(engine_arrays, "step_addresses", addresses)
    monkeypatch.setattr(engine_aot, "_CACHE", [real._replace(quiet_step_at=both)])
    _run()
    assert compared[0] > 100
    tail = next(iter(tails.values()))
    wrong = list(tail)
    wrong[1] = wrong[1].view(np.int8)      # stops: uint8 declared
    with pytest.raises(TypeError, match="argument 1"):
        engine_aot.step_addresses(tuple(wrong))


def test_a_lead_taken_is_flagged_done(monkeypatch):
    """A quiet run after a lead (an op of another stream adopted first) that takes it
    flags it in ``done`` (quiet_step's contract: the scans of later runs read the flag;
    unflagged, they would end runs early: more events, the same times), and one that does
    not take it leaves it unflagged - every such call of a real run."""
    import sim.engine_arrays as engine_arrays

    real = engine_aot.kernels()
    tails: dict[int, tuple] = {}
    at_done = [p.split(":")[0] for p in engine_aot.STEP_PARAMS[9:]].index("done")
    seen = {"taken": 0, "not taken": 0}

    def addresses(tail):
        got = engine_aot.step_addresses(tail)
        tails[id(got[2])] = tail
        return got

    def checked(*args):
        lead, done = args[4], tails[id(args[11])][at_done]
        before = int(done[lead]) if lead >= 0 else None
        got = real.quiet_step_at.unchecked(*args)
        status, f = got[0], got[4]
        if lead >= 0 and status == engine_aot.STEP_STAMPED:
            assert before == 0
            taken = f > 0
            assert done[lead] == (1 if taken else 0)
            seen["taken" if taken else "not taken"] += 1
        return got
    checked.unchecked = checked
    monkeypatch.setattr(engine_arrays, "step_addresses", addresses)
    monkeypatch.setattr(engine_aot, "_CACHE", [real._replace(quiet_step_at=checked)])
    _run()
    assert seen["taken"] > 0


def _run() -> tuple[np.ndarray, np.ndarray, str, int]:
    """A four-stage --overlap run whose quiet runs adopt, lead and go beside collectives."""
    res = simulate(load_arch("dgx-h100"), get_model("llama2-13b"),
                   Scenario(batch=8, prompt_len=128, gen_len=6, tp=2, pp=2, microbatches=4),
                   policies=Policies(overlap=True))
    ops = res.columns("ops")
    return (np.asarray(ops["start_s"]), np.asarray(ops["end_s"]),
            res.resources.to_csv(index=False), res.metrics.get("engine_events", -1))


def test_jit_and_ahead_of_time_runs_are_equal(monkeypatch):
    aot = _run()
    monkeypatch.setattr(engine_aot, "_CACHE", [engine_aot.jit_kernels()])
    jit = _run()
    assert np.array_equal(aot[0], jit[0]) and np.array_equal(aot[1], jit[1])
    assert aot[2] == jit[2] and aot[3] == jit[3]


def test_links_filled_first_or_when_wanted_give_the_same_run(monkeypatch):
    """A quiet run's links filled in before the call (PREFILL_LINKS) or each when the call
    wants it (it returns, changing nothing, and is called again): the same run."""
    import sim.engine_arrays as engine_arrays

    filled_first = _run()
    monkeypatch.setattr(engine_arrays, "PREFILL_LINKS", 0)
    wanted = []
    real = engine_aot.kernels()
    step = real.quiet_step_at.unchecked

    def counted(*args):
        got = step(*args)
        wanted.append(got[0] == engine_aot.STEP_WANT)
        return got
    counted.unchecked = counted
    monkeypatch.setattr(engine_aot, "_CACHE", [real._replace(quiet_step_at=counted)])
    each = _run()
    assert any(wanted)        # the calls did return for links
    assert np.array_equal(filled_first[0], each[0]) and np.array_equal(filled_first[1], each[1])
    assert filled_first[2] == each[2] and filled_first[3] == each[3]


def test_moving_the_clock_on_without_an_event_gives_the_same_run(monkeypatch):
    """A stream whose run ends before anything else is scheduled moves the clock itself
    (FAST_FORWARD): fewer SimPy steps, the same times, resources and counted events."""
    import simpy

    import sim.engine_arrays as engine_arrays

    steps = [0]
    real_step = simpy.Environment.step

    def counted(env):
        steps[0] += 1
        return real_step(env)
    monkeypatch.setattr(simpy.Environment, "step", counted)
    ahead = _run()
    ahead_steps, steps[0] = steps[0], 0
    monkeypatch.setattr(engine_arrays, "FAST_FORWARD", False)
    waited = _run()
    assert ahead_steps < steps[0]
    assert np.array_equal(ahead[0], waited[0]) and np.array_equal(ahead[1], waited[1])
    assert ahead[2] == waited[2] and ahead[3] == waited[3]


def test_engine_extension_builds_where_the_dram_one_does():
    """Both extensions are built by the same recipe and compiler: where the DRAM kernels'
    builds, the engine's must too (a signature it cannot compile, e.g. a wrong STEP_SIG,
    would otherwise fall back to the JIT without a failing test)."""
    from sim.micro import dram_aot

    if dram_aot.kernels().kind != "aot":
        pytest.skip("no ahead-of-time build here (no C compiler or XPUSIM_DRAM_AOT=0)")
    if os.environ.get("XPUSIM_ENGINE_AOT", "1") == "0":
        pytest.skip("XPUSIM_ENGINE_AOT=0: the engine's JIT path is the one in use")
    assert engine_aot.kernels().kind == "aot"


def test_clock_moves_ahead_only_past_everything_queued():
    """``clock_ahead``: the clock moves to a time before the first queued event, or with
    nothing queued; at a tie with a queued event, or past one, the caller must wait (the
    queued event runs first)."""
    import simpy

    from sim.engine_arrays import clock_ahead

    env = simpy.Environment()
    assert clock_ahead(env, 0.5) and env.now == 0.5      # nothing queued
    env.timeout(1.5)                                      # an event at 2.0
    assert not clock_ahead(env, 2.0) and env.now == 0.5   # a tie: wait
    assert not clock_ahead(env, 3.0) and env.now == 0.5   # past it: wait
    assert clock_ahead(env, 1.25) and env.now == 1.25


def _scan_args(stop_after_beside: bool) -> list:
    """quiet_step's arguments for a run of stream 0 (ops 0-3 at positions 0-3) from position
    0 whose scan collects, at position 1 (another stream waits for op 1), the op beside it:
    op 4 of stream 1, which sleeps on it. Position 2 then stops the run
    (``stop_after_beside``: the run's last position is 1, the one beside) or nothing does
    (its last is 3). ``run_buf`` and ``times`` are empty: a run to be stamped returns
    STEP_GROW there, before anything is stamped."""
    m, n_ops = 4, 5
    i8 = lambda *v: np.array(v, dtype=np.int64)   # noqa: E731
    u1 = lambda *v: np.array(v, dtype=np.uint8)   # noqa: E731
    given = {
        "k": 0, "m": m, "cut": m, "first": m, "lead": -1, "cap": 4, "now": 0.0,
        "blocked": i8(1, 1, 2, m) if stop_after_beside else i8(1, 1, m, m),
        "stops": u1(0, 0, 1, 0) if stop_after_beside else u1(0, 0, 0, 0),
        "waits_left": u1(0, 0, 0, 0), "ends_run": u1(0, 1, 0, 0), "ids": i8(0, 1, 2, 3),
        "wait_at": np.zeros(n_ops + 1, dtype=np.int64), "done": np.zeros(n_ops, np.uint8),
        "beside": i8(-1, 4, -1, -1, -1), "next_op": i8(1, 2, 3, -1, -1),
        "stream": i8(0, 0, 0, 0, 1), "sleep_on": i8(-1, 4),
        "moved": np.full(2, engine_aot.NOT_MOVED, dtype=np.int64),
        "out_pos": np.zeros(4, dtype=np.int64), "out_y": np.zeros(4, dtype=np.int64),
        "n_streams": 2, "slack": 0.0}
    dtypes = {"i8": np.int64, "u1": np.uint8, "f8": np.float64}
    args = []
    for p in engine_aot.STEP_PARAMS:
        name, t = p.split(":")
        if name in given:
            args.append(given[name])
        elif t.islower():
            args.append(0.0 if t == "f8" else 0)
        else:
            args.append(np.zeros(0, dtype=dtypes[t.lower()]))
    return args


@pytest.mark.parametrize("which", ["aot", "jit"])
def test_an_op_beside_the_runs_last_position_is_dropped(which):
    """The scan collects an op to run beside the ops after position 1, then the run stops
    at position 2, so position 1 is its last: the op beside goes with the run's end
    (``quiet_step`` drops ops beside at or after it) and the run itself is to be stamped
    (here: STEP_GROW, its buffers being empty, last position 1). Where nothing stops it, the
    run goes on to position 3 and returns that op beside (STEP_BESIDE, one op, at position
    1, op 4)."""
    fns = engine_aot.kernels() if which == "aot" else engine_aot.jit_kernels()
    args = _scan_args(stop_after_beside=True)
    status, e, _, count, *_ = fns.quiet_step(*args)
    assert (status, e, count) == (engine_aot.STEP_GROW, 1, 0)
    args = _scan_args(stop_after_beside=False)
    status, e, adopts, count, *_ = fns.quiet_step(*args)
    names = [p.split(":")[0] for p in engine_aot.STEP_PARAMS]
    out_pos, out_y = args[names.index("out_pos")], args[names.index("out_y")]
    assert (status, e, count) == (engine_aot.STEP_BESIDE, 3, 1)
    assert (out_pos[0], out_y[0]) == (1, 4)
    assert (args[names.index("moved")] == engine_aot.NOT_MOVED).all()   # left as found
