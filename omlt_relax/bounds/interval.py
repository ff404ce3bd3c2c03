r"""Interval bound propagation (IBP): the one interval routine, for numpy and torch alike.

For :math:`z_{k-1} \in [l_{k-1}, u_{k-1}]` (post-activation box;
:math:`[x_{lo}, x_{hi}]` for k = 1),
with centre :math:`m = (l+u)/2` and radius :math:`r = (u-l)/2`,

.. math::

    \hat z_k \in \big[W_k m + b_k - |W_k| r,\; W_k m + b_k + |W_k| r\big],

and the post-activation box of a hidden layer is :math:`[\max(0, l_k), \max(0, u_k)]`.

Every function here takes numpy arrays or torch tensors (differentiable in the weights) and runs
the same operations on either: the torch bounds of the training penalties, the numpy fast path of
:mod:`omlt_relax.penalties`, the interval bounds of the formulations and of the quantile-head
lowering all come from :func:`interval_chain` / :func:`interval_layer`. Bounds an optimizer relies
on are widened with the one rule of :mod:`omlt_relax.bounds.rounding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from omlt_relax.bounds.rounding import maximum, widen_outward
from omlt_relax.chain import relu

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
Tensor = torch.Tensor


def centre_radius(lo: ArrayT, hi: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Centre :math:`(l + u)/2` and radius :math:`(u - l)/2` of a box."""
    return (hi + lo) * 0.5, (hi - lo) * 0.5


def affine_interval(
    w: ArrayT, b: ArrayT, mid: ArrayT, rad: ArrayT, w_abs: ArrayT | None = None
) -> tuple[ArrayT, ArrayT]:
    """Interval image of the box with centre ``mid``, radius ``rad`` under ``z -> w z + b``.

    ``w_abs`` is :math:`|W|` if already at hand. ``mid``, ``rad``: ``(n,)`` or a batch ``(B, n)``.
    """
    c = mid @ w.T + b
    r = rad @ (abs(w) if w_abs is None else w_abs).T
    return c - r, c + r


def interval_layer(w: ArrayT, b: ArrayT, lo: ArrayT, hi: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Interval image of the box ``[lo, hi]`` under ``z -> w z + b``."""
    return affine_interval(w, b, *centre_radius(lo, hi))


def magnitude(w: ArrayT, b: ArrayT, lo: ArrayT, hi: ArrayT) -> ArrayT:
    """:math:`|W| \\max(|l|, |u|) + |b|`: bounds every partial sum of ``w z + b`` on the box."""
    return maximum(abs(lo), abs(hi)) @ abs(w).T + abs(b)


def interval_chain(
    chain: Sequence[tuple[ArrayT, ArrayT]],
    lo: ArrayT,
    hi: ArrayT,
    include_output: bool = False,
    widen: float = 0.0,
    trace: list[tuple[ArrayT, ArrayT, ArrayT]] | None = None,
) -> tuple[list[ArrayT], list[ArrayT]]:
    """IBP through an affine chain; returns per-layer pre-activation ``(lowers, uppers)``.

    Hidden layers only unless ``include_output``. ``widen > 0`` widens every layer outward
    (:func:`~omlt_relax.bounds.rounding.widen_outward` with :func:`magnitude`) before it is
    propagated further, for bounds an optimizer relies on. ``trace``, if given, receives
    ``(centre, radius, |W|)`` of each layer's input box (what a hand-written backward pass needs).
    """
    lowers: list[ArrayT] = []
    uppers: list[ArrayT] = []
    zl, zu = lo, hi
    n = len(chain) if include_output else len(chain) - 1
    for k in range(n):
        w, b = chain[k]
        mid, rad = centre_radius(zl, zu)
        w_abs = abs(w)
        if trace is not None:
            trace.append((mid, rad, w_abs))
        l, u = affine_interval(w, b, mid, rad, w_abs)
        if widen > 0:
            l, u = widen_outward(l, u, magnitude(w, b, zl, zu), widen)
        lowers.append(l)
        uppers.append(u)
        zl, zu = relu(l), relu(u)
    return lowers, uppers


def sound_interval_layer(
    w: np.ndarray, b: np.ndarray | float, lo: np.ndarray, hi: np.ndarray, widen: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`interval_layer` widened outward by the one rule (float64 bounds for optimizers)."""
    l, u = interval_layer(w, b, lo, hi)
    return widen_outward(l, u, magnitude(w, b, lo, hi), widen)


__all__ = [
    "affine_interval",
    "centre_radius",
    "interval_chain",
    "interval_layer",
    "magnitude",
    "sound_interval_layer",
]
