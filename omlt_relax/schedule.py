r"""Penalty-weight schedules, and the call sites into the training loop that budget and tune share.

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
from torch import nn

from omlt_relax.data import Dataset, fold_standardization
from omlt_relax.train import TrainConfig, Variant, build_model, regularizer_for, train_epochs


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


def steps_per_epoch(data: Dataset, cfg: TrainConfig) -> int:
    n = data.x_train.shape[0]
    return math.ceil(n / min(cfg.batch_size, n))


def train_scheduled(
    data: Dataset,
    variant: Variant,
    schedule: Schedule,
    config: TrainConfig,
    progress: Callable[[int], None] | None = None,
) -> tuple[nn.Sequential, nn.Sequential]:
    """Train ``variant`` (scale 1) from the seeded initialization with ``schedule``.

    Returns ``(float64 network in original units, float32 standardized network)``.
    """
    model = build_model(data.n_inputs, config.hidden, data.n_outputs, config.seed)
    reg = regularizer_for(model, data, variant, 1.0, config)
    total = config.epochs * steps_per_epoch(data, config)
    step = [0]

    def extra(xb: torch.Tensor) -> torch.Tensor:
        s = schedule.factor(step[0], total)
        step[0] += 1
        if s == 0.0 or reg is None:
            return torch.zeros(())
        return s * reg(xb)

    train_epochs(model, data, config, config.epochs, config.lr, extra, None, progress)
    return fold_standardization(model, data.scaler), model


__all__ = ["Schedule", "steps_per_epoch", "train_scheduled"]
