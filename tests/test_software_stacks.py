"""Software stacks as presets (arch/stacks/*.yaml, arch/software.py, ``--software``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arch import SpecError, load_arch, read_yaml
from arch.software import list_stacks, load_arch_with_software, load_stack
from sim.gpu.host import FAMILIES, lookup

ROOT = Path(__file__).resolve().parents[1]


def _vllm():
    """The vllm stack's fitted host costs (s): dispatch per op, per step, per request."""
    sw = load_arch_with_software("a100", "vllm").sections["software"]
    return sw.dispatch["default"], sw.per_step, sw.per_request


def _software(arch):
    sw = arch.sections.get("software")
    if sw is None:
        sw = arch.sections["components"]["gpu"].device.sections["software"]
    return sw


def test_builtin_stacks_and_every_value_sourced():
    assert list_stacks() == ["eager", "ideal", "torch-graphs", "trtllm", "vllm"]
    for name in list_stacks():
        arch = load_arch_with_software("a100", name)
        prov = {k: v for k, v in arch.provenance.items() if k.startswith("software.")}
        scalars = ("name", "mode", "per_step", "per_request", "decode_attention")
        for field in scalars:
            assert prov.get(f"software.{field}"), f"{name}: software.{field} has no source"
        for fam, _ in _software(arch).dispatch.items():
            assert prov.get(f"software.dispatch.{fam}"), f"{name}: dispatch.{fam} unsourced"
    fitted = read_yaml(ROOT / "arch" / "stacks" / "vllm.yaml")["software"]
    for key in ("dispatch", "per_step", "per_request"):
        assert fitted[key]["source"].startswith("FITTED"), key


def test_ideal_stack_changes_nothing_on_a_preset():
    from sim.devices.base import device_for
    from sim.engine import Engine
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    sc = Scenario(batch=2, prompt_len=64, gen_len=3, attention="flash")
    trace = trace_model(get_model("llama2-7b"), sc)
    ends = [float(Engine({"device0": device_for(a, "tile")}).run(trace).end.max())
            for a in (load_arch("a100"), load_arch_with_software("a100", "ideal"))]
    assert ends[0] == pytest.approx(ends[1], rel=1e-12)


def test_stack_replaces_the_whole_section_but_keeps_the_gpus_protocols():
    # the LLMCompass harness times ops one by one with per-family host tables; the vllm stack
    # must replace every table entry, not merge under it
    harness = "xpusim/validation/harness/llmcompass-a100.yaml"
    before = _software(load_arch(harness))
    assert before.mode == "timed" and before.dispatch.get("matmul")
    sw = _software(load_arch_with_software(harness, "vllm"))
    assert sw.mode == "async" and sw.decode_attention == "paged"
    assert set(sw.dispatch) == {"default", "matmul", "softmax", "norm", "activation"}
    for fam in FAMILIES:
        assert lookup(sw.dispatch, fam) == pytest.approx(_vllm()[0])
        assert lookup(sw.issue, fam) == 0.0
        assert lookup(sw.bandwidth_efficiency, fam, 1.0) == 1.0
    assert sw.collective_protocols == before.collective_protocols


def test_fit_transfers_unchanged_to_h100_with_h100_collectives():
    a100 = _software(load_arch_with_software("dgx-a100", "vllm"))
    h100 = _software(load_arch_with_software("dgx-h100", "vllm"))
    for field in ("mode", "dispatch", "issue", "per_step", "per_request",
                  "bandwidth_efficiency", "decode_attention"):
        assert getattr(a100, field) == getattr(h100, field), field
    # NCCL's LL bandwidth cap is the GPU generation's (tuning.cc llMaxBw: Ampere 87.7, Hopper 141)
    assert a100.collective_protocols["ll"].max_bandwidth == pytest.approx(87.7e9)
    assert h100.collective_protocols["ll"].max_bandwidth == pytest.approx(141e9)
    assert load_arch_with_software("dgx-h100", "vllm").name == "dgx-h100+vllm"


@pytest.mark.parametrize("arch", ["a100", "h100"])
def test_host_bound_decode_step_is_the_closed_form(arch):
    """A small decode step under the async stack: the host issues every op after ``dispatch``
    (~30 us) and the GPU (each op but the final LM head shorter than that) trails it, so the
    step ends at per_step + per_request x batch + ops x dispatch + the LM head's kernel, on
    any GPU."""
    from sim.devices.base import device_for
    from sim.engine import Engine
    from workloads.models import get_model
    from workloads.scenario import Scenario
    from workloads.tracer import trace_model

    dev = device_for(load_arch_with_software(arch, "vllm"), "tile")
    disp, step, per_req = _vllm()
    batch = 2
    sc = Scenario(batch=batch, prompt_len=32, gen_len=2, attention="flash")
    trace = trace_model(get_model("gpt2-small"), sc, phases=("decode",))
    lat = [dev.estimate(op).latency for op in trace.ops]
    assert trace.ops[-1].name == "lm_head"
    assert max(lat[:-1]) < disp, "premise: the kernels are shorter than the host's issue"
    expected = step + per_req * batch + len(lat) * disp + lat[-1]
    got = float(Engine({"device0": dev}).run(trace).end.max())
    assert got == pytest.approx(expected, rel=1e-9)


def test_splitwise_held_out_token_rows_and_the_host_matters(ref_dir):
    """On the odd (never fitted) configurations the stack predicts token time within 6%; the
    same GPU without the stack's host (ideal) misses by more than 30%."""
    from xpusim.validation import ValidationContext, mape
    from xpusim.validation._splitwise import points

    ctx = ValidationContext(ref_dir)
    test = points(ctx, only_split="test", metric="token")
    assert len(test) == 38
    assert mape(test) <= 0.06
    ideal = points(ctx, only_split="test", metric="token", software="ideal")
    assert mape(ideal) > 0.30
    assert sum(p.error for p in ideal) < 0            # an ideal host is optimistic


def test_cli_run_with_software_matches_the_validation_harness(capsys):
    from xpusim.cli import main
    from xpusim.validation import _splitwise

    cfg = {"model": "llama2-70b", "tp": 8, "batch": 1, "prompt": 512, "tokens": 2}
    prompt_s, _ = _splitwise.predict(_splitwise._default_device(), cfg)
    rc = main(["run", "--arch", "dgx-a100", "--software", "vllm", "--model", "llama2-70b",
               "--tp", "8", "--batch", "1", "--prompt", "512", "--gen", "2",
               "--attention", "flash", "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ttft_s"] == pytest.approx(prompt_s, rel=1e-9)


def test_kept_harness_file_equals_the_stack():
    """``harness/splitwise-dgx-a100.yaml`` (kept for the docs' path) is dgx-a100 + vllm."""
    a = _software(load_arch("xpusim/validation/harness/splitwise-dgx-a100.yaml"))
    b = _software(load_arch_with_software("dgx-a100", "vllm"))
    for field in ("mode", "dispatch", "per_step", "per_request", "decode_attention"):
        assert getattr(a, field) == getattr(b, field), field


def test_bad_stacks_are_one_line_errors(tmp_path, capsys):
    from xpusim.cli import main

    with pytest.raises(SpecError, match="did you mean 'vllm'"):
        load_stack("vlm")
    bad = tmp_path / "mine.yaml"
    bad.write_text("name: mine\nsoftware:\n  mode: async\n  per_stepp: 1 ms\n")
    with pytest.raises(SpecError, match=r"mine.yaml: software.per_stepp: unknown key"):
        load_stack(str(bad))
    bad.write_text("name: mine\nsoftware:\n  mode: fast\n")
    with pytest.raises(SpecError, match=r"software.mode"):
        load_stack(str(bad))
    with pytest.raises(SpecError, match="gpu or system arch"):
        load_arch_with_software("spr-8480", "vllm")
    rc = main(["run", "--arch", "a100", "--software", str(bad), "--model", "gpt2-small",
               "--json", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "software.mode" in err
    assert "Traceback" not in err


def test_serve_with_software_adds_the_stacks_host_time(capsys):
    """``xpusim serve --software``: one request alone; each decode iteration under vllm costs
    at least per_step + per_request more than under ideal (CUDA graphs), and at most that
    plus the host's issue of every op (dispatch each, when the host is the bottleneck)."""
    from xpusim.cli import main

    tbt = {}
    for stack in ("ideal", "vllm"):
        rc = main(["serve", "--arch", "dgx-h100", "--software", stack, "--model", "llama2-7b",
                   "--tp", "1", "--requests", "1", "--rate", "1", "--prompt", "128",
                   "--gen", "4", "--json", "--quiet"])
        assert rc == 0
        tbt[stack] = json.loads(capsys.readouterr().out)["tbt_p50_s"]
    disp, step, per_req = _vllm()
    host = step + per_req
    ops = 32 * 20 + 10     # generous bound on a Llama-2-7B decode step's op count
    assert host <= tbt["vllm"] - tbt["ideal"] <= host + ops * disp


def test_eager_stack_transfers_the_fitted_values_it_names():
    """``eager`` reuses fits made elsewhere: LLMCompass's eager matmul/softmax host costs and
    softmax kernel efficiency, the vllm fit's per-op cost for other ops."""
    eager = load_arch_with_software("a100", "eager").sections["software"]
    timed = load_arch("xpusim/validation/harness/llmcompass-a100.yaml").sections["software"]
    assert eager.dispatch["matmul"] == timed.dispatch["matmul"]
    assert eager.dispatch["softmax"] == timed.dispatch["softmax"]
    assert eager.bandwidth_efficiency["softmax"] == timed.bandwidth_efficiency["softmax"]
    assert eager.dispatch["default"] == _vllm()[0]
