"""The documented fits: which parameters are fitted, on which rows, by what objective.

Every fit minimises the mean absolute percentage error over the ``train`` rows of its suites
(even rows of each file, :func:`xpusim.validation.alternate_split`) with Nelder-Mead, starting
from physically sensible values; the ``test`` rows are never seen. ``xpusim validate --fit``
runs the fits and prints the values to write into the harness/preset YAML; the validation table
then reports train and test MAPE separately.

Fit groups (the LLMCompass harness, ``harness/llmcompass-a100.yaml`` and the a100 preset):

* GEMM: ``gpu.tensor_efficiency`` (hardware: sustained fraction of tensor peak) and the
  host cost of an eager ``torch.matmul`` (``software.dispatch.matmul``, ``software.issue.matmul``).
* softmax: eager ``torch.softmax`` host costs and its kernel's bandwidth efficiency.
* compiled ops: each ``@torch.compile`` function's host costs (layernorm and GELU are separate
  compiled functions with their own guards) and its generated kernel's bandwidth efficiency.

Splitwise (``--arch dgx-a100 --software vllm``; values go to ``arch/stacks/vllm.yaml``): the
serving stack's per-op dispatch cost, its
per-forward-pass and per-request host work, on the token times of the even configurations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from xpusim.validation import Point, ValidationContext, mape

US = 1e-6


def _minimise(objective: Callable[[list[float]], float], x0: list[float]) -> list[float]:
    from scipy.optimize import minimize

    res = minimize(lambda x: objective(list(x)), x0, method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-5, "maxiter": 600})
    return list(res.x)


def _train(points: list[Point]) -> list[Point]:
    return [p for p in points if p.split == "train"]


def _device(overrides: dict, harness=None):
    """The LLMCompass harness device with ``overrides``; ``harness``: its
    :func:`~xpusim.validation.parsed_once` (a fit's, parsed once; else parsed now)."""
    from sim.devices.base import device_for
    from xpusim.validation import parsed_once
    from xpusim.validation._llmcompass import HARNESS

    return device_for((harness or parsed_once(HARNESS))(overrides), "tile")


def fit_llmcompass(ctx: ValidationContext) -> dict[str, float]:
    """Fit the LLMCompass harness groups; returns {yaml.path: value} in SI units."""
    from xpusim.validation import a100_gelu, a100_gemm, a100_layernorm, a100_softmax, parsed_once
    from xpusim.validation._llmcompass import HARNESS

    out: dict[str, float] = {}
    harness = parsed_once(HARNESS)   # one parse for the whole fit

    def gemm_obj(x: list[float]) -> float:
        eff, disp, issue = x
        if not (0.5 < eff <= 1.0) or disp < 0 or issue < 0:
            return math.inf
        dev = _device({"gpu": {"tensor_efficiency": eff},
                       "software": {"dispatch": {"matmul": disp * US},
                                    "issue": {"matmul": issue * US}}}, harness)
        return mape(_train(a100_gemm.run(ctx, dev)))

    eff, disp, issue = _minimise(gemm_obj, [0.93, 27.0, 18.0])
    out.update({"gpu.tensor_efficiency": eff, "software.dispatch.matmul": disp * US,
                "software.issue.matmul": issue * US})

    def softmax_obj(x: list[float]) -> float:
        disp, issue, bw = x
        if disp < 0 or issue < 0 or not (0.05 < bw <= 1.0):
            return math.inf
        dev = _device({"software": {"dispatch": {"softmax": disp * US},
                                    "issue": {"softmax": issue * US},
                                    "bandwidth_efficiency": {"softmax": bw}}}, harness)
        return mape(_train(a100_softmax.run(ctx, dev)))

    disp, issue, bw = _minimise(softmax_obj, [12.0, 8.0, 0.6])
    out.update({"software.dispatch.softmax": disp * US, "software.issue.softmax": issue * US,
                "software.bandwidth_efficiency.softmax": bw})

    for family, suite, x0 in (("norm", a100_layernorm, [50.0, 35.0, 0.85]),
                              ("activation", a100_gelu, [48.0, 30.0, 0.9])):
        def compiled_obj(x: list[float], family=family, suite=suite) -> float:
            disp, issue, bw = x
            if disp < 0 or issue < 0 or not (0.05 < bw <= 1.0):
                return math.inf
            dev = _device({"software": {"dispatch": {family: disp * US},
                                        "issue": {family: issue * US},
                                        "bandwidth_efficiency": {family: bw}}}, harness)
            return mape(_train(suite.run(ctx, dev)))

        disp, issue, bw = _minimise(compiled_obj, x0)
        out.update({f"software.dispatch.{family}": disp * US,
                    f"software.issue.{family}": issue * US,
                    f"software.bandwidth_efficiency.{family}": bw})
    return out


def fit_splitwise(ctx: ValidationContext) -> dict[str, float]:
    """Fit the Splitwise serving stack's host costs on the even configurations' token times.

    Decode steps are where the host is the bottleneck, so the host costs are identified there;
    prompt times (GPU-bound) are not used by the fit and test the whole model.

    GPU latencies do not depend on the host costs, so each train trace is estimated once and
    the fit replays the async host (``sim.gpu.host.async_makespan``, the engine's semantics).
    """
    import dataclasses

    from xpusim.validation import _splitwise

    dev = _splitwise.harness_device()
    base = dev.software
    train = [c for c in _splitwise.configs(ctx) if c["split"] == "train"]
    cached = [(c, _splitwise.replay_inputs(dev, c)) for c in train]

    def obj(x: list[float]) -> float:
        disp, step, req = x
        if disp < 0 or step < 0 or req < 0:
            return math.inf
        sw = dataclasses.replace(base, dispatch={"default": disp * US}, per_step=step * 1e-3,
                                 per_request=req * 1e-3)
        errs = [abs(_splitwise.replay(dec, sw) / cfg["token_s"] - 1) for cfg, (_, dec) in cached]
        return sum(errs) / len(errs)

    disp, step, req = _minimise(obj, [30.0, 5.0, 0.3])
    return {"software.dispatch.default": disp * US, "software.per_step": step * 1e-3,
            "software.per_request": req * 1e-3}


def format_fit(values: dict[str, float]) -> str:
    """The fitted values as lines ``path: value unit`` for the YAML files."""
    lines = []
    for path, v in values.items():
        if "efficiency" in path:
            lines.append(f"{path}: {v:.3f}")
        elif v < 1e-3:
            lines.append(f"{path}: {v / US:.1f} us")
        else:
            lines.append(f"{path}: {v * 1e3:.3f} ms")
    return "\n".join(lines)
