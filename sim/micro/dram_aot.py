"""The DRAM kernels compiled ahead of time: the same numba source, built once into an extension.

A short ``xpusim import dramsim3`` spent most of its CPU starting numba, not simulating:
importing numba, initialising LLVM and loading the cached machine code of
:func:`sim.micro.dram.run_kernel` and :func:`sim.micro.dram_trace._parse_plain` cost more than
DRAMsim3 needs for a whole 100k-request case. Here numba's ``pycc`` compiles those very
functions (no second copy of the model) into a CPython extension that needs only numpy at run
time, so later processes import it in milliseconds and never import numba.

:func:`kernels` returns the extension's functions when the build exists or can be made, and the
numba dispatchers otherwise (no C compiler, a failed build, ``XPUSIM_DRAM_AOT=0``). Both give
identical results (``tests/test_dram_aot.py``). The extension lives in ``$XPUSIM_AOT_DIR``, else
``sim/micro/__pycache__`` (else ``~/.cache/xpusim``), under a name carrying a hash of the kernel
sources and the numpy, numba and Python versions: an edited kernel builds anew, like numba's own
cache. It is built on first use (about as long as numba's first compile), into a temporary file
renamed into place, so concurrent processes are safe (a new build removes those of earlier
sources); a failed build leaves a ``.failed`` marker naming the error and is not retried for
those sources (delete the marker to retry).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import zlib
from collections import namedtuple
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: files whose text decides the compiled code (the kernels, their constants, this recipe)
SOURCES = ("dram.py", "dram_trace.py", "dram_config.py", "dram_layout.py", "dram_aot.py",
           "pim_sweep_kernel.py")

_A1, _A2, _A3 = "i8[::1]", "i8[:,::1]", "i8[:,:,::1]"
#: run_kernel(P, TN, TK, TD, r_ch, r_rank, r_bank, r_row, r_col, r_aid, r_write, r_time, n_addr,
#:            fe_mode, fe_order, fe_start, tail_mode, cycles, until_done, log)
RUN_SIG = (f"Tuple(({_A2}, {_A2}, {_A2}, i8, i8, i8, i8))({_A1}, {_A2}, {_A3}, {_A3}, "
           + ", ".join([_A1] * 6) + f", i1[::1], {_A1}, i8, i8, {_A1}, {_A1}, i8, i8, b1, {_A2})")
RUN_ARGS = (("i8", 1), ("i8", 2), ("i8", 3), ("i8", 3)) + (("i8", 1),) * 6 + (
    ("i1", 1), ("i8", 1), None, None, ("i8", 1), ("i8", 1), None, None, None, ("i8", 2))
PARSE_SIG = "Tuple((b1, i8, u8[::1], i1[::1], i8[::1]))(u1[::1])"
PARSE_ARGS = (("u1", 1),)
#: sweep_kernel(prm, per_out) -> figures (sim/micro/pim_sweep_kernel.py)
SWEEP_SIG = f"{_A1}({_A1}, {_A1})"
SWEEP_ARGS = (("i8", 1), ("i8", 1))


#: the kernels a run calls (``run_kernel``, ``parse_plain``, ``pim_sweep``: callables) and
#: where they come from (``kind``: ``'aot'`` or ``'jit'``); a plain namedtuple:
#: ``typing.NamedTuple`` would import typing (5 ms of a short ``xpusim import dramsim3``)
Kernels = namedtuple("Kernels", ["run_kernel", "parse_plain", "pim_sweep", "kind"])


_CACHE: list[Kernels] = []


def kernels() -> Kernels:
    """The ahead-of-time build when available (building it on first use), else numba's JIT."""
    return cached_kernels(_CACHE, "XPUSIM_DRAM_AOT", lambda: load(build_missing=True),
                          lambda mod: Kernels(checked(mod.kernel, RUN_ARGS),
                                              checked(mod.trace, PARSE_ARGS),
                                              checked(mod.pim_sweep, SWEEP_ARGS), "aot"),
                          jit_kernels)


def cached_kernels(cache: list, env: str, load_module, from_module, jit):
    """``cache[0]``, formed on the first call: ``from_module(mod)`` of the extension module
    ``load_module()`` gives, unless ``$env`` is ``0`` or it gives None; then ``jit()``."""
    if not cache:
        mod = load_module() if os.environ.get(env, "1") != "0" else None
        cache.append(from_module(mod) if mod is not None else jit())
    return cache[0]


def built_kernels(cache: list, env: str, name, builder, what: str, from_module, jit):
    """:func:`cached_kernels` of the extension ``name()``, found or built by ``builder``
    (:func:`find_or_build`; a failed build of ``what`` says so once and numba's JIT runs)."""
    return cached_kernels(cache, env,
                          lambda: find_or_build(name(), builder,
                                                f"ahead-of-time build of {what}",
                                                "using numba's JIT"),
                          from_module, jit)


def extension_api(home: dict, prefix: str, env: str, kernel: str, what: str) -> tuple:
    """``(kernels, jit_kernels, module_name, build)`` of a module that builds a kernel module
    ahead of time as this one does, from that module's globals ``home``, read at each call
    (so a test may replace them): ``ENTRIES``, one ``(symbol, the kernel module's function
    name, signature, argument spec)`` per field of ``Kernels`` (a namedtuple ending in
    ``kind``), ``_CACHE``, ``SOURCES`` and ``HERE``. ``prefix``: the extension's name before
    the hash; ``env``: its switch (``0``: numba's JIT); ``kernel``: the kernel module's dotted
    name (importing it imports numba; the function of an entry named ``module:function`` is
    that module's instead); ``what``: the build's name in messages."""
    import importlib

    def function(attr: str):
        """The numba dispatcher an entry names (``function`` of ``kernel``, or
        ``module:function``)."""
        module, _, name = attr.rpartition(":")
        return getattr(importlib.import_module(module or kernel), name)

    def kernels():
        """The ahead-of-time build when available (built on first use), else numba's JIT."""
        entries, kinds = home["ENTRIES"], home["Kernels"]
        return built_kernels(home["_CACHE"], env, module_name, build, what,
                             lambda mod: kinds(*(checked(getattr(mod, sym), spec)
                                                 for sym, _, _, spec in entries), "aot"),
                             jit_kernels)

    def jit_kernels():
        """The numba dispatchers themselves (imports numba)."""
        return home["Kernels"](*(function(attr) for _, attr, _, _ in home["ENTRIES"]), "jit")

    def module_name() -> str:
        """Extension name: the prefix and a hash of ``SOURCES`` and the tool versions."""
        return prefix + source_hash(home["SOURCES"], home["HERE"])

    def build(directory: Path, name: str | None = None) -> Path:
        """Compile the entry points into ``directory`` (numba's pycc; needs a C compiler),
        in symbol order (the order pycc compiles them in). The extension's path; raises on
        failure."""
        return build_extension(directory, name or module_name(), importlib.import_module(kernel),
                               tuple((sym, sig, function(attr))
                                     for sym, attr, sig, _ in sorted(home["ENTRIES"])), what)

    return kernels, jit_kernels, module_name, build


def jit_kernels() -> Kernels:
    """The numba dispatchers themselves (imports numba)."""
    from sim.micro.dram import run_kernel
    from sim.micro.dram_trace import _parse_plain
    from sim.micro.pim_sweep_kernel import sweep_kernel

    return Kernels(run_kernel, _parse_plain, sweep_kernel, "jit")


def module_name() -> str:
    """Extension name: ``xpusim_dram_`` and a 64-bit checksum (CRC-32 and Adler-32; hashlib's
    OpenSSL load alone costs a short run 10 ms) of the sources and tool versions."""
    return "xpusim_dram_" + source_hash(SOURCES)


def source_hash(sources: tuple[str, ...], folder: Path | None = None) -> str:
    """16 hex digits over the text of ``sources`` (files of ``folder``, this one by default)
    and the versions of numba, llvmlite, numpy and Python, read from the packages' version
    files (nothing is imported: numpy's import alone costs a short run 0.15 CPU s)."""
    folder = HERE if folder is None else folder
    parts = [(folder / name).read_bytes() for name in sources]
    for pkg, fname in (("numba", "_version.py"), ("llvmlite", "_version.py"),
                       ("numpy", "version.py")):
        spec = importlib.util.find_spec(pkg)  # finds the package without importing it
        if spec is not None and spec.origin:
            ver = Path(spec.origin).with_name(fname)
            parts.append(ver.read_bytes() if ver.is_file() else spec.origin.encode())
    parts.append(f"{sys.version} {sys.platform}".encode())
    data = b"\0".join(parts)
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def directories() -> list[Path]:
    """Where the extension may live, in order of preference."""
    env = os.environ.get("XPUSIM_AOT_DIR")
    if env:
        return [Path(env)]
    dirs = [HERE / "__pycache__"]
    try:
        dirs.append(Path.home() / ".cache" / "xpusim")
    except RuntimeError:  # no home directory
        pass
    return dirs


def load(build_missing: bool = False):
    """The compiled extension module, or None (not built, failed before, or not loadable)."""
    return find_or_build(module_name(), build if build_missing else None,
                         "ahead-of-time build of the DRAM kernel", "using numba's JIT")


def find_or_build(name: str, builder, what: str, instead: str):
    """The extension module ``name`` from the first of :func:`directories` that holds it; None
    when a ``.failed`` marker there says its build failed, or when it is missing and
    ``builder`` is None; else ``builder(directory, name)`` into the first writable directory
    (a failure leaves the marker, naming the error, and a note on stderr: ``what`` failed,
    ``instead``)."""
    fname = name + importlib.machinery.EXTENSION_SUFFIXES[0]
    dirs = directories()
    for d in dirs:
        if (d / fname).is_file():
            return _import(name, d / fname)
        if (d / (name + ".failed")).is_file():
            return None
    if builder is None:
        return None
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            try:
                builder(d, name)
            except Exception as exc:  # noqa: BLE001 - any failure: the caller's fallback runs
                lines = str(exc).strip().splitlines()
                msg = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
                try:
                    (d / (name + ".failed")).write_text(msg + "\n")
                except OSError:
                    pass
                sys.stderr.write(f"note: {what} failed ({msg}); {instead}\n")
                return None
            return _import(name, d / fname)
    return None


def _import(name: str, path: Path):
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except (ImportError, OSError):
        return None
    return mod


def build(directory: Path, name: str | None = None) -> Path:
    """Compile the kernels into ``directory`` (numba's pycc; needs a C compiler). Returns the
    extension's path; raises on failure."""
    from sim.micro import dram, dram_trace, pim_sweep_kernel

    # pycc compiles exports in symbol order: 'kernel' (run_kernel), 'pim_sweep', 'trace'
    return build_extension(directory, name or module_name(), dram,
                           (("kernel", RUN_SIG, dram.run_kernel),
                            ("trace", PARSE_SIG, dram_trace._parse_plain),
                            ("pim_sweep", SWEEP_SIG, pim_sweep_kernel.sweep_kernel)),
                           "the DRAM kernel")


def build_extension(directory: Path, name: str, source_module, exports: tuple,
                    what: str) -> Path:
    """Compile ``exports`` ((symbol, signature, numba dispatcher), ...) of ``source_module``
    into the extension ``name`` in ``directory`` (numba's pycc, with the kernels' own
    ``error_model='numpy'``), through a temporary file renamed into place; builds of earlier
    sources (the same name up to the hash) are removed. The extension's path; raises on
    failure."""
    fname = name + importlib.machinery.EXTENSION_SUFFIXES[0]
    target = Path(directory) / fname
    if target.is_file():
        return target
    if sys.stderr.isatty():
        sys.stderr.write(f"compiling {what} ahead of time (once per kernel version)...\n")
    import shutil
    import tempfile
    import warnings

    with warnings.catch_warnings():  # pycc is "pending deprecation" (numba 0.57+)
        warnings.simplefilter("ignore")
        import numba.pycc.compiler as pcc
        from numba.pycc import CC

    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=directory))
    saved_flags = pcc.Flags
    try:
        saved_out = os.dup(1)
    except OSError:  # no stdout to protect
        saved_out = -1
    try:
        cc = CC(name, source_module=source_module)
        cc.output_dir = str(tmp)
        for symbol, signature, dispatcher in exports:
            cc.export(symbol, signature)(dispatcher.py_func)
        pcc.Flags = _numpy_error_model(saved_flags)
        if saved_out >= 0:
            sys.stdout.flush()
            os.dup2(2, 1)  # compiler chatter must not reach stdout (--json output)
        cc.compile()
        os.replace(tmp / cc.output_file, target)
        stem = name.rsplit("_", 1)[0] + "_"
        for old in Path(directory).glob(stem + "*"):  # builds of earlier sources
            if old != target:
                old.unlink(missing_ok=True)
    finally:
        if saved_out >= 0:
            sys.stdout.flush()
            os.dup2(saved_out, 1)
            os.close(saved_out)
        pcc.Flags = saved_flags
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _numpy_error_model(flags_cls):
    """pycc's compile flags with the kernels' own ``error_model='numpy'`` (as their ``@njit``;
    pycc's default ('python') also fails to type the inlined helpers), and the GIL released
    while a kernel runs (``release_gil``, what ``@njit(nogil=True)`` sets: the kernels touch
    no Python object). Without it a thread that needs the GIL waits out every kernel call of
    another: the run report's parquet encoders, which take it between Arrow's calls, stood
    ~0.9 s behind the rollups' compiled passes on a 17M-op table."""

    def make():
        f = flags_cls()
        f.error_model = "numpy"
        f.release_gil = True
        return f

    return make


_DTYPES = {"i8": "int64", "i4": "int32", "i2": "int16", "i1": "int8", "u1": "uint8", "u8": "uint64",
           "f8": "float64", "b1": "bool"}


def checked(fn, spec: tuple):
    """``fn`` with its array arguments checked: the extension reinterprets memory as the
    signature says, so a wrong dtype, rank or layout must fail here, not read garbage."""

    def call(*args):
        check_args(spec, args)
        return fn(*args)

    call.__wrapped__ = fn
    call.unchecked = fn
    return call


#: a :func:`check_args` spec entry for an integer scalar (``i8`` in the signature): the
#: compiled extension converts a float there by truncation, numba's JIT would compute with it
INTEGER = ("int", 0)


def check_args(spec: tuple, args: tuple) -> None:
    """Raise TypeError unless ``args`` match ``spec`` (:func:`checked`). A caller that passes
    the same arrays many times checks them once and calls the unchecked function
    (``unchecked``: a numba dispatcher's ``__wrapped__`` is its Python function)."""
    import numpy as np

    if len(args) != len(spec):
        raise TypeError(f"expected {len(spec)} arguments, got {len(args)}")
    for i, (a, s) in enumerate(zip(args, spec, strict=True)):
        if s is None:
            continue
        if s == INTEGER:   # the extension truncates a float where numba's JIT would not
            if isinstance(a, bool) or not isinstance(a, int | np.integer):
                raise TypeError(f"argument {i}: expected an integer, got {type(a).__name__}")
            continue
        if not (isinstance(a, np.ndarray) and a.dtype == _DTYPES[s[0]] and a.ndim == s[1]
                and a.flags.c_contiguous):
            raise TypeError(f"argument {i}: expected a C-contiguous {s[1]}-d "
                            f"{_DTYPES[s[0]]} array, got {getattr(a, 'dtype', type(a))}")
