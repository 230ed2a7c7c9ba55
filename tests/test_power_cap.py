"""The power limiter (sim/gpu/power_cap.py): its speed search against a closed form, the arch it
builds at a lower clock, runs that meet the limit, and our H200's measurements held out from
its fit (validation/h200: GEMMs back to back and at 5-100% duty)."""

import dataclasses

import pytest
from scipy.optimize import brentq

from arch import load_arch
from sim.gpu.power_cap import (
    PowerLimitError,
    at_speed,
    board_power,
    limits,
    reacts_within,
    solve_speed,
    with_power_limit,
)
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario


def _synthetic(x, t1=1e-3, a=2e-4, compute=0.8, other=0.05):
    """run(c) of work whose time is ``a + (t1 - a) / c`` and whose compute energy scales as
    ``c ** x`` (the form the search assumes only at first)."""
    calls = []

    def run(c):
        calls.append(c)
        return a + (t1 - a) / c, compute * c ** x, other
    return run, calls


def test_speed_meets_the_limit_of_a_closed_form():
    """Static 125.7 W, 700 W limit: the speed the search returns is the root of
    125.7 + (0.8 c^x + 0.05) / (0.2 ms + 0.8 ms / c) = 700 (x: the preset's exponent, 1.905),
    found independently."""
    arch = load_arch("h200")
    x = arch.gpu.dvfs_energy_exponent
    run, calls = _synthetic(x)
    state = solve_speed(arch, run)
    root = brentq(lambda c: board_power(125.7, 1.0, 2e-4 + 8e-4 / c, 0.8 * c ** x + 0.05) - 700,
                  0.2, 1.0)
    assert arch.energy.static_power == pytest.approx(125.7)
    assert state.speed == pytest.approx(root, abs=1e-3)
    assert state.power == pytest.approx(700.0, abs=1.0)
    assert state.boost_power == pytest.approx(125.7 + 850.0)
    assert state.runs == len(set(calls)) <= 5


def test_duty_below_the_limit_keeps_the_boost_clock():
    """At 50% duty the same work draws 125.7 + 425 W: no slowdown, one run."""
    arch = load_arch("h200")
    state = solve_speed(arch, _synthetic(arch.gpu.dvfs_energy_exponent)[0], duty=0.5)
    assert state.speed == 1.0 and state.runs == 1
    assert state.power == pytest.approx(125.7 + 425.0)


def test_a_limit_unmet_at_a_fifth_of_the_boost_clock_is_refused():
    """The search floor is 0.2 of the boost clock: there the synthetic work takes 0.2 ms +
    0.8 ms / 0.2 = 4.2 ms and 0.8 x 0.2^x + 0.05 J, i.e. 146.5 W with the H200's 125.7 W
    static power. A 140 W limit (met only near 0.14 of boost) is refused; 150 W is met above
    the floor."""
    arch = load_arch("h200")
    x = arch.gpu.dvfs_energy_exponent
    assert board_power(125.7, 1.0, 4.2e-3, 0.8 * 0.2 ** x + 0.05) == pytest.approx(146.5,
                                                                                 abs=0.1)
    with pytest.raises(PowerLimitError):
        solve_speed(with_power_limit(arch, 140.0), _synthetic(x)[0])
    state = solve_speed(with_power_limit(arch, 150.0), _synthetic(x)[0])
    assert 0.2 < state.speed < 0.3 and state.power == pytest.approx(150.0, abs=1.0)


def test_limit_applies_to_work_longer_than_the_reaction():
    """NVIDIA's limiter reacts after 0.13 s (the h200 preset's measured reaction): a 0.2 s
    call runs at the limited clock, a 0.1 s one at boost."""
    arch = load_arch("h200")
    assert arch.gpu.power_reaction == pytest.approx(0.13)
    assert reacts_within(arch, 0.2) and not reacts_within(arch, 0.1)


def test_at_speed_scales_the_sm_side_only():
    arch = load_arch("h200")
    slow = at_speed(arch, 0.8)
    assert slow.gpu.clock == pytest.approx(0.8 * arch.gpu.clock)
    assert slow.gpu.tensor_efficiency == pytest.approx(0.8 * arch.gpu.tensor_efficiency)
    scale = 0.8 ** arch.gpu.dvfs_energy_exponent
    assert slow.energy.compute["bf16"] == pytest.approx(scale * arch.energy.compute["bf16"])
    assert slow.gpu.vector_flops["fp32"] == pytest.approx(0.8 * arch.gpu.vector_flops["fp32"])
    assert slow.gpu.tensor_flops == arch.gpu.tensor_flops     # the datasheet peaks stay
    assert slow.energy.memory == arch.energy.memory
    assert slow.memory["hbm"].bandwidth == arch.memory["hbm"].bandwidth
    system = load_arch("dgx-h100")
    gpu = at_speed(system, 0.8).sections["components"]["gpu"].device
    assert gpu.gpu.clock == pytest.approx(0.8 * system.sections["components"]["gpu"]
                                          .device.gpu.clock)
    assert system.sections["components"]["gpu"].device.gpu.tensor_efficiency == \
        load_arch("h100").gpu.tensor_efficiency           # the original is left as it was
    assert limits(system) and not limits(load_arch("gh200")) and not limits(load_arch("a100"))


def test_a_compute_bound_prefill_is_slowed_to_the_limit_on_its_own():
    """A 64 x 2,048-token Llama-2-7B prefill on one H200 (3 s) draws ~900 W at the boost clock;
    the 16 decode steps after it (0.3 s, both longer than the limiter's 0.13 s reaction) ~640 W.
    The prefill runs at the speed where its board power is 700 W, the decode at the boost clock
    (its ops cost what they cost in the boost run), and the run's energy says so."""
    arch = load_arch("h200")
    scenario = Scenario(batch=64, prompt_len=2048, gen_len=16, dtype="bf16")
    res = simulate(arch, get_model("llama2-7b"), scenario)
    m = res.metrics
    assert 0.8 < m["gpu_speed_prefill"] < 0.9 and m["gpu_speed"] == m["gpu_speed_prefill"]
    assert m["board_power_prefill_W"] == pytest.approx(700.0, abs=1.0)
    assert m["gpu_speed_decode"] == 1.0 and m["board_power_decode_W"] < 700.0
    assert m["energy_J"] / m["latency_s"] == pytest.approx(m["board_power_W"], rel=1e-9)
    free = arch.replace(gpu=dataclasses.replace(arch.gpu, power_limit=0.0))
    boost = simulate(free, get_model("llama2-7b"), scenario)
    assert "gpu_speed" not in boost.metrics
    assert boost.metrics["energy_J"] / boost.metrics["latency_s"] == \
        pytest.approx(m["boost_power_W"], rel=1e-9)
    ratio = m["ttft_s"] / boost.metrics["ttft_s"]
    assert 1.05 < ratio < 1.0 / m["gpu_speed_prefill"]
    decode = (m["latency_s"] - m["ttft_s"]) / (boost.metrics["latency_s"] - boost.metrics["ttft_s"])
    assert decode == pytest.approx(1.0, abs=0.01)   # (its final norm and LM head: prefill's)


@pytest.mark.parametrize("gen, own_clocks", [(5, False), (8, True)])
def test_a_phase_under_the_limiters_reaction_joins_the_run(gen, own_clocks):
    """The decode after the long prefill takes ~21 ms a step at the boost clock: 4 steps (83 ms,
    under the limiter's 0.13 s reaction) join the run, held to 700 W as a whole at one speed;
    7 steps (146 ms) are held on their own (both sides of 0.13 s within a factor of two)."""
    reaction = load_arch("h200").gpu.power_reaction   # 0.13 s, measured
    res = simulate(load_arch("h200"), get_model("llama2-7b"),
                   Scenario(batch=64, prompt_len=2048, gen_len=gen, dtype="bf16")).metrics
    decode = res["latency_s"] - res["ttft_s"]
    assert (decode > reaction) == own_clocks and reaction / 2 < decode < 2 * reaction
    assert ("gpu_speed_prefill" in res) == own_clocks and res["gpu_speed"] < 0.9
    if not own_clocks:
        assert res["board_power_W"] == pytest.approx(700.0, abs=1.0)


def test_a_limit_the_work_cannot_meet_is_a_one_line_error(tmp_path, capsys):
    """130 W on the h200 (static 125.7 W): an 8192^3 GEMM back to back draws more even at a
    fifth of the boost clock; the run is refused, not searched 40 times."""
    from xpusim.cli import main

    path = tmp_path / "low.yaml"
    path.write_text("name: low\nextends: h200\ngpu:\n"
                    "  power_limit: {value: 130 W, source: test}\n")
    assert main(["op", "gemm", "--m", "8192", "--n", "8192", "--k", "8192", "--arch", str(path),
                 "--duty", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    assert "gpu.power_limit: the work draws" in err and "over the 130 W limit" in err


def test_a_memory_bound_run_is_untouched():
    """Batch-8 decode streams the weights at ~490 W: the boost run itself, bit for bit."""
    arch = load_arch("h200")
    scenario = Scenario(batch=8, prompt_len=128, gen_len=64, dtype="bf16")
    res = simulate(arch, get_model("llama2-7b"), scenario).metrics
    free = arch.replace(gpu=dataclasses.replace(arch.gpu, power_limit=0.0))
    boost = simulate(free, get_model("llama2-7b"), scenario).metrics
    assert res["gpu_speed"] == 1.0 and res["board_power_W"] < 600
    assert res["latency_s"] == boost["latency_s"] and res["energy_J"] == boost["energy_J"]


def test_attention_overlap_is_a_p_norm_by_hand():
    """A block of 128 x 128 scores at head dim 128 on the h200: t_mma = 4 x 128 x 128 x 128 /
    (the SM's tensor rate) and t_softmax from the ALU and SFU rates; overlapped it takes
    (t_mma^p + t_softmax^p)^(1/p), p = 2.241, not the larger of the two."""
    from sim.devices.base import device_for
    from sim.gpu.attention import block_compute, block_parts

    dev = device_for(load_arch("h200"), "tile")
    ahw = dev._attn_hw("bf16")
    t_mma, t_soft = block_parts(ahw, 128, 128, 128)
    assert t_mma == pytest.approx(4 * 128**3 / (989.4e12 * 0.810 / 132), rel=1e-3)
    p = 2.241
    assert block_compute(ahw, 128, 128, 128, overlap=True) == \
        pytest.approx((t_mma ** p + t_soft ** p) ** (1 / p), rel=1e-12)
    assert block_compute(ahw, 128, 128, 128, overlap=True) > 1.1 * max(t_mma, t_soft)
    assert block_compute(ahw, 128, 128, 128) == pytest.approx(t_mma + t_soft)


def test_fits_reproduce_the_h200_preset():
    """`xpusim validate --fit`'s attention overlap and limiter exponent are the preset's."""
    import tempfile
    from pathlib import Path

    from xpusim.validation import PROJECT_DATA, ValidationContext
    from xpusim.validation._fit_gpu import fit_attention_overlap, fit_dvfs_exponent

    if not (PROJECT_DATA / "h200" / "h200_attention_duty.csv").is_file():
        pytest.skip("validation/h200 measurements absent")
    ctx = ValidationContext(Path(tempfile.mkdtemp()), project_data=PROJECT_DATA)
    g = load_arch("h200").gpu
    assert fit_attention_overlap(ctx)["gpu.attention_overlap_p"] == \
        pytest.approx(g.attention_overlap_p, abs=0.01)
    assert fit_dvfs_exponent(ctx)["gpu.dvfs_energy_exponent"] == \
        pytest.approx(g.dvfs_energy_exponent, abs=0.01)


def test_the_cli_says_when_a_run_is_power_limited(tmp_path, capsys):
    """`xpusim run` prints the speed the limiter settled at, and the report lists it."""
    from xpusim.cli import main

    out = tmp_path / "r"
    assert main(["run", "--arch", "h200", "--batch", "64", "--prompt", "2048", "--gen", "4",
                 "--out", str(out), "--quiet", "--timeline", "none"]) == 0
    line = capsys.readouterr().out
    assert "power-limited: SM clock at 8" in line and "W at boost, 700 W)" in line
    html = (out / "report.html").read_text()
    assert "SM clock under the power limit (of boost)" in html


def test_attention_energy_by_hand():
    """One 8k-token prefill, 32 heads of 128, bf16 on the h200: its FLOPs less the online
    softmax's 5 operations per score (4 ALU ops and an exponential) at the tensor energy
    (0.886 pJ), those operations at the CUDA cores' (the fp32 entry, 13.09 pJ), and its DRAM
    bytes at 13.86 pJ/bit."""
    from sim.devices.base import device_for
    from xpusim.commands.op import attention_op

    op = attention_op(1, 32, 32, 8192, 8192, 128, "bf16")
    cost = device_for(load_arch("h200"), "tile").estimate(op)
    scores = 32 * 8192 * 8192
    softmax = 5.0 * scores
    assert op.flops >= 4.0 * scores * 128 + softmax
    assert cost.energy["compute"] == pytest.approx(
        (op.flops - softmax) * 0.886e-12 + softmax * 13.09e-12, rel=1e-9)
    assert cost.energy["hbm"] == pytest.approx(cost.dram_bytes * 8 * 13.86e-12, rel=1e-9)


def test_op_duty_prices_a_kernel_run_back_to_back(capsys):
    """`xpusim op gemm ... --duty 1` on the h200: the 8192^3 bf16 GEMM at the limit, within 1%
    of our 100%-duty measurement (1.623 ms); without --duty the boost time (1.404 ms measured);
    on a preset without a limit it says so; a duty outside (0, 1] is a one-line error."""
    import json

    from xpusim.cli import main

    args = ["op", "gemm", "--m", "8192", "--n", "8192", "--k", "8192", "--arch", "h200",
            "--dtype", "bf16", "--json"]
    assert main(args + ["--duty", "1"]) == 0
    limited = json.loads(capsys.readouterr().out)
    assert limited["latency_s"] == pytest.approx(1.623e-3, rel=0.01)
    assert limited["board_power_W"] == pytest.approx(700.0, abs=1.0)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["latency_s"] == pytest.approx(1.404e-3, rel=0.02)
    assert main(args[:-3] + ["--arch", "a100", "--duty", "1"]) == 0
    assert "no power limit modelled for a100" in capsys.readouterr().out
    assert main(args + ["--duty", "0"]) == 2
    err = capsys.readouterr().err
    assert "--duty: expected a fraction in (0, 1]" in err and err.count("\n") == 1


def test_a_power_limit_under_the_static_power_is_a_one_line_error(tmp_path, capsys):
    """A limit the board cannot meet even idle is refused where the arch is read."""
    from xpusim.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nextends: h200\ngpu:\n"
                    "  power_limit: {value: 100 W, source: test}\n")
    assert main(["op", "gemm", "--m", "64", "--n", "64", "--k", "64", "--arch", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    assert "gpu.power_limit: expected more than the static power (125.7 W), got 100 W" in err


def test_the_cli_names_each_phase_clock(tmp_path, capsys):
    """A long prefill and a long decode: the line gives both phases' clocks."""
    from xpusim.cli import main

    assert main(["run", "--arch", "h200", "--batch", "64", "--prompt", "2048", "--gen", "16",
                 "--out", str(tmp_path / "r"), "--quiet", "--timeline", "none"]) == 0
    line = capsys.readouterr().out
    assert "power-limited: SM clock at 8" in line and "% (prefill) and 100.0% (decode)" in line


def test_the_prefills_search_runs_the_prefill_alone(monkeypatch):
    """Where the decode stays under the limit at the boost clock, the prefill's speed search
    runs prefill-only passes (gen 1) and the whole run only twice (at the boost clock and at
    the speeds found); the last pass's prefill time and energies are the whole run's, exactly."""
    import sim.run as run_module

    calls = []
    real = run_module._simulate

    def counted(arch, model, scenario, *args):
        out = real(arch, model, scenario, *args)
        calls.append((scenario.gen_len, out))
        return out

    monkeypatch.setattr(run_module, "_simulate", counted)
    res = simulate(load_arch("h200"), get_model("llama2-7b"),
                   Scenario(batch=64, prompt_len=2048, gen_len=64, dtype="bf16"))
    whole = [r for g, r in calls if g == 64]
    alone = [r for g, r in calls if g == 1]
    assert len(whole) == 2 and len(alone) >= 2
    assert res.metrics["gpu_speed_prefill"] < 0.9 and res.metrics["gpu_speed_decode"] == 1.0
    last = run_module._phase_energies(alone[-1], 1)["prefill"]
    assert run_module._phase_energies(res, 1)["prefill"] == last


def test_each_phase_prices_its_families_from_arrays_at_the_costs_op_by_op():
    """A phase-priced device (a power-limited run's reruns, sim/devices/phased.py) hands each
    phase's ops to that phase's GPU model at once: a 64-token decode's attention GEMMs (two per
    step, one shape but the KV length) are priced from arrays, and every op's cost equals the
    one op-by-op pricing gives (latency, roofline, energy: the same floats)."""
    from sim.devices.base import device_for
    from sim.devices.phased import PhaseDevice
    from workloads.tracer import trace_model

    arch = load_arch("mi300x")
    ops = list({id(op.compute): op for op in trace_model(
        get_model("llama2-7b"), Scenario(batch=8, prompt_len=512, gen_len=64)).ops}.values())

    def phased():
        return PhaseDevice({"prefill": device_for(at_speed(arch, 0.7), "tile"),
                            "decode": device_for(at_speed(arch, 0.9), "tile")},
                           device_for(arch, "tile"))

    ahead, alone = phased(), phased()
    priced = ahead.prefetch(ops)
    assert priced >= 2 * 62 and ahead.settled == []   # the 62 further steps' QK and AV GEMMs
    assert sum(op.kind == "matmul" for op in ops) >= priced
    # priced into the decode's own model (its estimate memo), not the default's
    assert len(ahead.by_phase["decode"]._memo) >= 2 * 62 and not ahead.inner._memo
    for op in ops:
        a, b = ahead.estimate(op), alone.estimate(op)
        assert (a.latency, a.roofline, a.energy) == (b.latency, b.roofline, b.energy), op.name
    # each phase's own clock: the decode's GEMMs are not the prefill's model's
    decode_gemm = next(op for op in ops if op.phase == "decode" and op.kind == "matmul")
    assert ahead.estimate(decode_gemm).latency == \
        device_for(at_speed(arch, 0.9), "tile").estimate(decode_gemm).latency


def test_a_power_limited_run_prices_each_reruns_families_at_once(monkeypatch):
    """The reruns of a phase-limited run (batch 64 x 2,048-token prefill on an H200, then 16
    decode steps) reach each phase's GPU model's ``prefetch`` through the phase-priced device:
    the whole run at the speeds found prices its decode attention from arrays (the
    prefill-only passes of the search hold too few ops to price any at once)."""
    from sim.devices.gpu import GpuDevice
    from sim.devices.phased import PhaseDevice

    through = []
    real = PhaseDevice.prefetch

    def spy(self, ops):
        got = real(self, ops)
        through.append(got)
        return got

    monkeypatch.setattr(PhaseDevice, "prefetch", spy)
    inner = []
    real_gpu = GpuDevice.prefetch
    monkeypatch.setattr(GpuDevice, "prefetch",
                        lambda self, ops: inner.append(len(list(ops))) or real_gpu(self, ops))
    m = simulate(load_arch("h200"), get_model("llama2-7b"),
                 Scenario(batch=64, prompt_len=2048, gen_len=16, dtype="bf16")).metrics
    assert "gpu_speed_prefill" in m
    assert through and all(n >= 2 * 14 for n in through)   # 14 further steps' QK and AV
    # the boost run's own device, then both phase models in each phase-priced pass
    assert len(inner) >= 1 + 2 * len(through)
