"""Former ``instinfer`` reproduction module: now ``experiments/instinfer.yaml`` run by the
generic runner (study ``csd-attention-vs-offload`` in :mod:`sim.studies.csd`). Kept for
imports."""

from xpusim.experiments import legacy

reproduce = legacy("instinfer")
