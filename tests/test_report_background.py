"""``ops.parquet`` written in a second thread while the report's other files are made
(issue 18, item 5): the thread's error reaches the caller, a failure on either side leaves no
output folder, and the files are those a one-thread write gives."""

from __future__ import annotations

import threading
import time

import pytest

from arch import load_arch
from sim.report import write_run_report
from sim.report.background import Background
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def run():
    return simulate(load_arch("h100"), get_model("gpt2-small"),
                    Scenario(batch=2, prompt_len=32, gen_len=9))


def test_thread_error_is_raised_when_the_block_ends():
    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with Background() as background:
            background.run(fail)


def test_block_error_wins_and_waits_for_the_thread():
    """The block's own exception is the one raised, and only after the thread finished (it
    must not write into a folder the caller is removing)."""
    done = threading.Event()

    def slow():
        time.sleep(0.05)
        done.set()

    with pytest.raises(KeyError):
        with Background() as background:
            background.run(slow)
            raise KeyError("figure")
    assert done.is_set()


def test_thread_runs_while_the_block_goes_on():
    """``run`` returns before the call ends: the block sees the thread still waiting."""
    release, finished = threading.Event(), threading.Event()

    def wait():
        release.wait(5)
        finished.set()

    with Background() as background:
        background.run(wait)
        assert not finished.is_set()
        release.set()
    assert finished.is_set()


def _threads_of_report(run, tmp_path, monkeypatch) -> list[str]:
    names: list[str] = []
    real = Background.run

    def spy(self, fn, *args):
        names.append(fn.__name__)
        real(self, fn, *args)

    monkeypatch.setattr(Background, "run", spy)
    write_run_report(run, tmp_path / "rep", ops_as="parquet")
    return names


def test_parquet_is_the_threaded_call(run, tmp_path, monkeypatch):
    assert _threads_of_report(run, tmp_path, monkeypatch) == ["_write_parquet"]


@pytest.mark.parametrize("side", ["parquet", "page"])
def test_a_failure_on_either_side_leaves_no_folder(run, tmp_path, monkeypatch, side):
    def boom(*_a, **_k):
        raise RuntimeError(f"{side} failed")

    target = "sim.report.writer._write_table" if side == "parquet" else \
        "sim.report.writer.run_report_html"
    monkeypatch.setattr(target, boom)
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError, match=f"{side} failed"):
        write_run_report(run, out, ops_as="parquet")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []   # no staging folder left either


def test_block_error_before_the_codes_ends_the_waiting_thread(run, tmp_path, monkeypatch):
    """The writer thread waits for the text codes; a report failing before it gives them
    raises its own error (no hang) and leaves no folder."""
    def boom(*_a, **_k):
        raise RuntimeError("codes failed")

    monkeypatch.setattr("sim.report.writer.text_keys", boom)
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError, match="codes failed"):
        write_run_report(run, out, ops_as="parquet")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_inline_runs_at_the_end_of_a_block_that_did_not_raise(monkeypatch):
    from concurrent.futures import Future

    monkeypatch.setattr(Background, "inline", True)
    given, seen = Future(), []
    with Background(given) as background:
        background.run(lambda: seen.append(given.result(0)))
        assert seen == []            # kept for the block's end
        given.set_result("codes")
    assert seen == ["codes"]
    with pytest.raises(KeyError):
        with Background() as background:
            background.run(lambda: seen.append("ran"))
            raise KeyError("page")
    assert seen == ["codes"]         # a block that raised: not run


def test_handed_future_fails_when_the_block_raises():
    from concurrent.futures import Future

    given, seen = Future(), []
    with pytest.raises(KeyError):
        with Background(given) as background:
            background.run(lambda: seen.append(type(given.exception(5)).__name__))
            raise KeyError("before the codes")
    assert seen == ["RuntimeError"]


def _in_thread(names: list[str]):
    from sim.report import writer

    real = writer._write_table

    def write(*args):
        names.append(threading.current_thread().name)
        return real(*args)
    return write


def test_files_equal_a_one_thread_write(run, tmp_path, monkeypatch):
    """The same bytes when the 'thread' runs the call in the caller's thread, once the block
    has given it the text codes (where the block ends)."""
    write_run_report(run, tmp_path / "threaded", ops_as="parquet")
    threads: list[str] = []
    real = Background.run

    def spy(self, fn, *args):
        threads.append(threading.current_thread().name)
        real(self, fn, *args)

    monkeypatch.setattr(Background, "inline", True)
    monkeypatch.setattr("sim.report.writer._write_table", _in_thread(threads))
    monkeypatch.setattr(Background, "run", spy)
    write_run_report(run, tmp_path / "inline", ops_as="parquet")
    assert threads == ["MainThread", "MainThread"]   # the call kept, then written here
    for path in sorted((tmp_path / "inline").iterdir()):
        if path.name != "summary.json":   # holds the wall time
            assert (tmp_path / "threaded" / path.name).read_bytes() == path.read_bytes(), \
                path.name


def test_is_text_leaves_gathered_columns_unformed():
    """The writer asks every column whether it is text before the thread forms the numeric
    ones: a gathered or counting column answers without being formed; a text one is formed."""
    import numpy as np

    from sim.columns import Columns, Lazy, Text

    def never():
        raise AssertionError("formed")

    by = np.array([0, 1, 0], dtype=np.int32)
    table = Columns({"x": Lazy(never, by=by, values=np.array([1.5, 2.5])),
                     "id": Lazy(never, arange=True),
                     "t": Lazy(lambda: Text(["a", "b"], by)),
                     "names": Lazy(lambda: np.array(["p", "q", "p"], dtype=object), by=by)},
                    ["x", "id", "t", "names"], 3)
    assert [table.is_text(c) for c in table.order] == [False, False, True, False]
    with pytest.raises(AssertionError, match="formed"):   # reading it forms it
        table["x"]


def test_a_lazy_column_is_formed_once_by_two_threads():
    """The writer thread and its caller read one table: a :class:`Lazy` column read by both
    at once is formed once, and both get that one object (the text keys cache by it)."""
    import numpy as np

    from sim.columns import Columns, Lazy, Text

    calls, started = [], threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.05)
        return Text(["a", "b"], np.array([0, 1, 0], dtype=np.int32))

    table = Columns({"t": Lazy(slow)}, ["t"], 3)
    got = []
    other = threading.Thread(target=lambda: got.append(table.text("t")))
    other.start()
    started.wait(5)
    mine = table.text("t")
    other.join()
    assert calls == [1] and got[0] is mine
    import pickle

    back = pickle.loads(pickle.dumps(table))   # the lock is not pickled, a new one is made
    assert back.text("t").codes.tolist() == [0, 1, 0] and back.is_text("t")
