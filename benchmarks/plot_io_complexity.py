"""Plot the attention I/O-complexity check: mapper's best I/O vs M, the lower bound, and the
normalised products (flat lines mean Θ(N²d²/M) above d² and Θ(N²d/√M) below).
Usage: python benchmarks/plot_io_complexity.py [OUT.png] [N] [d]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mappings.attention_io import io_sweep

    out = sys.argv[1] if len(sys.argv) > 1 else "io_complexity.png"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 16384
    d = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    rows = io_sweep(n, d)
    ms = [r["M"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.loglog(ms, [r["io_words"] for r in rows], "o-", label="mapper best I/O")
    ax1.loglog(ms, [r["lower_bound_words"] for r in rows], "s--", label="lower bound")
    ax1.axvline(d * d, color="grey", lw=0.8)
    ax1.set_xlabel("fast memory M (words)")
    ax1.set_ylabel("I/O (words)")
    ax1.set_title(f"attention I/O, N={n}, d={d}")
    ax1.legend()
    ax2.semilogx(ms, [r["normalised"] for r in rows], "o-")
    ax2.axvline(d * d, color="grey", lw=0.8)
    ax2.set_xlabel("fast memory M (words)")
    ax2.set_ylabel("IO·√M/(N²d)  |  IO·M/(N²d²)")
    ax2.set_title("normalised products (left of d²: √M form)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    for r in rows:
        print(f"M={r['M']:>8d} {r['regime']:7s} {r['family']:6s} IO={r['io_words']:.3e} "
              f"norm={r['normalised']:.3f} ratio_to_bound={r['ratio_to_bound']:.2f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
