"""Metric names, units and readable magnitudes for reports (``86.07 ms``, ``13.5 GB``).

:data:`METRICS` maps a summary metric to its label and SI unit; :func:`readable` prints a
value with an SI prefix and three to four significant digits (bytes in decimal GB/MB, as
bandwidths are; capacities that are whole binary multiples in GiB).
"""

from __future__ import annotations

import math

#: metric -> (label, unit); units are SI base units the value is in
METRICS: dict[str, tuple[str, str]] = {
    "ttft_s": ("time to first token", "s"),
    "tpot_s": ("time per output token", "s"),
    "latency_s": ("end-to-end latency", "s"),
    "step_s": ("training step", "s"),
    "forward_s": ("forward", "s"),
    "backward_s": ("backward", "s"),
    "optimizer_s": ("optimizer", "s"),
    "transfer_s": ("transfers (summed)", "s"),
    "op_time_sum_s": ("op time, summed over streams", "s"),
    "tokens_per_s": ("throughput", "token/s"),
    "decode_tokens_per_s": ("decode throughput", "token/s"),
    "energy_J": ("energy", "J"),
    "energy_per_token_J": ("energy per token", "J/token"),
    "dynamic_energy_J": ("dynamic energy", "J"),
    "static_energy_J": ("static energy", "J"),
    "flops": ("work", "FLOP"),
    "prefill_flops": ("prefill work", "FLOP"),
    "decode_flops": ("decode work", "FLOP"),
    "bytes": ("compulsory traffic", "B"),
    "dram_bytes": ("DRAM traffic", "B"),
    "weights_bytes_per_device": ("weights per device", "B"),
    "kv_cache_bytes_per_device": ("KV cache per device", "B"),
    "memory_per_device_bytes": ("memory per device", "B"),
    "ops": ("ops", ""),
    "events": ("tasks (ops and transfers)", ""),
    "engine_events": ("engine events", ""),
    "streams": ("streams", ""),
    "mfu": ("model FLOP/s utilisation (MFU)", "%"),
    "gpu_speed": ("SM clock under the power limit (of boost)", "%"),
    "board_power_W": ("board power per GPU", "W"),
    "boost_power_W": ("board power per GPU at the boost clock", "W"),
    "gpu_speed_prefill": ("prefill's SM clock under the power limit (of boost)", "%"),
    "gpu_speed_decode": ("decode's SM clock under the power limit (of boost)", "%"),
    "board_power_prefill_W": ("board power per GPU in the prefill", "W"),
    "board_power_decode_W": ("board power per GPU in the decode", "W"),
}

_PLAIN = ("token/s",)  # units shown without an SI prefix
_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
             (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))


def readable(value: float | int | None, unit: str = "") -> str:
    """``value`` in ``unit`` with an SI prefix and 4 significant digits; counts get
    thousands separators, ``%`` a fraction shown as a percentage."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if unit == "%":
        return f"{100 * value:.1f} %"
    if unit == "":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"
    if value == 0:
        return f"0 {unit}"
    if unit in _PLAIN:
        return f"{value:,.1f} {unit}" if abs(value) >= 100 else f"{value:.4g} {unit}"
    mag = abs(value)
    for factor, prefix in _PREFIXES:
        if mag >= factor * 0.9995:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def metric_row(key: str, value: float) -> tuple[str, str, str]:
    """(label, readable value, key) of a summary metric (unknown keys keep their name)."""
    label, unit = METRICS.get(key, (key.replace("_", " "), _guess_unit(key)))
    return label, readable(value, unit), key


def _guess_unit(key: str) -> str:
    for suffix, unit in (("_s", "s"), ("_J", "J"), ("_bytes", "B"), ("_Bps", "B/s"),
                         ("_W", "W"), ("_flops", "FLOP")):
        if key.endswith(suffix):
            return unit
    return ""
