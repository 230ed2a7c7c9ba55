"""The flash kernel compiled ahead of time, as the DRAM kernels are (:mod:`sim.micro.dram_aot`).

A run that prices a drive (a computational SSD's KV-cache reads, weights on an SSD, ``xpusim
import mqsim``) imported numba and loaded the flash kernel's cached machine code first: ~0.25 s
of CPU for the import and ~0.43 s for the first call, against ~0.05 s for the simulation of a
64-page read. numba's ``pycc`` compiles :func:`sim.micro.flash_kernel.simulate_kernel` itself
(no second copy) into an extension that needs only numpy: built once per kernel version beside
the DRAM kernels' (the same directories, naming by a hash of the sources and tool versions,
``.failed`` markers), imported in milliseconds after.

:func:`kernels` returns the extension's function, or numba's dispatcher where it cannot be built
(no C compiler, a failed build, ``XPUSIM_FLASH_AOT=0``): both give the same results
(tests/test_flash_aot.py).
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

from sim.micro import dram_aot

HERE = Path(__file__).resolve().parent
#: files whose text decides the compiled code (the kernel, its constants and random draws,
#: this recipe and the build's)
SOURCES = ("flash_kernel.py", "flash_fields.py", "flash_rng.py", "flash_aot.py", "dram_aot.py")

_I = "i8[::1]"
#: simulate_kernel(prm, lane_gbps, dram_beat, rd_lat, pg_lat, cmd_rd, cmd_pg, read_frac, n_tx,
#:                 lpa_page, lpa_bits, lpa_slot, bloom, cache_cap, st_type, st_addr, stats,
#:                 lat_hist)
SIMULATE_SIG = (f"none({_I}, f8, f8, {_I}, {_I}, {_I}, {_I}, f8, i8, i4[::1], u8[::1], "
                f"i4[::1], i4[::1], i8, f8[::1], f8[::1], {_I}, {_I})")
SIMULATE_ARGS = ((("i8", 1), None, None) + (("i8", 1),) * 4 + (None, dram_aot.INTEGER)
                 + (("i4", 1), ("u8", 1), ("i4", 1), ("i4", 1), dram_aot.INTEGER, ("f8", 1),
                    ("f8", 1), ("i8", 1), ("i8", 1)))

#: the entry points: (symbol, the kernel module's function, signature, argument spec)
ENTRIES = (("simulate_kernel", "simulate_kernel", SIMULATE_SIG, SIMULATE_ARGS),)

#: the kernel a flow runs (a callable) and where it comes from (``kind``: 'aot' or 'jit')
Kernels = namedtuple("Kernels", [sym for sym, *_ in ENTRIES] + ["kind"])

_CACHE: list[Kernels] = []

#: the build's API: :func:`sim.micro.dram_aot.extension_api` over this module's tables
kernels, jit_kernels, module_name, build = dram_aot.extension_api(
    globals(), "xpusim_flash_", "XPUSIM_FLASH_AOT", "sim.micro.flash_kernel",
    "the flash kernel")
