"""Shared helpers of the suites over our own GPU measurements (``validation/<tag>/*.csv``, written
by ``validation/measure_gpu.py --tag <tag>`` on that GPU): GEMMs, fused attention, memory-bound
vector kernels and Llama decode steps, each compared with the GPU's preset (ideal stack)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from xpusim.validation import Point, SuiteSkipped, ValidationContext
from xpusim.validation._table import read_rows


def missing(tag: str) -> str:
    """Why a suite over ``tag``'s measurements is skipped."""
    return (f"no {tag.upper()} measurements yet: run validation/measure_gpu.py --tag {tag} on an "
            f"{tag.upper()} (blocked on hardware so far)")


class Row(dict):
    """One measured row; a missing column or a value that is not a number is a one-line
    :class:`~workloads.errors.WorkloadError` naming the file, the row and the column."""

    def __init__(self, data: dict[str, str], file: str, line: int):
        super().__init__(data)
        self.file, self.line = file, line

    def __missing__(self, col: str) -> str:
        raise self.fail(col, "the column is missing")

    def fail(self, col: str, expected: str):
        from workloads.errors import WorkloadError

        return WorkloadError(self.file, f"row {self.line} {col}", expected)

    def num(self, col: str) -> float:
        """The column as a positive float (s, W, ...)."""
        try:
            value = float(self[col])
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise self.fail(col, f"expected a positive number, got '{self[col][:30]}'")
        return value

    def int(self, col: str, default: int | None = None) -> int:
        """The column as a positive integer; a flag column with a ``default`` may be empty (the
        default) or 0."""
        text = self[col] if default is None else self.get(col, "")
        if default is not None and text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < (0 if default is not None else 1):
            raise self.fail(col, f"expected a positive integer, got '{text[:30]}'")
        return value

    def built(self, col: str, fn, *args):
        """``fn(*args)`` (an op or a trace of this row); its input error names this row's
        ``col`` and file."""
        from workloads.errors import WorkloadError

        try:
            return fn(*args)
        except WorkloadError as exc:
            raise self.fail(col, exc.message) from None

    def dims(self, col: str, n: int = 3) -> tuple[int, ...]:
        """``n`` integers written ``AxBxC`` in the column (a GEMM's M x N x K)."""
        try:
            out = tuple(int(x) for x in self[col].split("x"))
        except ValueError:
            out = ()
        if len(out) != n or min(out) < 1:
            raise self.fail(col, f"expected {n} integers as {'x'.join('N' * n)}, "
                                 f"got '{self[col][:30]}'")
        return out


def rows(ctx: ValidationContext, name: str, tag: str = "h100",
         absent: str | None = None) -> list[Row]:
    """The rows of ``validation/<tag>/<name>``; :class:`SuiteSkipped` when absent (saying
    ``absent``, else :func:`missing`)."""
    path: Path = ctx.project_data / tag / name
    if not path.is_file():
        raise SuiteSkipped(absent or missing(tag))
    return [Row(r, str(path), i + 2) for i, r in enumerate(read_rows(path))]


@lru_cache(maxsize=8)
def _arch(arch: str, software: str | None):
    from arch.software import load_arch_with_software

    return load_arch_with_software(arch, software)


@lru_cache(maxsize=4)
def device(arch: str = "h100", software: str | None = None):
    """The tile-fidelity device of ``--arch arch [--software software]`` (a stack preset, e.g.
    ``ideal`` for CUDA-graph rows, ``eager`` for eager-PyTorch rows)."""
    from sim.devices.base import device_for

    return device_for(_arch(arch, software), "tile")


@lru_cache(maxsize=4)
def l2_device(arch: str, software: str | None = None):
    """:func:`device` for calls whose operands stay in the L2 between calls (their rotated copies
    add up to no more than its capacity): the L2's latency and bandwidth in place of the HBM's."""
    import copy

    from arch import arch_from_dict, load_arch_data
    from arch.software import with_software
    from sim.devices.base import device_for

    data, label = load_arch_data(arch)
    if software:
        data = with_software(data, software, label)
    l2 = arch_from_dict(copy.deepcopy(data), file=label).memory["l2"]
    data = copy.deepcopy(data)
    hbm = data.setdefault("memory", {}).setdefault("hbm", {})
    hbm.update(latency=l2.latency, bandwidth=l2.bandwidth, efficiency=l2.efficiency)
    return device_for(arch_from_dict(data, file=f"{label} (operands in L2)"), "tile")


def sustained(arch: str, work, software: str | None = None, duty: float = 1.0):
    """``(seconds, dynamic J, speed)`` of ``work`` run back to back (a ``duty`` fraction of the
    time) on preset ``arch``, at the clock its power limit allows (:func:`sim.sustained.at_limit`;
    the boost clock, speed 1.0, for a preset without one). ``work(device)`` gives ``(seconds,
    compute J, other dynamic J, ...)`` of one call on a device."""
    from sim.sustained import at_limit

    (seconds, compute_j, other_j, *_), state = at_limit(_arch(arch, software), work, duty)
    return seconds, compute_j + other_j, state.speed if state is not None else 1.0


def gemm_points(ctx: ValidationContext, tag: str, arch: str, model=None,
                split: bool = False, only: str | None = None) -> list[Point]:
    """GEMM device times (CUDA graphs) vs the device ``model`` (default ``arch``'s).

    The grid is ``<tag>_gemm_burst.csv`` where measured (the GPU resting between samples: the
    boost clock), else ``<tag>_gemm.csv``; ``split``: its rows alternate train / test (even
    positions train), for a preset whose GEMM values are fitted on them. Then, where measured
    and no ``model`` is given, the GEMMs of the sustained and power files (``<tag>_gemm_sustained
    .csv``, ``<tag>_power.csv``, ``<tag>_power_sweep.csv``): the time per call of each run back
    to back for 1.5-2 s, which the model runs at the clock the preset's power limit allows
    (cases ``sustained ...``; test rows when ``split``). ``only``: the points of that split
    alone (a fit's objective: ``"train"``)."""
    from sim.sustained import op_work
    from xpusim.commands.op import gemm_op
    from xpusim.validation import estimates

    dev = model or device(arch)
    grid = [g for g in gemm_grid(ctx, tag, split) if only is None or g[3] == only]
    out = [Point(case, measured, cost.latency, s) for (case, measured, _, s), cost
           in zip(grid, estimates(dev, [g[2] for g in grid]), strict=True)]
    held_out = "test" if split else ""   # the sustained rows' split
    if model is not None or only not in (None, held_out):
        return out
    for r in sustained_gemm_rows(ctx, tag):
        m, n, k = r.dims("shape")
        op = r.built("dtype", gemm_op, m, n, k, 1, r["dtype"])
        out.append(Point(f"sustained {r['dtype']} {r['shape']}", r.num("time_per_call_s"),
                         sustained(arch, op_work(op))[0], held_out))
    return out


def gemm_grid(ctx: ValidationContext, tag: str, split: bool = False) -> list[tuple]:
    """``(case, measured s, op, split)`` of each row of :func:`gemm_points`' grid file, read
    once per context (``ctx.cache``: a fit prices the same ops on each device it tries)."""
    from xpusim.commands.op import gemm_op
    from xpusim.validation import alternate_split

    key = ("gemm_grid", tag, split)
    if key not in ctx.cache:
        name = f"{tag}_gemm_burst.csv"
        data = rows(ctx, name if (ctx.project_data / tag / name).is_file()
                    else f"{tag}_gemm.csv", tag)
        splits = alternate_split(len(data)) if split else [""] * len(data)
        grid = []
        for r, s in zip(data, splits, strict=True):
            m, n, k = r.int("M"), r.int("N"), r.int("K")
            grid.append((f"{r['dtype']} {m}x{n}x{k}", r.num("latency_s"),
                         r.built("dtype", gemm_op, m, n, k, 1, r["dtype"]), s))
        ctx.cache[key] = grid
    return ctx.cache[key]


def sustained_gemm_rows(ctx: ValidationContext, tag: str) -> list[Row]:
    """The GEMM / GEMV rows of the files that ran each workload back to back for 1.5-2 s."""
    return [r for name in ("gemm_sustained", "power", "power_sweep")
            for r in _optional(ctx, f"{tag}_{name}.csv", tag) if r["workload"] in ("gemm", "gemv")]


def attention_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_attention.csv``: fused attention vs the model at the boost clock (causal prefill
    rows are left out: the model's attention computes every query-key pair). Each shape's timed
    calls run back to back for ~10-90 ms, under the power limiter's reaction (the clock falls
    120-140 ms into a load: ``<tag>_power_trace.csv``); the 8k-token row took 1.619 ms there,
    1.642 ms at 25% duty and 1.837 ms at 100%. Then ``<tag>_attention_duty.csv`` where
    measured: prefills at 25% and 100% duty, the model at that duty."""
    from sim.sustained import op_work
    from xpusim.commands.op import attention_op

    dev = device(arch)
    out = []
    for r in rows(ctx, f"{tag}_attention.csv", tag) + _optional(ctx, f"{tag}_attention_sweep.csv",
                                                               tag):
        if r.int("causal", 0):
            continue
        h, g = r.int("heads"), r.int("kv_heads")
        op = r.built("dtype", attention_op, r.int("batch"), h, g, r.int("q_len"),
                     r.int("kv_len"), r.int("head_dim"), r.get("dtype", "bf16"))
        case = (f"{r['phase']} {r['impl']} b{r['batch']} h{h}/{g} "
                f"q{r['q_len']} kv{r['kv_len']} d{r['head_dim']}")
        out.append(Point(case, r.num("latency_s"), dev.estimate(op).latency))
    for r in _optional(ctx, f"{tag}_attention_duty.csv", tag):
        b, h, g, s, d = _prefill_dims(r)
        op = r.built("dtype", attention_op, b, h, g, s, s, d, r["dtype"])
        out.append(Point(f"{r['shape']} duty {float(r['duty_target']):.2f}",
                         r.num("time_per_call_s"),
                         sustained(arch, op_work(op), duty=r.num("duty"))[0]))
    return out


def _prefill_dims(r: Row) -> tuple[int, int, int, int, int]:
    """(batch, heads, kv heads, tokens, head dim) of an ``attention_duty`` row's shape,
    ``prefill bB hH/G sS dD``."""
    parts = r["shape"].split()
    try:
        if len(parts) != 5 or parts[0] != "prefill" or [p[0] for p in parts[1:]] != list("bhsd"):
            raise ValueError
        h, g = parts[2][1:].split("/")
        dims = int(parts[1][1:]), int(h), int(g), int(parts[3][1:]), int(parts[4][1:])
    except ValueError:
        raise r.fail("shape", f"expected 'prefill bB hH/G sS dD', got '{r['shape'][:40]}'") \
            from None
    return dims


def _step_time(arch: str, model: str, batch: int, prompt: int, dtype: str, phase: str) -> float:
    """Seconds the engine gives one ``phase`` step of ``model`` on ``arch`` (ideal stack), steps
    back to back at the clock the preset's power limit allows."""
    from xpusim.validation._steps import phase_trace

    return sustained(arch, step_work(phase_trace(model, 1, batch, prompt, phase, dtype)))[0]


def step_work(trace):
    """:func:`sustained`'s ``work`` for one engine step: its seconds, its ops' compute J and
    their other J."""
    from xpusim.validation._steps import step_time

    def work(dev) -> tuple[float, float, float]:
        energies = [dev.estimate(op).energy for op in trace.ops]
        compute = sum(e.get("compute", 0.0) for e in energies)
        return step_time(dev, trace), compute, sum(sum(e.values()) for e in energies) - compute
    return work


def decode_step_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_decode_step.csv``: CUDA-graph decode steps vs the engine on the ideal stack (eager
    rows hold host costs of the measuring machine and are not compared)."""
    out = []
    for r in rows(ctx, f"{tag}_decode_step.csv", tag):
        if r.get("mode") != "cuda-graph":
            continue
        t = r.built("model", _step_time, arch, r["model"], r.int("batch"),
                    r.int("context") - 1, r.get("dtype", "bf16"), "decode")
        out.append(Point(f"decode-step {r['model']} b{r['batch']} ctx{r['context']}",
                         r.num("latency_s"), t))
    return out


def prefill_step_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_prefill_step.csv`` (where measured): causal CUDA-graph prefills vs the engine's
    prefill phase (the model's attention computes every query-key pair, the kernel about half)."""
    return [Point(f"prefill-step {r['model']} b{r['batch']} p{r['prompt']}", r.num("latency_s"),
                  r.built("model", _step_time, arch, r["model"], r.int("batch"),
                          r.int("prompt"), r.get("dtype", "bf16"), "prefill"))
            for r in _optional(ctx, f"{tag}_prefill_step.csv", tag)
            if r.get("mode") == "cuda-graph"]


def _optional(ctx: ValidationContext, name: str, tag: str) -> list[Row]:
    """The rows of ``validation/<tag>/<name>`` where it was measured, else none."""
    return rows(ctx, name, tag) if (ctx.project_data / tag / name).is_file() else []


def vector_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_vector.csv``: memory-bound kernels (copy, GELU, norms, softmax) vs the model on
    the ``torch-graphs`` stack: the rows are PyTorch's own kernels replayed in a CUDA graph, so
    the eager kernels' bandwidth shortfalls apply (the GEMM, attention and step rows run the same
    kernels on both stacks)."""
    from xpusim.commands.op import ELEMENTWISE, REDUCTIONS, vector_op

    dev = device(arch, "torch-graphs")
    hot = l2_device(arch, "torch-graphs")
    l2 = dev.arch.memory["l2"].capacity
    out = []
    data = rows(ctx, f"{tag}_vector.csv", tag)
    splits = vector_splits(data)
    for i, r in enumerate(data):
        n_rows, width, dt = r.int("rows"), r.int("width"), r.get("dtype", "fp16")
        if r["op"] not in (*REDUCTIONS, *ELEMENTWISE):
            raise r.fail("op", f"expected one of {', '.join((*REDUCTIONS, *ELEMENTWISE))}, "
                               f"got '{r['op'][:30]}'")
        op = r.built("op", vector_op, r["op"], n_rows, width, dt)
        out.append(Point(f"{r['op']} {n_rows}x{width}", r.num("latency_s"),
                         (hot if in_l2(r, l2) else dev).estimate(op).latency,
                         splits[i]))
    return out


def vector_splits(data: list[Row]) -> list[str]:
    """Train / test of each row of ``<tag>_vector.csv``: a checkerboard over (row count, width)
    for each op, the op's place shifting it (row count's rank + width's rank + op's rank even:
    train), so every op trains on every width and every row count and tests on the others
    (50 of the 100 rows train the ``torch-graphs`` stack's ``kernel_cycles`` and
    ``kernel_overlap_p``, :func:`xpusim.validation._fit_gpu.fit_aten_vector`)."""
    def ranks(col: str) -> dict[int, int]:
        return {v: i for i, v in enumerate(sorted({r.int(col) for r in data}))}

    n, w = ranks("rows"), ranks("width")
    ops = {op: i for i, op in enumerate(dict.fromkeys(r["op"] for r in data))}
    return ["train" if (n[r.int("rows")] + w[r.int("width")] + ops[r["op"]]) % 2 == 0
            else "test" for r in data]


def in_l2(r: Row, l2_bytes: float) -> bool:
    """Whether a ``<tag>_vector.csv`` row's operands stay in the L2 from call to call: its
    ``copies`` rotated inputs (and, for ``copy``, their outputs; the other ops' outputs reuse
    the graph pool's buffer) fit the L2 (validation/measure_gpu.py rotates at most 64 copies,
    so rows of 1 and 64 short rows stay there)."""
    from workloads.einsum import dtype_bytes

    inputs = r.int("rows") * r.int("width") * dtype_bytes(r.get("dtype", "fp16"))
    copies = r.int("copies", 1)
    return copies * inputs * (2 if r["op"] == "copy" else 1) <= l2_bytes


#: rows of ``<tag>_power.csv`` the energy values of a preset are derived from (train, with the
#: boost lines of ``<tag>_dvfs.csv``); the others test them
ENERGY_TRAIN = ("idle", "gemv bf16")


def _power_op(r: dict):
    """The one-op estimate a ``<tag>_power.csv`` GEMM / GEMV / copy row ran."""
    from xpusim.commands.op import gemm_op, vector_op

    if r["workload"] == "copy":
        n = r.int("shape")
        width = 8192 if n % 8192 == 0 else 1
        return r.built("dtype", vector_op, "copy", n // width, width, r["dtype"])
    m, n, k = r.dims("shape")
    return r.built("dtype", gemm_op, m, n, k, 1, r["dtype"])


def _step_trace(r: dict):
    """The trace of one decode / prefill step of a power row (its shape checked)."""
    from xpusim.validation._steps import phase_trace

    phase = r["workload"].split("-")[0]
    mark = "ctx" if phase == "decode" else "p"      # a decode step's context, a prompt
    parts = r["shape"].split()
    if len(parts) != 3 or parts[1][:1] != "b" or not parts[1][1:].isdigit() or \
            not parts[2].startswith(mark) or not parts[2][len(mark):].isdigit() or \
            int(parts[1][1:]) < 1 or int(parts[2][len(mark):]) < 2:
        raise r.fail("shape", f"expected 'MODEL bBATCH {mark}N' for a {phase} step, got "
                              f"'{r['shape'][:40]}'")
    name, b, length = parts
    batch = int(b[1:])
    prompt = int(length[len(mark):]) - (1 if phase == "decode" else 0)
    return r.built("shape", phase_trace, name, 1, batch, prompt, phase, r["dtype"])


def energy_case(r: dict) -> str:
    """A power row's case name."""
    return " ".join(x for x in (r["workload"], r["dtype"], r["shape"]) if x)


def energy_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_power.csv``: joules per call (NVML board power x time per call, each workload back
    to back from a CUDA graph) vs the model's dynamic energy plus its static power over the
    model's time, both at the clock the preset's power limit allows; the idle row compares the
    static power itself (W). Train rows: :data:`ENERGY_TRAIN`."""
    from sim.sustained import op_work

    dev = device(arch)
    out = []
    train_rows = rows(ctx, f"{tag}_power.csv", tag)
    for r in train_rows + _optional(ctx, f"{tag}_power_sweep.csv", tag):
        case = energy_case(r)
        split = "train" if any(case == t or case.startswith(t + " ") for t in ENERGY_TRAIN) \
            and r in train_rows else "test"
        if r["workload"] == "idle":
            out.append(Point(case, r.num("power_w_median"), dev.static_power(), split,
                             unit="W"))
            continue
        work = step_work(_step_trace(r)) if r["workload"].endswith("-step") else \
            op_work(_power_op(r))
        t, dynamic, _ = sustained(arch, work)
        measured = r.num("power_w_median") * r.num("time_per_call_s")
        out.append(Point(case, measured, dynamic + dev.static_power() * t, split, unit="J"))
    return out


def dvfs_points(ctx: ValidationContext, tag: str, arch: str) -> list[Point]:
    """``<tag>_dvfs.csv``: the time per call of GEMMs run in bursts at a duty cycle vs the model
    at the clock the preset's power limit allows at that duty. Train: the bf16 row of the
    highest duty (``gpu.dvfs_energy_exponent`` is fitted on it); the rest test."""
    from sim.sustained import op_work
    from xpusim.commands.op import gemm_op

    data = [r for r in rows(ctx, f"{tag}_dvfs.csv", tag) if r.get("dtype")]
    top = max((r.num("duty") for r in data if r["dtype"] == "bf16"), default=None)
    out = []
    for r in data:
        op = r.built("dtype", gemm_op, *r.dims("shape"), 1, r["dtype"])
        t = sustained(arch, op_work(op), duty=r.num("duty"))[0]
        split = "train" if r["dtype"] == "bf16" and r.num("duty") == top else "test"
        out.append(Point(f"{r['dtype']} {r['shape']} duty {float(r['duty_target']):.2f}",
                         r.num("time_per_call_s"), t, split))
    return out
