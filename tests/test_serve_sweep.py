"""Serving sweeps through dse (a spec's ``serve:`` section) and the serving library's input
checks (issue 14, item 6).

A point of a serving sweep must be exactly the ``xpusim serve`` run with the same fields and
seed: checked against ``sim.serve.serve`` on a request table built here from the workload
functions, and against the CLI's ``--json``. Tiny model (GPT-2 small on one H100, roofline,
30 requests) so the module stays fast.
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pandas as pd
import pytest

from arch import SpecError, load_arch
from dse import load_sweep, run_sweep, sweep_from_dict
from dse.serve_eval import metric_names
from sim.serve import EngineConfig, IterationModel, Simulation, build_replicas, finish, serve
from sim.serve.metrics import parse_slo
from workloads.errors import WorkloadError
from workloads.models import get_model
from workloads.requests import Requests, arrival_times, parse_lengths, sample_lengths
from xpusim.cli import main

SERVE = {"model": "gpt2-small", "tp": 1, "rate": 20, "requests": 30,
         "prompt": "uniform:16:200", "gen": "uniform:4:40", "scheduler": "chunked",
         "slo": "ttft=0.3ms"}
SPEC = {"name": "tiny-serve", "arch": "h100", "serve": SERVE,
        "axes": {"serve.rate": [10, 40], "serve.max_num_batched_tokens": [64, 512]},
        "objectives": [{"max": "goodput_req_s"}, {"min": "ttft_p99_s"}],
        "fidelity": "roofline", "seed": 3}
COMPARED = ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "tbt_p50_s", "tbt_p99_s", "e2e_mean_s",
            "e2e_p90_s", "queue_p99_s", "throughput_req_s", "throughput_tok_s", "goodput_req_s",
            "requests_completed", "energy_J", "kv_peak_fraction", "events")


def write_spec(tmp_path, data=SPEC, name="spec.yaml"):
    import yaml

    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def library_run(rate: float, chunk: int, seed: int = 3) -> dict:
    """The same point served with the library: requests drawn here (xpusim serve's order of
    draws: arrivals, prompts, outputs), the engine built by hand."""
    rng = np.random.default_rng(seed)
    times = arrival_times([(rate, math.inf)], rng, 30)
    prompt = sample_lengths(parse_lengths("uniform:16:200", "--prompt"), 30, rng)
    gen = sample_lengths(parse_lengths("uniform:4:40", "--gen"), 30, rng)
    im = IterationModel(load_arch("h100"), get_model("gpt2-small"), tp=1, fidelity="roofline")
    cfg = EngineConfig("chunked", max_num_batched_tokens=chunk, max_model_len=1024)
    return serve(im, cfg, Requests.build(times, prompt, gen), slo=parse_slo("ttft=0.3ms")).metrics


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-sweep")
    spec = load_sweep(write_spec(tmp))
    summary = run_sweep(spec, tmp / "out", report=False)
    return spec, summary, pd.read_csv(tmp / "out" / "results.csv"), tmp


def test_points_equal_separate_library_runs(local):
    _, summary, df, _ = local
    assert summary["status"] == {"ok": 4, "infeasible": 0, "error": 0}
    for _, row in df.iterrows():
        ref = library_run(row["serve.rate"], int(row["serve.max_num_batched_tokens"]))
        for key in COMPARED:
            assert row[key] == pytest.approx(ref[key], rel=1e-12, abs=0), key
    # the axes matter: a smaller chunk makes prompts take more iterations
    by = df.set_index(["serve.rate", "serve.max_num_batched_tokens"])
    assert by.loc[(40.0, 64), "ttft_p99_s"] > by.loc[(40.0, 512), "ttft_p99_s"]
    assert by.loc[(40.0, 512), "throughput_req_s"] > by.loc[(10.0, 512), "throughput_req_s"]


def test_point_equals_xpusim_serve_json(local, capsys):
    _, _, df, _ = local
    row = df[(df["serve.rate"] == 40) & (df["serve.max_num_batched_tokens"] == 64)].iloc[0]
    rc = main(["serve", "--arch", "h100", "--model", "gpt2-small", "--tp", "1", "--rate", "40",
               "--requests", "30", "--prompt", "uniform:16:200", "--gen", "uniform:4:40",
               "--scheduler", "chunked", "--max-num-batched-tokens", "64", "--slo",
               "ttft=0.3ms", "--fidelity", "roofline", "--seed", "3", "--json", "--quiet"])
    assert rc == 0
    cli = json.loads(capsys.readouterr().out)
    for key in COMPARED:
        assert row[key] == pytest.approx(cli[key], rel=1e-12, abs=0), key


def test_metric_names_are_the_serve_json_keys():
    from sim.serve.metrics import summarise

    im = IterationModel(load_arch("h100"), get_model("gpt2-small"), tp=1, fidelity="roofline")
    req = Requests.build([0.0, 0.01], [20, 30], [3, 2])
    for slo, price in (("", 0.0), ("splitwise", 2.5)):
        sim = Simulation(build_replicas(im, EngineConfig()), req).run()
        m, _ = summarise(sim, parse_slo(slo), None, price, "test")
        numeric = [k for k, v in m.items() if isinstance(v, (int, float))]
        assert sorted(numeric) == sorted(metric_names(slo, price > 0))


def test_resume_skips_done_points(local, tmp_path):
    spec, _, df, _ = local
    first = dict(SPEC, axes={"serve.rate": [10, 40], "serve.max_num_batched_tokens": [64]})
    out = tmp_path / "out"
    s1 = run_sweep(load_sweep(write_spec(tmp_path, first)), out, report=False)
    assert s1["evaluated"] == 2
    more = dict(first, axes={"serve.rate": [10, 40, 80], "serve.max_num_batched_tokens": [64]})
    s2 = run_sweep(load_sweep(write_spec(tmp_path, more, "more.yaml")), out, resume=True,
                   report=False)
    assert (s2["resumed"], s2["evaluated"], s2["n_points"]) == (2, 1, 3)
    again = pd.read_csv(out / "results.csv").set_index("point_id")
    ref = df.set_index("point_id")
    for pid in ref.index.intersection(again.index):
        assert again.loc[pid, "ttft_p99_s"] == ref.loc[pid, "ttft_p99_s"]
    # changing what decides a result (the serve section) is refused on resume
    changed = dict(more, serve={**SERVE, "requests": 31})
    with pytest.raises(SpecError, match="serve"):
        run_sweep(load_sweep(write_spec(tmp_path, changed, "changed.yaml")), out, resume=True,
                  report=False)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_gives_the_local_table(local, tmp_path):
    spec, _, df, _ = local
    run_sweep(spec, tmp_path / "ray", executor="ray", workers=2, report=False)
    ray_df = pd.read_csv(tmp_path / "ray" / "results.csv")
    cols = [c for c in df.columns if c != "eval_s"]
    pd.testing.assert_frame_equal(ray_df[cols].sort_values("point_id").reset_index(drop=True),
                                  df[cols].sort_values("point_id").reset_index(drop=True),
                                  check_exact=True)


def test_infeasible_point_keeps_the_sweep_going(tmp_path):
    # 0.1 % of an H100's 80 GB (80 MB) cannot hold GPT-2 small's 250 MB of fp16 weights
    data = dict(SPEC, axes={"serve.gpu_memory_utilization": [0.9, 0.001]},
                serve={**SERVE, "requests": 5})
    s = run_sweep(load_sweep(write_spec(tmp_path, data)), tmp_path / "o", report=False)
    df = pd.read_csv(tmp_path / "o" / "results.csv")
    assert s["status"] == {"ok": 1, "infeasible": 1, "error": 0}
    bad = df[df["serve.gpu_memory_utilization"] == 0.001].iloc[0]
    assert bad["status"] == "infeasible" and "leaves no room for a KV cache" in bad["reason"]
    assert df[df["status"] == "ok"].iloc[0]["requests_completed"] == 5


@pytest.mark.parametrize("change, field, words", [
    ({"serve": {**SERVE, "rte": 3}}, "serve.rte", "did you mean 'rate'"),
    ({"serve": {**SERVE, "rate": 0}}, "serve.rate", "rate > 0"),
    ({"serve": {**SERVE, "max_num_seqs": 0}}, "serve.max_num_seqs", "positive integer"),
    ({"serve": {**SERVE, "software": "vllmm"}}, "serve.software", "unknown software stack"),
    ({"serve": {**SERVE, "slo": "ttft=fast"}}, "serve.slo", "duration"),
    ({"serve": {**SERVE, "scheduler": "fifo"}}, "serve.scheduler", "static, continuous"),
    ({"axes": {"serve.rate": [4, -1]}}, "axes.serve.rate[1]", "rate > 0"),
    ({"axes": {"serve.max_num_seq": [4]}}, "axes.serve.max_num_seq", "max_num_seqs"),
    ({"axes": {"scenario.batch": [4]}}, "axes.scenario.batch", "serving sweep has no scenario"),
    ({"workloads": [{"model": "gpt2-small"}]}, "workloads", "has no workloads"),
    ({"fidelity": "cycle"}, "fidelity", "roofline or tile"),
    ({"objectives": [{"min": "tpot_s"}]}, "objectives[0]", "unknown metric"),
    ({"serve": {**SERVE, "prompt": 2000}}, "serve", "exceed gpt2-small's context"),
    ({"serve": {**SERVE, "tp": 3}}, "serve.tp", "exceeds the 1 device(s)"),
    ({"axes": {"serve.model": ["gpt2-small", "gpt9"]}}, "axes.serve.model[1]", "unknown model"),
    ({"serve": {**SERVE, "trace": "none.csv"}}, "serve.trace", "no such file"),
    ({"serve": {**SERVE, "gpu_memory_utilization": 0.001}}, "serve.model",
     "leaves no room for a KV cache"),
])
def test_bad_fields_are_one_line_errors(tmp_path, capsys, change, field, words):
    path = write_spec(tmp_path, {**SPEC, **change})
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {field}: ") and words in text and "\n" not in text
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and field in err and "Traceback" not in err


def test_serve_fields_need_a_serve_section():
    with pytest.raises(SpecError, match="need a serve: section"):
        sweep_from_dict({"arch": "h100", "axes": {"serve.rate": [1]},
                         "workloads": [{"model": "gpt2-small", "prompt_len": 8, "gen_len": 2}],
                         "objectives": [{"min": "tpot_s"}], "fidelity": "roofline"})


# --- the serving library refuses requests it cannot serve (issue 14 item 2/7 as a library) ---
@pytest.mark.parametrize("prompt, output, arrival, words", [
    ([20, 1100], [4, 4], [0.0, 0.0], "request 1: prompt 1,100 + output 4 tokens exceed "
                                     "gpt2-small's context of 1,024"),
    ([0, 20], [4, 4], [0.0, 0.0], "row 1: request 0: prompt 0 tokens"),
    ([20, 20], [4, 0], [0.0, 0.0], "row 2: request 1: output 0 tokens"),
    ([20, 20], [4, 4], [1.0, 0.5], "row 2: request 1: arrival_s 0.5 s is earlier"),
    ([20, 20], [4, 4], [math.nan, 0.5], "row 1: request 0: arrival_s nan"),
])
@pytest.mark.parametrize("sched", ["continuous", "chunked", "static"])
def test_library_refuses_bad_requests(sched, prompt, output, arrival, words):
    im = IterationModel(load_arch("h100"), get_model("gpt2-small"), tp=1, fidelity="roofline")
    with pytest.raises(WorkloadError) as info:
        serve(im, EngineConfig(sched), Requests.build(arrival, prompt, output))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_over_max_model_len_is_rejected_by_every_scheduler():
    """Within the model's context but over a smaller max_model_len: the engine ignores it
    (vLLM's prompt limit) and the run goes on."""
    im = IterationModel(load_arch("h100"), get_model("gpt2-small"), tp=1, fidelity="roofline")
    req = Requests.build([0.0, 0.0], [20, 300], [4, 4])
    for sched in ("continuous", "chunked", "static"):
        cfg = EngineConfig(sched, max_model_len=256, max_num_batched_tokens=256)
        sim = Simulation(build_replicas(im, cfg), req).run()
        assert [r.state for r in sim.reqs] == ["done", "rejected"], sched
        assert finish(sim).metrics["requests_rejected"] == 1


def test_cli_serve_over_context_is_one_line(capsys):
    rc = main(["serve", "--arch", "h100", "--model", "gpt2-small", "--tp", "1", "--prompt",
               "2000", "--requests", "2", "--fidelity", "roofline", "--json", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "exceed gpt2-small's context of 1,024" in err and err.count("\n") == 0


@pytest.mark.parametrize("knob", ["max_num_batched_tokens", "kv_blocks", "max_model_len",
                                  "swap_space"])
def test_negative_engine_knobs_are_refused(knob):
    from sim.devices.base import SimError

    # a chunked replica with a negative token budget used to leave its requests waiting
    with pytest.raises(SimError, match=r"expected a value >= 0"):
        EngineConfig("chunked", **{knob: -5})


def test_arch_and_software_axes_equal_xpusim_serve(tmp_path, capsys):
    data = {"name": "sw", "serve": {k: v for k, v in SERVE.items()
                                    if k not in ("scheduler", "slo")},
            "axes": {"arch": ["h100", "a100"], "serve.software": ["ideal", "vllm"]},
            "objectives": [{"min": "e2e_mean_s"}], "fidelity": "roofline", "seed": 3}
    run_sweep(load_sweep(write_spec(tmp_path, data)), tmp_path / "o", report=False)
    df = pd.read_csv(tmp_path / "o" / "results.csv").set_index(["arch", "serve.software"])
    for arch, software in (("a100", "ideal"), ("h100", "vllm")):
        assert main(["serve", "--arch", arch, "--software", software, "--model", "gpt2-small",
                     "--tp", "1", "--rate", "20", "--requests", "30", "--prompt",
                     "uniform:16:200", "--gen", "uniform:4:40", "--fidelity", "roofline",
                     "--seed", "3", "--json", "--quiet"]) == 0
        cli = json.loads(capsys.readouterr().out)
        for key in COMPARED:
            assert df.loc[(arch, software), key] == pytest.approx(cli[key], rel=1e-12, abs=0)
    # the stack and the GPU both matter (host-bound vLLM-like steps vs CUDA graphs)
    assert df.loc[("h100", "vllm"), "tbt_p50_s"] > 10 * df.loc[("h100", "ideal"), "tbt_p50_s"]
    assert df.loc[("a100", "ideal"), "e2e_mean_s"] > df.loc[("h100", "ideal"), "e2e_mean_s"]
