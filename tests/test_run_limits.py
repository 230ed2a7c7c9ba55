"""Run-size limits by engine path (workloads/limits.py): a 2,048-token Llama-2-70B decode at
TP8, and pipelined at TP2 x PP4 x 4 micro-batches (issue 18: runs of a few seconds), start
without ``--force``; twice the micro-batches is refused with the several-stream path's own
costs (workloads.limits.COST_PER_OP) in the message."""

from __future__ import annotations

import re

import pytest

from workloads.errors import WorkloadError
from workloads.limits import COST_PER_OP, MAX_OPS, check_run_size, engine_path, estimate_ops
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.mark.parametrize("kw, path", [
    ({"tp": 8}, "one-stream"), ({}, "one-stream"),
    ({"pp": 2}, "streams"), ({"microbatches": 2}, "streams"), ({"tp": 2, "ep": 2}, "streams")])
def test_engine_path(kw, path):
    assert engine_path(Scenario(batch=8, prompt_len=16, gen_len=4, **kw)) == path


def test_70b_tp8_2048_tokens_needs_no_force():
    sc = Scenario(batch=8, prompt_len=512, gen_len=2048, tp=8)
    n = check_run_size(get_model("llama2-70b"), sc)
    assert n == 2_465_792   # the ops bench_run.py's 70b-tp8-g2048 case runs


def test_one_stream_limit_refuses_with_its_own_costs():
    sc = Scenario(batch=8, prompt_len=128, gen_len=16000, tp=8)
    model = get_model("llama2-70b")
    n = estimate_ops(model, sc)
    assert n > MAX_OPS["one-stream"]
    with pytest.raises(WorkloadError, match=r"limit 10,000,000 with one stream per device, "
                                            r"~\d+-\d+ s and [\d.]+ GB"):
        check_run_size(model, sc)


def test_70b_pipelined_2048_tokens_needs_no_force():
    sc = Scenario(batch=8, prompt_len=512, gen_len=2048, tp=2, pp=4, microbatches=4)
    assert engine_path(sc) == "streams"
    # the ops bench_cli_run.py's tp2-pp4-mb4(-overlap) runs: the estimate is exact here
    assert check_run_size(get_model("llama2-70b"), sc) == 9_887_744


def test_streams_limit_refuses_with_its_own_costs():
    sc = Scenario(batch=8, prompt_len=512, gen_len=2048, tp=2, pp=4, microbatches=8)
    model = get_model("llama2-70b")
    n = estimate_ops(model, sc)
    assert n == 19_775_488 > MAX_OPS["streams"]
    low, high, nbytes = COST_PER_OP["streams"]
    want = (f"limit {MAX_OPS['streams']:,} with several streams per device, "
            f"~{n * low:,.0f}-{n * high:,.0f} s and {n * nbytes / 1e9:,.1f} GB")
    with pytest.raises(WorkloadError, match=re.escape(want)) as err:
        check_run_size(model, sc)
    assert "~4-12 s and 8.7 GB" in str(err.value)   # by hand: 19.8M x 0.21, 0.60 us, 441 B
    assert check_run_size(model, sc, force=True) == n
