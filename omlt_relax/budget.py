r"""Accuracy-budgeted training: the strongest regularization whose validation error stays in budget.

A user who trains a surrogate asks "what is the easiest MILP I can get without losing more than
X% accuracy?". :func:`train_within_budget` answers it for one regularizer (a benchmark variant,
e.g. ``"bigm+stability"``, whose base weights are multiplied by one scale :math:`\lambda`):

1. Train the unregularized **reference** :math:`\theta_0` (the shared training routine and
   :class:`~omlt_relax.bench.train.TrainConfig`); its validation RMSE is :math:`r_0`.
2. **Continuation**: starting from :math:`\theta_0`, ramp the weight up geometrically,
   :math:`\lambda_{k+1} = \rho\,\lambda_k` from ``weight_min``, training the *same* network for
   ``stage_epochs`` epochs at each weight (Adam restarted at ``stage_lr``, cosine decay) on
   :math:`\mathrm{MSE} + \lambda_k R(\theta)` -- no cold restart per weight.
3. After each stage, the validation RMSE :math:`r_k` of the exported (float64, original units)
   network is computed. If :math:`r_k \le \beta r_0` (:math:`\beta` = ``budget``) the state is
   **checkpointed** as the best so far. If not, the ramp backtracks to the last checkpoint and
   tries the geometric midpoint :math:`\sqrt{\lambda_{\text{good}}\lambda_k}` (at most ``refine``
   times); it stops when the refinements are used up or ``weight_max`` is passed.
4. The last checkpoint is returned (the reference itself if no stage stayed in budget).

**Guarantee**: the returned network's validation RMSE, computed on the returned float64 network, is
at most ``budget`` × the reference's (the reference qualifies since ``budget >= 1``). The test
split is never used. Each stage also records the unstable neurons and the mean big-M
:math:`\max(-l, u)` over unstable neurons under sound CROWN bounds, so the trade-off found can be
reported (:meth:`BudgetResult.table`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import nn

from omlt_relax.bounds import sound_bounds
from omlt_relax.data import Dataset, fold_standardization, predict, rmse
from omlt_relax.train import (
    TrainConfig,
    TrainResult,
    Variant,
    fit,
    get_variant,
    regularizer_for,
    train_epochs,
)

#: Default variant of the budgeted training: big-M + stability penalties.
DEFAULT_VARIANT = "bigm+stability"


# -- the rule ---------------------------------------------------------------------------------
@dataclass
class Stage:
    """One weight tried: validation RMSE and bounds of the network after its stage.

    Attributes:
        weight: the scale :math:`\\lambda` (0 for the reference).
        val_rmse: validation RMSE (original units); ``ratio``: over the reference's.
        unstable: unstable hidden neurons (sound CROWN bounds over the box).
        mean_bigm: mean :math:`\\max(-l, u)` over unstable neurons (same bounds).
        within_budget: ``ratio <= budget``; ``chosen``: the network returned.
        epochs: epochs trained at this weight; ``seconds``: their wall time.
        backtracked: the stage started from the last checkpoint after a stage out of budget.
    """

    weight: float
    val_rmse: float
    ratio: float
    unstable: int
    mean_bigm: float
    within_budget: bool
    epochs: int
    seconds: float
    backtracked: bool = False
    chosen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BudgetResult:
    """The network :func:`train_within_budget` chose and the trade-off it found.

    Attributes:
        model: the chosen float64 network in original units.
        weight: its scale :math:`\\lambda` (0: the reference was kept).
        val_rmse, ratio: its validation RMSE and ratio to the reference's (``<= budget``).
        reference: the unregularized :class:`~omlt_relax.bench.train.TrainResult`.
        budget, variant: the settings.
        stages: every weight tried, in order (the reference first).
        train_time: seconds in total.
    """

    model: nn.Sequential
    weight: float
    val_rmse: float
    ratio: float
    reference: TrainResult
    budget: float
    variant: str
    stages: list[Stage] = field(default_factory=list)
    train_time: float = 0.0

    def table(self) -> str:
        """The trade-off as a markdown table (one row per stage; the chosen one in bold)."""
        from omlt_relax.tables import format_table

        rows = []
        for s in self.stages:
            cells = [f"{s.weight:.3g}", f"{s.val_rmse:.4g}", f"{s.ratio:.3f}", str(s.unstable),
                     f"{s.mean_bigm:.3g}", ("yes" if s.within_budget else "no")
                     + (" (backtracked)" if s.backtracked else ""), str(s.epochs)]
            rows.append([f"**{c}**" for c in cells] if s.chosen else cells)
        return format_table(["weight", "val RMSE", "ratio", "unstable", "mean big-M",
                             "within budget", "epochs"], rows, markdown=True)

    def to_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "val_rmse": self.val_rmse, "ratio": self.ratio,
                "reference_val_rmse": self.reference.val_rmse, "budget": self.budget,
                "variant": self.variant, "train_time": self.train_time,
                "stages": [s.to_dict() for s in self.stages]}


def check_budget(budget: float) -> None:
    """``ValueError`` unless ``budget`` is a finite number >= 1."""
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget >= 1):
        msg = (f"budget must be a number >= 1 (the validation RMSE may grow to budget x the "
               f"unregularized network's), got {budget}")
        raise ValueError(msg)


def _stage_record(model: nn.Sequential, data: Dataset, weight: float, ref_val: float,
                  budget: float, epochs: int, seconds: float, backtracked: bool,
                  ) -> tuple[nn.Sequential, Stage]:
    folded = fold_standardization(model, data.scaler)
    val = rmse(predict(folded, data.x_val), data.y_val)
    unstable, bigm = unstable_and_bigm(folded, data.lower, data.upper)
    ratio = val / ref_val if ref_val > 0 else (1.0 if val == 0 else math.inf)
    return folded, Stage(weight, val, ratio, unstable, bigm, ratio <= budget, epochs, seconds,
                         backtracked)


def train_within_budget(
    data: Dataset,
    budget: float = 1.2,
    variant: str | Variant = DEFAULT_VARIANT,
    config: TrainConfig | None = None,
    weight_min: float = 1e-4,
    weight_max: float = 10.0,
    factor: float = 2.0,
    stage_epochs: int | None = None,
    stage_lr: float | None = None,
    refine: int = 2,
    reference: TrainResult | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> BudgetResult:
    r"""The strongest regularization whose validation RMSE stays within ``budget``.

    Args:
        data: the data set (validation split decides; the box is ``data.lower, data.upper``).
        budget: :math:`\beta \ge 1`: validation RMSE at most :math:`\beta` × the reference's.
        variant: a regularizing benchmark variant (:data:`~omlt_relax.bench.train.VARIANTS`,
            not pruning or L1); its base weights are multiplied by the scale.
        config: training settings (the reference trains ``config.epochs`` epochs).
        weight_min, weight_max, factor: the geometric ramp of the scale.
        stage_epochs: epochs per weight (default: ``max(1, epochs // 5)``).
        stage_lr: learning rate each stage restarts from (default ``lr / 10``).
        refine: backtracking steps after a stage out of budget.
        reference: an already trained unregularized network (``fit(data,
            "unregularized", 0, config)``) to start from instead of training it.
        log: called with one line per stage.
        progress: called with the number of epochs after each epoch.
    """
    check_budget(budget)
    cfg = config or TrainConfig()
    v = get_variant(variant) if isinstance(variant, str) else variant
    if v.prune or v.l1 or not v.regularized:
        msg = (f"budgeted training needs a regularizer variant (big-M, stability or LP-gap "
               f"penalties), not {v.name!r}")
        raise ValueError(msg)
    if not (0 < weight_min <= weight_max and math.isfinite(weight_max)):
        msg = f"need 0 < weight_min <= weight_max, got {weight_min} and {weight_max}"
        raise ValueError(msg)
    if not factor > 1:
        msg = f"the ramp factor must be > 1, got {factor}"
        raise ValueError(msg)
    if refine < 0:
        msg = f"refine must be >= 0, got {refine}"
        raise ValueError(msg)
    n_stage = max(1, cfg.epochs // 5) if stage_epochs is None else int(stage_epochs)
    if n_stage < 1:
        msg = f"stage_epochs must be at least 1, got {stage_epochs}"
        raise ValueError(msg)
    lr = cfg.lr / 10 if stage_lr is None else float(stage_lr)
    say = log or (lambda s: None)
    t_start = time.perf_counter()
    ref = reference or fit(data, "unregularized", 0.0, cfg, progress=progress)
    std = getattr(ref, "std_model", None)
    if std is None:
        msg = "the reference must come from fit (it carries the standardized network)"
        raise ValueError(msg)
    ref_val = ref.val_rmse
    _, s0 = _stage_record(std, data, 0.0, ref_val, budget, cfg.epochs, ref.train_time, False)
    stages = [s0]
    say(f"reference: validation RMSE {ref_val:.4g}, {s0.unstable} unstable, "
        f"mean big-M {s0.mean_bigm:.3g}")
    best_state = copy.deepcopy(std.state_dict())
    best_model, best_stage = copy.deepcopy(ref.model), s0
    good_w = 0.0
    net = copy.deepcopy(std)
    w = weight_min
    refinements = 0
    backtracked = False
    while w <= weight_max * (1 + 1e-12):
        t0 = time.perf_counter()
        reg = regularizer_for(net, data, v, w, cfg)
        train_epochs(net, data, cfg, n_stage, lr, None, reg, progress)
        folded, st = _stage_record(net, data, w, ref_val, budget, n_stage,
                                   time.perf_counter() - t0, backtracked)
        stages.append(st)
        say(f"weight {w:.3g}: validation RMSE ratio {st.ratio:.3f}, {st.unstable} unstable, "
            f"mean big-M {st.mean_bigm:.3g}" + ("" if st.within_budget else " (over budget)"))
        if st.within_budget:
            best_state, best_model, best_stage = copy.deepcopy(net.state_dict()), folded, st
            good_w = w
            backtracked = False
            w *= factor
            continue
        if refinements >= refine:
            break
        # back to the last checkpoint, half the step (geometrically)
        refinements += 1
        net.load_state_dict(best_state)
        backtracked = True
        w = math.sqrt(good_w * w) if good_w > 0 else w / factor
    # the guarantee: the returned network is in budget on validation data
    final_val = rmse(predict(best_model, data.x_val), data.y_val)
    if not final_val <= budget * ref_val:  # pragma: no cover - would be a bug above
        msg = "internal error: the chosen network is outside the budget"
        raise RuntimeError(msg)
    best_stage.chosen = True
    return BudgetResult(best_model, best_stage.weight, final_val, final_val / ref_val
                        if ref_val > 0 else 1.0, ref, float(budget), v.name, stages,
                        time.perf_counter() - t_start)


def unstable_and_bigm(model: nn.Module, lower: np.ndarray, upper: np.ndarray) -> tuple[int, float]:
    """Unstable neurons and mean big-M of a network over a box (sound CROWN bounds)."""
    nb = sound_bounds(model, lower, upper, "crown")
    return nb.unstable_count(), nb.mean_bigm()


__all__ = [
    "DEFAULT_VARIANT",
    "BudgetResult",
    "Stage",
    "check_budget",
    "train_within_budget",
    "unstable_and_bigm",
]
