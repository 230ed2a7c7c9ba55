"""Fits of the GPU GEMM mechanisms on the training half of Vidur's cuBLAS layer GEMMs.

Split (``xpusim.validation._vidur``): the Llama-2-7B rows of each GPU train; CodeLlama-34B and
Phi-2 rows test. Objective: the train MAPE of the suite (kernel durations), minimised with
Nelder-Mead from physical start values (as ``_fit``).

* A100 (``a100`` preset): ``gpu.tensor_efficiency`` (sustained clock under the 400 W limit),
  ``gpu.gemm_fixed`` (per-kernel fixed cost) and ``gpu.gemm_overlap_p`` (imperfect overlap of
  main loop and DRAM stream: p-norm of the two times).
* H100 (``h100`` preset): ``gpu.tensor_efficiency`` and ``gpu.gemm_fixed`` on the H100 train
  rows; ``gpu.gemm_overlap_p`` is **not** refitted — the A100 value is used, so every H100
  row tests whether it transfers.
* A40 (``a40`` preset, :func:`fit_vidur_a40`): ``gpu.tensor_efficiency``, ``gpu.gemm_fixed`` and
  ``memory.hbm.efficiency`` on the Llama-2-7B rows of the A40 file (validation/a40); the A100
  overlap exponent is held, so the other five models' rows test it too.
* H200 (``h200`` preset, :func:`fit_own_gemm`): ``gpu.tensor_efficiency``, ``gpu.gemm_fixed``
  and ``gpu.gemm_overlap_p`` on the train rows (even positions) of our own H200 GEMMs
  (``validation/h200/h200_gemm.csv``, suite ``h200-gemm``); the odd rows, the attention and the
  decode steps of ``h200-llm`` test them. The H100 values, fitted on Vidur's DGX-H100 rows, did
  not transfer (that suite's MAPE 11.3% with them).
* MI210 (``mi210`` preset, :func:`fit_mi210_gemm`): ``gpu.tensor_efficiency`` (fp16/bf16) and
  ``gpu.tensor_efficiency_by_dtype.fp32``, with the host cost of harness ``mi210-pytorch-loop``
  (``software.dispatch.matmul``), on the train rows of
  suite ``mi210-gemm`` (public PyTorch figures, ``validation/mi210``); the mi250x and mi300x
  presets do not take these values.
* MI300X (``mi300x`` preset, :func:`fit_amd_maf`): ``gpu.tensor_efficiency``, fp8's own and the
  boost energies per FLOP, derived exactly from AMD's three MI300X max-achievable-FLOPs rows
  (suite ``amd-maf``, ``validation/mi300x``); its MI325X rows test them.
"""

from __future__ import annotations

import math

from xpusim.validation import ValidationContext, mape, parsed_once
from xpusim.validation._fit import US, _minimise, _train


def _device(preset: str, gpu: dict, arch=None):
    """Preset ``preset``'s device with ``gpu`` merged into its ``gpu`` section; ``arch``: its
    :func:`~xpusim.validation.parsed_once` (a fit's, parsed once; else parsed now)."""
    from sim.devices.base import device_for

    return device_for((arch or parsed_once(preset))({"gpu": gpu}), "tile")


def fit_vidur_gemm(ctx: ValidationContext) -> dict[str, dict[str, float]]:
    """{preset: {yaml.path: value}} of the GEMM mechanisms (SI units)."""
    from xpusim.validation._vidur import gemm_points

    a100, h100 = parsed_once("a100"), parsed_once("h100")   # one parse for the whole fit

    def a100_obj(x: list[float]) -> float:
        eff, fixed, p = x
        if not (0.3 < eff <= 1.0) or fixed < 0 or not (0.5 <= p <= 50.0):
            return math.inf
        dev = _device("a100", {"tensor_efficiency": eff, "gemm_fixed": fixed * US,
                               "gemm_overlap_p": p}, a100)
        return mape(gemm_points(ctx, "a100", dev, only="train"))

    eff, fixed, p = _minimise(a100_obj, [0.8, 1.5, 3.0])
    out = {"a100": {"gpu.tensor_efficiency": eff, "gpu.gemm_fixed": fixed * US,
                    "gpu.gemm_overlap_p": p}}

    def h100_obj(x: list[float]) -> float:
        eff_h, fixed_h = x
        if not (0.3 < eff_h <= 1.0) or fixed_h < 0:
            return math.inf
        dev = _device("h100", {"tensor_efficiency": eff_h, "gemm_fixed": fixed_h * US,
                               "gemm_overlap_p": p}, h100)
        return mape(gemm_points(ctx, "h100", dev, only="train"))

    eff_h, fixed_h = _minimise(h100_obj, [0.8, 1.5])
    out["h100"] = {"gpu.tensor_efficiency": eff_h, "gpu.gemm_fixed": fixed_h * US}
    return out


def fit_vidur_a40(ctx: ValidationContext) -> dict[str, float]:
    """{yaml.path: value} (SI units) of the a40 preset fitted on the Llama-2-7B rows of the
    A40 file (validation/a40, suite ``a40-gemm-vidur``): ``gpu.tensor_efficiency``,
    ``gpu.gemm_fixed`` and ``memory.hbm.efficiency`` (the GDDR6's sustained share, which the
    few-token weight-streaming rows set), with ``gpu.gemm_overlap_p`` held at the a100
    preset's value (a transfer the five other models' rows test)."""
    from arch import load_arch
    from dse.compare import with_overrides
    from sim.devices.base import device_for
    from xpusim.validation._vidur import gemm_points

    p = load_arch("a100").gpu.gemm_overlap_p

    def objective(x: list[float]) -> float:
        eff, fixed, hbm = x
        if not (0.3 < eff <= 1.0) or fixed < 0 or not (0.3 < hbm <= 1.0):
            return math.inf
        arch = with_overrides("a40", [("gpu.tensor_efficiency", eff),
                                      ("gpu.gemm_fixed", fixed * US),
                                      ("gpu.gemm_overlap_p", p), ("memory.hbm.efficiency", hbm)])
        return mape(gemm_points(ctx, "a40", device_for(arch, "tile"), only="train"))

    eff, fixed, hbm = _minimise(objective, [0.8, 1.5, 0.85])
    return {"gpu.tensor_efficiency": eff, "gpu.gemm_fixed": fixed * US,
            "memory.hbm.efficiency": hbm}


def fit_own_gemm(ctx: ValidationContext, tag: str = "h200") -> dict[str, float]:
    """{yaml.path: value} of the GEMM mechanisms of preset ``tag`` fitted on the train rows of
    our own measurements of it (suite ``<tag>-gemm``; SI units): ``tensor_efficiency``,
    ``gemm_fixed``, ``gemm_overlap_p`` and fp8's own main-loop efficiency
    (``tensor_efficiency_by_dtype.fp8``, where the grid has fp8 rows)."""
    from xpusim.validation._own_gpu import gemm_points

    preset = parsed_once(tag)   # one parse for the whole fit

    def obj(x: list[float]) -> float:
        eff, fixed, p, eff8 = x
        if not (0.3 < eff <= 1.0) or not (0.3 < eff8 <= 1.0) or fixed < 0 or \
                not (0.5 <= p <= 50.0):
            return math.inf
        dev = _device(tag, {"tensor_efficiency": eff, "gemm_fixed": fixed * US,
                            "gemm_overlap_p": p, "tensor_efficiency_by_dtype": {"fp8": eff8}},
                      preset)
        return mape(gemm_points(ctx, tag, tag, model=dev, split=True, only="train"))

    eff, fixed, p, eff8 = _minimise(obj, [0.75, 1.5, 3.0, 0.75])
    return {"gpu.tensor_efficiency": eff, "gpu.gemm_fixed": fixed * US, "gpu.gemm_overlap_p": p,
            "gpu.tensor_efficiency_by_dtype.fp8": eff8}


def format_values(values: dict[str, float]) -> str:
    """``path: value`` lines (times in us, energies in pJ, power in W, the rest unitless)."""
    def one(k: str, v: float) -> str:
        if k.endswith("gemm_fixed") or ".dispatch." in k:
            return f"{k}: {v / US:.2f} us"
        if k.startswith("energy.compute."):
            return f"{k}: {v * 1e12:.3f} pJ/FLOP"
        if k.startswith("energy.memory."):
            return f"{k}: {v * 1e12:.2f} pJ/bit"
        if k in ("energy.static_power", "gpu.power_limit"):
            return f"{k}: {v:.1f} W"
        if ".kernel_cycles." in k:
            return f"{k}: {v:g} cycles"
        return f"{k}: {v:.3f}"
    return "\n".join(one(k, v) for k, v in values.items())


def fit_mi210_gemm(ctx: ValidationContext) -> dict[str, float]:
    """{yaml.path: value} fitted on the ``train`` rows of suite ``mi210-gemm`` (PyTorch on
    random operands: fp16 at 1024, 4096, 10240, bf16 at 2048, 8192 and fp32 at 1024, 4096,
    10240; public data in ``validation/mi210``): the ``mi210`` preset's
    ``gpu.tensor_efficiency`` (sustained fp16/bf16 matrix rate under the 300 W cap) with the
    PyTorch-loop harness's ``software.dispatch.matmul`` (host cost of one eager ``torch.mm``)
    on the fp16/bf16 rows, then ``gpu.tensor_efficiency_by_dtype.fp32`` (the fp32 MFMA
    pipeline's own sustained rate) on the fp32 rows. Objective: their MAPE; the rest of the
    preset (Tensile macro tiles, latencies, launch) stays fixed."""
    from xpusim.validation.mi210_gemm import HARNESS, points

    mi210 = parsed_once("mi210")   # one parse for the whole fit

    def rows(gpu: dict, disp: float, dtypes: tuple[str, ...]) -> list:
        loop = _harness(HARNESS, {"gpu": gpu, "software": {"dispatch": {"matmul": disp * US}}})
        return [p for p in _train(points(ctx, _device("mi210", gpu, mi210), loop))
                if p.case.split()[2] in dtypes]

    def obj(x: list[float]) -> float:
        eff, disp = x
        if not (0.3 < eff <= 1.0) or disp < 0:
            return math.inf
        return mape(rows({"tensor_efficiency": eff}, disp, ("fp16", "bf16")))

    eff, disp = _minimise(obj, [0.8, 20.0])

    def obj32(x: list[float]) -> float:
        if not (0.3 < x[0] <= 1.0):
            return math.inf
        gpu = {"tensor_efficiency": eff, "tensor_efficiency_by_dtype": {"fp32": x[0]}}
        return mape(rows(gpu, disp, ("fp32",)))

    eff32 = _minimise(obj32, [0.8])[0]
    return {"gpu.tensor_efficiency": eff, "gpu.tensor_efficiency_by_dtype.fp32": eff32,
            "software.dispatch.matmul": disp * US}


def _harness(path, overrides: dict):
    from arch import arch_from_dict, deep_merge, load_arch_data
    from sim.devices.base import device_for

    data, label = load_arch_data(path)
    return device_for(arch_from_dict(deep_merge(data, overrides), label), "tile")


def dvfs_line(ctx: ValidationContext, tag: str,
              dtype: str) -> tuple[float, float, float, tuple[int, ...]]:
    """``(W per unit duty, W at zero duty, s per call, (M, N, K))`` of ``<tag>_dvfs.csv``'s
    ``dtype`` rows whose SM clock never left its maximum: the least-squares line of board power
    against duty cycle at the boost clock, the median time per call there, and the GEMM's
    shape."""
    import numpy as np

    from xpusim.validation._own_gpu import rows

    data = [r for r in rows(ctx, f"{tag}_dvfs.csv", tag) if r.get("dtype") == dtype]
    top = max((r.num("sm_clock_mhz_max") for r in data), default=0.0)
    boost = [r for r in data if r.num("sm_clock_mhz_min") == top]
    if len(boost) < 2:
        from workloads.errors import WorkloadError

        raise WorkloadError(data[0].file if data else f"{tag}_dvfs.csv", "sm_clock_mhz_min",
                            f"at least two {dtype} rows at the maximum SM clock (the boost line)")
    duty = np.array([r.num("duty") for r in boost])
    slope, intercept = np.polyfit(duty, np.array([r.num("power_w_median") for r in boost]), 1)
    seconds = float(np.median([r.num("time_per_call_s") for r in boost]))
    return float(slope), float(intercept), seconds, boost[0].dims("shape")


def derive_energy(ctx: ValidationContext, tag: str = "h200") -> dict[str, float]:
    """{yaml.path: value} of preset ``tag``'s energy model at the boost clock, derived exactly
    from its measurements (SI units).

    * The static power is the idle row's (``<tag>_power.csv``).
    * The HBM energy per bit and the bf16 energy per FLOP solve two equations. One makes the
      joules per call of the weight-streaming GEMV exact (a power row: it stays at the boost
      clock, below the limit). The other makes exact the dynamic joules per call of the 8192^3
      bf16 GEMM at the boost clock: the slope of its power against duty cycle
      (``<tag>_dvfs.csv``, :func:`dvfs_line`) x its time per call. The L2 terms are held.
    * fp8 (and int8, the same 8-bit path) then makes the fp8 GEMM's boost joules exact.
    * Every other dtype is scaled with bf16 (the preset's datasheet ratios kept)."""
    from arch import load_arch
    from xpusim.commands.op import gemm_op
    from xpusim.validation._own_gpu import _power_op, device, energy_case, rows

    dev = device(tag)
    table = load_arch(tag).energy
    data = rows(ctx, f"{tag}_power.csv", tag)
    by_case = {energy_case(r): r for r in data}

    def row(prefix: str):
        hit = [v for k, v in by_case.items() if k == prefix or k.startswith(prefix + " ")]
        if not hit:
            from workloads.errors import WorkloadError

            raise WorkloadError(data[0].file if data else f"{tag}_power.csv", "workload",
                                f"no '{prefix}' row: the energy values are derived from it")
        return hit[0]

    static = row("idle").num("power_w_median")
    gemv = row("gemv bf16")
    cost = dev.estimate(_power_op(gemv))
    a1, b1 = cost.energy["hbm"], cost.energy.get("compute", 0.0)
    c1 = gemv.num("power_w_median") * gemv.num("time_per_call_s") - static * cost.latency \
        - cost.energy.get("l2", 0.0)

    def boost_gemm(dtype: str) -> tuple[float, float, float]:
        """(HBM J, compute J, dynamic J left for them) of the duty-cycle GEMM at the boost
        clock."""
        slope, _, seconds, (m, n, k) = dvfs_line(ctx, tag, dtype)
        c = dev.estimate(gemm_op(m, n, k, 1, dtype))
        return c.energy["hbm"], c.energy["compute"], slope * seconds - c.energy.get("l2", 0.0)

    a2, b2, c2 = boost_gemm("bf16")
    det = a1 * b2 - a2 * b1
    hbm_scale = (c1 * b2 - c2 * b1) / det if det else math.nan
    flop_scale = (a1 * c2 - a2 * c1) / det if det else math.nan
    a8, b8, c8 = boost_gemm("fp8")
    fp8_scale = (c8 - a8 * hbm_scale) / b8 if b8 > 0 else math.nan
    if not (hbm_scale > 0 and flop_scale > 0 and fp8_scale > 0):
        from workloads.errors import WorkloadError

        raise WorkloadError(data[0].file, "power_w_median",
                            "the GEMV and the boost GEMM rows give no positive energy per bit and "
                            "per FLOP (their joules less the static power must be positive "
                            "and not proportional)")
    out = {"energy.static_power": static, "energy.memory.hbm": table.memory["hbm"] * hbm_scale}
    out.update({f"energy.compute.{dt}": v * (fp8_scale if dt in ("fp8", "int8") else flop_scale)
                for dt, v in table.compute.items()})
    return out


def fit_dvfs_exponent(ctx: ValidationContext, tag: str = "h200",
                      values: dict[str, float] | None = None) -> dict[str, float]:
    """{``gpu.dvfs_energy_exponent``: x}: the exponent at which the power limit slows the 8192^3
    bf16 GEMM run back to back (the 100% duty row of ``<tag>_dvfs.csv``) to its measured time per
    call, with ``values`` (default :func:`derive_energy`'s) over the preset. The other rows of
    suite ``<tag>-dvfs`` and the sustained rows of ``<tag>-gemm`` and ``<tag>-energy`` test it."""
    from dse.compare import with_overrides
    from sim.sustained import sustained_cost
    from xpusim.commands.op import gemm_op
    from xpusim.validation._own_gpu import rows

    values = derive_energy(ctx, tag) if values is None else values
    data = [r for r in rows(ctx, f"{tag}_dvfs.csv", tag) if r.get("dtype") == "bf16"]
    full = max(data, key=lambda r: r.num("duty"))
    op = gemm_op(*full.dims("shape"), 1, "bf16")
    lo, hi = 0.0, 8.0
    for _ in range(40):
        mid = (lo + hi) / 2
        arch = with_overrides(tag, [*values.items(), ("gpu.dvfs_energy_exponent", mid)])
        # a higher exponent saves more energy per step down: less slowdown, a shorter time
        if sustained_cost(arch, op, full.num("duty"))[0].latency > full.num("time_per_call_s"):
            lo = mid
        else:
            hi = mid
    return {"gpu.dvfs_energy_exponent": (lo + hi) / 2}


def fit_attention_overlap(ctx: ValidationContext, tag: str = "h200") -> dict[str, float]:
    """{``gpu.attention_overlap_p``: p}: the p-norm of a block's MMA and softmax times that
    minimises the MAPE of ``<tag>_attention_duty.csv``'s rows at 25% duty (SDPA prefills at the
    boost clock, head dim 128). The rest of suite ``<tag>-llm`` tests it: the 100% rows
    (through the power limit), the other prefill rows, head dim 64."""
    from scipy.optimize import minimize_scalar

    from xpusim.commands.op import attention_op
    from xpusim.validation._own_gpu import _prefill_dims, rows

    train = []
    for r in rows(ctx, f"{tag}_attention_duty.csv", tag):
        if r.num("duty") < 0.5:
            b, h, g, s, d = _prefill_dims(r)
            train.append((attention_op(b, h, g, s, s, d, r["dtype"]), r.num("time_per_call_s")))

    preset = parsed_once(tag)   # one parse for the whole fit

    def obj(p: float) -> float:
        dev = _device(tag, {"attention_overlap_p": p}, preset)
        return sum(abs(dev.estimate(op).latency / t - 1.0) for op, t in train) / len(train)

    best = minimize_scalar(obj, bounds=(1.0, 16.0), method="bounded",
                           options={"xatol": 1e-3})
    return {"gpu.attention_overlap_p": float(best.x)}


def aten_vector_rows(ctx: ValidationContext, tag: str = "h200") -> list[tuple]:
    """``(hw, shape, kind, peak, measured s, split)`` of each row of ``<tag>_vector.csv`` as
    suite ``<tag>-vector`` prices it on the ``torch-graphs`` stack (the L2's latency and
    bandwidth for rows whose operands stay in it)."""
    from sim.devices.gpu import row_kind
    from sim.gpu.host import op_family
    from sim.gpu.vector import vector_shape
    from xpusim.commands.op import vector_op
    from xpusim.validation._own_gpu import device, in_l2, l2_device, rows, vector_splits

    dev, hot = device(tag, "torch-graphs"), l2_device(tag, "torch-graphs")
    l2 = dev.arch.memory["l2"].capacity
    out = []
    data = rows(ctx, f"{tag}_vector.csv", tag)
    for r, split in zip(data, vector_splits(data), strict=True):
        op = r.built("op", vector_op, r["op"], r.int("rows"), r.int("width"),
                     r.get("dtype", "fp16"))
        shape = vector_shape(op.compute)
        kind = row_kind(op.compute, op_family(op), shape)
        on = hot if in_l2(r, l2) else dev
        out.append((on.hw, shape, kind, on.vector_peak(on.compute_dtype(op)),
                    r.num("latency_s"), split))
    return out


def fit_aten_vector(ctx: ValidationContext, tag: str = "h200") -> dict[str, float]:
    """``software.kernel_cycles`` (each of ``arch.sections.gpu.ATEN_CYCLE_KEYS``) and
    ``software.kernel_overlap_p`` of the ``torch-graphs`` stack: the values that minimise the
    train MAPE of suite ``<tag>-vector`` (its train rows: ``_own_gpu.vector_splits``'
    checkerboard over row count x width; sim/gpu/aten.py; ``kernel_gap`` is measured, not
    fitted); its test rows test them. Nelder-Mead from the stack's own values."""
    from arch.sections.gpu import ATEN_CYCLE_KEYS
    from sim.gpu.aten import aten_time
    from xpusim.validation._own_gpu import device

    sw = device(tag, "torch-graphs").software
    train = [r for r in aten_vector_rows(ctx, tag) if r[5] == "train"]

    # Nelder-Mead steps in thousands of cycles (an activation's cycles per element: in cycles)
    scale = {k: 1.0 if k == "activation.elem" else 1000.0 for k in ATEN_CYCLE_KEYS}

    def values(x: list[float]) -> tuple[dict[str, float], float]:
        return ({k: abs(v) * scale[k] for k, v in zip(ATEN_CYCLE_KEYS, x, strict=False)},
                1.0 + abs(x[-1]))

    def obj(x: list[float]) -> float:
        cycles, p = values(x)
        return sum(abs(aten_time(hw, shape, kind, cycles, sw.kernel_gap, p, peak)["time"]
                       / t - 1.0) for hw, shape, kind, peak, t, _ in train) / len(train)

    x0 = [sw.kernel_cycles[k] / scale[k] for k in ATEN_CYCLE_KEYS] + [sw.kernel_overlap_p - 1.0]
    best = x0
    for _ in range(3):      # restarts: Nelder-Mead over 11 values stalls early
        best = _minimise(obj, best)
    cycles, p = values(best)
    return {**{f"software.kernel_cycles.{k}": round(v, 3) if scale[k] == 1.0 else round(v)
               for k, v in cycles.items()},
            "software.kernel_overlap_p": round(float(p), 3)}


def fit_amd_maf(ctx: ValidationContext, preset: str = "mi300x") -> dict[str, float]:
    """{yaml.path: value} of the ``mi300x`` preset derived exactly from the MI300X (``train``)
    rows of suite ``amd-maf`` (AMD's max-achievable FLOPs and the median clock of one large
    GEMM per dtype, back to back at the 750 W limit; ``validation/mi300x``):

    1. ``gpu.tensor_efficiency`` (from the fp16 row; bf16 shares it) and
       ``gpu.tensor_efficiency_by_dtype.fp8``: the main-loop efficiency at which the model's
       GEMM, at the row's measured clock, takes the measured time (a root in 0.3-1);
    2. ``energy.compute.<dtype>`` (at the boost clock; the preset's
       ``gpu.dvfs_energy_exponent`` scales it to lower clocks): the energy per FLOP at which
       the board draws exactly ``gpu.power_limit`` running the GEMM back to back at that clock
       (``static + (compute J + other J) / s``; the compute joules are linear in it).

    The limiter then settles at each row's clock (``sim/gpu/power_cap.py``); the MI325X rows
    test the values on a 1000 W board."""
    from scipy.optimize import brentq

    from dse.compare import with_overrides
    from sim.devices.base import device_for
    from sim.gpu.power_cap import at_speed
    from xpusim.validation.amd_maf import measured_s, row_op, rows

    train = {r["dtype"]: r for r in rows(ctx) if r["split"] == "train"}

    def cost(sets: list, r):
        """(the row's GEMM's cost at its measured clock, that arch, the arch at boost)."""
        arch = with_overrides(preset, sets)
        at = at_speed(arch, r.num("median_mhz") * 1e6 / arch.gpu.clock)
        return device_for(at, "tile").estimate(row_op(r)), at, arch

    def efficiency(dtype: str, path: str, sets: list) -> float:
        r = train[dtype]
        return brentq(lambda e: cost([*sets, (path, e)], r)[0].latency / measured_s(r) - 1.0,
                      0.3, 1.0, xtol=1e-9)

    eff = efficiency("fp16", "gpu.tensor_efficiency", [])
    sets = [("gpu.tensor_efficiency", eff)]
    eff8 = efficiency("fp8", "gpu.tensor_efficiency_by_dtype.fp8", sets)
    sets.append(("gpu.tensor_efficiency_by_dtype.fp8", eff8))
    out = dict(sets)
    for dtype in ("fp16", "bf16", "fp8"):
        c, at, arch = cost(sets, train[dtype])
        compute = c.energy.get("compute", 0.0)
        other = sum(c.energy.values()) - compute
        need = (at.gpu.power_limit - at.energy.static_power) * c.latency - other
        out[f"energy.compute.{dtype}"] = arch.energy.compute[dtype] * need / compute
    return out
