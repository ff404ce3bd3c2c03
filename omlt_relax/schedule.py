r"""The call sites into the training loop that budget and tune share: a network trained with a
penalty-weight :class:`~omlt_relax.penalty_schedule.Schedule` (warm-up, then a linear ramp; defined,
with :class:`~omlt_relax.penalty_schedule.ScheduledRegularizer`, in
:mod:`omlt_relax.penalty_schedule` and re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from omlt_relax.data import Dataset, fold_standardization
from omlt_relax.penalty_schedule import Schedule, ScheduledRegularizer
from omlt_relax.train import TrainConfig, Variant, build_model, regularizer_for, train_epochs


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
    extra = None if reg is None else ScheduledRegularizer(reg, schedule, total)
    train_epochs(model, data, config, config.epochs, config.lr, extra, None, progress)
    return fold_standardization(model, data.scaler), model


__all__ = ["Schedule", "ScheduledRegularizer", "steps_per_epoch", "train_scheduled"]
