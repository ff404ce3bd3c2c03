r"""The one outward-rounding rule of omlt_relax: how a computed bound is made safe to rely on.

A bound :math:`[l, u]` computed in floating point (interval arithmetic, a float32 network, a
difference of two bounds) can be off by its rounding error. Every bound an optimizer sees is
widened by

.. math::

    \delta = \mathrm{rel}\,\big(1 + M + \max(|l|, |u|)\big),\qquad
    l \leftarrow \mathrm{next}_{-\infty}(l - \delta),\quad
    u \leftarrow \mathrm{next}_{+\infty}(u + \delta),

where :math:`M \ge 0` is the magnitude the error scales with (for an affine layer
:math:`|W| \max(|z_{lo}|, |z_{hi}|) + |b|`, which bounds every partial sum) and ``rel`` a relative
error bound well above the unit roundoff of the arithmetic (:data:`SOUND_WIDEN` for float64
propagation; float32 data use a multiple of float32's epsilon). The final step to the next
representable number makes the result strictly outside the computed interval even when
:math:`\delta` underflows.

Works on numpy arrays and torch tensors alike (gradients flow through :math:`l, u`; :math:`\delta`
is a constant for autograd).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

#: Relative outward widening of float64 bounds. Float64 accumulation error of a layer is at most
#: about n * 2.2e-16 times its interval magnitude; 1e-9 exceeds that by orders of magnitude.
SOUND_WIDEN = 1e-9


def maximum(a: ArrayT, b: ArrayT) -> ArrayT:
    """Elementwise maximum of two numpy arrays or two torch tensors."""
    if isinstance(a, torch.Tensor):
        return torch.maximum(a, b)
    return np.maximum(a, b)


def widen_outward(lo: ArrayT, hi: ArrayT, mag: ArrayT | float, rel: float) -> tuple[ArrayT, ArrayT]:
    """Widen ``[lo, hi]`` by :math:`\\delta = rel\\,(1 + mag + \\max(|lo|, |hi|))`, then one ulp.

    ``rel <= 0`` returns the bounds unchanged.
    """
    if rel <= 0:
        return lo, hi
    if isinstance(lo, torch.Tensor):
        with torch.no_grad():
            delta = rel * (1.0 + mag + torch.maximum(lo.abs(), hi.abs()))
        inf = torch.tensor(float("inf"), dtype=lo.dtype, device=lo.device)
        return torch.nextafter(lo - delta, -inf), torch.nextafter(hi + delta, inf)
    delta = rel * (1.0 + mag + np.maximum(np.abs(lo), np.abs(hi)))
    return np.nextafter(lo - delta, -np.inf), np.nextafter(hi + delta, np.inf)


__all__ = ["SOUND_WIDEN", "maximum", "widen_outward"]
