"""CROWN: backward linear bound propagation, differentiable in the weights.

To bound :math:`\\hat z_k = W_k z_{k-1} + b_k`, substitute backwards through the ReLU relaxations of
earlier layers, per neuron with bounds :math:`l < 0 < u`

.. math::

    \\alpha z \\le \\max(0, z) \\le \\frac{u}{u-l}(z - l),\\qquad \\alpha = [u \\ge -l]

(stably active: identity; stably inactive: zero), picking the upper relaxation where the running
coefficient is positive and the lower one where it is negative. After reaching the input, the
linear function :math:`\\Lambda x + c` is bounded over the box by
:math:`\\Lambda^+ x_{hi} + \\Lambda^- x_{lo} + c`. Each layer keeps the tighter of this and its
interval bound from the (already tightened) layer before, and later layers use those bounds.
"""

from __future__ import annotations

import torch

from omlt_relax.bounds.interval import interval_layer, magnitude
from omlt_relax.bounds.rounding import widen_outward

Tensor = torch.Tensor


def relu_relaxation(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Slopes and intercept of the CROWN relaxation ``dl*z <= relu(z) <= du*z + cu``."""
    active = l >= 0
    unstable = (l < 0) & (u > 0)
    one = torch.ones_like(u)
    zero = torch.zeros_like(u)
    denom = torch.where(unstable, u - l, one)
    du = torch.where(active, one, torch.where(unstable, u / denom, zero))
    cu = torch.where(unstable, -u * l / denom, zero)
    dl = torch.where(active | (unstable & (u >= -l)), one, zero)
    return dl, du, cu


def backsubstitute(
    chain: list[tuple[Tensor, Tensor]],
    k: int,
    lowers: list[Tensor],
    uppers: list[Tensor],
    lo: Tensor,
    hi: Tensor,
) -> tuple[Tensor, Tensor]:
    """CROWN bounds of layer ``k`` (0-based index into ``chain``) given bounds of layers ``< k``."""
    w, b = chain[k]
    n = w.shape[0]
    lam = torch.cat([w, -w], dim=0)
    const = torch.cat([b, -b], dim=0)
    for j in range(k - 1, -1, -1):
        dl, du, cu = relu_relaxation(lowers[j], uppers[j])
        lp = lam.clamp(min=0)
        ln = lam.clamp(max=0)
        const = const + lp @ cu
        d = lp * du + ln * dl
        wj, bj = chain[j]
        const = const + d @ bj
        lam = d @ wj
    const = const + lam.clamp(min=0) @ hi + lam.clamp(max=0) @ lo
    return -const[n:], const[:n]


def crown_chain(
    chain: list[tuple[Tensor, Tensor]],
    lo: Tensor,
    hi: Tensor,
    include_output: bool = False,
    widen: float = 0.0,
) -> tuple[list[Tensor], list[Tensor]]:
    """CROWN/IBP-intersected pre-activation bounds of the hidden layers (and output if asked)."""
    lowers: list[Tensor] = []
    uppers: list[Tensor] = []
    zl, zu = lo, hi
    ibp_l, ibp_u = lo, hi  # pure-IBP boxes, for the float64 error magnitude only
    n = len(chain) if include_output else len(chain) - 1
    for k in range(n):
        w, b = chain[k]
        il, iu = interval_layer(w, b, zl, zu)
        if k == 0:
            l, u = il, iu
        else:
            cl, cu = backsubstitute(chain, k, lowers, uppers, lo, hi)
            l, u = torch.maximum(il, cl), torch.minimum(iu, cu)
        if widen > 0:
            mag = magnitude(w, b, ibp_l, ibp_u)
            l, u = widen_outward(l, u, mag, widen)
            pl, pu = interval_layer(w, b, ibp_l, ibp_u)
            ibp_l, ibp_u = torch.relu(pl), torch.relu(pu)
        lowers.append(l)
        uppers.append(u)
        zl, zu = torch.relu(l), torch.relu(u)
    return lowers, uppers
