"""Request length distributions for serving experiments (seeded).

Input and output lengths are drawn independently from geometric distributions (support 1, 2,
...; the maximum-entropy distribution of a positive integer with a given mean), resampled until
``input + output <= max_len``. The geometric parameters are solved (fixed-point iteration on a
large seeded sample) so that the *truncated* means equal the published dataset means.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim.devices.base import SimError


@dataclass(frozen=True)
class Dataset:
    """Published mean input/output lengths of a request dataset."""

    name: str
    mean_in: float
    mean_out: float
    source: str


DATASETS = {
    "sharegpt": Dataset("sharegpt", 80, 296, "NeuPIMs (ASPLOS'24) evaluation: ShareGPT mean input "
                                             "80, output 296 tokens (shared/reference/seeds)"),
    "alpaca": Dataset("alpaca", 12, 56, "NeuPIMs (ASPLOS'24) evaluation: Alpaca mean input 12, "
                                        "output 56 tokens (shared/reference/seeds)"),
}


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise SimError(f"--dataset: unknown dataset '{name}' (expected one of "
                       f"{', '.join(DATASETS)})") from None


def _draw(mean_in: float, mean_out: float, n: int, rng: np.random.Generator,
          max_len: int) -> tuple[np.ndarray, np.ndarray]:
    ins = np.empty(0, np.int64)
    outs = np.empty(0, np.int64)
    while ins.shape[0] < n:
        k = 2 * (n - ins.shape[0]) + 16
        a = rng.geometric(1.0 / mean_in, k)
        b = rng.geometric(1.0 / mean_out, k)
        keep = a + b <= max_len
        ins = np.concatenate([ins, a[keep]])
        outs = np.concatenate([outs, b[keep]])
    return ins[:n].astype(np.int64), outs[:n].astype(np.int64)


@lru_cache(maxsize=32)
def _parameters(mean_in: float, mean_out: float, max_len: int) -> tuple[float, float]:
    """Geometric means whose truncated (in + out <= max_len) means are the published ones."""
    if mean_in + mean_out >= max_len:
        raise SimError(f"mean lengths {mean_in}+{mean_out} do not fit max_len {max_len}")
    p_in, p_out = mean_in, mean_out
    for _ in range(8):
        a, b = _draw(p_in, p_out, 200_000, np.random.default_rng(12345), max_len)
        p_in = max(1.0 + 1e-9, p_in * mean_in / a.mean())
        p_out = max(1.0 + 1e-9, p_out * mean_out / b.mean())
    return p_in, p_out


def sample(dataset: Dataset, n: int, seed: int, max_len: int = 1024) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """``n`` (input, output) length pairs with the dataset's means, in + out <= ``max_len``."""
    p_in, p_out = _parameters(dataset.mean_in, dataset.mean_out, max_len)
    return _draw(p_in, p_out, n, np.random.default_rng(seed), max_len)
