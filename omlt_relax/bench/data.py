"""Seeded data sets of the benchmark functions.

:func:`sample_function` samples a :class:`~omlt_relax.bench.functions.BenchFunction` over its box
into a :class:`~omlt_relax.data.Dataset`; splits, standardization and its folding into the network
are library code in :mod:`omlt_relax.data` (re-exported here).
"""

from __future__ import annotations

import numpy as np

import omlt_relax.data as _data
from omlt_relax.bench.functions import BenchFunction
from omlt_relax.data import *  # noqa: F403
from omlt_relax.data import Dataset, make_dataset


def sample_function(
    fn: BenchFunction,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 2000,
    seed: int = 0,
    noise: float = 0.0,
) -> Dataset:
    """Uniform samples of ``fn`` over its box, split three ways; reproducible from ``seed``.

    ``noise`` adds Gaussian noise of that standard deviation, relative to the standard deviation of
    the clean training targets, to the training and validation targets (the test targets stay
    clean, so test RMSE measures the error against the true function).
    """
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 1:
            msg = f"{name} must be at least 1, got {n}"
            raise ValueError(msg)
    rng = np.random.default_rng(seed)
    lo, hi = fn.box
    n = n_train + n_val + n_test
    x = rng.uniform(lo, hi, size=(n, fn.dim))
    y = fn(x)[:, None]
    if noise > 0:
        scale = noise * float(y[:n_train].std())
        y[: n_train + n_val] += rng.normal(0.0, scale, size=(n_train + n_val, 1))
    return make_dataset(x, y, n_train, n_val, lo, hi, fn.name)


__all__ = [*_data.__all__, "sample_function"]
