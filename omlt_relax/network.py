"""Network intake: the one place that decides which torch models omlt_relax accepts.

Accepted: an ``nn.Sequential`` of ``Linear`` and ``ReLU`` modules (an optional leading ``Flatten``),
hidden ``Linear`` layers each followed by exactly one ``ReLU``, the last ``Linear`` linear (any
number of outputs), optionally followed by an :class:`~omlt_relax.quantile.IncrementalQuantileHead`.

Everything downstream (bounds, LP relaxations, export, formulations) works on the *affine chain*

.. math::

    \\hat z_k = W_k z_{k-1} + b_k,\\quad z_k = \\max(0, \\hat z_k)\\ (k < L),\\qquad
    f(x) = W_L z_{L-1} + b_L,

a list of ``(W_k, b_k)`` with ``W_k`` of shape ``(n_k, n_{k-1})`` (:mod:`omlt_relax.chain`;
:func:`~omlt_relax.chain.forward_chain` evaluates it). The chain of a model is
:func:`omlt_relax.bounds.affine_chain`: a quantile head is lowered to this form (see
:mod:`omlt_relax.quantile`) with an interval bound over the input box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from omlt_relax.chain import forward_chain
from omlt_relax.quantile import IncrementalQuantileHead

Tensor = torch.Tensor


class UnsupportedNetworkError(ValueError):
    """The torch model is not a network omlt_relax can bound, export or formulate."""


@dataclass(frozen=True)
class ParsedNetwork:
    """The linear layers of an accepted model, in order, and whether a quantile head ends it."""

    linears: tuple[nn.Linear, ...]
    quantile_head: bool

    @property
    def n_inputs(self) -> int:
        return int(self.linears[0].in_features)

    @property
    def n_outputs(self) -> int:
        return int(self.linears[-1].out_features)

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        """Widths of the hidden (ReLU) layers of the affine chain (the quantile layer included)."""
        widths = [int(lin.out_features) for lin in self.linears[:-1]]
        if self.quantile_head:
            widths.append(self.n_outputs)
        return tuple(widths)


def _describe(module: nn.Module, index: int) -> str:
    return f"module {index} ({type(module).__name__})"


def parse_network(model: nn.Module) -> ParsedNetwork:
    """Check ``model`` and return its linear layers.

    Raises :class:`UnsupportedNetworkError` naming the offending module and its position.
    """
    if isinstance(model, nn.Linear):
        model = nn.Sequential(model)
    if not isinstance(model, nn.Sequential):
        msg = (
            f"expected a torch.nn.Sequential of Linear/ReLU modules, got {type(model).__name__}; "
            "wrap the layers in nn.Sequential(...)"
        )
        raise UnsupportedNetworkError(msg)
    modules = list(model)
    if not modules:
        msg = "the nn.Sequential is empty; it needs at least one Linear layer"
        raise UnsupportedNetworkError(msg)
    linears: list[nn.Linear] = []
    quantile_head = False
    expect_relu = False
    for i, mod in enumerate(modules):
        if isinstance(mod, nn.Flatten):
            if i != 0:
                msg = f"{_describe(mod, i)}: Flatten is only accepted as the first module"
                raise UnsupportedNetworkError(msg)
            continue
        if isinstance(mod, IncrementalQuantileHead):
            if i != len(modules) - 1 or not linears or expect_relu is False:
                msg = (
                    f"{_describe(mod, i)}: IncrementalQuantileHead must be the last module, "
                    "directly after a Linear layer"
                )
                raise UnsupportedNetworkError(msg)
            quantile_head = True
            expect_relu = False
            continue
        if isinstance(mod, nn.Linear):
            if expect_relu:
                msg = (
                    f"{_describe(mod, i)}: two Linear layers in a row; put a ReLU between them "
                    "(or merge them into one Linear)"
                )
                raise UnsupportedNetworkError(msg)
            if mod.bias is None:
                msg = f"{_describe(mod, i)}: Linear without bias is not supported; use bias=True"
                raise UnsupportedNetworkError(msg)
            linears.append(mod)
            expect_relu = True
            continue
        if isinstance(mod, nn.ReLU):
            if not expect_relu:
                msg = f"{_describe(mod, i)}: ReLU must directly follow a Linear layer"
                raise UnsupportedNetworkError(msg)
            expect_relu = False
            continue
        msg = (
            f"{_describe(mod, i)} is not supported; omlt_relax accepts Linear and ReLU layers "
            "(a leading Flatten, a final IncrementalQuantileHead)"
        )
        raise UnsupportedNetworkError(msg)
    if not linears:
        msg = "the network has no Linear layer"
        raise UnsupportedNetworkError(msg)
    if not quantile_head and not expect_relu:
        msg = (
            f"the network ends with a ReLU (module {len(modules) - 1}); the output layer must be "
            "a Linear layer; add a final nn.Linear"
        )
        raise UnsupportedNetworkError(msg)
    for i in range(1, len(linears)):
        if linears[i].in_features != linears[i - 1].out_features:
            msg = (
                f"Linear layer {i} expects {linears[i].in_features} inputs but the layer before "
                f"gives {linears[i - 1].out_features}"
            )
            raise UnsupportedNetworkError(msg)
    dtypes = {p.dtype for lin in linears for p in (lin.weight, lin.bias)}
    low = dtypes - {torch.float32, torch.float64}
    if low:
        msg = (
            f"the network has {', '.join(sorted(str(d).replace('torch.', '') for d in low))} "
            "parameters; omlt_relax needs float32 or float64 (convert with model.float() or "
            "model.double())"
        )
        raise UnsupportedNetworkError(msg)
    if len(dtypes) > 1:
        msg = (
            "the network mixes float32 and float64 parameters; convert it to one dtype with "
            "model.float() or model.double()"
        )
        raise UnsupportedNetworkError(msg)
    for k, lin in enumerate(linears):
        for name, p in (("weight", lin.weight), ("bias", lin.bias)):
            if not torch.isfinite(p).all():
                msg = f"Linear layer {k} has a non-finite (NaN or inf) {name}; retrain or fix it"
                raise UnsupportedNetworkError(msg)
    return ParsedNetwork(tuple(linears), quantile_head)


def as_box(
    lb: Sequence[float] | np.ndarray | Tensor | tuple,
    ub: Sequence[float] | np.ndarray | Tensor | None = None,
    n_inputs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an input box and return it as two float64 arrays.

    ``as_box((lb, ub))`` and ``as_box(lb, ub)`` mean the same. Raises ``ValueError`` for a missing,
    non-finite, inverted or wrongly sized box.
    """
    if ub is None:
        if isinstance(lb, tuple | list) and len(lb) == 2 and np.ndim(_np(lb[0])) == 1:
            lb, ub = lb
        else:
            msg = "input bounds are missing: pass (lb, ub), two 1-D arrays of equal length"
            raise ValueError(msg)
    lo = np.asarray(_np(lb), dtype=np.float64).reshape(-1)
    hi = np.asarray(_np(ub), dtype=np.float64).reshape(-1)
    if lo.shape != hi.shape:
        msg = f"input bounds have different lengths: lb has {lo.size}, ub has {hi.size}"
        raise ValueError(msg)
    if n_inputs is not None and lo.size != n_inputs:
        msg = f"input bounds have {lo.size} entries but the network has {n_inputs} inputs"
        raise ValueError(msg)
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = (
            f"input bound {i} is not finite (lb={lo[i]}, ub={hi[i]}); every input needs a finite "
            "box for big-M bounds"
        )
        raise ValueError(msg)
    inv = lo > hi
    if inv.any():
        i = int(np.flatnonzero(inv)[0])
        msg = f"input bounds are inverted at input {i}: lb={lo[i]} > ub={hi[i]}; swap them"
        raise ValueError(msg)
    return lo, hi


def _np(a: object) -> object:
    if isinstance(a, Tensor):
        return a.detach().cpu().double().numpy()
    return a


def chain_module(chain: Sequence[tuple[np.ndarray, np.ndarray]]) -> nn.Sequential:
    """The inverse of :func:`~omlt_relax.bounds.affine_chain`: ``Linear``/``ReLU`` modules.

    Each ``(W_k, b_k)`` (numpy, ``W_k`` of shape ``(n_k, n_{k-1})``) becomes a ``Linear`` with
    exactly these numbers and their dtype, followed by a ``ReLU`` except after the last one, so
    every bound method (:func:`~omlt_relax.interval_bounds`, :func:`~omlt_relax.crown_bounds`,
    :func:`~omlt_relax.obbt_bounds`) applies to a chain read from ONNX or OMLT.
    """
    mods: list[nn.Module] = []
    for k, (w, b) in enumerate(chain):
        w_t = torch.from_numpy(np.ascontiguousarray(w))
        lin = nn.Linear(w.shape[1], w.shape[0], dtype=w_t.dtype)
        with torch.no_grad():
            lin.weight.copy_(w_t)
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)).reshape(-1))
        mods.append(lin)
        if k < len(chain) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


__all__ = [
    "ParsedNetwork",
    "UnsupportedNetworkError",
    "as_box",
    "chain_module",
    "forward_chain",
    "parse_network",
]
