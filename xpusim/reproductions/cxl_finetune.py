"""Former ``cxl-finetune`` reproduction module: now ``experiments/cxl_finetune.yaml`` run by the
generic runner (study ``cxl-finetune-placement`` in :mod:`sim.studies.cxl`). Kept for imports."""

from sim.studies.cxl import arch_with_ddr as _arch  # noqa: F401
from sim.studies.cxl import optimizer_step_seconds as _optimizer_step  # noqa: F401
from sim.studies.cxl import training_step as _step  # noqa: F401
from xpusim.experiments import legacy

reproduce = legacy("cxl-finetune")
