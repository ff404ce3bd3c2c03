"""Pre-activation bounds of ReLU networks over an input box.

* :func:`interval_bounds`, :func:`crown_bounds`: torch, differentiable, in the model's dtype
  (for training regularizers).
* :func:`sound_bounds`: the same in float64 on a detached copy, widened outward, for optimizers.
* :func:`~omlt_relax.bounds.obbt.obbt_bounds`: optimization-based tightening (HiGHS).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bounds.crown import crown_chain
from omlt_relax.bounds.interval import interval_chain
from omlt_relax.guards import check_finite_bounds
from omlt_relax.network import affine_chain, as_box, parse_network
from omlt_relax.neuron_bounds import NeuronBounds

#: Relative outward widening of float64 bounds. Float64 accumulation error of a layer is at most
#: about n * 2.2e-16 times its interval magnitude; 1e-9 exceeds that by orders of magnitude.
SOUND_WIDEN = 1e-9

_METHODS = {"ibp": interval_chain, "crown": crown_chain}


def _bounds(model: nn.Module, lb: Any, ub: Any, method: str) -> NeuronBounds:
    parsed = parse_network(model)
    lo, hi = as_box(lb, ub, parsed.n_inputs)
    chain = affine_chain(parsed, (lo, hi))
    dtype = chain[0][0].dtype
    tl = torch.as_tensor(lo, dtype=dtype)
    th = torch.as_tensor(hi, dtype=dtype)
    lowers, uppers = _METHODS[method](chain, tl, th)
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
    if method not in _METHODS:
        msg = f"unknown bounds method {method!r}; use 'ibp' or 'crown'"
        raise ValueError(msg)
    parsed = parse_network(model)
    lo, hi = as_box(lb, ub, parsed.n_inputs)
    with torch.no_grad():
        chain = affine_chain(parsed, (lo, hi), dtype=torch.float64)
        chain = [(w.detach(), b.detach()) for w, b in chain]
        lowers, uppers = _METHODS[method](
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


__all__ = ["SOUND_WIDEN", "chain_numpy", "crown_bounds", "interval_bounds", "sound_bounds"]
