"""Former ``splitwise`` reproduction module: now ``experiments/splitwise.yaml`` run by the
generic runner (study ``phase-split-pools`` in :mod:`dse.studies.serve_pools`). Kept for
imports."""

from xpusim.experiments import legacy

MODEL = "llama2-70b"
reproduce = legacy("splitwise")
