r"""An accuracy budget over the epochs of one training run (the ``*_ftb`` recipes).

Fine-tuning a trained network with a relaxation penalty of weight :math:`\lambda` trades accuracy
for stable neurons; which :math:`\lambda` lands at an acceptable accuracy differs from network to
network. The budget makes the trade explicit, inside one run:

* the **limit** is :math:`\beta` times the starting network's validation error :math:`e_0`
  (the caller's metric: the paper suite uses the MSE, :func:`omlt_relax.train.fit` the RMSE);
* after every epoch :math:`k` offered (:meth:`EpochBudget.offer`), its validation error
  :math:`e_k` and its number of unstable neurons :math:`n_k` under sound float64 bounds
  (:func:`~omlt_relax.bounds.sound_bounds`, ``"ibp"`` or ``"crown"``) are recorded;
* if :math:`e_k > \beta e_0` and backing off is allowed (the caller decides: the paper suite
  from the end of the weight's ramp, :func:`omlt_relax.train.fit` on every epoch), the weight's
  multiplier :attr:`EpochBudget.scale` is multiplied by ``backoff`` (< 1): the penalty gives way
  while the error is over budget;
* the epoch to **keep** is, among the epochs within budget, the one with the fewest unstable
  neurons (ties: the lower error); while no epoch has been within budget, the most accurate one.

Guarantee: if any offered epoch was within budget, the kept one is (its error was measured on the
very weights the caller keeps), so the returned network's validation error is at most
:math:`\beta e_0`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from torch import nn

from omlt_relax.bounds import sound_bounds

#: Default multiplier of the weight on every epoch over budget.
BACKOFF = 0.9


class EpochBudget:
    """The accuracy budget of one training run (module docstring).

    Args:
        limit: :math:`\\beta e_0`, the largest validation error an epoch may have to be kept on
            the stability criterion.
        box: ``(lower, upper)`` input box of the network as trained (the units its first layer
            sees).
        bounds: ``"ibp"`` or ``"crown"``: the bounds whose unstable neurons are counted.
        backoff: factor in (0, 1) applied to :attr:`scale` on every epoch over budget.
    """

    def __init__(self, limit: float, box: tuple[Any, Any], bounds: str = "crown",
                 backoff: float = BACKOFF) -> None:
        if not (math.isfinite(limit) and limit > 0):
            msg = f"the accuracy budget's limit must be a positive number, got {limit}"
            raise ValueError(msg)
        if not 0 < backoff < 1:
            msg = f"backoff must be in (0, 1), got {backoff}"
            raise ValueError(msg)
        self.limit, self.box, self.bounds, self.backoff = float(limit), box, bounds, backoff
        #: multiplier of the penalty weight (1 until the first epoch over budget).
        self.scale = 1.0
        #: ``(unstable, error)`` of the kept epoch within budget (``None``: none yet).
        self.best: tuple[int, float] | None = None
        #: error of the epoch kept so far (within budget or not).
        self.kept_error = math.inf
        #: unstable neurons of the last epoch offered (-1: none offered).
        self.last_unstable = -1

    def offer(self, model: nn.Module, error: float, back_off: bool = True) -> bool:
        """Record one epoch (validation error ``error`` of ``model`` as it is now); back the
        weight off if over budget and ``back_off``. True: the caller keeps this epoch's weights
        (within budget and more stable than the kept one, or, while no epoch has been within
        budget, more accurate)."""
        m64 = copy.deepcopy(model).double().eval()
        self.last_unstable = sound_bounds(m64, *self.box, self.bounds).unstable_count()
        if not error <= self.limit:  # over budget (or NaN)
            if back_off:
                self.scale *= self.backoff
            keep = self.best is None and error < self.kept_error
        else:
            key = (self.last_unstable, float(error))
            keep = self.best is None or key < self.best
            if keep:
                self.best = key
        if keep:
            self.kept_error = float(error)
        return keep


__all__ = ["BACKOFF", "EpochBudget"]
