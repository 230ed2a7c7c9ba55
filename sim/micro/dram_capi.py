"""A DRAMsim3 trace run through a small compiled module: no numpy, no numba in the process.

``xpusim import dramsim3`` on a short trace spent more CPU starting Python's numeric stack than
DRAMsim3 needs for the whole case (numpy's import alone is about 0.15 CPU s here; DRAMsim3
runs a 100k-request GDDR6 trace in 0.15 s). This module builds, once per kernel version, the
compiled :func:`sim.micro.dram_entry.trace_run` (the same numba source as every other run:
:func:`sim.micro.dram.run_kernel`, the trace parse, the address mapping) with numba's AOT
compiler into an object file and links it with numba's own runtime (``nrt.cpp``, for the
kernel's array allocations) and a few lines of C (:data:`_C_MODULE`: argument checks, the call)
into a CPython extension that needs neither numpy nor ctypes. A run then needs the INI reader,
this module and the library: the figures
(:func:`sim.micro.dram_stats.run_figures`) are the same floats :func:`sim.micro.dram_run.simulate`
gives (``tests/test_dram_capi.py``).

:func:`run_trace_file` returns None when the library is unavailable (no C++ compiler, a failed
build, ``XPUSIM_DRAM_AOT=0``) or the trace is not plain text the compiled parse takes (signs,
long numbers, bad lines: the Python reader handles those and names the bad line); the caller
then takes the numpy path. The library lives next to :mod:`sim.micro.dram_aot`'s extension
(``$XPUSIM_AOT_DIR``, ``sim/micro/__pycache__`` or ``~/.cache/xpusim``) as
``xpusim_dramc_<hash>`` with the extension suffix; builds are atomic renames, checked by
importing them first; a failed build leaves a ``.failed`` marker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sim.micro import dram_aot
from sim.micro.dram_layout import P_N, S_N, param_values

#: files whose text decides the library (the kernel's, and this entry's)
SOURCES = dram_aot.SOURCES + ("dram_entry.py", "dram_capi.py", "dram_run.py")
SYMBOL = "xpusim_dram_trace_run"

#: decode parameters: shift, then bit position and width of ch, ra, bg, ba, ro, co
D_SHIFT, D_POS, D_WIDTH, D_N = 0, 1, 7, 13
#: outputs: requests, ticks, accepted, last done cycle, rank-cycles active, idle, stats[S_N]
O_N, O_TICKS, O_ACCEPTED, O_LAST, O_ACT, O_IDLE, O_STATS = range(7)
O_LEN = O_STATS + S_N
#: return codes of the entry
OK, DECLINED = 0, 1

_FIELDS = ("ch", "ra", "bg", "ba", "ro", "co")
_LOADED: list = []


def module_name() -> str:
    """``xpusim_dramc_`` and a checksum of :data:`SOURCES` and the tool versions."""
    return f"xpusim_dramc_{dram_aot.source_hash(SOURCES)}"


def load(build_missing: bool = False):
    """The library's module, or None (not built, failed before, or not loadable)."""
    return dram_aot.find_or_build(module_name(), build if build_missing else None,
                                  "building the DRAM trace library", "using numpy")


def entry():
    """The library's ``run`` (loading, or building the library on first use), or None."""
    if not _LOADED:
        mod = None
        if os.environ.get("XPUSIM_DRAM_AOT", "1") != "0":
            mod = load(build_missing=True)
        _LOADED.append(getattr(mod, "run", None))
    return _LOADED[0]


def _map(path: str | Path):
    """The file's bytes, mapped rather than read where possible (a 2 MB trace: 40 page faults
    instead of 500 and no copy, ~1.5 ms of a short run); ``bytes`` for empty or unmappable
    files (pipes)."""
    import mmap

    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # empty file, pipe, ...
            return f.read()


def _int64s(values) -> bytes:
    return b"".join(int(v).to_bytes(8, sys.byteorder, signed=True) for v in values)


def run_trace_file(cfg, trace: str | Path, cycles: int) -> dict | None:
    """The :class:`~sim.micro.dram_run.DramStats` fields of ``trace`` run on ``cfg`` (a
    :class:`~sim.micro.dram_config.DramConfig`) for ``cycles`` memory cycles with the DRAMsim3
    front end, ``per_channel`` and ``commands`` left out; None when the library is unavailable
    or the trace is not plain or cannot be read (see the module docstring)."""
    fn = entry()
    if fn is None:
        return None
    from sim.micro.dram_config import N_CMD, timing_flat
    from sim.micro.dram_stats import run_figures

    try:
        data = _map(trace)
    except OSError:  # the numpy path names the file and the error
        return None
    params = param_values(cfg)
    widths, pos = cfg.field_widths(), cfg.field_positions()
    dec = [cfg.shift_bits] + [pos[f] for f in _FIELDS] + [widths[f] for f in _FIELDS]
    assert len(params) == P_N and len(dec) == D_N  # the entry reads exactly these lengths
    table = timing_flat(cfg)
    assert len(table) == 5 * N_CMD * N_CMD
    out = bytearray(8 * O_LEN)
    try:
        status, ret = fn(data, _int64s(params), _int64s(table), _int64s(dec), int(cycles), out)
    finally:
        if not isinstance(data, bytes):
            data.close()
    if status != 0:  # the kernel raised (it has no raise of its own)
        raise RuntimeError(f"DRAM trace library: call failed with status {status}")
    if ret == DECLINED:
        return None
    if ret != OK:
        raise RuntimeError(f"DRAM trace library: unexpected result {ret}")
    o = [int.from_bytes(out[i:i + 8], sys.byteorder, signed=True) for i in range(0, len(out), 8)]
    fig = run_figures(cfg, o[O_STATS:O_STATS + S_N], o[O_ACT], o[O_IDLE], o[O_TICKS], o[O_N],
                      o[O_ACCEPTED])
    fig["last_done_cycle"] = o[O_LAST]
    return fig


#: the extension's C side: argument checks and the call in numba's calling convention
#: (status = f(&result, &exception info, arguments...)); ``MODULE`` is replaced by its name
_C_MODULE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

extern "C" int32_t SYMBOL(int64_t *ret, void **exc, const uint8_t *buf, int64_t nbuf,
                          const int64_t *P, const int64_t *TT, const int64_t *dec,
                          int64_t cycles, int64_t *out);
extern "C" void NRT_MemSys_init(void);

static PyObject *run(PyObject *self, PyObject *args) {
    Py_buffer buf, P, TT, D, out;
    long long cycles;
    if (!PyArg_ParseTuple(args, "y*y*y*y*Lw*", &buf, &P, &TT, &D, &cycles, &out))
        return NULL;
    PyObject *res = NULL;
    if (P.len != 8 * P_LEN || TT.len != 8 * TT_LEN || D.len != 8 * D_LEN
            || out.len != 8 * O_LEN) {
        PyErr_SetString(PyExc_ValueError, "run: wrong parameter or output length");
    } else {
        int64_t ret = -1;
        void *exc = NULL;
        int32_t status;
        Py_BEGIN_ALLOW_THREADS
        status = SYMBOL(&ret, &exc, (const uint8_t *)buf.buf, (int64_t)buf.len,
                        (const int64_t *)P.buf, (const int64_t *)TT.buf,
                        (const int64_t *)D.buf, (int64_t)cycles, (int64_t *)out.buf);
        Py_END_ALLOW_THREADS
        res = Py_BuildValue("(iL)", (int)status, (long long)ret);
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&P);
    PyBuffer_Release(&TT);
    PyBuffer_Release(&D);
    PyBuffer_Release(&out);
    return res;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, "run(trace bytes, P, TT, dec, cycles, out) -> (status, result)"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "MODULE", NULL, -1, methods};

extern "C" PyMODINIT_FUNC PyInit_MODULE(void) {
    NRT_MemSys_init();  /* numba's runtime allocator, for the kernel's arrays */
    return PyModule_Create(&moddef);
}
"""


def build(directory: Path, name: str | None = None) -> Path:
    """Compile :func:`sim.micro.dram_entry.trace_run`, numba's runtime and :data:`_C_MODULE`
    into the extension module ``name`` in ``directory`` (numba's AOT compiler and a C++
    compiler). Returns its path; raises on failure."""
    import importlib.machinery

    stem = name or module_name()
    name = stem + importlib.machinery.EXTENSION_SUFFIXES[0]
    target = Path(directory) / name
    if target.is_file():
        return target
    if sys.stderr.isatty():
        sys.stderr.write("compiling the DRAM trace library (once per kernel version)...\n")
    import shutil
    import subprocess
    import sysconfig
    import tempfile
    import warnings

    with warnings.catch_warnings():  # pycc is "pending deprecation" (numba 0.57+)
        warnings.simplefilter("ignore")
        import numba
        import numba.pycc.compiler as pcc
        from numba.core import types

    from sim.micro import dram_entry
    from sim.micro.dram_config import N_CMD

    u1p, i8p = types.CPointer(types.uint8), types.CPointer(types.int64)
    sig = types.int64(u1p, types.int64, i8p, i8p, i8p, types.int64, i8p)
    runtime = Path(numba.__file__).parent / "core" / "runtime" / "nrt.cpp"
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") \
        or shutil.which("clang++")
    if cxx is None:
        raise RuntimeError("no C++ compiler found (c++, g++, clang++ or $CXX)")
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=directory))
    saved_flags = pcc.Flags
    try:
        pcc.Flags = dram_aot._numpy_error_model(saved_flags)
        mc = pcc.ModuleCompiler([pcc.ExportEntry(SYMBOL, sig, dram_entry.trace_run)],
                                stem, use_nrt=True)
        obj = tmp / "entry.o"
        mc.write_native_object(str(obj), wrap=False)
        module = tmp / "module.cpp"
        src = _C_MODULE
        for key, value in (("MODULE", stem), ("SYMBOL", SYMBOL), ("P_LEN", P_N),
                           ("TT_LEN", 5 * N_CMD * N_CMD), ("D_LEN", D_N), ("O_LEN", O_LEN)):
            src = src.replace(key, str(value))
        module.write_text(src)
        out = tmp / name
        cmd = [cxx, "-shared", "-fPIC", "-O2", "-static-libstdc++", "-static-libgcc",
               f"-I{sysconfig.get_paths()['include']}", f"-I{runtime.parent}", str(obj),
               str(runtime), str(module), "-o", str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True,
                             env={**os.environ, "LC_ALL": "C"})
        if res.returncode != 0:
            raise RuntimeError(f"{Path(cxx).name} failed: {res.stderr.strip()[-300:]}")
        if dram_aot._import(stem, out) is None:  # e.g. a symbol the library lacks
            raise RuntimeError(f"{out.name}: built but does not import")
        os.replace(out, target)
        for old in Path(directory).glob("xpusim_dramc_*"):  # builds of earlier sources
            if old != target:
                old.unlink(missing_ok=True)
    finally:
        pcc.Flags = saved_flags
        shutil.rmtree(tmp, ignore_errors=True)
    return target
