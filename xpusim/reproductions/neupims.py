"""Former ``neupims`` reproduction module: now ``experiments/neupims.yaml`` run by the generic
runner (study ``npu-pim-decode`` in :mod:`sim.studies.npu_pim`). Kept for imports."""

from sim.studies.npu_pim import decode_systems as _systems  # noqa: F401
from sim.studies.npu_pim import gmean as _gmean  # noqa: F401
from xpusim.experiments import legacy

reproduce = legacy("neupims")
