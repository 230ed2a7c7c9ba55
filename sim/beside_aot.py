"""The compiled window loop (sim/beside_kernel.py) built ahead of time, as the DRAM kernels are.

Importing numba and loading its cached machine code costs a fresh process ~0.7 CPU s, more
than the windows of a 128-token 70B ``--overlap`` run take compiled. numba's ``pycc`` compiles
:func:`sim.beside_kernel.stamp_beside` itself (no second copy) into an extension that needs only
numpy, built on first use and kept beside the DRAM kernels' (:mod:`sim.micro.dram_aot`: the
same directories, naming by a hash of the sources and tool versions, ``.failed`` markers).
Without a C compiler, or with ``XPUSIM_BESIDE_AOT=0``, the numba dispatcher runs instead:
both give the same floats (tests/test_beside_kernel.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from sim.micro import dram_aot

HERE = Path(__file__).resolve().parent
#: files whose text decides the compiled code
SOURCES = ("beside_kernel.py", "beside_aot.py", "resources.py")
_I, _F = "i8[::1]", "f8[::1]"
#: stamp_beside(run, cuts, place_pos, place_y, wait_pos, wait_ptr, wait_y, t, lat, dur, size,
#:              stream, free, rate_ok, rate, quiet, limit_of, moved, busy, last, start, end,
#:              y_end)
SIG = (f"Tuple((i8, f8, i8, f8, f8, f8))({_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, f8, "
       f"{_F}, {_F}, {_F}, {_I}, {_F}, b1, f8, f8, {_F}, f8, f8, f8, {_F}, {_F}, {_F})")
ARGS = ((("i8", 1),) * 7 + (None,) + (("f8", 1),) * 3 + (("i8", 1), ("f8", 1)) + (None,) * 3
        + (("f8", 1),) + (None,) * 3 + (("f8", 1),) * 3)

_CACHE: list = []


def stamp_beside():
    """The window loop: the ahead-of-time build when available (built on first use), else
    numba's JIT dispatcher."""
    if not _CACHE:
        mod = None
        if os.environ.get("XPUSIM_BESIDE_AOT", "1") != "0":
            mod = dram_aot.find_or_build(module_name(), build,
                                         "ahead-of-time build of the window loop",
                                         "using numba's JIT")
        if mod is not None:
            _CACHE.append(dram_aot._checked(mod.stamp_beside, ARGS))
        else:
            from sim.beside_kernel import stamp_beside as jit

            _CACHE.append(jit)
    return _CACHE[0]


def module_name() -> str:
    """Extension name: ``xpusim_beside_`` and a hash of :data:`SOURCES` and tool versions."""
    return "xpusim_beside_" + dram_aot.source_hash(SOURCES, HERE)


def build(directory: Path, name: str | None = None) -> Path:
    """Compile :func:`sim.beside_kernel.stamp_beside` into ``directory`` (numba's pycc; needs
    a C compiler). The extension's path; raises on failure."""
    from sim import beside_kernel

    return dram_aot.build_extension(directory, name or module_name(), beside_kernel,
                                    (("stamp_beside", SIG, beside_kernel.stamp_beside),),
                                    "the overlap window loop")
