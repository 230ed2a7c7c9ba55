"""``xpusim import scalesim``: run SCALE-Sim's own config and GEMM topology files.

Reads SCALE-Sim 3.0's config (``[architecture_presets]``, ``[layout]``, ``[run_presets]``; the
keys SCALE-Sim reads, matched case-insensitively as its configparser does), its GEMM topology CSV
(``Layer, M, N, K,`` rows) and optionally its layout CSV, and reports per layer what SCALE-Sim's
COMPUTE_REPORT and DETAILED_ACCESS_REPORT hold, computed by :mod:`sim.micro.systolic_trace`.
With ``--analytical`` it prints the ZigZag-comparable analytical estimate of the same setup
(:mod:`mappings.zigzag`) instead.
"""

from __future__ import annotations

import argparse
import configparser
import csv
from pathlib import Path


def SpecError(file: str, field: str, problem: str) -> Exception:  # noqa: N802 - a class stand-in
    """``arch.SpecError(file, field, problem)``, imported when raised: ``arch`` loads the YAML
    machinery, which ``xpusim import dramsim3`` (discovering this module) never needs."""
    from arch import SpecError as _SpecError

    return _SpecError(file, field, problem)


NAME = "scalesim"
DESCRIPTION = "run SCALE-Sim config + GEMM topology files and report its metrics"

#: the largest GEMM dimension and PE array side read (the cycle run's arrays grow with them)
DIM_LIMIT = 2**20
#: the largest other integer of a config (SRAM sizes, offsets, bandwidths)
INT_LIMIT = 2**40
#: the most cycles a layer's cycle run traces (~4 minutes of CPU at ~4.5 M cycles/s)
CYCLE_LIMIT = 10**9
KEYS = ("total_cycles", "compute_cycles", "stall_cycles", "utilization", "sram_ifmap_reads",
        "sram_filter_reads", "sram_ofmap_writes", "dram_ifmap_reads", "dram_filter_reads",
        "dram_ofmap_writes")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="SCALE-Sim .cfg file")
    p.add_argument("--topology", required=True, help="SCALE-Sim GEMM topology CSV (Layer,M,N,K,)")
    p.add_argument("--layout", default="", help="SCALE-Sim layout CSV (checked; only the default "
                                                "layout is modelled)")
    p.add_argument("--analytical", action="store_true",
                   help="ZigZag-comparable analytical estimate (mapper + stall model) instead of "
                        "SCALE-Sim's cycle run")


def _get(cp: configparser.ConfigParser, file: str, section: str, key: str,
         kind: type = int, default: object = None):
    if not cp.has_section(section) or not cp.has_option(section, key):
        if default is not None:
            return default
        raise SpecError(file, f"[{section}] {key}", "missing (SCALE-Sim requires it)")
    text = cp.get(section, key).strip()
    if kind is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise SpecError(file, f"[{section}] {key}", f"expected True or False, got '{text}'")
    try:
        value = kind(text.split(",")[0].strip()) if kind is int else kind(text)
    except ValueError:
        raise SpecError(file, f"[{section}] {key}",
                        f"expected {'an integer' if kind is int else kind.__name__}, "
                        f"got '{text}'") from None
    if kind is int and value < 0:
        raise SpecError(file, f"[{section}] {key}", f"expected a non-negative integer, got {value}")
    if kind is int and value > INT_LIMIT:
        raise SpecError(file, f"[{section}] {key}", f"expected at most {INT_LIMIT:,}, got {text}")
    return value


def read_config(path: str) -> dict:
    """The SCALE-Sim settings a GEMM run depends on, validated."""
    cp = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as fh:
            cp.read_file(fh)
    except configparser.Error as exc:
        raise SpecError(path, "", f"not a SCALE-Sim config file ({str(exc).splitlines()[0]})") \
            from None
    a = "architecture_presets"
    cfg = {
        "rows": _get(cp, path, a, "ArrayHeight"), "cols": _get(cp, path, a, "ArrayWidth"),
        "ifmap_kb": _get(cp, path, a, "IfmapSramSzkB"),
        "filter_kb": _get(cp, path, a, "FilterSramSzkB"),
        "ofmap_kb": _get(cp, path, a, "OfmapSramSzkB"),
        "ifmap_offset": _get(cp, path, a, "IfmapOffset"),
        "filter_offset": _get(cp, path, a, "FilterOffset"),
        "ofmap_offset": _get(cp, path, a, "OfmapOffset"),
        "bandwidth": _get(cp, path, a, "Bandwidth"),
        "dataflow": _get(cp, path, a, "Dataflow", str).strip().lower(),
    }
    for key in ("rows", "cols", "ifmap_kb", "filter_kb", "ofmap_kb", "bandwidth"):
        if cfg[key] <= 0:
            raise SpecError(path, f"[{a}] {key}", f"expected a positive integer, got {cfg[key]}")
    for key, name in (("rows", "ArrayHeight"), ("cols", "ArrayWidth")):
        if cfg[key] > DIM_LIMIT:
            raise SpecError(path, f"[{a}] {name}", f"expected at most {DIM_LIMIT:,}, "
                                                   f"got {cfg[key]}")
    if cfg["dataflow"] not in ("os", "ws", "is"):
        raise SpecError(path, f"[{a}] Dataflow", f"expected os, ws or is, got '{cfg['dataflow']}'")
    mode = _get(cp, path, "run_presets", "InterfaceBandwidth", str).strip().upper()
    if mode not in ("CALC", "USER"):
        raise SpecError(path, "[run_presets] InterfaceBandwidth",
                        f"expected CALC or USER, got '{mode}'")
    cfg["user_bandwidth"] = mode == "USER"
    if _get(cp, path, "run_presets", "UseRamulatorTrace", bool, False):
        raise SpecError(path, "[run_presets] UseRamulatorTrace",
                        "Ramulator DRAM traces are not supported; set False")
    lay = "layout"
    for op in ("Ifmap", "Filter"):
        if _get(cp, path, lay, f"{op}CustomLayout", bool, False):
            raise SpecError(path, f"[{lay}] {op}CustomLayout",
                            "custom SRAM layouts are not supported; set False")
    cfg["ifmap_bank_bw"] = _get(cp, path, lay, "IfmapSRAMBankBandwidth", int, 10)
    cfg["filter_bank_bw"] = _get(cp, path, lay, "FilterSRAMBankBandwidth", int, 10)
    if cfg["user_bandwidth"]:
        for key, name in (("ifmap_bank_bw", "IfmapSRAMBankBandwidth"),
                          ("filter_bank_bw", "FilterSRAMBankBandwidth")):
            if cfg[key] <= 0:
                raise SpecError(path, f"[{lay}] {name}", "expected a positive integer (the "
                                                         "DRAM read bandwidth in USER mode)")
    if cp.has_section("sparsity") and _get(cp, path, "sparsity", "SparsitySupport", bool, False):
        raise SpecError(path, "[sparsity] SparsitySupport", "sparsity is not supported; set false")
    return cfg


def read_topology(path: str) -> list[tuple[str, int, int, int]]:
    """Layers ``(name, M, N, K)`` of a SCALE-Sim GEMM topology CSV (first row is the header)."""
    layers = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise SpecError(path, "", "not a text CSV file") from None
    for lineno, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        if len(cells) < 4:
            raise SpecError(path, f"line {lineno}", f"expected 'Layer, M, N, K,', got {row}")
        dims = []
        for name, text in zip(("M", "N", "K"), cells[1:4], strict=True):
            try:
                v = int(text)
            except ValueError:
                raise SpecError(path, f"line {lineno}: {name}",
                                f"expected a positive integer, got '{text}'") from None
            if v <= 0 or v > DIM_LIMIT:
                raise SpecError(path, f"line {lineno}: {name}",
                                f"expected a positive integer up to {DIM_LIMIT:,}, got {text}")
            dims.append(v)
        if len(cells) > 4 and cells[4] not in ("1:1", ""):
            raise SpecError(path, f"line {lineno}: sparsity", "N:M sparsity is not supported")
        layers.append((cells[0], dims[0], dims[1], dims[2]))
    if not layers:
        raise SpecError(path, "", "no layers (expected a header row, then 'Layer, M, N, K,' rows)")
    return layers


def check_layout(path: str) -> None:
    """The layout CSV must exist and be readable; its factors only matter for custom layouts."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise SpecError(path, "", "not a text CSV file") from None
    if not rows:
        raise SpecError(path, "", "empty layout file (expected a header and one row per layer)")


def run(args: argparse.Namespace) -> dict:
    cfg = read_config(args.config)
    layers = read_topology(args.topology)
    if args.layout:
        check_layout(args.layout)
    if args.analytical:
        from mappings.zigzag import analyse_scalesim_setup

        out_layers = [{"layer": name, "M": m, "N": n, "K": k,
                       **analyse_scalesim_setup(m, n, k, cfg)} for name, m, n, k in layers]
        return {"tool": "scalesim", "mode": "analytical (ZigZag-comparable)",
                "config": str(Path(args.config)), "layers": out_layers}
    from sim.micro.systolic_trace import ScaleSimConfig, run_gemm, trace_cycles

    sc = ScaleSimConfig(**cfg)
    for name, m, n, k in layers:   # the cycle run traces every cycle: refuse what takes minutes
        cycles = trace_cycles(m, n, k, sc)
        if cycles > CYCLE_LIMIT:
            raise SpecError(args.topology, f"layer {name}",
                            f"{cycles:,} cycles to trace (over {CYCLE_LIMIT:,}, minutes of CPU); "
                            "expected a smaller layer, or use --analytical")
    out_layers = []
    for name, m, n, k in layers:
        rep = run_gemm(m, n, k, sc)
        d = rep.as_dict()
        out_layers.append({"layer": name, "M": m, "N": n, "K": k,
                           **{key: d[key] for key in KEYS},
                           "mapping_efficiency": d["mapping_efficiency"]})
    return {"tool": "scalesim", "mode": "USER" if cfg["user_bandwidth"] else "CALC",
            "config": str(Path(args.config)), "layers": out_layers}


def format_text(out: dict) -> str:
    lines = [f"SCALE-Sim-compatible run ({out['mode']}) of {out['config']}"]
    for lay in out["layers"]:
        lines.append(f"layer {lay['layer']} (M={lay['M']} N={lay['N']} K={lay['K']})")
        for key, value in lay.items():
            if key in ("layer", "M", "N", "K"):
                continue
            lines.append(f"  {key:24s} {value:.4f}" if isinstance(value, float)
                         else f"  {key:24s} {value}")
    return "\n".join(lines) + "\n"
