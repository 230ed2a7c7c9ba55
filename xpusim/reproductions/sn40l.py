"""Former ``sn40l`` reproduction module: now ``experiments/sn40l.yaml`` run by the generic
runner (study ``dataflow-coe`` in :mod:`sim.studies.dataflow`). Kept for imports."""

from sim.studies.dataflow import copy_times, switching, with_fusion  # noqa: F401
from xpusim.experiments import legacy

reproduce = legacy("sn40l")
