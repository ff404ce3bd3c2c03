"""Interval bound propagation (IBP), differentiable in the weights.

For :math:`z_{k-1} \\in [l_{k-1}, u_{k-1}]` (post-activation box;
:math:`[x_{lo}, x_{hi}]` for k = 1),
with centre :math:`m = (l+u)/2` and radius :math:`r = (u-l)/2`,

.. math::

    \\hat z_k \\in \\big[W_k m + b_k - |W_k| r,\\; W_k m + b_k + |W_k| r\\big],

and the post-activation box of a hidden layer is :math:`[\\max(0, l_k), \\max(0, u_k)]`.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def interval_layer(w: Tensor, b: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Interval image of the box ``[lo, hi]`` under ``z -> w z + b``."""
    mid = (hi + lo) / 2
    rad = (hi - lo) / 2
    c = mid @ w.T + b
    r = rad @ w.abs().T
    return c - r, c + r


def magnitude(w: Tensor, b: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """:math:`|W| \\max(|l|, |u|) + |b|`: bounds every partial sum of ``w z + b`` on the box."""
    return torch.maximum(lo.abs(), hi.abs()) @ w.abs().T + b.abs()


def widen_outward(lo: Tensor, hi: Tensor, mag: Tensor, rel: float) -> tuple[Tensor, Tensor]:
    """Widen ``[lo, hi]`` by :math:`\\delta = rel\\,(1 + mag + \\max(|lo|, |hi|))`, then one ulp."""
    if rel <= 0:
        return lo, hi
    delta = rel * (1.0 + mag + torch.maximum(lo.abs(), hi.abs()))
    inf = torch.tensor(float("inf"), dtype=lo.dtype)
    return torch.nextafter(lo - delta, -inf), torch.nextafter(hi + delta, inf)


def interval_chain(
    chain: list[tuple[Tensor, Tensor]],
    lo: Tensor,
    hi: Tensor,
    include_output: bool = False,
    widen: float = 0.0,
) -> tuple[list[Tensor], list[Tensor]]:
    """IBP through an affine chain; returns per-layer pre-activation ``(lowers, uppers)``.

    Hidden layers only unless ``include_output``. ``widen > 0`` widens every layer outward
    (:func:`widen_outward`) before it is propagated further, for bounds an optimizer relies on.
    """
    lowers: list[Tensor] = []
    uppers: list[Tensor] = []
    zl, zu = lo, hi
    n = len(chain) if include_output else len(chain) - 1
    for k in range(n):
        w, b = chain[k]
        l, u = interval_layer(w, b, zl, zu)
        if widen > 0:
            l, u = widen_outward(l, u, magnitude(w, b, zl, zu), widen)
        lowers.append(l)
        uppers.append(u)
        zl, zu = torch.relu(l), torch.relu(u)
    return lowers, uppers
