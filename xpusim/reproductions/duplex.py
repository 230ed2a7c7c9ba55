"""Former ``duplex`` reproduction module: now ``experiments/duplex.yaml`` run by the generic
runner (study ``xpu-pim-serving`` in :mod:`sim.studies.xpu_pim`). Kept for imports."""

from sim.studies.xpu_pim import energy_variants, serving_rate, with_energy  # noqa: F401
from xpusim.experiments import legacy

reproduce = legacy("duplex")
