"""``xpusim validate``: run every validation suite against measured data; table + CSV + exit code.

Suites live in ``xpusim/validation/`` (one module each, see that package's docstring). Each
reports n, MAPE, the largest error and its case; a suite misses when its MAPE exceeds its
threshold. Misses are reported (table, CSV, a line on stderr) and the command exits 0, or 1
with ``--strict`` (for CI gates); skipped suites are listed with their reasons.
``validation.csv`` (one row per suite) and ``validation_points.csv`` (one row per case) are
written atomically.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

from xpusim.commands._common import print_json
from xpusim.progress import add_quiet_arg

NAME = "validate"
HELP = "run the validation suites against measured data (A100, 4xA100 GPT-3, Splitwise, ...)"
EXIT_MISSED = 1


def _default_reference() -> Path:
    from xpusim.paths import reference_dir

    return reference_dir()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference-dir", default=None,
                   help="folder with the measured data (default: $XPUSIM_REFERENCE_DIR or "
                        "../shared/reference beside the repository)")
    p.add_argument("--suite", action="append", default=None, metavar="NAME",
                   help="run only this suite (repeatable; default: all)")
    p.add_argument("--out", default=".", help="folder for validation.csv (default: .)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--fit", action="store_true",
                   help="re-run the documented fits on the train rows and print the values")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a suite misses its threshold (default: report, exit 0)")
    add_quiet_arg(p)


def summarise(name: str, threshold: float, points: list, description: str = "") -> dict:
    """One suite's row: n, MAPE (all / train / test), max error and worst case, status."""
    from xpusim.validation import bias, mape

    finite = [p for p in points if math.isfinite(p.error)]
    worst = max(finite, key=lambda p: abs(p.error)) if finite else None
    train = [p for p in points if p.split == "train"]
    test = [p for p in points if p.split == "test"]
    m = mape(points)
    return {"suite": name, "n": len(points), "mape": m, "bias": bias(points),
            "train_bias": bias(train) if train else math.nan,
            "test_bias": bias(test) if test else math.nan,
            "max_error": abs(worst.error) if worst else math.nan,
            "worst_case": worst.case if worst else "",
            "worst_signed_error": worst.error if worst else math.nan,
            "threshold": threshold,
            "train_mape": mape(train) if train else math.nan, "n_train": len(train),
            "test_mape": mape(test) if test else math.nan, "n_test": len(test),
            "status": "pass" if m <= threshold else "MISS", "description": description}


def _csv(rows: list[dict], columns: list[str]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _no_nan(obj):
    """JSON-safe copy: NaN (no train/test split, no points) becomes null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:.1f}%"


def format_table(rows: list[dict]) -> str:
    head = (f"{'suite':26s} {'n':>4s} {'MAPE':>7s} {'bias':>7s} {'max err':>8s} {'thresh':>7s} "
            f"{'train':>7s} {'(bias)':>7s} {'test':>7s} {'(bias)':>7s}  status  worst case")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["status"] == "skipped":
            lines.append(f"{r['suite']:26s} {'-':>4s} {'':>7s} {'':>7s} {'':>8s} "
                         f"{_pct(r['threshold']):>7s} {'':>7s} {'':>7s} {'':>7s} {'':>7s}  "
                         f"skipped {r['reason']}")
            continue
        lines.append(f"{r['suite']:26s} {r['n']:4d} {_pct(r['mape']):>7s} "
                     f"{_pct(r['bias']):>7s} {_pct(r['max_error']):>8s} "
                     f"{_pct(r['threshold']):>7s} {_pct(r['train_mape']):>7s} "
                     f"{_pct(r['train_bias']):>7s} {_pct(r['test_mape']):>7s} "
                     f"{_pct(r['test_bias']):>7s}  "
                     f"{r['status']:6s}  {r['worst_case']} ({r['worst_signed_error']:+.1%})")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from sim.report.atomic import write_text_atomic
    from xpusim.paths import where_looked
    from xpusim.plugins import did_you_mean, discover
    from xpusim.progress import bar, enabled
    from xpusim.validation import SuiteSkipped, ValidationContext

    ref = Path(args.reference_dir) if args.reference_dir else _default_reference()
    if args.reference_dir and not ref.is_dir():
        raise OSError(2, "reference folder not found (expected a folder of measured data)",
                      str(ref))
    suites = discover("xpusim.validation")
    names = list(suites)
    if args.suite:
        for s in args.suite:
            if s not in suites:
                raise OSError(2, f"unknown suite '{s}'{did_you_mean(s, names)}; suites: "
                                 f"{', '.join(names)}", "--suite")
        names = [n for n in names if n in args.suite]
    ctx = ValidationContext(reference_dir=ref)
    if args.fit:
        return _print_fits(ctx, enabled(args))
    if not ref.is_dir():
        from xpusim.commands._common import warn

        warn(f"no reference data found ({where_looked()}); suites that need it are skipped")
    rows, point_rows = [], []
    progress = bar(len(names), "validate", "suite", enabled(args))
    for name in names:
        progress.set_description_str(f"validate: {name}")
        mod = suites[name]
        threshold = float(getattr(mod, "THRESHOLD", math.inf))
        wall = time.perf_counter()
        try:
            points = mod.run(ctx)
        except SuiteSkipped as exc:
            rows.append({"suite": name, "status": "skipped", "reason": str(exc),
                         "threshold": threshold, "n": 0})
            progress.update(1)
            continue
        row = summarise(name, threshold, points, getattr(mod, "DESCRIPTION", ""))
        row["wall_s"] = time.perf_counter() - wall
        rows.append(row)
        point_rows += [{"suite": name, "case": p.case, "measured": p.measured,
                        "predicted": p.predicted, "error": p.error, "split": p.split,
                        "unit": p.unit, "note": p.note} for p in points]
        progress.update(1)
    progress.close()
    out = Path(args.out)
    cols = ["suite", "n", "mape", "bias", "max_error", "worst_case", "worst_signed_error",
            "threshold", "train_mape", "train_bias", "n_train", "test_mape", "test_bias", "n_test",
            "status", "reason", "description"]
    write_text_atomic(out / "validation.csv", _csv(rows, cols))
    write_text_atomic(out / "validation_points.csv",
                      _csv(point_rows, ["suite", "case", "measured", "predicted", "error",
                                        "split", "unit", "note"]))
    missed = [r["suite"] for r in rows if r["status"] == "MISS"]
    skipped = {r["suite"]: r["reason"] for r in rows if r["status"] == "skipped"}
    if args.json:
        print_json(_no_nan({"reference_dir": str(ref), "suites": rows, "points": point_rows,
                            "missed": missed, "skipped": skipped,
                            "csv": str(out / "validation.csv")}))
    else:
        sys.stdout.write(format_table(rows))
        sys.stdout.write(f"wrote {out / 'validation.csv'} and {out / 'validation_points.csv'}"
                         + (f"; missed: {', '.join(missed)}\n" if missed else "\n"))
        if skipped:
            sys.stdout.write(f"skipped {len(skipped)} of {len(rows)} suites: "
                             + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "\n")
    if missed:
        from xpusim.commands._common import warn

        warn(f"{len(missed)} suite(s) missed their threshold: {', '.join(missed)} "
             f"({'exit 1, --strict' if args.strict else 'exit 0; --strict exits 1'})")
    return EXIT_MISSED if missed and args.strict else 0


def _print_fits(ctx, show_progress: bool = False) -> int:
    """Re-run every documented fit on its train rows and print the values; a fit whose data is
    absent prints why instead (exit 0, like a skipped suite). ``show_progress``: a bar on
    stderr, a step per fit (~40 s in all on a 2-core VM)."""
    from xpusim.progress import bar
    from xpusim.validation import SuiteSkipped
    from xpusim.validation._fit import fit_llmcompass, fit_splitwise, format_fit
    from xpusim.validation._fit_gpu import (
        derive_energy,
        fit_amd_maf,
        fit_aten_vector,
        fit_attention_overlap,
        fit_dvfs_exponent,
        fit_mi210_gemm,
        fit_own_gemm,
        fit_vidur_a40,
        fit_vidur_gemm,
        format_values,
    )
    from xpusim.validation.h100_allreduce_nccltests import fit as fit_h100_nccl
    from xpusim.validation.trtllm_e2e import fit_dispatch
    from xpusim.validation.vidur_allreduce_a100 import fit_nccl, fit_network

    def vidur_gemm() -> str:
        return "\n".join(f"# {preset} preset (Llama-2-7B rows)\n{format_values(values)}"
                         for preset, values in fit_vidur_gemm(ctx).items())

    def trtllm() -> str:
        dispatch, mape = fit_dispatch()
        return f"dispatch.default: {dispatch * 1e6:.1f} us (train MAPE {mape:.1%})"

    def nccl() -> str:
        net, net_mape = fit_network(ctx)
        v, mape = fit_nccl(ctx, latencies=(net["latency"],))
        return (f"network, protocol costs held (the preset's values): interconnect.infiniband "
                f"bandwidth {net['bandwidth'] / 1e9:g} GB/s, latency {net['latency'] * 1e6:g} us "
                f"(multi-node train MAPE {net_mape:.1%})\n"
                f"joint fit (all train rows; a flat surface, see docs/calibration.md): network "
                f"{v['bandwidth'] / 1e9:g} GB/s, LL128 base {v['ll128_base'] * 1e6:g} us, LL128 "
                f"bandwidth fraction {v['ll128_fraction']:g}, Simple base "
                f"{v['simple_base'] * 1e6:g} us (train MAPE {mape:.1%})")

    def h100_nccl() -> str:
        v, mape = fit_h100_nccl(ctx)
        return (f"ll.hop_latency: {v['hop'] * 1e6:.2f} us, ll.channel_rate: "
                f"{v['channel_rate'] / 1e9:g} GB/s, collective_nvls_chunk_cost: "
                f"{v['chunk_cost'] * 1e6:g} us, NVLS_FILL_CHUNKS: {v['fill']} "
                f"(train MAPE {mape:.1%})")

    fits = [
        ("LLMCompass harness (harness/llmcompass-a100.yaml: its A100 + host)",
         lambda: format_fit(fit_llmcompass(ctx))),
        ("Splitwise serving stack (arch/stacks/vllm.yaml)", lambda: format_fit(fit_splitwise(ctx))),
        ("Vidur cuBLAS GEMMs", vidur_gemm),
        ("Vidur cuBLAS GEMMs on the A40 (validation/a40; Llama-2-7B rows)",
         lambda: format_values(fit_vidur_a40(ctx))),
        ("H200 GEMMs (our CUDA-graph measurements, validation/h200; train rows)",
         lambda: format_values(fit_own_gemm(ctx, "h200"))),
        ("H200 energy at the boost clock (validation/h200: idle and GEMV power rows, the boost "
         "lines of the bf16 and fp8 GEMM duty-cycle rows)",
         lambda: format_values(derive_energy(ctx, "h200"))),
        ("H200 power limiter (validation/h200/h200_dvfs.csv: the bf16 GEMM at 100% duty)",
         lambda: format_values(fit_dvfs_exponent(ctx, "h200"))),
        ("H200 attention overlap (validation/h200/h200_attention_duty.csv: 25% duty rows)",
         lambda: format_values(fit_attention_overlap(ctx, "h200"))),
        ("PyTorch's vector kernels on the torch-graphs stack (validation/h200/h200_vector.csv; "
         "train rows)", lambda: format_values(fit_aten_vector(ctx, "h200"))),
        ("MI210 GEMMs (public PyTorch rows, validation/mi210; train rows)",
         lambda: format_values(fit_mi210_gemm(ctx))),
        ("MI300X clock under load (AMD's max-achievable FLOPs, validation/mi300x; MI300X rows)",
         lambda: format_values(fit_amd_maf(ctx))),
        ("TensorRT-LLM v0.9 GptSession host enqueue per op (trtllm-e2e train rows)", trtllm),
        ("Vidur NCCL all-reduce: dgx-a100x2-vidur network and A100 protocol costs (train rows)",
         nccl),
        ("NCCL all-reduce on DGX H100 (validation/nccl: NVIDIA's log, train rows): dgx-h100",
         h100_nccl),
    ]
    progress = bar(len(fits), "validate --fit", "fit", show_progress)
    texts = []   # printed once the bar is gone (it redraws on the terminal's last line)
    try:
        for title, fit in fits:
            progress.set_description_str(f"validate --fit: {title.split(' (')[0]}")
            try:
                text = fit()
            except SuiteSkipped as exc:
                text = f"skipped: {exc}"
            texts.append(f"# {title}\n{text}\n")
            progress.update(1)
    finally:   # the fits done so far are printed even where a later one fails
        progress.close()
        sys.stdout.write("".join(texts))
    return 0
