"""Run-size limits by engine path (workloads/limits.py): a 2,048-token Llama-2-70B decode at
TP8 (issue 18: a run of a few seconds) starts without ``--force``; pipelined runs, whose
streams wait on each other and contend (0.30-1.74 us per op, workloads.limits), keep the
tighter limit."""

from __future__ import annotations

import pytest

from workloads.errors import WorkloadError
from workloads.limits import MAX_OPS, check_run_size, engine_path, estimate_ops
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


def test_pipelined_run_keeps_the_tight_limit():
    sc = Scenario(batch=8, prompt_len=512, gen_len=3072, tp=2, pp=2, microbatches=4)
    model = get_model("llama2-13b")
    assert MAX_OPS["streams"] < estimate_ops(model, sc) < MAX_OPS["one-stream"]
    with pytest.raises(WorkloadError, match="several streams per device"):
        check_run_size(model, sc)
    assert check_run_size(model, sc, force=True) == estimate_ops(model, sc)
