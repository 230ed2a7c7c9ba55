"""Former ``fusemax`` reproduction module: now ``experiments/fusemax.yaml`` run by the generic
runner (study ``einsum-cascade`` in :mod:`sim.studies.spatial`). Kept for imports."""

from __future__ import annotations

from sim.studies.spatial import (  # noqa: F401
    BATCH,
    POINT_KEYS,
    PRESET_OF,
    Shape,
    compare_point,
    encoder_shapes,
    layer_trace,
    run_layer,
)
from sim.studies.spatial import reference_rows as _study_reference_rows
from xpusim.experiments import legacy

reproduce = legacy("fusemax")


def _targets() -> dict[str, float]:
    """The abstract's four averages as the experiment file states them (column: target)."""
    from xpusim.experiments import load_experiment
    from xpusim.experiments.runner import EXPERIMENTS_DIR

    return {c.column: c.target for c in load_experiment(EXPERIMENTS_DIR / "fusemax.yaml").claims
            if c.column}


TARGETS = _targets()   # attn_speedup 6.7, attn_energy_ratio 0.79, e2e_speedup 5.3, e2e ... 0.83


def _reference_rows(path: str) -> dict[tuple[str, str], dict]:
    """Rows of the artifact's CSV at ``path`` ("" = the reference folder's seed)."""
    from xpusim.paths import reference_dir

    return _study_reference_rows(path, str(reference_dir()))


def format_text(out: dict) -> str:
    """The per-point table (engine, artifact target, closed-form port) and the claims."""
    from xpusim.commands.reproduce import format_table

    lines = [f"{'model':5s} {'seq':>5s} {'attn x':>7s} {'(tgt)':>6s} {'(fml)':>6s} "
             f"{'E ratio':>7s} {'(tgt)':>6s} {'e2e x':>6s} {'(tgt)':>6s} {'e2e E':>6s} "
             f"{'(tgt)':>6s} {'u2d FM':>6s} {'u2d FL':>6s}"]
    for p in out["points"]:
        t = p.get("target", {})

        def fmt(k: str, d: dict = t) -> str:
            return f"{d[k]:6.3g}" if k in d else "     -"
        lines.append(f"{p['model']:5s} {p['seq_len']:>5s} {p['attn_speedup']:7.3g} "
                     f"{fmt('attn_speedup')} {fmt('attn_speedup', p['formula'])} "
                     f"{p['attn_energy_ratio']:7.3g} "
                     f"{fmt('attn_energy_ratio')} {p['e2e_speedup']:6.3g} {fmt('e2e_speedup')} "
                     f"{p['e2e_energy_ratio']:6.3g} {fmt('e2e_energy_ratio')} "
                     f"{p['util2d_fusemax']:6.3f} {p['util2d_flat']:6.3f}")
    return "\n".join(lines) + "\n" + format_table(out)
