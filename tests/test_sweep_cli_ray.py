"""The Ray executor: a local Ray instance on 127.0.0.1 gives the same results as the process pool,
both in process and through ``xpusim sweep --executor ray --address``.

Ray comes with the ``test`` extra; without it the test skips, except in CI (``CI`` set), where a
missing Ray is a failure. One Ray instance (2 CPUs, no dashboard, 128 MiB object store) serves
the whole module, so Ray's start-up is paid once (~5-10 s on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from dse import load_results, load_sweep, run_sweep
from dse.executors import RayExecutor

SPEC = """
name: ray-check
arch: h100
axes:
  gpu.sm_count: [66, 100, 132]
  memory.hbm.bandwidth: [1.6 TB/s, 2.4 TB/s, 3.35 TB/s]
  scenario.batch: [1, 4, 16]
derived:
  gpu.tensor_flops.fp16: "989.4e12 * gpu.sm_count / 132"
workloads:
  - {model: llama2-7b, layers: 2, prompt_len: 64, gen_len: 3}
objectives: [{min: tpot_s}, {min: energy_per_token_J}]
fidelity: tile
"""

if importlib.util.find_spec("ray") is None:
    if os.environ.get("CI"):
        pytest.fail("ray is not installed; CI installs it with the test extra", pytrace=False)
    pytest.skip("ray is not installed (pip install 'xpusim[ray]')", allow_module_level=True)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "spec.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def ray_instance(spec_path):
    """A local Ray instance started the way ``--executor ray`` starts one."""
    executor = RayExecutor(load_sweep(spec_path), workers=2)
    try:
        yield executor
    finally:
        executor.close()


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["eval_s"]).reset_index(drop=True)


def test_ray_and_local_executors_give_identical_results(ray_instance, spec_path, tmp_path):
    import ray

    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), address
    spec = load_sweep(spec_path)
    local = run_sweep(spec, tmp_path / "local", workers=2, report=False)
    in_process = run_sweep(spec, tmp_path / "ray", executor="ray", workers=2, report=False)
    assert ray.is_initialized()  # the sweep used the running instance and left it running
    cli = subprocess.run(
        [sys.executable, "-m", "xpusim", "sweep", str(spec_path), "--out",
         str(tmp_path / "ray-cli"), "--executor", "ray", "--address", address, "--json"],
        capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    summary = json.loads(cli.stdout)
    assert summary["executor"] == "ray" and summary["pareto"]
    assert local["n_points"] == in_process["n_points"] == summary["n_points"] == 27
    base = comparable(load_results(tmp_path / "local"))
    assert (base["status"] == "ok").all()
    pd.testing.assert_frame_equal(comparable(load_results(tmp_path / "ray")), base)
    pd.testing.assert_frame_equal(comparable(load_results(tmp_path / "ray-cli")), base)
