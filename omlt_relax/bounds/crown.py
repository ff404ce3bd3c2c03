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

from omlt_relax.bounds.interval import interval_chain, interval_layer, magnitude
from omlt_relax.bounds.rounding import widen_outward

Tensor = torch.Tensor
TensorChain = list[tuple[Tensor, Tensor]]


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
    chain: TensorChain, lo: Tensor, hi: Tensor, include_output: bool = False, widen: float = 0.0
) -> tuple[list[Tensor], list[Tensor]]:
    """CROWN/IBP-intersected pre-activation bounds of the hidden layers (and output if asked).

    Layer k: the interval bound from the (already intersected) layer before
    (:func:`~omlt_relax.bounds.interval.interval_layer`) intersected with the CROWN bound
    (:func:`backsubstitute`). ``widen > 0`` widens every layer outward by the one rounding rule,
    with the :func:`~omlt_relax.bounds.interval.magnitude` of the pure-IBP boxes
    (:func:`~omlt_relax.bounds.interval.interval_chain`, which bound every partial sum CROWN forms).
    """
    lowers: list[Tensor] = []
    uppers: list[Tensor] = []
    n = len(chain) if include_output else len(chain) - 1
    ibp_boxes = [(lo, hi)]
    if widen > 0:
        ibp_l, ibp_u = interval_chain(chain, lo, hi, include_output)
        ibp_boxes += [(torch.relu(a), torch.relu(b)) for a, b in zip(ibp_l, ibp_u)]
    zl, zu = lo, hi
    for k in range(n):
        w, b = chain[k]
        l, u = interval_layer(w, b, zl, zu)
        if k > 0:
            cl, cu = backsubstitute(chain, k, lowers, uppers, lo, hi)
            l, u = torch.maximum(l, cl), torch.minimum(u, cu)
        if widen > 0:
            l, u = widen_outward(l, u, magnitude(w, b, *ibp_boxes[k]), widen)
        lowers.append(l)
        uppers.append(u)
        zl, zu = torch.relu(l), torch.relu(u)
    return lowers, uppers
