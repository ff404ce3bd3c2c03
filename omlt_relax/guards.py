r"""Numeric guards: refuse models a solver cannot handle reliably, before it sees them.

A MILP solver decides feasibility and integrality with absolute tolerances
(:math:`\tau` = 1e-6 in HiGHS). In a big-M row :math:`z \le \hat z - l(1 - \sigma)` an integrality
slack of :math:`\tau` moves :math:`z` by :math:`\tau |l|`, and a constraint matrix whose
coefficients span many orders of magnitude loses digits in every factorization. So, from the
stored bounds and the weights (notation of :mod:`omlt_relax.network`):

* **largest big-M** :math:`M = \max_{k,j} \max(|l_{kj}|, |u_{kj}|)` over the hidden neurons that
  are not stably inactive, and the input box magnitude :math:`\max_i \max(|x_{lo,i}|, |x_{hi,i}|)`,
  must not exceed :data:`MAX_BIGM`;
* **coefficient ratio** :math:`\max |a| / \min_{a \ne 0} |a|` over the nonzero weights, the
  big-M constants of the unstable neurons and the unit coefficients of the formulation must not
  exceed :data:`MAX_COEFFICIENT_RATIO`. Not counted: the rows of stably inactive neurons (their
  :math:`\hat z` is free and constrains nothing), weights below :data:`NEGLIGIBLE_WEIGHT` times the
  largest weight of their row or below :data:`SOLVER_ZERO` (HiGHS drops such entries; the
  forward-pass verification of :mod:`omlt_relax.verify` covers what that changes).

Either violation raises :class:`NumericalRangeError` naming the layer, the neuron and the numbers.
:func:`check_loss` stops training whose loss became non-finite or exploded;
:func:`check_finite_bounds` turns an overflow in bound propagation into a clear error instead of
NaN bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Largest big-M constant (or input magnitude) accepted; with :math:`\tau` = 1e-6 a binary's
#: integrality slack then moves a ReLU output by at most 100 units at this extreme.
MAX_BIGM = 1e8
#: Largest ratio of the largest to the smallest nonzero coefficient accepted.
MAX_COEFFICIENT_RATIO = 1e10
#: Weights smaller than this times the largest weight of their row are not counted in the ratio.
NEGLIGIBLE_WEIGHT = 1e-12
#: HiGHS's ``small_matrix_value``: matrix entries below it are dropped by the solver.
SOLVER_ZERO = 1e-9
#: Training stops when the loss exceeds this many times its first value (or the first value
#: when it is below 1).
LOSS_EXPLOSION_FACTOR = 1e6

_ADVICE = (
    "rescale the inputs and outputs to moderate units, shrink the input box to where the data "
    "are, or retrain with a big-M regularizer (omlt-relax train --regularize bigm)"
)


class NumericalRangeError(ValueError):
    """The model's numbers are outside the range a MILP solver handles reliably."""


class TrainingDivergedError(ValueError):
    """The training loss became non-finite or exploded."""


def check_model_numerics(
    chain: Sequence[tuple[np.ndarray, np.ndarray]],
    lower: Sequence[np.ndarray],
    upper: Sequence[np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
) -> dict[str, float]:
    """Check the largest big-M and the coefficient ratio (module docstring); return both.

    Args:
        chain: float64 affine chain ``[(W_1, b_1), ..., (W_L, b_L)]``.
        lower, upper: per hidden layer, the bounds the formulation uses.
        lo, hi: the input box.

    Returns:
        ``{"max_bigm": M, "coefficient_ratio": r}``.

    Raises:
        NumericalRangeError: a threshold is exceeded (the message names layer, neuron, numbers).
    """
    box = float(np.max(np.maximum(np.abs(lo), np.abs(hi)))) if np.size(lo) else 0.0
    if not box <= MAX_BIGM:
        i = int(np.argmax(np.maximum(np.abs(lo), np.abs(hi))))
        msg = (
            f"input {i} has the bound {max(abs(lo[i]), abs(hi[i])):.3g}, above the limit "
            f"{MAX_BIGM:.0e} (omlt_relax.guards.MAX_BIGM) a MILP solver with tolerance 1e-6 "
            f"handles reliably; {_ADVICE}"
        )
        raise NumericalRangeError(msg)
    big, big_at = 0.0, (0, 0)
    c_max, c_max_at = 1.0, "the unit coefficients"
    c_min, c_min_at = 1.0, "the unit coefficients"
    for k, ((w, _b), lk, uk) in enumerate(zip(chain, [*lower, None], [*upper, None]), start=1):
        w = np.abs(np.asarray(w, np.float64))
        if lk is not None:  # rows of stably inactive neurons constrain nothing
            w = w * (np.asarray(uk) > 0)[:, None]
        if w.size:
            row_max = w.max(axis=1, keepdims=True)
            counted = w > np.maximum(NEGLIGIBLE_WEIGHT * row_max, SOLVER_ZERO)
            if counted.any():
                wmax = float(w.max())
                wmin = float(w[counted].min())
                if wmax > c_max:
                    j, i = np.unravel_index(int(np.argmax(w)), w.shape)
                    c_max, c_max_at = wmax, f"the weight of layer {k} neuron {j} input {i}"
                if wmin < c_min:
                    j, i = np.argwhere(counted & (w == wmin))[0]
                    c_min, c_min_at = wmin, f"the weight of layer {k} neuron {j} input {i}"
        if lk is None:
            continue
        lk, uk = np.asarray(lk, np.float64), np.asarray(uk, np.float64)
        mag = np.where(uk > 0, np.maximum(np.abs(lk), np.abs(uk)), 0.0)
        j = int(np.argmax(mag)) if mag.size else 0
        if mag.size and mag[j] > big:
            big, big_at = float(mag[j]), (k, j)
        if not big <= MAX_BIGM:
            break  # name the first layer that exceeds the limit: later ones inherit it
        unstable = (lk < 0) & (uk > 0)
        for arr in (np.abs(lk[unstable]), uk[unstable]):
            if arr.size and float(arr.max()) > c_max:
                jj = int(np.flatnonzero(unstable)[int(np.argmax(arr))])
                c_max, c_max_at = float(arr.max()), f"the big-M of layer {k} neuron {jj}"
            if arr.size and 0 < float(arr.min()) < c_min:
                jj = int(np.flatnonzero(unstable)[int(np.argmin(arr))])
                c_min, c_min_at = float(arr.min()), f"the big-M of layer {k} neuron {jj}"
    if not big <= MAX_BIGM:
        k, j = big_at
        msg = (
            f"hidden layer {k} neuron {j} has the bounds [{lower[k - 1][j]:.3g}, "
            f"{upper[k - 1][j]:.3g}]: big-M {big:.3g} is above the limit {MAX_BIGM:.0e} "
            f"(omlt_relax.guards.MAX_BIGM) a MILP solver with tolerance 1e-6 handles reliably; "
            f"{_ADVICE}"
        )
        raise NumericalRangeError(msg)
    ratio = c_max / c_min
    if not ratio <= MAX_COEFFICIENT_RATIO:
        msg = (
            f"the MILP's coefficients span {ratio:.3g} ({c_max_at} is {c_max:.3g}, {c_min_at} is "
            f"{c_min:.3g}), above the limit {MAX_COEFFICIENT_RATIO:.0e} "
            f"(omlt_relax.guards.MAX_COEFFICIENT_RATIO) a MILP solver handles reliably; {_ADVICE}; "
            "or, when the small number is a negligible weight, zero such weights first "
            "(omlt_relax.snapping.snap_negligible_weights; snap_change_bound certifies how much "
            "the network's output changes)"
        )
        raise NumericalRangeError(msg)
    return {"max_bigm": big, "coefficient_ratio": ratio}


def check_loss(value: float, epoch: int, first: float | None, lr: float) -> float:
    """Stop training with :class:`TrainingDivergedError` if the loss is non-finite or exploded.

    ``first`` is the first loss of the run (``None`` on the first step); returns the first loss.
    Exploded: ``value > LOSS_EXPLOSION_FACTOR * max(first, 1)``.
    """
    if first is None:
        first = value
    if not math.isfinite(value) or (
        math.isfinite(first) and value > LOSS_EXPLOSION_FACTOR * max(first, 1.0)
    ):
        msg = (
            f"training diverged in epoch {epoch + 1}: the loss is {value:.3g} (it started at "
            f"{first:.3g}); lower the learning rate (--lr, now {lr:g}) or the regularizer weight "
            "(--weight), and check the data for extreme values"
        )
        raise TrainingDivergedError(msg)
    return first


def check_finite_bounds(lowers: Sequence[Any], uppers: Sequence[Any], what: str) -> None:
    """Raise ``NumericalRangeError`` if any bound is NaN or infinite (an overflow).

    ``lowers``/``uppers``: per hidden layer, tensors or arrays; ``what`` names the method.
    """
    for k, (a, c) in enumerate(zip(lowers, uppers), start=1):
        fin_a = np.isfinite(np.asarray(a.detach().cpu() if hasattr(a, "detach") else a))
        fin_c = np.isfinite(np.asarray(c.detach().cpu() if hasattr(c, "detach") else c))
        bad = ~(fin_a & fin_c)
        if bad.any():
            j = int(np.flatnonzero(bad.reshape(-1))[0])
            msg = (
                f"{what} bounds of hidden layer {k} neuron {j} overflow (NaN or infinite): the "
                "input box or the weights are too large for the arithmetic; shrink the box or "
                "rescale the inputs"
            )
            raise NumericalRangeError(msg)


__all__ = [
    "LOSS_EXPLOSION_FACTOR",
    "MAX_BIGM",
    "MAX_COEFFICIENT_RATIO",
    "NumericalRangeError",
    "TrainingDivergedError",
    "check_finite_bounds",
    "check_loss",
    "check_model_numerics",
]
