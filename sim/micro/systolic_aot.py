"""The SCALE-Sim-compatible GEMM kernel compiled ahead of time, as the DRAM and flash kernels
are (:mod:`sim.micro.dram_aot`, :mod:`sim.micro.flash_aot`).

``xpusim import scalesim`` imported numba and loaded the kernel's cached machine code before
tracing a layer: ~0.7 CPU s of a small case's ~0.95. numba's ``pycc`` compiles the kernel's
entry points (:mod:`sim.micro.systolic_kernel`: the USER-mode run and the two CALC-mode
passes) into an extension that needs only numpy, built once per kernel version beside the
other builds (the same directories, naming by a hash of the sources and tool versions,
``.failed`` markers). :func:`kernels` returns the extension's functions, or numba's
dispatchers where it cannot be built (no C compiler, a failed build, ``XPUSIM_SYSTOLIC_AOT=0``):
both give the same results (tests/test_systolic_aot.py).
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

from sim.micro import dram_aot

HERE = Path(__file__).resolve().parent
#: files whose text decides the compiled code (the kernel, the constants it reads from the
#: model's module, this recipe and the build's)
SOURCES = ("systolic_kernel.py", "systolic_trace.py", "systolic_aot.py", "dram_aot.py")

_I = "i8[::1]"
#: run(df, m, n, k, rows, cols, row_folds, col_folds, fold_len, if_words, f_words, of_words,
#:     of_bw, if_set, f_set, if_prm, f_prm) -> the run's figures
RUN_SIG = f"{_I}({', '.join(['i8'] * 13)}, {_I}, {_I}, {_I}, {_I})"
RUN_ARGS = (dram_aot.INTEGER,) * 13 + (("i8", 1),) * 4
#: calc_read_pass(df, op, m, n, k, rows, cols, row_folds, col_folds, fold_len, words)
#: -> (misses, first row)
READ_SIG = f"Tuple((i8, i8))({', '.join(['i8'] * 11)})"
READ_ARGS = (dram_aot.INTEGER,) * 11
#: calc_write_pass(df, m, n, k, rows, cols, row_folds, col_folds, fold_len, of_words, of_bw,
#:                 row_a, row_b) -> the write side's figures
WRITE_SIG = f"{_I}({', '.join(['i8'] * 13)})"
WRITE_ARGS = (dram_aot.INTEGER,) * 13

#: the entry points: (symbol, the kernel module's function, signature, argument spec)
ENTRIES = (("run", "_run", RUN_SIG, RUN_ARGS),
           ("calc_read_pass", "_calc_read_pass", READ_SIG, READ_ARGS),
           ("calc_write_pass", "_calc_write_pass", WRITE_SIG, WRITE_ARGS))

#: the kernel's entry points (callables) and where they come from (``kind``: 'aot' or 'jit')
Kernels = namedtuple("Kernels", [sym for sym, *_ in ENTRIES] + ["kind"])

_CACHE: list[Kernels] = []

#: the build's API: :func:`sim.micro.dram_aot.extension_api` over this module's tables
kernels, jit_kernels, module_name, build = dram_aot.extension_api(
    globals(), "xpusim_systolic_", "XPUSIM_SYSTOLIC_AOT", "sim.micro.systolic_kernel",
    "the SCALE-Sim kernel")
