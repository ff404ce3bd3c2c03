"""The registry of bound methods: which names exist, what computes them, one error message.

Two kinds of pre-activation bounds over an input box:

* **differentiable** (:data:`DIFFERENTIABLE`): ``"ibp"`` (:mod:`~omlt_relax.bounds.interval`) and
  ``"crown"`` (:mod:`~omlt_relax.bounds.crown`), torch functions of the weights usable in training
  penalties, also available in float64 and widened outward for optimizers
  (:func:`~omlt_relax.bounds.sound_bounds`);
* **optimization-based** (:data:`OPTIMIZATION`): ``"lp"`` and ``"milp"``
  (:func:`~omlt_relax.bounds.obbt.obbt_bounds`, HiGHS), after training only.

Every module, the command line (``--bounds``) and the docs read the names from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omlt_relax.bounds.crown import crown_chain
from omlt_relax.bounds.interval import interval_chain

#: Differentiable methods: name -> ``fn(chain, lo, hi, include_output=False, widen=0.0)``
#: returning per-layer ``(lowers, uppers)``.
DIFFERENTIABLE: dict[str, Callable[..., Any]] = {"ibp": interval_chain, "crown": crown_chain}
#: Names of the differentiable methods, cheapest first.
BOUND_METHODS: tuple[str, ...] = tuple(DIFFERENTIABLE)
#: Optimization-based tightening methods (OBBT).
OPTIMIZATION: tuple[str, ...] = ("lp", "milp")
#: Everything :func:`~omlt_relax.export_onnx` and ``omlt-relax train --bounds`` accept, default
#: first.
EXPORT_METHODS: tuple[str, ...] = (*OPTIMIZATION, *BOUND_METHODS)


def check_method(method: object, allowed: tuple[str, ...] = BOUND_METHODS) -> str:
    """``method`` if it is one of ``allowed``, else a ``ValueError`` naming the choices."""
    if not isinstance(method, str) or method not in allowed:
        choices = ", ".join(repr(m) for m in allowed)
        msg = f"unknown bounds method {method!r}; use one of {choices}"
        raise ValueError(msg)
    return method


def propagate(method: str) -> Callable[..., Any]:
    """The propagation function of a differentiable method (see :data:`DIFFERENTIABLE`)."""
    return DIFFERENTIABLE[check_method(method)]


__all__ = [
    "BOUND_METHODS",
    "DIFFERENTIABLE",
    "EXPORT_METHODS",
    "OPTIMIZATION",
    "check_method",
    "propagate",
]
