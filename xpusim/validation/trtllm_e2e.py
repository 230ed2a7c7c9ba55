"""TensorRT-LLM v0.9.0 static-batch throughput and first-token latency (NVIDIA's published tables).

The rows (``validation/trtllm/trtllm_v0.9.0_static.csv``, see its README) are NVIDIA's
``gptSessionBenchmark`` runs: a static batch of ``batch`` prompts of ``input_len`` tokens, each
generating ``output_len`` tokens, on H100 SXM (FP8) and A100 SXM 80GB (FP16). The prediction is
what ``xpusim run`` computes (:func:`sim.run.simulate`, the same engine a user runs)::

    xpusim run --arch dgx-h100|dgx-a100 --software validation/trtllm/gptsession-v0.9.yaml \\
        --model M --batch B --prompt I --gen O --tp T --dtype D --kv-dtype D \\
        --attention flash --expert-counts <top_k ones, then zeros>

with ``--dtype fp16 --weights fp8 --kv-dtype fp8`` for an FP8 row (:func:`scenario`).

(``gptsession-v0.9-xqa.yaml`` for the LLaMA 70B rows, whose commands enable XQA). Each row is
compared as a time, so a negative error means the model is too optimistic: a throughput row as
the batch's generate() time ``B * O / (throughput per GPU * T)`` against ``latency_s``, a
first-token row as ``ttft_s`` of the ``--gen 1`` run.

Facts of the measured runs the scenario carries (sources in the CSV's README):

* ``run_dtype``: Mixtral ran FP16 on H100 (FP8 quantization of Mixtral arrived in v0.10.0);
* FP8 recipe: only the linear layers' GEMM operands are FP8 (weights stored FP8, the activation
  quantised per tensor for the GEMM, the output back in fp16: TensorRT-LLM's ``FP8Linear``), so an
  FP8 row runs with 16-bit activations, FP8 weights and an FP8 KV cache, and the stacks'
  ``software.gemm_dtype: fp8`` prices the FP8-weight GEMMs at the FP8 tensor rate;
* routing: gptSessionBenchmark fills every prompt with ``padId`` and decodes greedily, so every
  token of every sequence has the same hidden state and the router sends all tokens to the same
  ``top_k`` experts (:data:`ROUTING`).

* MoE: the experts' GEMMs are TensorRT-LLM v0.9's CUTLASS 2.x SM80 grouped GEMM (its tiles; on
  H100 the Ampere ``mma.sync`` path at 2/3 of the tensor peak): the stacks'
  ``software.moe_gemm: cutlass-sm80`` (:mod:`sim.gpu.moe`, README.md);

* host: gptSessionBenchmark runs without CUDA graphs, so the host enqueues every kernel of the
  TensorRT engine; the stacks are ``async`` with one per-op enqueue cost (``dispatch.default``).

Split: rows in file order, even rows ``train`` and odd rows ``test`` (:func:`alternate_split`).
One value is FITTED on the train rows: the per-op enqueue cost (:func:`fit_dispatch`, a grid
search of the train MAPE replaying the async host on each row's GPU latencies,
:func:`replay`). It binds only where kernels are shorter than the host's enqueue, i.e. the
H100 128-token first-token rows (all train rows: the test rows cannot check it; README.md).
Decode attention of the non-XQA rows is TensorRT-LLM's masked MHA (``mmha``): one CTA per
(query head, sequence), a GQA group's CTAs side by side in the grid so DRAM serves the group's
cache once while each CTA streams it from L2 at the ordinary-load rate (README.md).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from xpusim.validation import (
    PROJECT_DATA,
    Point,
    SuiteSkipped,
    ValidationContext,
    alternate_split,
)
from xpusim.validation._table import read_rows

NAME = "trtllm-e2e"
DESCRIPTION = ("TensorRT-LLM v0.9.0 static batching, H100 FP8 / A100 FP16, Llama/Mistral/Mixtral "
               "throughput and first-token latency (NVIDIA performance.md)")
THRESHOLD = 0.15
DATA_DIR = "trtllm"
FILE = "trtllm_v0.9.0_static.csv"
#: the arch preset of each table's GPU (SXM 80 GB nodes, NVLink for TP > 1)
ARCH = {"h100": "dgx-h100", "a100": "dgx-a100"}
#: the v0.9 GptSession stack (masked MHA decode attention) and its XQA variant
STACK = "gptsession-v0.9.yaml"
XQA_STACK = "gptsession-v0.9-xqa.yaml"
#: models whose benchmark commands set ``TRTLLM_ENABLE_XQA=1`` (TensorRT-LLM v0.9.0
#: performance.md, "Llama2-70b" throughput and first-token loops); the others use masked MHA
XQA_MODELS = ("llama2-70b",)
#: how the benchmark's tokens reach the experts: ``identical`` (all tokens to the same ``top_k``
#: experts, as gptSessionBenchmark's all-``padId`` prompts and greedy decoding make them) or
#: ``uniform`` (xpusim's default spread)
ROUTING = "identical"


def load_rows(project_data: Path = PROJECT_DATA) -> list[dict]:
    """The published rows with their split (``split`` key), in file order."""
    path = project_data / DATA_DIR / FILE
    if not path.is_file():
        raise SuiteSkipped(f"{path} not found (the TensorRT-LLM table ships with the checkout)")
    rows = read_rows(path)
    for row, split in zip(rows, alternate_split(len(rows)), strict=True):
        row["split"] = split
    return rows


def stack_file(row: dict, project_data: Path = PROJECT_DATA) -> Path:
    """The software-stack YAML of a row (XQA variant for :data:`XQA_MODELS`)."""
    name = XQA_STACK if row["xpusim_model"] in XQA_MODELS else STACK
    return project_data / DATA_DIR / name


@lru_cache(maxsize=16)
def _arch(gpu: str, stack: str):
    from arch.software import load_arch_with_software

    return load_arch_with_software(ARCH[gpu], stack)


def expert_counts(model) -> tuple[float, ...]:
    """Relative expert loads of the benchmark (``()``: the tracer's uniform spread)."""
    if not model.is_moe or ROUTING != "identical":
        return ()
    return (1.0,) * model.top_k + (0.0,) * (model.n_experts - model.top_k)


def scenario(row: dict):
    """The :class:`Scenario` of one row (``--gen 1`` for a first-token row)."""
    from workloads.models import get_model
    from workloads.scenario import Scenario

    dt = row.get("run_dtype") or row["precision"]
    act, weights = ("fp16", "fp8") if dt == "fp8" else (dt, "")   # FP8 recipe: GEMM operands
    return Scenario(batch=int(row["batch"]), prompt_len=int(row["input_len"]),
                    gen_len=int(row["output_len"]), dtype=act, kv_dtype=dt, weights=weights,
                    tp=int(row["tp"]), attention="flash",
                    expert_counts=expert_counts(get_model(row["xpusim_model"])))


def measured_time(row: dict) -> float:
    """The row's published figure as a time in s (batch generate() time, or first-token)."""
    value = float(row["value"])
    if row["table"] == "first_token":
        return value * 1e-3
    return int(row["batch"]) * int(row["output_len"]) / (value * int(row["tp"]))


def predict(row: dict, stack: str | None = None) -> float:
    """The simulated time (s) of a row: ``latency_s``, or ``ttft_s`` for a first-token row."""
    from sim.run import simulate
    from workloads.models import get_model

    arch = _arch(row["gpu"], stack or str(stack_file(row)))
    m = simulate(arch, get_model(row["xpusim_model"]), scenario(row)).metrics
    return m["ttft_s"] if row["table"] == "first_token" else m["latency_s"]


def case(row: dict) -> str:
    kind = "tput" if row["table"] == "throughput" else "ttft"
    return (f"{kind} {row['gpu']} {row.get('run_dtype') or row['precision']} "
            f"{row['xpusim_model']} b{row['batch']} tp{row['tp']} i{row['input_len']} "
            f"o{row['output_len']}")


def usable(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows with a model and GPU preset, and one note per skipped row."""
    from workloads.models import MODEL_PRESETS

    keep, skipped = [], []
    for row in rows:
        if row["xpusim_model"] not in MODEL_PRESETS or row["gpu"] not in ARCH:
            skipped.append(f"{row['model']} on {row['gpu']}: no xpusim model/GPU preset")
        else:
            keep.append(row)
    return keep, skipped


def run(ctx: ValidationContext) -> list[Point]:
    rows, skipped = usable(load_rows(ctx.project_data))
    for note in skipped:
        sys.stderr.write(f"xpusim: warning: trtllm-e2e skips {note}\n")
    if not rows:
        raise SuiteSkipped("no row of the TensorRT-LLM table has a model and GPU preset")
    return [Point(case(r), measured_time(r), predict(r), r["split"], "s",
                  note=f"published {r['value']} {r['unit']}") for r in rows]


def replay_inputs(row: dict) -> tuple:
    """GPU latency (s) of every op of a row's run (``alone_s``: the op's own cost, without any
    wait for the host) in engine order, and where each forward pass opens: what the async host
    replays (GPU latencies do not depend on the host costs)."""
    import numpy as np

    from sim.run import simulate
    from workloads.models import get_model

    arch = _arch(row["gpu"], str(stack_file(row)))
    ops = simulate(arch, get_model(row["xpusim_model"]), scenario(row)).ops.sort_values("id")
    phase, step = ops["phase"].to_numpy(), ops["step"].to_numpy()
    new = np.ones(len(ops), dtype=bool)
    new[1:] = (phase[1:] != phase[:-1]) | (step[1:] != step[:-1])
    return ops["alone_s"].to_numpy(dtype=float), new


def replay(inputs, dispatch: float, per_step: float = 0.0) -> float:
    """A row's simulated time (s) under an async host spending ``dispatch`` s per kernel and
    ``per_step`` s per forward pass (:func:`sim.gpu.host.async_ends`, the engine's path);
    ``inputs``: :func:`replay_inputs`, or an :class:`~sim.gpu.host.AsyncReplay` of them (the
    same floats, its host-independent parts formed once)."""
    import numpy as np

    from sim.gpu.host import AsyncReplay

    prepared = inputs if isinstance(inputs, AsyncReplay) else AsyncReplay(*inputs)
    n = len(prepared.lat)
    return float(prepared.last_end(np.full(n, dispatch), np.full(n, per_step)))


def fit_dispatch(rows: list[dict] | None = None,
                 grid_us: tuple[float, float, float] = (0.0, 40.0, 0.1)) -> tuple[float, float]:
    """FITTED per-kernel host enqueue cost (s) of the GptSession stacks: the value on a grid
    (``start, stop, step`` in us) that minimises the MAPE of the ``train`` rows (first-token and
    throughput together); returns (dispatch s, train MAPE)."""
    import numpy as np

    from sim.gpu.host import AsyncReplay

    rows = rows if rows is not None else usable(load_rows())[0]
    train = [(AsyncReplay(*replay_inputs(r)), measured_time(r)) for r in rows
             if r["split"] == "train"]
    best = (0.0, np.inf)
    for d in np.arange(grid_us[0], grid_us[1] + 1e-9, grid_us[2]) * 1e-6:
        err = float(np.mean([abs(replay(x, d) / m - 1) for x, m in train]))
        if err < best[1] - 1e-12:
            best = (float(d), err)
    return best

