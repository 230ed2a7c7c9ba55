"""Former ``lean-attention`` reproduction module: now ``experiments/lean_attention.yaml`` run by
the generic runner (study in :mod:`sim.studies.gpu_attention`). Kept for imports."""

from sim.studies.gpu_attention import attention_grid as run_grid  # noqa: F401
from sim.studies.gpu_attention import contexts_up_to as _contexts  # noqa: F401
from xpusim.experiments import legacy

reproduce = legacy("lean-attention")
