"""A fit's objective prices its grid as the engine does: a GPU's GEMMs of the grid from arrays
at once (``xpusim.validation.estimates``: the same costs as one by one), the train rows alone,
the grid's ops read once per context and each fit's arch parsed once (``xpusim validate
--fit`` 95-128 -> 39-44 s, the same values)."""

from __future__ import annotations

import pytest

from arch import load_arch
from sim.devices.base import device_for
from xpusim.commands.op import gemm_op
from xpusim.validation import estimates, mape


def _grid() -> list:
    """80 GEMMs of a layer-GEMM grid (tokens x weights), 40 fp16 and 40 bf16 (a dtype's
    GEMMs are priced at once from 32 on: ``sim.gpu.gemm.prefill_best_gemm``)."""
    return [gemm_op(m, n, k, 1, dtype) for dtype in ("fp16", "bf16")
            for m in (1, 16, 128, 1024, 4096)
            for n, k in ((4096, 4096), (11008, 4096), (4096, 11008), (12288, 4096),
                         (5120, 5120), (13824, 5120), (5120, 13824), (15360, 5120))]


@pytest.mark.parametrize("arch", ["a100", "h100"])
def test_a_grid_priced_at_once_is_each_estimate_bit_for_bit(arch):
    """Every cost of the grid priced at once equals a fresh device's estimate op by op
    (latency, energies, the kernel's tile and split), and the GEMMs were priced from arrays
    (the device's ``settled`` blocks hold all 80): without ``prefetch`` they are not."""
    ops = _grid()
    dev, alone = device_for(load_arch(arch), "tile"), device_for(load_arch(arch), "tile")
    costs = estimates(dev, ops)
    assert sum(len(at) for at, _ in dev.settled) == len(ops)
    for op, cost in zip(ops, costs, strict=True):
        one = alone.estimate(op)
        assert (cost.latency, cost.energy, cost.roofline) == (one.latency, one.energy,
                                                              one.roofline)
        assert (cost.detail["tile"], cost.detail["split_k"]) == (one.detail["tile"],
                                                                 one.detail["split_k"])
    assert not getattr(alone, "settled", None)


def test_an_objective_reads_the_train_rows_of_a_grid_read_once(ref_dir, monkeypatch):
    """Vidur's A100 GEMM rows: ``only="train"`` gives the train points of the whole suite's,
    case for case and float for float (so the fit's MAPE, and the values it finds, are the
    same); the rows are read once per context (a second call reads no file)."""
    from xpusim.validation import ValidationContext, _vidur
    from xpusim.validation._fit_gpu import _device

    ctx = ValidationContext(ref_dir)
    dev = _device("a100", {"tensor_efficiency": 0.8})
    whole = _vidur.gemm_points(ctx, "a100", dev)
    train = [p for p in whole if p.split == "train"]
    assert 0 < len(train) < len(whole)

    def no_second_read(*_a, **_k):
        raise AssertionError("the grid's rows were read again")

    monkeypatch.setattr(_vidur, "gemm_rows", no_second_read)
    fresh = _device("a100", {"tensor_efficiency": 0.8})
    got = _vidur.gemm_points(ctx, "a100", fresh, only="train")
    assert [(p.case, p.measured, p.predicted, p.note) for p in got] == \
        [(p.case, p.measured, p.predicted, p.note) for p in train]
    assert mape(got) == mape(train)


def test_parsed_once_builds_each_device_from_a_fresh_copy_and_rereads_an_edited_file(
        tmp_path, monkeypatch):
    """A fit's arch is parsed once (one ``load_arch_data`` for three devices), each device
    gets its own overrides on a fresh copy (the second does not see the first's), and a file
    edited between two fits is read again by the next one."""
    import arch as arch_pkg
    from xpusim.validation import parsed_once

    path = tmp_path / "gpu.yaml"
    path.write_text("extends: a100\ngpu:\n  tensor_efficiency: 0.7\n")
    reads = []
    real = arch_pkg.load_arch_data
    monkeypatch.setattr(arch_pkg, "load_arch_data", lambda ref: reads.append(ref) or real(ref))
    fit = parsed_once(path)
    first = fit({"gpu": {"tensor_efficiency": 0.9}})
    plain, again = fit(None), fit({"gpu": {"gemm_fixed": 1e-6}})
    assert len(reads) == 1
    assert (first.gpu.tensor_efficiency, plain.gpu.tensor_efficiency,
            again.gpu.tensor_efficiency) == (0.9, 0.7, 0.7)
    assert again.gpu.gemm_fixed == 1e-6 != plain.gpu.gemm_fixed == load_arch("a100").gpu.gemm_fixed
    path.write_text("extends: a100\ngpu:\n  tensor_efficiency: 0.6\n")
    assert fit(None).gpu.tensor_efficiency == 0.7
    assert parsed_once(path)(None).gpu.tensor_efficiency == 0.6 and len(reads) == 2


def test_own_grid_train_points_are_the_suites_train_points(tmp_path_factory):
    """Our H200 GEMM grid: the fit's ``only="train"`` points are the whole grid's train points
    (the even rows), float for float, on a fitted device; without a device, the suite's train
    points leave out the sustained rows (held out: ``test``), which its ``test`` points end
    with."""
    from conftest import project_ctx

    from xpusim.validation._fit_gpu import _device
    from xpusim.validation._own_gpu import gemm_points

    ctx = project_ctx(tmp_path_factory, "h200", "h200_gemm.csv")
    dev = _device("h200", {"tensor_efficiency": 0.8})
    whole = gemm_points(ctx, "h200", "h200", model=dev, split=True)
    got = gemm_points(ctx, "h200", "h200", model=_device("h200", {"tensor_efficiency": 0.8}),
                      split=True, only="train")
    assert [(p.case, p.measured, p.predicted) for p in got] == \
        [(p.case, p.measured, p.predicted) for p in whole[0::2]]
    assert all(p.split == "train" for p in got) and len(got) == (len(whole) + 1) // 2
    train = gemm_points(ctx, "h200", "h200", split=True, only="train")
    assert [p.case for p in train] == [p.case for p in got]
    test = gemm_points(ctx, "h200", "h200", split=True, only="test")
    assert test[-1].case.startswith("sustained ") and all(p.split == "test" for p in test)
