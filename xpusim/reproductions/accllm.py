"""Former ``accllm`` reproduction module: now ``experiments/accllm.yaml`` run by the generic
runner (study ``fpga-decode-designs`` in :mod:`sim.studies.fpga`). Kept for imports."""

from sim.studies.fpga import with_port_clock as _with_port_clock  # noqa: F401
from xpusim.experiments import legacy

SHORT = (128, 512)    # the experiment's short context (prompt, generated tokens)
reproduce = legacy("accllm")
