"""Einsum cascades on a spatial array (``fusemax`` experiment): FuseMax (1-pass) vs FLAT (3-pass).

One encoder layer per point, as a trace run by the event engine on the NPU device of the two
systems (presets ``fusemax`` and ``flat``): QKV projection, the attention cascade (an
``attention`` op whose ``op_class`` is ``mapped_cascade``, so the device maps it with
:mod:`mappings.cascade_map`: the 2D/1D interleave, the epoch pipeline, the query block and the
cross-pass policy are the mapper's choices), output projection and the two FFN GEMMs (the NPU's
systolic-array GEMM model). The ``fusemax`` system runs
:func:`workloads.cascades.attention_1pass` (``m0`` = the array edge), the ``flat`` system
:func:`workloads.cascades.attention_3pass`. Encoder shapes from ``workloads.models`` presets
(bert-base, trxl, t5-small, xlm), sequence lengths by label (1K..1M).

Each point also carries the closed-form port of the artifact's model (:mod:`mappings.fusemax`)
as ``formula`` (a cross-check, not the result), and, where the reference file
``seeds/fusemax_vs_flat.csv`` (artifact result files) has the row, the artifact's figures as
``target``. Latencies in s, energies in J (leakage included).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.studies import study

POINT_KEYS = ("attn_speedup", "attn_energy_ratio", "e2e_speedup", "e2e_energy_ratio",
              "util2d_fusemax", "util2d_flat")
AVERAGED = ("attn_speedup", "e2e_speedup", "attn_energy_ratio", "e2e_energy_ratio")
REF_KEYS = ("attn_speedup", "attn_energy_ratio", "util2d_fusemax", "util2d_flat")
PRESET_OF = {"BERT": "bert-base", "TrXL": "trxl", "T5": "t5-small", "XLM": "xlm"}
BATCH = 64


@dataclass(frozen=True)
class Shape:
    """An encoder layer: hidden D, head dim E, heads H, FFN width S, batch."""

    name: str
    d: int
    e: int
    h: int
    s: int
    batch: int = BATCH


def encoder_shapes(batch: int = BATCH) -> dict[str, Shape]:
    """The four FuseMax encoders from the model presets (the artifact's table if absent)."""
    from mappings.fusemax import ENCODERS

    out = {}
    for name, enc in ENCODERS.items():
        try:
            from workloads.models import get_model

            m = get_model(PRESET_OF[name])
            out[name] = Shape(name, m.d_model, m.head_dim, m.n_heads, m.d_ff, batch)
        except (ImportError, KeyError, ValueError):
            out[name] = Shape(name, enc.d, enc.e, enc.h, enc.s, batch)
    return out


def reference_rows(path: str, reference_dir: str = "") -> dict[tuple[str, str], dict]:
    """Rows of the artifact's result file keyed by (model, seq_len); ``path`` empty: the
    ``seeds/fusemax_vs_flat.csv`` of ``reference_dir`` ({} when that is absent); a ``path``
    given but missing is a SpecError."""
    if path and not Path(path).is_file():
        from arch import SpecError

        raise SpecError("", "params.reference", f"no such file {path!r}; expected the "
                        "artifact's fusemax_vs_flat.csv (or empty for the reference folder's)")
    if not path:
        if not reference_dir:
            return {}
        path = str(Path(reference_dir) / "seeds" / "fusemax_vs_flat.csv")
    if not Path(path).is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        return {(r["model"], r["seq_len"]): r for r in csv.DictReader(fh)}


def layer_trace(shape: Shape, n: int, arch, one_pass: bool):
    """One encoder layer at sequence ``n`` as a trace on one stream: QKV, attention cascade,
    output projection, FFN up and down (dependency chain)."""
    from mappings.cascade_map import CASCADE_CLASS
    from workloads.cascades import attention_1pass, attention_3pass
    from workloads.einsum import TensorRef, contraction
    from workloads.trace import ATTENTION, MATMUL, Op, Trace

    t = shape.batch * n
    dt = arch.npu.dtype

    def gemm(name: str, k: int, out: int) -> object:
        x = TensorRef("X", ("t", "k"), dt, "activation")
        w = TensorRef("W", ("k", "j"), dt, "weight")
        y = TensorRef("Y", ("t", "j"), dt, "activation")
        return contraction(name, y, x, w, {"t": t, "k": k, "j": out})

    tile = next(d for d in range(min(n, arch.npu.array_rows), 0, -1) if n % d == 0)
    casc = (attention_1pass(shape.batch, shape.h, n, n, shape.e, tile=tile, dtype=dt)
            if one_pass
            else attention_3pass(shape.batch, shape.h, n, n, shape.e, dtype=dt))
    specs = [("qkv", MATMUL, gemm("qkv", shape.d, 3 * shape.h * shape.e), ""),
             ("attention", ATTENTION, casc, CASCADE_CLASS),
             ("out_proj", MATMUL, gemm("out_proj", shape.h * shape.e, shape.d), ""),
             ("ffn_up", MATMUL, gemm("ffn_up", shape.d, shape.s), ""),
             ("ffn_down", MATMUL, gemm("ffn_down", shape.s, shape.d), "")]
    ops = [Op(i, name, kind, "prefill", 0, 0, comp, deps=(i - 1,) if i else (), tokens=t,
              op_class=cls or name)
           for i, (name, kind, comp, cls) in enumerate(specs)]
    return Trace(ops)


def run_layer(arch, shape: Shape, n: int, one_pass: bool) -> dict:
    """Run one layer in the event engine; latencies (s), energies (J, leakage included)."""
    from sim.devices.base import device_for
    from sim.engine import Engine

    dev = device_for(arch, "tile")
    trace = layer_trace(shape, n, arch, one_pass)
    tl = Engine({"npu": dev}).run(trace)
    costs = list(tl.costs)
    attn = costs[1]
    static = arch.energy.static_power
    total = float(tl.end.max())
    return {"attn_latency": float(tl.end[1] - tl.start[1]),
            "attn_energy": attn.energy_total + static * attn.latency,
            "e2e_latency": total,
            "e2e_energy": sum(c.energy_total for c in costs) + static * total,
            "util2d": float(attn.detail["util2d"]), "mapping": attn.detail["mapping"],
            "op_latency_sum": sum(c.latency for c in costs)}


def compare_point(shape: Shape, n: int, fusemax, flat) -> dict:
    """One point: FuseMax and FLAT layers through the engine, their ratios."""
    fm = run_layer(fusemax, shape, n, True)
    fl = run_layer(flat, shape, n, False)
    return {"attn_latency_fusemax_s": fm["attn_latency"], "attn_latency_flat_s": fl["attn_latency"],
            "attn_speedup": fl["attn_latency"] / fm["attn_latency"],
            "attn_energy_ratio": fm["attn_energy"] / fl["attn_energy"],
            "e2e_speedup": fl["e2e_latency"] / fm["e2e_latency"],
            "e2e_energy_ratio": fm["e2e_energy"] / fl["e2e_energy"],
            "util2d_fusemax": fm["util2d"], "util2d_flat": fl["util2d"],
            "mapping_fusemax": fm["mapping"], "mapping_flat": fl["mapping"]}


def _choose(given: list, known: dict, field: str) -> list[str]:
    """``given`` labels checked against ``known`` (one-line SpecError naming the parameter)."""
    from arch import SpecError

    bad = [str(g) for g in given if str(g) not in known]
    if bad or not given:
        raise SpecError("", f"params.{field}", f"expected labels among {', '.join(known)}, got "
                        f"{', '.join(bad) or 'none'}")
    return [str(g) for g in given]


@study("einsum-cascade")
def einsum_cascade(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """FuseMax (system ``fusemax``, 1-pass cascade) vs FLAT (system ``flat``, 3-pass) per encoder
    and sequence length. Params: ``encoders`` (BERT, TrXL, T5, XLM), ``seq_lens`` (1K..1M),
    ``batch``, ``reference`` (the artifact's CSV; empty: the reference folder's seed)."""
    from arch import SpecError, load_arch
    from mappings.fusemax import SEQ_LENS, Encoder, compare
    from workloads.cascades import attention_1pass, attention_3pass
    from workloads.passes import passes

    fusemax, flat = load_arch(systems["fusemax"]), load_arch(systems["flat"])
    batch = int(params["batch"])
    if batch < 1:
        raise SpecError("", "params.batch", f"expected an integer >= 1, got {batch}")
    shapes = encoder_shapes(batch)
    models = _choose(list(params["encoders"]), shapes, "encoders")
    lengths = _choose(list(params["seq_lens"]), SEQ_LENS, "seq_lens")
    ref = reference_rows(str(params.get("reference") or ""),
                         str(params.get("reference_dir") or ""))
    points = []
    for model in models:
        shape = shapes[model]
        for label in lengths:
            n = SEQ_LENS[label]
            c = compare_point(shape, n, fusemax, flat)
            f = compare(Encoder(model, shape.d, shape.e, shape.h, shape.s, shape.batch), n,
                        fusemax, flat)
            point = {"model": model, "seq_len": label, **c,
                     "formula": {k: f[k] for k in (*POINT_KEYS, "attn_latency_fusemax_s",
                                                   "attn_latency_flat_s")},
                     "over_formula": {k: c[k] / f[k] for k in (
                         "attn_latency_fusemax_s", "attn_latency_flat_s", "attn_speedup",
                         "e2e_speedup")}}
            row = ref.get((model, label))
            if row and int(float(row.get("batch") or batch)) == batch:
                point["target"] = {k: float(row[k]) for k in (*POINT_KEYS,
                                                              "attn_latency_fusemax_s",
                                                              "attn_latency_flat_s")}
            points.append(point)
    formula_avg = {k: sum(p["formula"][k] for p in points) / len(points) for k in AVERAGED}
    leak = (fusemax.energy.static_power, flat.energy.static_power)
    values: dict[str, Any] = {
        "n_points": len(points), "n_encoders": len(models), "n_lengths": len(lengths),
        "passes_flat": passes(attention_3pass(1, 1, 512, 512, 64)),
        "passes_fusemax": passes(attention_1pass(1, 1, 512, 512, 64, tile=256)),
        "leakage": f"{leak[0]:g} W" if leak[0] == leak[1] else
                   f"{leak[0]:g} W (FuseMax) / {leak[1]:g} W (FLAT)",
        "formula_summary": ", ".join(f"{k} {v:.3g}" for k, v in formula_avg.items())}
    # The claims on the artifact's rows take the mean over all its rows; measured only when
    # this run covers every row (a subset would compare means over different rows).
    with_ref = [p for p in points if "target" in p]
    if with_ref and len(with_ref) == len(ref):
        for key in REF_KEYS:
            values[f"ref_mean_{key}"] = sum(p[key] for p in with_ref) / len(with_ref)
    return {"points": points, "values": values, "extra": {"formula_averages": formula_avg}}
