r"""Penalty-weight schedules (:class:`Schedule`) and a regularizer that follows one.

A schedule multiplies the regularization term by :math:`s(t)` at optimizer step :math:`t` of
:math:`T`:

.. math::

    s(t) = \begin{cases} 0 & t < wT \\ \min\!\big(1, \tfrac{t - wT}{rT}\big) & t \ge wT
    \end{cases}

with warm-up fraction :math:`w` and ramp fraction :math:`r` (:math:`r = 0`: a hard switch, as in
the benchmark variants). During the warm-up the regularizer is not evaluated at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from omlt_relax.regularizer import backward_term


@dataclass(frozen=True)
class Schedule:
    """Warm-up and ramp fractions of the training steps (module docstring)."""

    warmup: float = 0.1
    ramp: float = 0.0

    def __post_init__(self) -> None:
        for name, val in (("warmup", self.warmup), ("ramp", self.ramp)):
            if not (math.isfinite(val) and 0 <= val <= 1):
                msg = f"schedule {name} must be a fraction in [0, 1], got {val}"
                raise ValueError(msg)

    def factor(self, step: int, total: int) -> float:
        """:math:`s(t)` at step ``step`` of ``total``."""
        start = self.warmup * total
        if step < start:
            return 0.0
        span = self.ramp * total
        return 1.0 if span <= 0 else min(1.0, (step - start + 1) / span)


class ScheduledRegularizer:
    r"""``reg`` times :math:`m\,s(t)` of ``schedule`` at its ``t``-th call of ``total``; not
    evaluated while that is 0 (a zero loss term then). ``metrics()`` are ``reg``'s.

    :attr:`multiplier` :math:`m` (1 by default) lets a caller scale the weight on top of the
    schedule, e.g. an accuracy budget backing it off
    (:class:`~omlt_relax.epoch_budget.EpochBudget`).
    """

    def __init__(self, reg: Callable[[torch.Tensor], torch.Tensor], schedule: Schedule,
                 total: int) -> None:
        self.reg, self.schedule, self.total, self.step = reg, schedule, total, 0
        self.multiplier = 1.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = self.multiplier * self.schedule.factor(self.step, self.total)
        self.step += 1
        return torch.zeros(()) if s == 0.0 else s * self.reg(x)

    def backward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Add the gradient of ``scale * self(x)`` to the parameters' ``.grad`` (the wrapped
        regularizer's ``backward`` if it has one) and return the term detached."""
        s = self.multiplier * self.schedule.factor(self.step, self.total)
        self.step += 1
        if s == 0.0:
            return torch.zeros(())
        return backward_term(self.reg, x, scale * s)

    def metrics(self) -> dict[str, float]:
        return self.reg.metrics()  # type: ignore[attr-defined]


__all__ = ["Schedule", "ScheduledRegularizer"]
