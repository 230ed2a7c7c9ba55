"""Former ``pim-gpt`` reproduction module: now ``experiments/pim_gpt.yaml`` run by the generic
runner (study ``pim-decode-vs-gpu`` in :mod:`sim.studies.pim`). Kept for imports."""

from sim.studies.pim import gpt3_models  # noqa: F401
from xpusim.experiments import legacy

T4_HARNESS = "t4-pytorch-eager.yaml"
reproduce = legacy("pim-gpt")


def harness_path(name: str):
    """Path of a software-stack file in ``xpusim/validation/harness``."""
    from xpusim.validation import HARNESS_DIR

    return HARNESS_DIR / name
