r"""Zeroing negligible weights before formulating, with a certified bound on what it changes.

A trained network can hold weights of 1e-9 beside weights or big-M constants of 1e2-1e4. A MILP
with that coefficient span is unreliable (solvers drop coefficients below about 1e-9), so the
numeric guard (:func:`~omlt_relax.guards.check_model_numerics`) refuses it. The sound way out is to
formulate a slightly different network and say by how much it differs:
:func:`snap_negligible_weights` zeroes the weights below a relative threshold and
:func:`snap_change_bound` bounds :math:`|\tilde f(x) - f(x)|` over the whole input box (float64,
rounded outward). The MILP is then exact for the snapped network, and its optimum is within that
bound of the original network's over the box.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bounds.interval import interval_layer, magnitude
from omlt_relax.bounds.rounding import SOUND_WIDEN, widen_outward
from omlt_relax.quantile import IncrementalQuantileHead


def snap_negligible_weights(model: nn.Sequential, rel: float) -> tuple[nn.Sequential, int]:
    """A float64 copy with the weights below ``rel`` times their layer's largest |weight| set to 0.

    Training can leave weights of 1e-9 beside weights or big-M constants of 1e2-1e4, a
    coefficient span the numeric guard (:func:`~omlt_relax.guards.check_model_numerics`) rightly
    refuses. Zeroing them changes the network (:func:`snap_change_bound` certifies by how much);
    a MILP is then exact for the returned network. Returns the copy and the number of weights
    zeroed.
    """
    if not (isinstance(rel, (int, float)) and math.isfinite(rel) and 0 <= rel < 1):
        msg = f"the relative threshold for negligible weights must be in [0, 1), got {rel!r}"
        raise ValueError(msg)
    out = copy.deepcopy(model).to(torch.float64)
    count = 0
    with torch.no_grad():
        for lin in (m for m in out if isinstance(m, nn.Linear)):
            small = (lin.weight.abs() < rel * lin.weight.abs().max()) & (lin.weight != 0)
            count += int(small.sum())
            lin.weight[small] = 0.0
    return out.eval(), count


def snap_change_bound(original: nn.Sequential, snapped: nn.Sequential, lb: Any,
                      ub: Any) -> np.ndarray:
    """A sound bound on :math:`|\tilde f(x) - f(x)|` per output over the box ``[lb, ub]``, for
    two networks of the same architecture (``snapped`` e.g. from :func:`snap_negligible_weights`).

    Layer by layer, with :math:`e_{k-1}` bounding the change of the layer's input and
    :math:`m_{k-1} = \\max(|l|, |u|)` the original network's interval (IBP) bound on its
    magnitude,

    .. math::

        |\tilde z_k - z_k| \\le |\tilde W_k|\\, e_{k-1} + |\tilde W_k - W_k|\\, m_{k-1}
        + |\tilde b_k - b_k| =: e_k,

    kept through each ReLU (1-Lipschitz); an ``IncrementalQuantileHead`` sums them
    (:math:`|\\delta q_k| \\le \\sum_{j \\le k} e_j`). Float64, every step widened outward by
    :data:`~omlt_relax.bounds.rounding.SOUND_WIDEN` relative and one ulp.

    Returns:
        ``(n_outputs,)`` bounds, valid for every ``x`` in the box.
    """
    def parts(model: nn.Sequential) -> list[nn.Module]:
        mods = list(model)
        for m in mods:
            if not isinstance(m, (nn.Linear, nn.ReLU, IncrementalQuantileHead)):
                msg = f"snap_change_bound supports Linear/ReLU/IncrementalQuantileHead, got {m}"
                raise ValueError(msg)
        return mods

    a, b = parts(original), parts(snapped)
    if [type(m) for m in a] != [type(m) for m in b] or any(
        isinstance(m, nn.Linear) and m.weight.shape != n.weight.shape for m, n in zip(a, b)
    ):
        msg = "snap_change_bound needs two networks of the same architecture"
        raise ValueError(msg)
    first = next(m for m in a if isinstance(m, nn.Linear))
    lo = np.broadcast_to(np.asarray(lb, np.float64), (first.in_features,)).copy()
    hi = np.broadcast_to(np.asarray(ub, np.float64), (first.in_features,)).copy()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
        msg = "snap_change_bound needs a finite input box with lb <= ub"
        raise ValueError(msg)
    e = np.zeros_like(lo)
    for m, n in zip(a, b):
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double().numpy()
            w2 = n.weight.detach().double().numpy()
            b1 = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[0])
            b2 = n.bias.detach().double().numpy() if n.bias is not None else np.zeros(w.shape[0])
            d = np.abs(w2) @ e + np.abs(w2 - w) @ np.maximum(np.abs(lo), np.abs(hi))
            e = np.nextafter((d + np.abs(b2 - b1)) * (1.0 + SOUND_WIDEN), np.inf)
            lo, hi = widen_outward(*interval_layer(w, b1, lo, hi), magnitude(w, b1, lo, hi),
                                   SOUND_WIDEN)
        elif isinstance(m, nn.ReLU):
            lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        else:  # the quantile head: cumulative sums of 1-Lipschitz increments
            e = np.nextafter(np.cumsum(e) * (1.0 + SOUND_WIDEN), np.inf)
    return e


__all__ = ["snap_change_bound", "snap_negligible_weights"]
