"""The report's compiled text loops (:mod:`sim.report.text_kernel`: CSV rows, trace events)
built ahead of time, as the DRAM, flash and SCALE-Sim kernels are (:mod:`sim.micro.dram_aot`):
an extension that needs only numpy, built once per kernel version beside the other builds (the
same directories, naming by a hash of the sources and tool versions, ``.failed`` markers).
:func:`kernels` returns its functions, or numba's dispatchers where it cannot be built (no C
compiler, a failed build, ``XPUSIM_TEXT_AOT=0``): both write the same bytes
(tests/test_text_kernel.py, tests/test_trace_text.py).
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

from sim.micro import dram_aot

HERE = Path(__file__).resolve().parent
#: files whose text decides the compiled code (the kernel, this recipe, the build's)
SOURCES = ("text_kernel.py", "text_fields.py", "text_aot.py", "../micro/dram_aot.py")

_A1, _A2 = "i8[::1]", "i8[:,::1]"
#: float_digits(values, bits, digits, exps, status, seen, seen_digits, seen_exps)
#: -> how many are OTHER
DIGITS_SIG = f"i8(f8[::1], {_A1}, {_A1}, {_A1}, {_A1}, {_A1}, {_A1}, {_A1})"
DIGITS_ARGS = (("f8", 1),) + (("i8", 1),) * 7
#: write_rows(kinds, slots, ints, digits, exps, status, bits, other_ptr, other_bytes, codes,
#:            label_base, label_ptr, label_bytes, seen, seen_len, seen_text, out)
#: -> bytes written
ROWS_SIG = (f"i8({_A1}, {_A1}, {_A2}, {_A2}, {_A2}, {_A2}, {_A2}, {_A1}, u1[::1], {_A2}, "
            f"{_A1}, {_A1}, u1[::1], {_A2}, {_A2}, u1[:,::1], u1[::1])")
ROWS_ARGS = (("i8", 1), ("i8", 1), ("i8", 2), ("i8", 2), ("i8", 2), ("i8", 2), ("i8", 2),
             ("i8", 1), ("u1", 1), ("i8", 2), ("i8", 1), ("i8", 1), ("u1", 1), ("i8", 2),
             ("i8", 2), ("u1", 2), ("u1", 1))

#: fixed4_digits(values, digits, status) -> how many are OTHER
FIXED4_SIG = f"i8(f8[::1], {_A1}, {_A1})"
FIXED4_ARGS = (("f8", 1), ("i8", 1), ("i8", 1))
#: trace_events(head_c, head_ptr, head_bytes, ts_digits, ts_status, other_ptr, other_bytes,
#:              dur_c, dur_ptr, dur_bytes, num_ptr, num_bytes, layer, step, tail_c, tail_ptr,
#:              tail_bytes, linked, link_ptr, link_tid, link_meta, meta_ptr, meta_bytes,
#:              name_ptr, name_bytes, out) -> bytes written
_TEXT = f"{_A1}, u1[::1]"
EVENTS_SIG = (f"i8({_A1}, {_TEXT}, {_A1}, {_A1}, {_TEXT}, {_A1}, {_TEXT}, {_TEXT}, {_A1}, "
              f"{_A1}, {_A1}, {_TEXT}, {_A1}, {_A1}, {_A1}, {_A1}, {_TEXT}, {_TEXT}, u1[::1])")
_T = (("i8", 1), ("u1", 1))
EVENTS_ARGS = ((("i8", 1),) + _T + (("i8", 1),) * 2 + _T + (("i8", 1),) + _T + _T
               + (("i8", 1),) * 3 + _T + (("i8", 1),) * 4 + _T + _T + (("u1", 1),))

#: transfer_events(head_c, head_ptr, head_bytes, combo_c, combo_first, res_ptr, res_tid,
#:                 res_meta, prefix_c, prefix_ptr, prefix_bytes, ts_digits, ts_status,
#:                 dur_digits, dur_status, other_ptr, other_bytes, bytes_c, num_ptr, num_bytes,
#:                 replicas, layer, step, pre_at, pre_meta, meta_ptr, meta_bytes, out)
#: -> bytes written
TRANSFERS_SIG = (f"i8({_A1}, {_TEXT}, " + ", ".join([_A1] * 5) + f", {_A1}, {_TEXT}, "
                 + ", ".join([_A1] * 4) + f", {_TEXT}, {_A1}, {_TEXT}, "
                 + ", ".join([_A1] * 5) + f", {_TEXT}, u1[::1])")
TRANSFERS_ARGS = ((("i8", 1),) + _T + (("i8", 1),) * 5 + (("i8", 1),) + _T
                  + (("i8", 1),) * 4 + _T + (("i8", 1),) + _T + (("i8", 1),) * 5 + _T
                  + (("u1", 1),))

#: the entry points: (symbol, the kernel module's function, signature, argument spec)
ENTRIES = (("float_digits", "float_digits", DIGITS_SIG, DIGITS_ARGS),
           ("write_rows", "write_rows", ROWS_SIG, ROWS_ARGS),
           ("fixed4_digits", "fixed4_digits", FIXED4_SIG, FIXED4_ARGS),
           ("trace_events", "trace_events", EVENTS_SIG, EVENTS_ARGS),
           ("transfer_events", "transfer_events", TRANSFERS_SIG, TRANSFERS_ARGS))

#: the kernel's entry points (callables) and where they come from (``kind``: 'aot' or 'jit')
Kernels = namedtuple("Kernels", [sym for sym, *_ in ENTRIES] + ["kind"])

_CACHE: list[Kernels] = []

#: the build's API: :func:`sim.micro.dram_aot.extension_api` over this module's tables
kernels, jit_kernels, module_name, build = dram_aot.extension_api(
    globals(), "xpusim_text_", "XPUSIM_TEXT_AOT", "sim.report.text_kernel",
    "the report's text loops")
