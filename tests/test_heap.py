"""The CLI's allocation settings (xpusim/heap.py): set where asked, left alone where not."""

import os
import platform

import pytest

from xpusim import heap


def test_huge_pages_off_unless_the_user_chose(monkeypatch):
    monkeypatch.setenv("XPUSIM_KEEP_FREED", "0")
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    heap.tune_allocation()
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0"
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    heap.tune_allocation()
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "1"


def test_keep_freed_memory_opt_out(monkeypatch):
    monkeypatch.setenv("XPUSIM_KEEP_FREED", "0")
    assert heap.keep_freed_memory() is False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_keep_freed_memory_sets_glibc(monkeypatch):
    monkeypatch.delenv("XPUSIM_KEEP_FREED", raising=False)
    assert heap.keep_freed_memory() is True     # glibc took each value (mallopt: 1)


_PRETOUCH_PROBE = r"""
import json, resource, sys, threading, time
from xpusim.heap import PAGE, tune_allocation, pretouch
tune_allocation()
import numpy as np


def rss():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmRSS"))


def faults():      # minor faults of the calling thread only
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


nbytes, use = int(sys.argv[1]), int(sys.argv[2])
before = rss()
started = pretouch(nbytes)
deadline = time.time() + 20
while started and rss() - before < 0.98 * nbytes and time.time() < deadline:
    time.sleep(0.02)
grown = rss() - before
f0 = faults()
a = np.ones(use // 8)            # written through: a fault per page where none was touched
main_faults = faults() - f0
box = {}


def other():
    f = faults()
    b = np.ones(use // 8)
    box["faults"] = faults() - f


t = threading.Thread(target=other)
t.start()
t.join()
print(json.dumps({"started": started, "grown": grown, "main": main_faults,
                  "thread": box["faults"], "pages": use // PAGE}))
"""


def _pretouch_probe(nbytes: int, use: int, **env: str) -> dict:
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    environ = {**os.environ, "PYTHONPATH": str(root), **env}
    out = subprocess.run([sys.executable, "-c", _PRETOUCH_PROBE, str(nbytes), str(use)],
                         capture_output=True, text=True, timeout=120, env=environ)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        got = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return got >= (major, minor)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
                    or len(os.sched_getaffinity(0)) < 2 or not _kernel_at_least(5, 14),
                    reason="glibc, Linux 5.14+ (MADV_POPULATE_WRITE), two CPUs")
def test_pretouch_faults_the_heap_in_for_this_thread_and_the_next():
    """512 MiB pre-touched: the process's resident memory grows by that much (4 blocks of
    128 MiB, less the partial pages at their ends), and 256 MiB of arrays written afterwards,
    in this thread and in a new one (one heap for all threads), take a fault on under 1% of
    their 65,536 pages instead of one per page (the second run, without pre-touching)."""
    touched = _pretouch_probe(512 << 20, 256 << 20)
    assert touched["started"] is True
    assert (512 << 20) * 0.98 <= touched["grown"] <= (512 << 20) * 1.05
    pages = touched["pages"]
    assert pages == 65536
    assert touched["main"] < 0.01 * pages and touched["thread"] < 0.01 * pages
    cold = _pretouch_probe(64 << 20, 256 << 20)    # under PRETOUCH_MIN: nothing done
    assert cold["started"] is False and cold["grown"] < (64 << 20)
    assert cold["main"] > 0.9 * pages and cold["thread"] > 0.9 * pages


_WATCH_PROBE = _PRETOUCH_PROBE.split("nbytes, use =")[0] + """
nbytes, use = int(sys.argv[1]), int(sys.argv[2])
started = pretouch(nbytes)
first = np.ones(nbytes // 8)     # the pre-touched heap, used up
grow = np.ones(use // 8)         # the heap grows past it: by WATCH_PAD more than asked
before = rss()
deadline = time.time() + 20      # the watching thread faults the growth in meanwhile
while started and rss() - before < 0.9 * WATCH_PAD and time.time() < deadline:
    time.sleep(0.02)
f0 = faults()
after = np.ones(use // 8)        # from the pad
print(json.dumps({"started": started, "main": faults() - f0, "pages": use // PAGE}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
                    or len(os.sched_getaffinity(0)) < 2 or not _kernel_at_least(5, 14),
                    reason="glibc, Linux 5.14+ (MADV_POPULATE_WRITE), two CPUs")
def test_heap_growth_past_the_pretouch_is_faulted_in_ahead():
    """After the pre-touched 256 MiB are used up, the heap grows WATCH_PAD (512 MiB) past
    each request and the watching thread faults that in: 128 MiB of arrays written next take
    a fault on under 1% of their 32,768 pages (one per page without the watch, as the cold
    probe of the test above shows)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    assert heap.WATCH_PAD >= 256 << 20
    root = Path(__file__).resolve().parents[1]
    code = _WATCH_PROBE.replace("from xpusim.heap import PAGE,",
                                "from xpusim.heap import WATCH_PAD, PAGE,")
    out = subprocess.run([sys.executable, "-c", code, str(256 << 20), str(128 << 20)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["started"] is True and got["pages"] == 32768
    assert got["main"] < 0.01 * got["pages"]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
                    or len(os.sched_getaffinity(0)) < 2,
                    reason="glibc, Linux, two CPUs")
@pytest.mark.parametrize("room", [0, -2])
def test_heap_watched_only_where_half_the_free_memory_holds_the_pad(room):
    """The heap is watched (the thread gets the heap's end) only where half the memory
    available holds the pre-touch and WATCH_PAD; 2 B less: the pre-touch alone (end 0)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import json, sys\n"
        "import xpusim.heap as heap\n"
        "heap.tune_allocation()\n"
        "got = []\n"
        "heap._thread.start_new_thread = lambda fn, args: got.append(args[2])\n"
        "heap._available_bytes = lambda: 2 * (heap.PRETOUCH_MIN + heap.WATCH_PAD) + "
        "int(sys.argv[1])\n"
        "print(json.dumps([heap.pretouch(heap.PRETOUCH_MIN), got]))\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, str(room)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    started, ends = json.loads(out.stdout.strip().splitlines()[-1])
    assert started is True and len(ends) == 1
    assert (ends[0] > 0) is (room == 0)


_RESERVE_PROBE = _PRETOUCH_PROBE.split("nbytes, use =")[0] + """
from xpusim.heap import malloc_info
from sim.memory_hint import expect

info = malloc_info()
nbytes, use = int(sys.argv[1]), int(sys.argv[2])
started = pretouch(nbytes)
first = np.ones(nbytes // 8)     # the pre-touched heap, used up
heap0, rss0 = info().arena, rss()
expect(use)                      # as a planned run tells it (sim.memory_hint)
grown = info().arena - heap0
deadline = time.time() + 20      # the watching thread faults the growth in meanwhile
while started and rss() - rss0 < grown - (1 << 20) and time.time() < deadline:
    time.sleep(0.02)
f0 = faults()
after = np.ones(use // 8)        # in the room made
print(json.dumps({"started": started, "grown": grown, "main": faults() - f0,
                  "pages": use // PAGE}))
"""


def _glibc_at_least(major: int, minor: int) -> bool:
    name, version = platform.libc_ver()
    try:
        return name == "glibc" and tuple(int(x) for x in version.split(".")[:2]) >= (major,
                                                                                     minor)
    except ValueError:
        return False


@pytest.mark.skipif(platform.system() != "Linux" or not _glibc_at_least(2, 33)
                    or len(os.sched_getaffinity(0)) < 2 or not _kernel_at_least(5, 14),
                    reason="glibc 2.33+ (mallinfo2), Linux 5.14+ (MADV_POPULATE_WRITE), two CPUs")
def test_room_asked_for_grows_the_heap_by_it_alone_faulted_in_ahead():
    """256 MiB pre-touched and used up, then 256 MiB asked for (``sim.memory_hint.expect``,
    as a planned run asks before its task tables): the heap grows by what its free top
    lacked of two blocks of 128 MiB, no WATCH_PAD past them (768 MiB), and the watching thread
    faults them in: 256 MiB of arrays written next take a fault on under 1% of their
    65,536 pages. Without a watched heap (this process) nothing is done."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _RESERVE_PROBE, str(256 << 20),
                          str(256 << 20)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["started"] is True and got["pages"] == 65536
    # by what the room lacked (the free top of the heap, under 32 MiB here, counts)
    assert (224 << 20) <= got["grown"] <= (256 << 20) + (8 << 20)
    assert got["main"] < 0.01 * got["pages"]
    assert heap.reserve(256 << 20) is False


def test_pretouch_only_where_it_pays(monkeypatch):
    """No thread below PRETOUCH_MIN, on one CPU, or where the allocator was left alone."""
    monkeypatch.setattr(heap, "_kept", [True])
    monkeypatch.setattr(heap, "_available_bytes", lambda: 64 << 30)
    assert heap.pretouch(heap.PRETOUCH_MIN - 1) is False
    monkeypatch.setattr(heap, "_available_bytes", lambda: 2 * heap.PRETOUCH_MIN - 2)
    assert heap.pretouch(heap.PRETOUCH_MIN) is False       # at most half of what is free
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert heap.pretouch(1 << 30) is False
    monkeypatch.setattr(heap, "_kept", [False])
    assert heap.pretouch(1 << 30) is False


def test_run_pretouches_its_estimated_heap(monkeypatch, tmp_path):
    """``xpusim run`` asks for HEAP_PER_OP bytes per op of its estimated op count."""
    from workloads.limits import estimate_ops
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from xpusim.cli import main

    asked = []
    monkeypatch.setattr(heap, "pretouch", lambda nbytes: asked.append(nbytes) or False)
    rc = main(["run", "--arch", "h100", "--model", "gpt2-small", "--batch", "2",
               "--prompt", "64", "--gen", "8", "--quiet", "--out", str(tmp_path / "r")])
    assert rc == 0
    ops = estimate_ops(get_model("gpt2-small"), Scenario(batch=2, prompt_len=64, gen_len=8))
    assert asked == [ops * heap.HEAP_PER_OP]


def test_run_pretouches_only_where_rows_are_made(monkeypatch, capsys):
    """``--json`` without ``--out`` on one stream (folded: no array per op) touches nothing,
    two micro-batches in turn on that stream included; with a second pipeline stage or
    collectives on a stream of their own (the engine's rows per op) it does, and with
    ``--out`` (the report's op table) a one-stream run does too. Whether each run was in
    fact folded is checked beside: the heap's estimate is wasted exactly there."""
    import sim.run as sim_run
    from xpusim.cli import main

    asked, folded = [], []
    monkeypatch.setattr(heap, "pretouch", lambda nbytes: asked.append(nbytes) or False)
    real = sim_run.simulate

    def recorded(*args, **kwargs):
        result = real(*args, **kwargs)
        folded.append(result.folded_ops() is not None)
        return result
    monkeypatch.setattr(sim_run, "simulate", recorded)
    base = ["run", "--arch", "dgx-h100", "--model", "gpt2-small", "--prompt", "64",
            "--gen", "8", "--batch", "2", "--quiet", "--json"]
    for extra, touched in (([], False), (["--microbatches", "2"], False),
                           (["--pp", "2"], True), (["--tp", "2", "--overlap"], True)):
        asked.clear()
        folded.clear()
        assert main(base + extra) == 0
        assert bool(asked) is touched, extra
        assert folded == [not touched], extra
    capsys.readouterr()
