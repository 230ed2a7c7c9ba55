"""Former ``cosma`` reproduction module: now ``experiments/cosma.yaml`` run by the generic
runner (study ``scratchpad-schedule`` in :mod:`sim.studies.scratchpad`). Kept for imports."""

from sim.studies.scratchpad import (  # noqa: F401
    BUDGET_STEPS,
    DAGS,
    attention_dag,
    budgets,
    decoder_layer_dag,
    inception_dag,
)
from xpusim.experiments import legacy

TARGET_CUT = 0.84   # arXiv:2311.18246 abstract (the claim's target is in experiments/cosma.yaml)
reproduce = legacy("cosma")
