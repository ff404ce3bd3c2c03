"""Training data: train/validation/test splits, and standardization folded into the network.

Networks are trained on standardized data, :math:`\\tilde x = (x - \\mu_x)/s_x`,
:math:`\\tilde y = (y - \\mu_y)/s_y` (statistics of the training split), over the standardized box.
After training, :func:`fold_standardization` writes the two affine maps into the first and last
``Linear`` layers, so the exported network takes and returns original units:

.. math::

    W_1' = W_1 \\operatorname{diag}(1/s_x),\\quad b_1' = b_1 - W_1' \\mu_x,\\qquad
    W_L' = \\operatorname{diag}(s_y) W_L,\\quad b_L' = s_y \\odot b_L + \\mu_y.

Hidden pre-activations are unchanged by the fold, so bounds, stable and unstable neurons of the
trained network carry over exactly to the exported one. Arrays are float64, shape ``(N, d)`` for
inputs and ``(N, m)`` for targets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from omlt_relax.network import as_box, parse_network

Array = np.ndarray

#: A column whose standard deviation is below this times ``max(1, |mean|)`` counts as constant:
#: it is centred but not scaled (dividing by a near-zero deviation made weights near 1e12).
MIN_STD = 1e-12


def _scale(a: Array) -> Array:
    """Per-column standard deviation, 1 for (nearly) constant columns."""
    std = a.std(axis=0)
    const = ~(std > MIN_STD * np.maximum(1.0, np.abs(a.mean(axis=0))))
    return np.where(const, 1.0, std)


@dataclass(frozen=True)
class Standardizer:
    """Per-column affine scaling of inputs and targets (fitted on the training split)."""

    x_mean: Array
    x_std: Array
    y_mean: Array
    y_std: Array

    @classmethod
    def fit(cls, x: Array, y: Array) -> Standardizer:
        """Means and standard deviations of the columns of ``x`` ``(N, d)`` and ``y`` ``(N, m)``."""
        return cls(x.mean(axis=0), _scale(x), y.mean(axis=0), _scale(y))

    def x(self, x: Array) -> Array:
        """Standardize inputs."""
        return (x - self.x_mean) / self.x_std

    def y(self, y: Array) -> Array:
        """Standardize targets."""
        return (y - self.y_mean) / self.y_std

    def y_inverse(self, y: Array) -> Array:
        """Targets back in original units."""
        return y * self.y_std + self.y_mean

    def box(self, lower: Array, upper: Array) -> tuple[Array, Array]:
        """The input box in standardized coordinates."""
        return self.x(np.asarray(lower, np.float64)), self.x(np.asarray(upper, np.float64))


@dataclass
class Dataset:
    """Train/validation/test splits in original units, an input box, and the fitted scaling.

    Attributes:
        x_train, y_train, x_val, y_val, x_test, y_test: float64, ``(N, d)`` and ``(N, m)``.
        lower, upper: the input box (original units), shape ``(d,)``.
        scaler: :class:`Standardizer` fitted on the training split.
        name: what the data is (function name or CSV path).
    """

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    lower: Array
    upper: Array
    scaler: Standardizer
    name: str = ""

    @property
    def n_inputs(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.y_train.shape[1])

    @property
    def std_box(self) -> tuple[Array, Array]:
        """The input box in standardized coordinates (the box the trainer's bounds use)."""
        return self.scaler.box(self.lower, self.upper)

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardized float32 tensors ``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        return (
            torch.as_tensor(self.scaler.x(x), dtype=torch.float32),
            torch.as_tensor(self.scaler.y(y), dtype=torch.float32),
        )


def split_arrays(
    x: Array,
    y: Array,
    lower: Array | None = None,
    upper: Array | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    name: str = "",
) -> Dataset:
    """Shuffle user data ``x`` ``(N, d)``, ``y`` ``(N, m)`` into train/validation/test splits.

    The input box defaults to the data's column-wise min and max.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        msg = f"inputs {x.shape} and targets {y.shape} must be 2-D with the same number of rows"
        raise ValueError(msg)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        msg = "the data contain NaN or infinite values; clean them first"
        raise ValueError(msg)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        msg = (
            f"validation and test fractions must be in [0, 1) and sum below 1, got "
            f"{val_fraction} and {test_fraction}"
        )
        raise ValueError(msg)
    n = x.shape[0]
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 2:
        msg = f"only {n} rows: too few to train on after holding out validation and test rows"
        raise ValueError(msg)
    lo = x.min(axis=0) if lower is None else np.asarray(lower, np.float64)
    hi = x.max(axis=0) if upper is None else np.asarray(upper, np.float64)
    lo, hi = as_box(lo, hi, x.shape[1])
    perm = np.random.default_rng(seed).permutation(n)
    x, y = x[perm], y[perm]
    # no held-out rows: validate and test on the training rows
    if n_val == 0:
        x = np.vstack([x[:n_train], x[:n_train].copy(), x[n_train:]])
        y = np.vstack([y[:n_train], y[:n_train].copy(), y[n_train:]])
        n_val = n_train
    if n_test == 0:
        x = np.vstack([x, x[:n_train]])
        y = np.vstack([y, y[:n_train]])
    return make_dataset(x, y, n_train, n_val, lo, hi, name)


def make_dataset(
    x: Array, y: Array, n_train: int, n_val: int, lo: Array, hi: Array, name: str
) -> Dataset:
    """Rows ``[0, n_train)`` train, the next ``n_val`` validate, the rest test; scaling fitted on
    the training rows."""
    a, b = n_train, n_train + n_val
    scaler = Standardizer.fit(x[:a], y[:a])
    return Dataset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], lo, hi, scaler, name)


def fold_standardization(model: nn.Module, scaler: Standardizer) -> nn.Sequential:
    """A float64 copy of ``model`` that takes and returns original units (see module docstring)."""
    parsed = parse_network(model)
    if parsed.quantile_head:
        msg = "folding the output scaling into a quantile head is not supported"
        raise ValueError(msg)
    out = copy.deepcopy(model).to(torch.float64)
    linears = [m for m in out if isinstance(m, nn.Linear)]
    first, last = linears[0], linears[-1]
    with torch.no_grad():
        mu_x = torch.as_tensor(scaler.x_mean, dtype=torch.float64)
        s_x = torch.as_tensor(scaler.x_std, dtype=torch.float64)
        mu_y = torch.as_tensor(scaler.y_mean, dtype=torch.float64)
        s_y = torch.as_tensor(scaler.y_std, dtype=torch.float64)
        first.weight.div_(s_x[None, :])
        first.bias.sub_(first.weight @ mu_x)
        last.weight.mul_(s_y[:, None])
        last.bias.mul_(s_y).add_(mu_y)
    return out


def predict(model: nn.Module, x: Array) -> Array:
    """Evaluate a network in original units on ``x`` ``(N, d)``; returns ``(N, m)`` float64."""
    p = next(model.parameters())
    with torch.no_grad():
        out = model(torch.as_tensor(x, dtype=p.dtype))
    return out.double().numpy()


def rmse(pred: Array, target: Array) -> float:
    """Root-mean-square error over all entries."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(target)) ** 2)))


__all__ = [
    "MIN_STD",
    "Dataset",
    "Standardizer",
    "fold_standardization",
    "make_dataset",
    "predict",
    "rmse",
    "split_arrays",
]
