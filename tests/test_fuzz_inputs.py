"""Property-based fuzzing of the CLI with hostile inputs (issue 19), short profile.

Each campaign of :mod:`tests.fuzz_harness` (arch YAML from every preset, sweep specs from
``examples/sweeps``, config.json families, CLI arguments at their extremes) draws its mutations
from hypothesis (``st.randoms()``: failures shrink) and checks, for every input: exit 0 or 2,
no traceback, at most one line on stderr, within 60 s and 8 GB, finite numbers in every JSON
output. The default suite runs ``FUZZ_EXAMPLES`` inputs per campaign (< 60 s in all); the long
profile (>= 10,000 inputs) is ``python benchmarks/fuzz_inputs.py``.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_harness import CAMPAIGNS, make_case, run_case  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("XPUSIM_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def _check(campaign: str, rnd: random.Random) -> None:
    case = make_case(campaign, rnd)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="xpusim-fuzz-") as tmp:
        os.chdir(tmp)  # anything written to a relative default path lands here
        try:
            outcome = run_case(case, Path(tmp) / "case", timeout_s=60.0, memory_mb=8192.0)
        finally:
            os.chdir(cwd)
    assert not outcome.problem, (f"{outcome.problem}: {outcome.detail}\n"
                                 f"argv: {outcome.argv}\nfiles: "
                                 f"{ {k: v[:500] for k, v in case.files.items()} }")


@pytest.mark.parametrize("campaign", sorted(CAMPAIGNS))
def test_fuzz_campaign(campaign):
    @SETTINGS
    @given(st.randoms(use_true_random=False))
    def prop(rnd):
        _check(campaign, rnd)

    prop()
