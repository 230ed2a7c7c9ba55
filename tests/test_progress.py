"""Progress bars (issue 16, item 2): rate and ETA on a terminal, silent otherwise."""

import argparse
import io
import time

import pytest

from xpusim.cli import build_parser
from xpusim.progress import SweepProgress, bar, enabled, remember, remembered, timed


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_enabled_only_on_a_terminal_without_json_or_quiet(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Tty())
    tty = _Tty()
    assert enabled(argparse.Namespace(json=False, quiet=False), tty)
    assert not enabled(argparse.Namespace(json=True, quiet=False), tty)
    assert not enabled(argparse.Namespace(json=False, quiet=True), tty)
    assert not enabled(None, io.StringIO())  # stderr piped
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert not enabled(None, tty)  # stdout piped


def test_bar_shows_rate_and_eta():
    tty = _Tty()
    b = bar(10, "validate", "suite", True, stream=tty)
    for _ in range(4):
        time.sleep(0.01)
        b.update(1)
    b.refresh()
    text = tty.getvalue()
    b.close()
    assert "validate" in text and "4/10" in text
    assert "suite/s" in text and "<" in text  # tqdm: [elapsed<remaining, rate]


def test_silent_bar_draws_nothing(capsys):
    b = bar(3, "x", on=False)
    b.update(3)
    b.close()
    with timed("y", 1.0, on=False):
        pass
    assert capsys.readouterr().err == ""


def test_sweep_progress_counts_resumed_points_as_done(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    p = SweepProgress("sweep", True)
    p(5, 20, 0, 0.0)  # 5 resumed
    p(7, 20, 2, 1.0)
    assert p._bar.n == 7 and p._bar.total == 20
    p.close()


def test_remembered_durations_feed_the_eta(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert remembered("reproduce:x") == 0.0
    with timed("x", 0.0, on=False, key="reproduce:x"):
        time.sleep(0.02)
    assert 0.02 <= remembered("reproduce:x") < 5
    remember("reproduce:x", 12.5)
    assert remembered("reproduce:x") == 12.5


@pytest.mark.parametrize("argv", [["run"], ["sweep", "s.yaml"], ["check"], ["validate"],
                                  ["reproduce", "duplex"], ["rerun", "s.json"],
                                  ["compare", "h100", "a100"]])
def test_long_commands_take_quiet(argv):
    args = build_parser().parse_args([*argv, "--quiet"])
    assert args.quiet


def test_cycle_runs_remember_their_duration_instead_of_an_op_count():
    """A tile run's bar counts its ops (0.1 us each); a cycle run's would sit at 99 % (10 s
    against an estimated 0.07 s for NeuPIMs at 1,792 tokens), so it shows elapsed time, then
    the last duration of the same run (one key per arch, model and scenario)."""
    from workloads.limits import estimate_ops
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from xpusim.commands._record import SECONDS_PER_OP, run_progress

    model, sc = get_model("gpt3-7b"), Scenario(batch=8, prompt_len=256, gen_len=64)
    estimate, key = run_progress(model, sc, "tile", "neupims")
    assert key == "" and estimate == estimate_ops(model, sc) * SECONDS_PER_OP
    estimate, key = run_progress(model, sc, "cycle", "neupims")
    assert estimate == 0.0 and key.startswith("run:neupims:gpt3-7b:cycle:")
    other = run_progress(model, Scenario(batch=8, prompt_len=256, gen_len=128), "cycle",
                         "neupims")[1]
    assert other != key
