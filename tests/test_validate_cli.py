"""``xpusim validate`` out of the box: misses reported with exit 0 (1 with --strict), the
reference data found from any folder, skipped suites and where it looked named."""

import json
import math

import pytest

from xpusim.cli import main
from xpusim.paths import reference_candidates, reference_dir


def _miss_suite(monkeypatch):
    """A one-point suite whose MAPE (50 %) exceeds its threshold (10 %)."""
    import types

    import xpusim.commands.validate as v
    from xpusim.validation import Point

    mod = types.SimpleNamespace(NAME="toy", THRESHOLD=0.1, DESCRIPTION="toy",
                                run=lambda ctx: [Point("c", 1.0, 1.5)])
    monkeypatch.setattr("xpusim.plugins.discover", lambda group: {"toy": mod})
    return v


@pytest.mark.parametrize("strict,code", [(False, 0), (True, 1)])
def test_miss_exits_zero_unless_strict(monkeypatch, tmp_path, capsys, strict, code):
    _miss_suite(monkeypatch)
    argv = ["validate", "--reference-dir", str(tmp_path), "--out", str(tmp_path), "--json"]
    assert main(argv + (["--strict"] if strict else [])) == code
    cap = capsys.readouterr()
    data = json.loads(cap.out)
    assert data["missed"] == ["toy"] and math.isclose(data["suites"][0]["mape"], 0.5)
    assert cap.err.count("\n") == 1 and "toy" in cap.err and "missed" in cap.err


def test_reference_found_from_a_subfolder_and_from_elsewhere(monkeypatch, tmp_path):
    monkeypatch.delenv("XPUSIM_REFERENCE_DIR", raising=False)
    ref = tmp_path / "shared" / "reference"
    ref.mkdir(parents=True)
    deep = tmp_path / "work" / "main" / "docs"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert reference_dir() == ref
    # from an unrelated folder: the checkout's ../shared/reference is still a candidate
    monkeypatch.chdir("/")
    from xpusim.paths import SOURCE_ROOT

    assert SOURCE_ROOT.parent / "shared" / "reference" in reference_candidates()


def test_no_reference_names_where_it_looked(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XPUSIM_REFERENCE_DIR", str(tmp_path / "absent"))
    assert main(["validate", "--out", str(tmp_path), "--suite", "a100-gemm"]) == 0
    cap = capsys.readouterr()
    assert "no reference data found" in cap.err and str(tmp_path / "absent") in cap.err
    assert "skipped 1 of 1 suites: a100-gemm" in cap.out


def test_fit_without_reference_data_says_skipped_not_traceback(monkeypatch, capsys):
    """`xpusim validate --fit` prints each fit whose data is absent as a 'skipped:' line and exits
    0 (it raised SuiteSkipped as a traceback before); a fit that runs prints its values in the
    units the presets use (a host cost in us, not 0.000 s)."""
    from xpusim.commands import validate as V
    from xpusim.validation import (
        SuiteSkipped,
        _fit,
        _fit_gpu,
        h100_allreduce_nccltests,
        trtllm_e2e,
        vidur_allreduce_a100,
    )

    def absent(*_a, **_k):
        raise SuiteSkipped("/nowhere/x.csv not found")

    for mod, name in ((_fit, "fit_llmcompass"), (_fit, "fit_splitwise"),
                      (_fit_gpu, "fit_vidur_gemm"), (_fit_gpu, "fit_own_gemm"),
                      (_fit_gpu, "fit_vidur_a40"),
                      (_fit_gpu, "derive_energy"), (_fit_gpu, "fit_dvfs_exponent"),
                      (_fit_gpu, "fit_attention_overlap"), (_fit_gpu, "fit_aten_vector"),
                      (_fit_gpu, "fit_amd_maf"), (trtllm_e2e, "fit_dispatch"),
                      (vidur_allreduce_a100, "fit_nccl"), (vidur_allreduce_a100, "fit_network"),
                      (h100_allreduce_nccltests, "fit")):
        monkeypatch.setattr(mod, name, absent)
    monkeypatch.setattr(_fit_gpu, "fit_mi210_gemm",
                        lambda ctx: {"gpu.tensor_efficiency": 0.676,
                                     "software.dispatch.matmul": 34.1e-6})
    assert V._print_fits(None) == 0
    out = capsys.readouterr().out
    assert out.count("skipped: /nowhere/x.csv not found") == 13
    assert "software.dispatch.matmul: 34.10 us" in out and "gpu.tensor_efficiency: 0.676" in out
    # with progress (a terminal): one step per fit, each named, the bar closed before the
    # values are printed, the same text
    import xpusim.progress as P

    seen: list = []

    class Bar:
        def __init__(self, total, desc, unit, on):
            seen.append(("bar", total, unit, on))

        def set_description_str(self, text):
            seen.append(("desc", text))

        def update(self, n=1):
            seen.append(("step", n, capsys.readouterr().out))

        def close(self):
            seen.append(("close",))

    monkeypatch.setattr(P, "bar", Bar)
    assert V._print_fits(None, True) == 0
    assert capsys.readouterr().out == out
    steps = [e for e in seen if e[0] == "step"]
    assert seen[0] == ("bar", 14, "fit", True) and len(steps) == 14 and seen[-1] == ("close",)
    assert all(e[1] == 1 and e[2] == "" for e in steps)   # nothing printed under the bar
    assert ("desc", "validate --fit: MI210 GEMMs") in seen
    # a fit that fails: the ones before it are printed all the same, then the error
    monkeypatch.setattr(_fit_gpu, "fit_amd_maf", lambda ctx: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        V._print_fits(None, True)
    done = capsys.readouterr().out
    assert "software.dispatch.matmul: 34.10 us" in done and "MI300X" not in done
    assert seen[-1] == ("close",)
