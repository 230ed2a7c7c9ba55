"""benchmarks/bench_scaling.py's growth figures against closed forms."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
from bench_scaling import affine_fit, exponents  # noqa: E402

GENS = [256, 512, 1024, 2048]


def test_exponent_of_a_power_law_is_its_power():
    for power in (0.0, 0.5, 1.0, 1.5):
        costs = [3.0 * g ** power for g in GENS]
        whole, last = exponents(GENS, costs)
        assert whole == pytest.approx(power, abs=1e-12)
        assert last == pytest.approx(power, abs=1e-12)


def test_a_fixed_cost_bends_the_exponent_below_one():
    # 1 s fixed + 0.5 ms per token: 1.128 s -> 2.024 s over 8x the tokens
    costs = [1.0 + 5e-4 * g for g in GENS]
    whole, last = exponents(GENS, costs)
    assert whole == pytest.approx(math.log(2.024 / 1.128) / math.log(8))
    assert last == pytest.approx(math.log(2.024 / 1.512) / math.log(2))
    assert whole < last < 1.0


def test_affine_fit_recovers_the_line_and_averages_noise():
    fixed, per_token = affine_fit(GENS, [0.7 + 2e-4 * g for g in GENS])
    assert fixed == pytest.approx(0.7) and per_token == pytest.approx(2e-4)
    # errors of +-10 ms move the slope by sum((g - mean) * e) / sum((g - mean) ** 2)
    noisy = [0.7 + 2e-4 * g + e for g, e in zip(GENS, (0.01, -0.01, -0.01, 0.01), strict=True)]
    fixed_n, per_token_n = affine_fit(GENS, noisy)
    # by hand, mean 960: (-704 x 0.01 - 448 x -0.01 + 64 x -0.01 + 1088 x 0.01) /
    # (704^2 + 448^2 + 64^2 + 1088^2) = 7.68 / 1,884,160
    assert per_token_n == pytest.approx(2e-4 + 7.68 / 1_884_160)
    assert fixed_n == pytest.approx(0.7 - 960 * (per_token_n - 2e-4))


def test_one_token_count_is_a_usage_error():
    done = subprocess.run([sys.executable, str(BENCH / "bench_scaling.py"), "--gens", "64",
                           "64"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        "--gens: expected at least two distinct token counts, got [64]")
    assert "Traceback" not in done.stderr


def test_each_round_is_compared_with_the_simpy_rate_measured_beside_it():
    from bench_cli_run import paired_ratio, simpy_span

    # by hand: 1,000 ops in 2 CPU s against 250/s -> 2.0; in 1 s against 500/s -> 2.0; in
    # 0.5 s against 400/s -> 5.0: median 2.0, where one rate for all (the median, 400/s)
    # would give 1.25, 2.5, 5.0
    runs = [{"ops": 1000, "user_s": 1.5, "sys_s": 0.5, "simpy_per_s": 250.0},
            {"ops": 1000, "user_s": 0.75, "sys_s": 0.25, "simpy_per_s": 500.0},
            {"ops": 1000, "user_s": 0.5, "sys_s": 0.0, "simpy_per_s": 400.0}]
    assert paired_ratio(runs) == pytest.approx(2.0)
    assert paired_ratio([{**r, "events": 2 * r["ops"]} for r in runs], "events") == \
        pytest.approx(4.0)
    assert simpy_span(runs) == "250-500"


def test_wall_at_the_issue_speed_scales_each_round_by_its_simpy_rate():
    from bench_cli_run import ISSUE_SIMPY_PER_S, at_issue_speed

    # by hand: 8 s at half the issue's rate -> 4 s; 6 s at half it -> 3 s; 1 s at four
    # times it -> 4 s: median 4.0 (the walls' own median: 6.0)
    rate = ISSUE_SIMPY_PER_S
    runs = [{"wall_s": 8.0, "simpy_per_s": rate / 2}, {"wall_s": 6.0, "simpy_per_s": rate / 2},
            {"wall_s": 1.0, "simpy_per_s": 4 * rate}]
    assert at_issue_speed(runs) == pytest.approx(4.0)
    assert at_issue_speed(runs[:2]) == pytest.approx(3.5)   # (4 + 3) / 2
    assert ISSUE_SIMPY_PER_S == pytest.approx(1.475e6)
