"""Scratchpad schedules of Einsum DAGs (``cosma`` experiment): the joint scheduling, allocation
and replacement ILP vs the greedy prior heuristic, off-chip traffic per scratchpad budget.

Mechanism in :mod:`mappings.schedule_ilp` (HiGHS through scipy) and
:mod:`mappings.schedule_greedy` (program order + first fit + Belady MIN); DAGs from
:mod:`mappings.dag` built from Einsums: a LLaMA-style decoder layer (Q/K/V and gate/up branches,
two residuals), the FLAT 3-pass attention cascade (:mod:`workloads.cascades`), and a two-branch
(Inception-style) block of 1x1 convolutions. Budgets (bytes): the minimum peak footprint of the
DAG (exact search over topological orders), then evenly down to the largest single op's
footprint (the tightest budget any schedule can meet). Solver times in s.
"""

from __future__ import annotations

from typing import Any

from sim.studies import study

BUDGET_STEPS = 4    # budgets from the min-peak footprint down to the largest op footprint


def decoder_layer_dag(tokens: int = 64, d: int = 256, heads: int = 4, ff: int = 512,
                      layers: int = 1):
    """``layers`` LLaMA-style decoder layers (prefill of ``tokens``) as a DAG of 15 Einsums
    each, fp16; layer ``i`` reads layer ``i-1``'s output."""
    from mappings.dag import dag_from_einsums

    einsums: list = []
    for layer in range(layers):
        einsums += _decoder_einsums(tokens, d, heads, ff, layer, layers)
    return dag_from_einsums(einsums, (_name("y", layers - 1, layers),))


def _name(base: str, layer: int, layers: int) -> str:
    if layers == 1:
        return base
    if base == "x" and layer > 0:
        return f"L{layer - 1}.y"
    return f"L{layer}.{base}"


def _decoder_einsums(tokens: int, d: int, heads: int, ff: int, layer: int, layers: int):
    from workloads.einsum import Einsum, TensorRef, contraction, elementwise

    e = d // heads
    sz = {"p": tokens, "m": tokens, "d": d, "h": heads, "e": e, "f": ff, "j": d}

    def t(name, ranks, role="activation"):
        return TensorRef(_name(name, layer, layers), tuple(ranks), "fp16", role)

    x, g1, g2 = t("x", "pd"), t("g1", "d", "weight"), t("g2", "d", "weight")
    wq, wk, wv = (t(n, "dhe", "weight") for n in ("Wq", "Wk", "Wv"))
    wo = t("Wo", "hej", "weight")
    wg, wu, wd = t("Wg", "df", "weight"), t("Wu", "df", "weight"), t("Wd", "fj", "weight")
    n1, n2 = t("n1", "pd"), t("n2", "pd")
    q, k, v = t("q", "phe"), t("k", "mhe"), t("v", "mhe")
    s, a, o = t("s", "hpm"), t("a", "hpm"), t("o", "phe")
    attn, h, y = t("attn", "pj"), t("h", "pd"), t("y", "pd")
    gate, up, act, dn = t("gate", "pf"), t("up", "pf"), t("act", "pf"), t("dn", "pj")
    ops = [
        elementwise("norm1", n1, (x, g1), sz, "mul"),
        contraction("q_proj", q, n1, wq, sz),
        contraction("k_proj", k, t("n1", "md"), wk, sz),
        contraction("v_proj", v, t("n1", "md"), wv, sz),
        contraction("qk", s, q, k, sz),
        Einsum("softmax", a, (s,), tuple((r, sz[r]) for r in "hpm"), reduce_op=None,
               unary="exp"),
        contraction("av", o, a, v, sz),
        contraction("o_proj", attn, o, wo, sz),
        elementwise("res1", h, (x, t("attn", "pd")), sz, "add"),
        elementwise("norm2", n2, (h, g2), sz, "mul"),
        contraction("gate_proj", gate, n2, wg, sz),
        contraction("up_proj", up, n2, wu, sz),
        elementwise("silu_mul", act, (gate, up), sz, "mul", unary="silu"),
        contraction("down_proj", dn, act, wd, sz),
        elementwise("res2", y, (h, t("dn", "pd")), sz, "add"),
    ]
    if layers == 1:
        return ops
    return [Einsum(f"L{layer}.{op.name}", op.output, op.inputs, op.sizes, op.map_op,
                   op.reduce_op, op.unary) for op in ops]


def attention_dag(heads: int = 2, seq: int = 64, head_dim: int = 64):
    """The FLAT 3-pass attention cascade (:func:`workloads.cascades.attention_3pass`)."""
    from mappings.dag import dag_from_cascade
    from workloads.cascades import attention_3pass

    return dag_from_cascade(attention_3pass(1, heads, seq, seq, head_dim))


def inception_dag(pixels: int = 28 * 28, c_in: int = 64):
    """Two branches of 1x1 convolutions (Inception-style) joined by a concat-as-add, fp16."""
    from mappings.dag import dag_from_einsums
    from workloads.einsum import TensorRef, contraction, elementwise

    sz = {"p": pixels, "c": c_in, "a": 96, "b": 128, "o": c_in}

    def t(name, ranks, role="activation"):
        return TensorRef(name, tuple(ranks), "fp16", role)

    x = t("x", "pc")
    ops = [
        contraction("b1_reduce", t("r1", "pa"), x, t("W1", "ca", "weight"), sz),
        contraction("b2_reduce", t("r2", "pb"), x, t("W2", "cb", "weight"), sz),
        contraction("b1_expand", t("e1", "po"), t("r1", "pa"), t("W3", "ao", "weight"), sz),
        contraction("b2_expand", t("e2", "po"), t("r2", "pb"), t("W4", "bo", "weight"), sz),
        elementwise("join", t("y", "po"), (t("e1", "po"), t("e2", "po"), x), sz, "add"),
    ]
    return dag_from_einsums(ops, ("y",))


DAGS = {"decoder_layer": decoder_layer_dag, "attention_3pass": attention_dag,
        "inception_block": inception_dag}
DESCRIBED = {"decoder_layer": "decoder layer", "attention_3pass": "3-pass attention",
             "inception_block": "Inception-style block"}


def budgets(dag, steps: int = BUDGET_STEPS) -> list[float]:
    """Min-peak footprint, then evenly spaced down to the largest single-op footprint (bytes),
    ``steps`` budgets in all."""
    peak, _ = dag.min_peak_footprint()
    floor, _ = dag.max_op_footprint()
    if peak <= floor or steps < 2:
        return [peak]
    return [peak - (peak - floor) * i / (steps - 1) for i in range(steps)]


@study("scratchpad-schedule")
def scratchpad_schedule(systems: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Greedy and ILP schedules of each DAG in ``params["dags"]`` at ``budget_steps`` budgets
    (HiGHS limited to ``time_limit`` s per ILP). No arch: the scratchpad is the budget."""
    from arch import SpecError
    from mappings.dag import check_schedule
    from mappings.schedule_greedy import schedule_greedy
    from mappings.schedule_ilp import schedule_ilp

    limit = float(params["time_limit"])
    if limit <= 0:
        raise SpecError("", "params.time_limit", f"expected seconds > 0, got {limit:g}")
    steps = int(params["budget_steps"])
    if steps < 1:
        raise SpecError("", "params.budget_steps", f"expected an integer >= 1, got {steps}")
    names = [str(n) for n in params["dags"]]
    bad = [n for n in names if n not in DAGS]
    if bad or not names:
        raise SpecError("", "params.dags", f"expected names among {', '.join(DAGS)}, got "
                        f"{', '.join(bad) or 'none'}")
    points, at_peak, cuts, times = [], [], [], []
    jobs = [(name, DAGS[name]()) for name in names]
    jobs = [(name, dag, b) for name, dag in jobs for b in budgets(dag, steps)]
    for name, dag, b in jobs:
        g = schedule_greedy(dag, b)
        s = schedule_ilp(dag, b, time_limit_s=limit)
        check_schedule(dag, g)
        check_schedule(dag, s)
        peak, _ = dag.min_peak_footprint()
        floor, _ = dag.max_op_footprint()
        point = {"dag": name, "ops": len(dag.ops), "tensors": len(dag.tensors),
                 "budget_bytes": b, "min_peak_bytes": peak, "max_op_bytes": floor,
                 "compulsory_bytes": dag.compulsory_bytes(),
                 "greedy_extra_bytes": g.extra_bytes, "ilp_extra_bytes": s.extra_bytes,
                 "ilp_status": s.status, "ilp_solve_s": s.solve_s,
                 "ilp_solve_cpu_s": s.solve_cpu_s, "ilp_source": s.detail.get("source"),
                 "ilp_order": [dag.ops[i].name for i in s.order]}
        if b == peak:
            at_peak.append(s.extra_bytes)
        if b == floor or (b == peak and peak <= floor):
            point["tightest"] = True
            if g.extra_bytes > 0:
                cuts.append(1.0 - s.extra_bytes / g.extra_bytes)
        times.append(s.solve_s)
        points.append(point)
    all_cuts = [1.0 - p["ilp_extra_bytes"] / p["greedy_extra_bytes"] for p in points
                if p["greedy_extra_bytes"] > 0]
    values = {"at_peak_dags": len(at_peak), "at_peak_extra_bytes": sum(at_peak),
              "zero_at_peak_share": sum(1 for x in at_peak if x == 0) / len(at_peak),
              "cut_dags": len(cuts), "dag_list": ", ".join(DESCRIBED[n] for n in names),
              "mean_cut_tightest": sum(cuts) / len(cuts) if cuts else 0.0}
    extra = {"solver_time_s": {"max": max(times), "total": sum(times)},
             "mean_cut_all_budgets": sum(all_cuts) / len(all_cuts) if all_cuts else 0.0}
    return {"points": points, "values": values, "extra": extra}
