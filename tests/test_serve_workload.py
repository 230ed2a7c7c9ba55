"""Serving workloads: arrival processes, lengths, traces, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workloads.errors import WorkloadError
from workloads.requests import (
    Requests,
    add_shared_prefix,
    arrival_times,
    check_context,
    parse_lengths,
    parse_rate_schedule,
    read_trace,
    sample_lengths,
)
from xpusim.cli import main


def test_poisson_mean_rate_and_exponential_gaps():
    t = arrival_times([(5.0, np.inf)], np.random.default_rng(0), n=20000)
    gaps = np.diff(np.concatenate([[0.0], t]))
    # mean gap 1/5 s; the standard error of the mean of 20,000 gaps is 0.2/141 = 0.7 %
    assert gaps.mean() == pytest.approx(0.2, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)   # exponential: CV 1


def test_gamma_burstiness_keeps_the_rate_and_sets_the_cv():
    t = arrival_times([(5.0, np.inf)], np.random.default_rng(1), n=40000, cv=3.0)
    gaps = np.diff(np.concatenate([[0.0], t]))
    assert gaps.mean() == pytest.approx(0.2, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.1)


def test_piecewise_rate_schedule():
    sched = parse_rate_schedule("5@100s,10@100s")
    assert sched == [(5.0, 100.0), (10.0, 100.0)]
    t = arrival_times(sched, np.random.default_rng(2))
    first, second = (t < 100).sum(), ((t >= 100) & (t < 200)).sum()
    # Poisson counts 500 and 1000 (standard deviations 22 and 32)
    assert abs(first - 500) < 90 and abs(second - 1000) < 130
    assert t.max() < 200


def test_rate_parsing_errors():
    for bad, match in (("0", "rate > 0"), ("-1", "rate > 0"), ("5@10s,x", "RATE"),
                       ("5,10@1s", "needs a duration"), ("5@0s", "positive duration")):
        with pytest.raises(WorkloadError, match=match):
            parse_rate_schedule(bad)


def test_length_distributions():
    rng = np.random.default_rng(3)
    assert (sample_lengths(parse_lengths("77", "--prompt"), 5, rng) == 77).all()
    u = sample_lengths(parse_lengths("uniform:10:20", "--prompt"), 20000, rng)
    assert u.min() == 10 and u.max() == 20 and u.mean() == pytest.approx(15, rel=0.01)
    z = sample_lengths(parse_lengths("zipf:1.0:1:100", "--prompt"), 50000, rng)
    # Zipf s = 1 over 1..100: P(1) = 1 / H_100 = 0.1928
    assert (z == 1).mean() == pytest.approx(1 / sum(1 / k for k in range(1, 101)), abs=0.01)
    ln = sample_lengths(parse_lengths("lognormal:500:0.5", "--gen"), 50000, rng)
    assert ln.mean() == pytest.approx(500, rel=0.02)
    for bad in ("0", "uniform:5:1", "zipf:-1:1:5", "normal:3", "abc"):
        with pytest.raises(WorkloadError):
            parse_lengths(bad, "--prompt")


def test_shared_prefix_and_context_policies():
    req = Requests.build([0.0, 1.0, 2.0], [100, 200, 4000], [10, 10, 200])
    pre = add_shared_prefix(req, 50, 4, np.random.default_rng(0))
    assert list(pre.prompt) == [150, 250, 4050] and (pre.prefix == 50).all()
    assert set(pre.group) <= {0, 1, 2, 3}
    with pytest.raises(WorkloadError, match="row 3.*exceed m's context of 4,096"):
        check_context(pre, 4096, "m")
    assert len(check_context(pre, 4096, "m", "skip")) == 2
    cut = check_context(pre, 4096, "m", "truncate")
    assert int(cut.prompt[2] + cut.output[2]) == 4096 and cut.output[2] == 200


def _csv(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_trace_reading(tmp_path, ref_dir):
    path = _csv(tmp_path, "arrival_s,prompt_tokens,output_tokens\n0.5,10,2\n1.5,20,3\n")
    r = read_trace(path)
    assert list(r.arrival_s) == [0.5, 1.5] and list(r.prompt) == [10, 20]
    conv = read_trace(str(ref_dir / "serving/azure_llm_trace_conv_2023.csv"), limit=3)
    # first rows: 18:15:46.6805900 (374, 44), 18:15:50.9951690 (396, 109)
    assert list(conv.prompt) == [374, 396, 879]
    assert conv.arrival_s[1] == pytest.approx(50.9951690 - 46.6805900, abs=1e-6)


@pytest.mark.parametrize("text,field", [
    ("when,prompt_tokens,output_tokens\n0,1,1\n", "header: missing column"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10,1\n1,-5,1\n", "row 2: prompt_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n0,10,1\n1,5,0\n", "row 2: output_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n2,10,1\n1,5,1\n", "row 2: arrival_s: arrivals "
                                                              "must be in time order"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n", "row 1: TIMESTAMP"),
    ("arrival_s,prompt_tokens,output_tokens\n0,1.5,1\n", "row 1: prompt_tokens"),
])
def test_bad_traces_are_one_line_errors(tmp_path, capsys, text, field):
    path = _csv(tmp_path, text)
    rc = main(["serve", "--arch", "h100", "--model", "llama2-7b", "--tp", "1", "--trace", path,
               "--json", "--quiet"])
    cap = capsys.readouterr()
    err = cap.err
    assert rc == 2 and not cap.out
    assert err.count("\n") == 1 and path in err and field in err, err


@pytest.mark.parametrize("args,match", [
    (["--rate", "0"], "--rate: expected a rate > 0"),
    (["--prompt", "5000"], "row 1: prompt 5,000 + output 128 tokens exceed llama2-7b's "
                           "context of 4,096"),
    (["--gen", "zipf:x:1:2"], "--gen: zipf"),
    (["--timeout", "soon"], "--timeout: expected a duration"),
    (["--slo", "latency=1s"], "--slo: expected"),
    (["--max-num-batched-tokens", "100"], "smaller than --max-model-len"),
    (["--tp", "3"], "--tp: 3 exceeds the 1 device(s)"),
    (["--requests", "2147483647"], "--requests: the rate schedule would generate about"),
    (["--gen", "zipf:1:1:2147483647"], "--gen: zipf:S:LO:HI spans at most"),
    (["--gen", "lognormal:5:1e300"], "--gen: lognormal"),
    (["--gpu-memory-utilization", "0.1"], "leaves no room for a KV cache"),
])
def test_bad_options_are_one_line_errors(capsys, args, match):
    base = ["serve", "--arch", "h100", "--model", "llama2-7b", "--tp", "1", "--json", "--quiet"]
    rc = main(base + (["--requests", "3"] if "--requests" not in args else []) + args)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and match in err, err


def test_cli_json_keys_and_report(tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["serve", "--arch", "h100", "--model", "llama2-7b", "--tp", "1", "--requests",
               "20", "--rate", "4", "--prompt", "uniform:50:300", "--gen", "uniform:5:40",
               "--shared-prefix", "64", "--prefix-groups", "2", "--enable-prefix-caching",
               "--enable-chunked-prefill", "--slo", "ttft=1s,tbt=50ms", "--json", "--quiet",
               "--out", str(out), "--format", "csv"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("ttft_mean_s", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tbt_mean_s",
                "tbt_p50_s", "tbt_p90_s", "tbt_p99_s", "e2e_mean_s", "e2e_p50_s", "e2e_p90_s",
                "e2e_p99_s", "requests_completed", "requests_failed", "throughput_tok_s",
                "goodput_req_s"):
        assert key in data
    assert data["requests_completed"] == 20
    assert data["cached_prompt_tokens"] > 0
    for f in ("summary.json", "requests.csv", "iterations.csv", "timeline.json", "report.html"):
        assert (out / f).is_file()
    import pandas as pd

    trace = json.loads((out / "timeline.json").read_text())
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    iters = pd.read_csv(out / "iterations.csv")
    assert len(slices) == len(iters)
    assert iters["tokens"].sum() == data["prefill_tokens"] + iters["decode_seqs"].sum()
    table = pd.read_csv(out / "requests.csv")
    assert len(table) == 20 and (table["generated_tokens"] == table["output_tokens"]).all()
    # written again as parquet: the CSV tables of the first report are not kept beside
    (out / "mine.txt").write_text("keep me")
    assert main(["serve", "--arch", "h100", "--model", "llama2-7b", "--tp", "1", "--requests",
                 "5", "--json", "--quiet", "--out", str(out), "--format", "parquet"]) == 0
    capsys.readouterr()
    names = {p.name for p in out.iterdir()}
    assert {"requests.parquet", "iterations.parquet", "mine.txt"} <= names
    assert not names & {"requests.csv", "iterations.csv"}


def test_same_seed_same_run(capsys):
    args = ["serve", "--arch", "h100", "--model", "llama2-7b", "--tp", "1", "--requests", "10",
            "--rate", "3", "--prompt", "zipf:1.1:10:500", "--json", "--quiet", "--seed", "7"]
    main(args)
    a = json.loads(capsys.readouterr().out)
    main(args)
    b = json.loads(capsys.readouterr().out)
    assert a["e2e_mean_s"] == b["e2e_mean_s"]
