"""Pre-activation bounds of ReLU networks over an input box.

* :func:`affine_chain`: the affine chain of an accepted ``nn.Sequential`` (a quantile head is
  lowered with the help of an interval bound, which is why it lives here and not in
  :mod:`omlt_relax.network`);
* :func:`interval_bounds`, :func:`crown_bounds`: torch, differentiable, in the model's dtype
  (for training regularizers);
* :func:`sound_bounds`: the same in float64 on a detached copy, widened outward, for optimizers;
* :func:`~omlt_relax.bounds.obbt.obbt_bounds`: optimization-based tightening (HiGHS).

The core (one interval routine for numpy and torch, CROWN, the outward-rounding rule, the registry
of method names) is in :mod:`~omlt_relax.bounds.interval`, :mod:`~omlt_relax.bounds.crown`,
:mod:`~omlt_relax.bounds.rounding` and :mod:`~omlt_relax.bounds.methods`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bounds.interval import interval_chain
from omlt_relax.bounds.methods import check_method, propagate
from omlt_relax.bounds.rounding import SOUND_WIDEN, widen_outward
from omlt_relax.guards import check_finite_bounds
from omlt_relax.network import ParsedNetwork, as_box, parse_network
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.quantile import QUANTILE_SHIFT_MARGIN, lower_quantile_head

Tensor = torch.Tensor
AffineChain = list[tuple[Tensor, Tensor]]


def quantile_shift(chain: AffineChain, input_bounds: tuple[np.ndarray, np.ndarray]) -> float:
    """:math:`\\ell_0`: a sound lower bound of the first head input :math:`o_0` over the box.

    Interval bound in float64 on a detached copy, widened outward by
    :data:`~omlt_relax.quantile.QUANTILE_SHIFT_MARGIN` (relative) with the one rounding rule.
    """
    lo, hi = input_bounds
    with torch.no_grad():
        c64 = [(w.detach().double(), b.detach().double()) for w, b in chain]
        lows, ups = interval_chain(
            c64, torch.as_tensor(lo, dtype=torch.float64), torch.as_tensor(hi, dtype=torch.float64),
            include_output=True,
        )
        l0 = lows[-1][:1]
    shifted, _ = widen_outward(l0, l0, 0.0, QUANTILE_SHIFT_MARGIN)
    return float(shifted[0])


def affine_chain(
    model: nn.Module | ParsedNetwork,
    input_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    dtype: torch.dtype | None = None,
) -> AffineChain:
    """The affine chain ``[(W_1, b_1), ..., (W_L, b_L)]`` of a model, differentiable in its weights.

    ``dtype`` casts the weights (e.g. ``torch.float64`` for bounds the optimizer sees). A quantile
    head is lowered (:func:`~omlt_relax.quantile.lower_quantile_head`, shift
    :func:`quantile_shift`) with the help of ``input_bounds`` (required then).
    """
    parsed = model if isinstance(model, ParsedNetwork) else parse_network(model)
    chain: AffineChain = []
    for lin in parsed.linears:
        w, b = lin.weight, lin.bias
        if dtype is not None:
            w, b = w.to(dtype), b.to(dtype)
        chain.append((w, b))
    if parsed.quantile_head:
        if input_bounds is None:
            msg = "a network with an IncrementalQuantileHead needs input bounds to be lowered"
            raise ValueError(msg)
        chain = lower_quantile_head(chain, quantile_shift(chain, input_bounds))
    return chain


def _bounds(model: nn.Module, lb: Any, ub: Any, method: str) -> NeuronBounds:
    parsed = parse_network(model)
    lo, hi = as_box(lb, ub, parsed.n_inputs)
    chain = affine_chain(parsed, (lo, hi))
    dtype = chain[0][0].dtype
    tl = torch.as_tensor(lo, dtype=dtype)
    th = torch.as_tensor(hi, dtype=dtype)
    lowers, uppers = propagate(method)(chain, tl, th)
    check_finite_bounds(lowers, uppers, method)
    return NeuronBounds(lowers, uppers, method, lo, hi)


def interval_bounds(model: nn.Module, lb: Any, ub: Any = None) -> NeuronBounds:
    """Interval (IBP) pre-activation bounds of every hidden layer over ``[lb, ub]``.

    Differentiable in the model's parameters; tensors in the model's dtype.
    """
    return _bounds(model, lb, ub, "ibp")


def crown_bounds(model: nn.Module, lb: Any, ub: Any = None) -> NeuronBounds:
    """CROWN pre-activation bounds (each layer the tighter of CROWN and IBP) over ``[lb, ub]``.

    Differentiable in the model's parameters; never looser than :func:`interval_bounds`.
    """
    return _bounds(model, lb, ub, "crown")


def sound_bounds(
    model: nn.Module, lb: Any, ub: Any = None, method: str = "crown"
) -> NeuronBounds:
    """Float64, outward-widened ``"ibp"`` or ``"crown"`` bounds for use by an optimizer.

    Computed on a float64 copy of the weights; each layer is widened by
    ``SOUND_WIDEN * (1 + M_k + |bound|)`` (``M_k`` its interval magnitude) before propagation.
    """
    fn = propagate(method)
    parsed = parse_network(model)
    lo, hi = as_box(lb, ub, parsed.n_inputs)
    with torch.no_grad():
        chain = affine_chain(parsed, (lo, hi), dtype=torch.float64)
        chain = [(w.detach(), b.detach()) for w, b in chain]
        lowers, uppers = fn(
            chain,
            torch.as_tensor(lo, dtype=torch.float64),
            torch.as_tensor(hi, dtype=torch.float64),
            widen=SOUND_WIDEN,
        )
    check_finite_bounds(lowers, uppers, method)
    return NeuronBounds(
        [t.numpy().copy() for t in lowers],
        [t.numpy().copy() for t in uppers],
        method,
        lo,
        hi,
    )


def chain_numpy(model: nn.Module, lb: Any, ub: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The affine chain as float64 numpy ``(W, b)`` pairs (quantile head lowered over the box)."""
    parsed = parse_network(model)
    lo, hi = as_box(lb, ub, parsed.n_inputs)
    with torch.no_grad():
        chain = affine_chain(parsed, (lo, hi), dtype=torch.float64)
    return [(w.detach().numpy().copy(), b.detach().numpy().copy()) for w, b in chain]


__all__ = [
    "SOUND_WIDEN",
    "affine_chain",
    "chain_numpy",
    "check_method",
    "crown_bounds",
    "interval_bounds",
    "quantile_shift",
    "sound_bounds",
]
