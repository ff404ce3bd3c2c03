"""The training loop: one routine (:func:`fit`) for every variant, and the rule that picks a weight.

Used by ``omlt-relax train`` and ``demo``, the examples and the benchmark suite alike (the suite
imports it through :mod:`omlt_relax.bench.train`). The thread count is left to the caller
(the command line and scripts call :func:`omlt_relax.threads.single_thread`).

Every variant trains the same architecture (``hidden`` ReLU layers), on the same standardized data,
from the same seeded initialization, for the same number of epochs, with the same optimizer (Adam,
cosine learning-rate decay, batch size fixed). They differ only in the term added to the MSE loss:

========================  ==========================================================================
variant                   loss = MSE + ...
========================  ==========================================================================
``unregularized``         nothing
``l1``                    :math:`\\lambda\\,\\overline{|W|}` (mean absolute weight, all layers)
``pruning``               nothing; then magnitude pruning of a fraction :math:`\\lambda` of each
                          hidden layer's weights and fine-tuning with the mask fixed (extra epochs)
``rs_xiao``               Xiao et al.'s RS loss :math:`\\lambda \\sum -\\tanh(1 + l u)`, IBP bounds
``bigm``                  our big-M penalty, :math:`\\lambda` × mean :math:`(u - l)`
``stability``             our stability penalty, :math:`\\lambda` × triangle height (CROWN)
``lp_direct``             LP-gap penalty, envelope-theorem ("direct") derivative
``lp_total``              LP-gap penalty, total derivative (through the big-M constants)
``bigm+stability``        both bound penalties
``relax``                 big-M + stability + LP gap (total)
========================  ==========================================================================

(:data:`VARIANTS` holds the exact settings.) The regularization terms are switched on after a
warm-up of ``warmup_fraction`` of the steps (10%; half of the steps for the variants with an LP-gap
term, whose per-sample LPs dominate their cost), so every variant first fits the data the same way.
Pruning starts from the trained unregularized network and fine-tunes for ``finetune_fraction`` more
epochs at the learning rate the baseline ended with (it gets more epochs than the others).
A *fine-tuning* variant (``finetune=True``, e.g. ``bigm+stability_ft``) also starts from the
trained unregularized network and trains ``finetune_fraction`` × ``epochs`` more with its
penalties on from the first step, the learning rate cosine-decayed from the pruning's
:math:`2\\,\\eta\\,\\rho` (η = ``lr``, ρ = ``final_lr_fraction``): the network keeps what it
learned while the penalties push neurons to stability. An option, not a default: on peaks 3×100
it was worse than training with the penalties from the start (BENCHMARKS.md, "The paper-scale
suite"); the paper-suite recipe that does keep the plain network's accuracy is
:mod:`omlt_relax.bench.paper`'s ``*_ftd``, here as the *recipe* variants ``stability_ftd`` and
``bigm+stability_ftd`` (``ft_ramp``/``ft_hold``/``ft_lr``/``ft_final_lr``/``ft_epochs``): from the
trained plain network, ``ft_epochs`` × ``epochs`` more epochs starting at ``ft_lr`` × η; the
penalty weight ramps linearly from 0 over the first ``ft_ramp`` of the steps while the learning
rate is held for the first ``ft_hold`` of them, then cosine-decays to ``ft_final_lr`` × its start.
Their control ``unregularized_ftd`` runs the same recipe with no penalty: an unregularized network
trained longer (what the recipe's accuracy owes to its extra epochs and learning-rate decay).
``stability_ftb`` is ``stability_ftd`` with an **accuracy budget** (``budget``,
:mod:`omlt_relax.epoch_budget`): :math:`\\lambda` is where the ramp would end; every epoch whose
validation RMSE exceeds :data:`FT_BUDGET` × the plain network's multiplies the weight by
``budget_backoff`` (during the ramp too, so it stops climbing while over budget), and the network
returned is the epoch with the fewest CROWN-unstable neurons within budget -- so the weight that
lands at an acceptable accuracy need not be guessed. ``stability_ftb1`` and
``stability_lpgap4_ftb1`` set the budget to 1 (no validation RMSE lost against the plain network:
the recipe's extra epochs are to pay for the stable neurons), the budget of an equal-accuracy
comparison; on Himmelblau and Rosenbrock 5-D they kept early, more accurate epochs with no fewer
unstable neurons and slower MILPs than the fixed-weight recipe (BENCHMARKS.md).
``stability_lpgap4_ftd`` (the fastest recipe at 3×100 within 1.25× the plain RMSE, BENCHMARKS.md)
and ``stability_lpgap_ftd`` add the **LP gap** to ``stability_ftd``'s penalty:

.. math::

    \\lambda\\Big(0.3 \\sum_{k,i} \\min\\big(\\max(-l_{ki}, 0), \\max(u_{ki}, 0)\\big)
    + w\\,\\frac{1}{|I|} \\sum_{j \\in I} \\big(\\max_{LP(x_j)} y - \\min_{LP(x_j)} y\\big)\\Big),

:math:`l, u` CROWN bounds, :math:`LP(x)` the big-M LP relaxation with the input fixed at a
training point :math:`x` (both senses, as the MILP is solved for the minimum and the maximum;
the sum of the two per-sense gaps :func:`~omlt_relax.lp.gap.lp_gap` computes), big-M constants
from CROWN, derivative through them
(``"total"``), :math:`I` four points of each mini-batch (``lp_subsample``); :math:`w = 4` (the
two terms about equal on a plain network) or :math:`w = 1`. ``stability_lpgap4_ftd2`` is
``stability_lpgap4_ftd`` fine-tuning for ``epochs`` more epochs instead of half as many (the same
ramp, hold and decay fractions, stretched): the longer decay buys back accuracy at the same
weight (BENCHMARKS.md, Rosenbrock 5-D 2×100).

**Weight selection rule** (:func:`select_weight`): each variant has a fixed grid of scales
:math:`\\lambda`, multiplying all of its terms. The largest :math:`\\lambda` on the grid whose
validation RMSE is at most ``tolerance`` times the unregularized network's validation RMSE is
chosen (found by bisection over the grid, assuming the RMSE grows with :math:`\\lambda`; a linear
search from the largest scale down is available). If none qualifies, the smallest is kept and the
result is marked ``within_tolerance=False``. The test split is never used for selection.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.data import Dataset, fold_standardization, predict, rmse
from omlt_relax.epoch_budget import BACKOFF as BUDGET_BACKOFF
from omlt_relax.epoch_budget import EpochBudget
from omlt_relax.guards import check_loss
from omlt_relax.lp.gap import LPGapPenalty
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.penalty_schedule import Schedule, ScheduledRegularizer
from omlt_relax.regularizer import RelaxationRegularizer, backward_term

#: Default tolerance of the weight-selection rule: validation RMSE ≤ 1.2 × the baseline's.
DEFAULT_TOLERANCE = 1.2


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by every variant of one training (or benchmark).

    Attributes:
        hidden: widths of the hidden ReLU layers.
        epochs: passes over the training split.
        batch_size: minibatch size.
        lr: Adam's initial learning rate (cosine decay to ``lr * final_lr_fraction``).
        final_lr_fraction: learning rate at the last epoch, relative to ``lr``.
        warmup_fraction: fraction of the steps before the relaxation terms switch on.
        lp_subsample: samples per step whose LP gap is solved (LP-gap variants).
        finetune_fraction: pruning's fine-tuning epochs, relative to ``epochs``.
        seed: initialization and batch order.
    """

    hidden: tuple[int, ...] = (50, 50)
    epochs: int = 300
    batch_size: int = 256
    lr: float = 1e-2
    final_lr_fraction: float = 0.05
    warmup_fraction: float = 0.1
    lp_subsample: int = 4
    finetune_fraction: float = 0.3
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


@dataclass(frozen=True)
class Variant:
    """One way of training: base weights of each term, all multiplied by the selected scale.

    Attributes:
        name: key in :data:`VARIANTS`.
        description: one line for tables.
        l1: weight of the mean absolute weight.
        bigm, bigm_variant, bigm_bounds: :class:`~omlt_relax.BigMPenalty` weight and options.
        stability, stability_variant, stability_bounds, stability_c: the same for
            :class:`~omlt_relax.StabilityPenalty`.
        lp_gap, lp_derivative, lp_sense, lp_bounds: the same for
            :class:`~omlt_relax.lp.gap.LPGapPenalty`.
        prune: if True the scale is the fraction of hidden weights pruned (then fine-tuned).
        finetune: if True the penalties fine-tune the trained unregularized network (module
            docstring) instead of training from scratch.
        grid: scales tried by :func:`select_weight`, any order (sorted largest first).
        warmup_fraction: overrides :attr:`TrainConfig.warmup_fraction` (``None``: keep it).
        ft_epochs, ft_lr, ft_final_lr, ft_ramp, ft_hold: the fine-tuning schedule of a
            ``finetune`` variant (module docstring); ``ft_epochs=None`` keeps
            :attr:`TrainConfig.finetune_fraction`, ``ft_lr=None`` the start
            :math:`2\\,\\eta\\,\\rho`, ``ft_final_lr=None`` :attr:`TrainConfig.final_lr_fraction`.
        budget: 0, or an accuracy budget :math:`\\beta \\ge 1` of a ``finetune`` variant with a
            ramp (:class:`~omlt_relax.epoch_budget.EpochBudget`): every epoch of the fine-tuning
            (the ramp's included) whose validation RMSE exceeds :math:`\\beta` × the starting
            network's multiplies the weight by ``budget_backoff`` (the ramp stops climbing while
            over budget), and the network returned is the epoch with the fewest unstable
            neurons (``stability_bounds``) within budget, not the last.
        budget_backoff: that factor, in (0, 1).
    """

    name: str
    description: str = ""
    l1: float = 0.0
    bigm: float = 0.0
    bigm_variant: str = "range"
    bigm_bounds: str = "ibp"
    stability: float = 0.0
    stability_variant: str = "triangle"
    stability_bounds: str = "crown"
    stability_c: float = 1.0
    lp_gap: float = 0.0
    lp_derivative: str = "direct"
    lp_sense: str = "both"
    lp_bounds: str = "ibp"
    prune: bool = False
    grid: tuple[float, ...] = (1.0,)
    warmup_fraction: float | None = None
    finetune: bool = False
    ft_epochs: float | None = None
    ft_lr: float | None = None
    ft_final_lr: float | None = None
    ft_ramp: float = 0.0
    ft_hold: float = 0.0
    budget: float = 0.0
    budget_backoff: float = BUDGET_BACKOFF

    def __post_init__(self) -> None:
        if self.budget and not (self.finetune and self.ft_ramp > 0 and self.budget >= 1):
            msg = (f"variant {self.name!r}: an accuracy budget needs a fine-tuning variant with "
                   f"a ramp and a budget >= 1 (got budget={self.budget}, "
                   f"finetune={self.finetune}, ft_ramp={self.ft_ramp})")
            raise ValueError(msg)

    @property
    def regularized(self) -> bool:
        return bool(self.l1 or self.bigm or self.stability or self.lp_gap or self.prune)

    @property
    def uses_lp(self) -> bool:
        return self.lp_gap > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d


#: Weight grids (the scale multiplies the variant's base weights). Penalties are in standardized
#: units, where a well-fitted network has an MSE of about 1e-3; the grids span the range from
#: clearly too strong to negligible on the benchmark functions, so that the rule decides.
GRID_BOUND = (3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
GRID_L1 = (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
GRID_LP = (3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
GRID_PRUNE = (0.95, 0.9, 0.8, 0.7, 0.5, 0.3, 0.2, 0.1)
#: Variants with an LP-gap term switch their terms on after half of the steps: the per-sample LPs
#: are most of their cost, and the bound terms alone behave the same either way.
LP_WARMUP = 0.5

#: The fine-tuning recipe of the ``*_ftd`` variants (the paper suite's, module docstring): half
#: of ``epochs`` more from the plain network at η/10, the weight ramped over the first half, the
#: learning rate held there, then cosine-decayed to 1% of its start.
FT_RECIPE: dict[str, Any] = {"finetune": True, "ft_epochs": 0.5, "ft_lr": 0.1,
                             "ft_final_lr": 0.01, "ft_ramp": 0.5, "ft_hold": 0.5}
#: Accuracy budget of the ``*_ftb`` variants: validation RMSE at most this × the starting
#: (unregularized) network's, leaving room under the benchmarks' 1.25× test-RMSE line.
FT_BUDGET = 1.2

#: The ``stability_lpgap*_ftd`` variants but their LP-gap weight: ``stability_ftd`` (the
#: stable-neuron term on CROWN bounds, the fine-tuning recipe) plus the LP gap of both senses on
#: CROWN big-M constants, total derivative (module docstring).
LP_RECIPE: dict[str, Any] = {"stability": 0.3, "stability_variant": "min",
                             "lp_derivative": "total", "lp_bounds": "crown",
                             "grid": GRID_BOUND, **FT_RECIPE}

#: The benchmark variants (see the module docstring).
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("unregularized", "plain MSE training"),
        Variant("l1", "L1 weight penalty", l1=1.0, grid=GRID_L1),
        Variant("pruning", "magnitude pruning + fine-tuning", prune=True, grid=GRID_PRUNE),
        Variant(
            "rs_xiao", "Xiao et al. RS loss (IBP)", stability=0.1, stability_variant="xiao",
            stability_bounds="ibp", grid=GRID_BOUND,
        ),
        Variant("bigm", "big-M penalty (IBP, u-l)", bigm=1.0, grid=GRID_BOUND),
        Variant(
            "stability", "stability penalty (CROWN, triangle)", stability=0.3, grid=GRID_BOUND
        ),
        Variant(
            "lp_direct", "LP-gap penalty, direct derivative", lp_gap=1.0,
            lp_derivative="direct", grid=GRID_LP, warmup_fraction=LP_WARMUP,
        ),
        Variant(
            "lp_total", "LP-gap penalty, total derivative", lp_gap=1.0, lp_derivative="total",
            grid=GRID_LP, warmup_fraction=LP_WARMUP,
        ),
        Variant(
            "bigm+stability", "big-M + stability penalties", bigm=1.0, stability=0.3,
            grid=GRID_BOUND,
        ),
        Variant(
            "bigm+stability_ft", "big-M + stability, fine-tuning the unregularized network",
            bigm=1.0, stability=0.3, grid=GRID_BOUND, finetune=True,
        ),
        Variant(
            "stability_ftd", "stable-neuron penalty (CROWN, min(u, -l)), fine-tuning recipe",
            stability=0.3, stability_variant="min", grid=GRID_BOUND, **FT_RECIPE,
        ),
        Variant(
            "stability_ftb", "stable-neuron penalty (CROWN), fine-tuning recipe with an "
            "accuracy budget (validation RMSE <= 1.2x the start)",
            stability=0.3, stability_variant="min", grid=GRID_BOUND, budget=FT_BUDGET,
            **FT_RECIPE,
        ),
        Variant(
            "stability_lpgap_ftd", "stable-neuron penalty + LP gap (total derivative, CROWN "
            "big-M constants, both senses), fine-tuning recipe", lp_gap=1.0, **LP_RECIPE,
        ),
        Variant(
            "stability_lpgap4_ftd", "stability_lpgap_ftd with the LP gap weighted 4 (the two "
            "terms about equal on a plain network)", lp_gap=4.0, **LP_RECIPE,
        ),
        Variant(
            "stability_ftb1", "stability_ftb with a budget of 1: validation RMSE no worse "
            "than the starting network's (equal accuracy)",
            stability=0.3, stability_variant="min", grid=GRID_BOUND, budget=1.0, **FT_RECIPE,
        ),
        Variant(
            "stability_lpgap4_ftb1", "stability_lpgap4_ftd with an accuracy budget of 1 "
            "(validation RMSE no worse than the starting network's)", lp_gap=4.0,
            budget=1.0, **LP_RECIPE,
        ),
        Variant(
            "stability_lpgap4_ftd2", "stability_lpgap4_ftd fine-tuning twice as long (all of "
            "epochs more, not half)", lp_gap=4.0, **{**LP_RECIPE, "ft_epochs": 1.0},
        ),
        Variant(
            "bigm+stability_ftd", "big-M + stability penalties, fine-tuning recipe",
            bigm=1.0, stability=0.3, grid=GRID_BOUND, **FT_RECIPE,
        ),
        Variant(
            "unregularized_ftd", "no penalty, the fine-tuning recipe's extra epochs (control)",
            **FT_RECIPE,
        ),
        Variant(
            "relax", "big-M + stability + LP gap (total)", bigm=1.0, stability=0.3, lp_gap=0.3,
            lp_derivative="total", grid=GRID_BOUND, warmup_fraction=LP_WARMUP,
        ),
    )
}


#: What the benchmark suite's ``--variants all`` runs: the baseline and every regularizing variant
#: (controls such as ``unregularized_ftd`` only when named).
SUITE_VARIANTS: tuple[str, ...] = tuple(
    n for n, v in VARIANTS.items() if v.regularized or n == "unregularized"
)


def get_variant(name: str) -> Variant:
    """The variant called ``name`` (``ValueError`` listing the known names)."""
    try:
        return VARIANTS[name]
    except KeyError:
        msg = f"unknown variant {name!r}; known: {', '.join(VARIANTS)}"
        raise ValueError(msg) from None


@dataclass
class TrainResult:
    """A trained network and how it was obtained.

    Attributes:
        model: float64 ``nn.Sequential`` in original units (standardization folded in).
        variant: the variant's name.
        scale: the weight scale (pruning: the pruned fraction); 0 for the baseline.
        val_rmse, train_rmse: in original units.
        train_time: seconds of training (fine-tuning included).
        history: per-epoch records (loss, MSE, regularizer metrics at epoch end).
        std_model: the trained network before folding, float32 in standardized units (what
            :func:`fit` takes as ``baseline`` for pruning); ``None`` if not kept.
    """

    model: nn.Sequential
    variant: str
    scale: float
    val_rmse: float
    train_rmse: float
    train_time: float
    history: list[dict[str, float]] = field(default_factory=list)
    std_model: nn.Sequential | None = None


def build_model(n_in: int, hidden: Sequence[int], n_out: int, seed: int) -> nn.Sequential:
    """A float32 ``Linear``/``ReLU`` network with torch's default initialization under ``seed``."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = n_in
    for w in hidden:
        layers += [nn.Linear(prev, int(w)), nn.ReLU()]
        prev = int(w)
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def _regularizer(model: nn.Sequential, box: tuple[np.ndarray, np.ndarray], v: Variant,
                 scale: float, cfg: TrainConfig, warmup: int) -> Any:
    """The :class:`~omlt_relax.RelaxationRegularizer` of a variant at a scale (None if none)."""
    if not (v.bigm or v.stability or v.lp_gap):
        return None
    bigm = stab = gap = None
    if v.bigm:
        bigm = BigMPenalty(model, box, weight=v.bigm * scale, bounds=v.bigm_bounds,
                           variant=v.bigm_variant)
    if v.stability:
        stab = StabilityPenalty(model, box, weight=v.stability * scale, bounds=v.stability_bounds,
                                variant=v.stability_variant, c=v.stability_c)
    if v.lp_gap:
        gap = LPGapPenalty(model, box, weight=v.lp_gap * scale, sense=v.lp_sense,
                           bounds=v.lp_bounds, derivative=v.lp_derivative,
                           subsample=cfg.lp_subsample)
    return RelaxationRegularizer(model, box, bigm=bigm, stability=stab, lp_gap=gap,
                                 warmup=warmup)


def hold_cosine(step: int, total: int, start: int, floor: float) -> float:
    r"""Learning-rate multiplier at ``step`` of ``total``: 1 up to ``start``, then the cosine
    :math:`\rho + (1 - \rho)\,\tfrac12\,(1 + \cos \pi t)`,
    :math:`t = \min(\max(\text{step} - \text{start}, 0), T') / T'`,
    :math:`T' = \max(1, \text{total} - \text{start})`, down to :math:`\rho` = ``floor``."""
    span = max(1, total - start)
    t = min(max(step - start, 0), span) / span
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def _l1(model: nn.Sequential) -> torch.Tensor:
    ws = [m.weight for m in model if isinstance(m, nn.Linear)]
    return torch.cat([w.abs().reshape(-1) for w in ws]).mean()


def _train_loop(
    model: nn.Sequential,
    data: Dataset,
    cfg: TrainConfig,
    epochs: int,
    lr: float,
    loss_extra: Callable[[torch.Tensor], torch.Tensor] | None,
    reg: Any,
    masks: list[torch.Tensor] | None,
    progress: Callable[[int], None] | None,
    hold: float = 0.0,
    final_lr: float | None = None,
    on_epoch: Callable[[int], dict[str, float]] | None = None,
) -> list[dict[str, float]]:
    """Adam over ``epochs``: ``lr`` held for the first ``hold`` of the steps, then cosine decay
    to ``final_lr`` (default :attr:`TrainConfig.final_lr_fraction`) × ``lr``; optional extra
    loss, regularizer and weight masks; ``on_epoch(epoch)`` after each epoch (its items are
    added to the epoch's history record)."""
    x, y = data.tensors("train")
    n = x.shape[0]
    bs = min(cfg.batch_size, n)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(n / bs)
    total = max(1, epochs * steps_per_epoch)
    start = int(hold * total)
    rho = cfg.final_lr_fraction if final_lr is None else final_lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: hold_cosine(s, total, start, rho))
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    history: list[dict[str, float]] = []
    first: float | None = None
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        tot_loss = tot_mse = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs]
            xb, yb = x[idx], y[idx]
            mse = torch.mean((model(xb) - yb) ** 2)
            loss = mse
            if loss_extra is not None:
                loss = loss + loss_extra(xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if reg is not None:  # the gradient of loss + reg(xb), no autograd graph if it can
                loss = loss.detach() + backward_term(reg, xb)
            first = check_loss(float(loss.detach()), epoch, first, lr)
            opt.step()
            sched.step()
            if masks is not None:
                with torch.no_grad():
                    for lin, m in zip(linears, masks):
                        lin.weight.mul_(m)
            tot_loss += float(loss.detach())
            tot_mse += float(mse.detach())
        rec = {"epoch": float(epoch), "loss": tot_loss / steps_per_epoch,
               "mse": tot_mse / steps_per_epoch}
        if reg is not None and (epoch == epochs - 1 or epoch % 10 == 0):
            rec.update({f"reg_{k}": float(v) for k, v in reg.metrics().items()})
        if on_epoch is not None:
            rec.update(on_epoch(epoch))
        history.append(rec)
        if progress is not None:
            progress(1)
    return history


def prune_masks(model: nn.Sequential, fraction: float) -> list[torch.Tensor]:
    """Masks keeping the largest-magnitude ``1 - fraction`` of each hidden layer's weights.

    The output layer is not pruned (mask of ones).
    """
    if not 0 <= fraction < 1:
        msg = f"pruning fraction must be in [0, 1), got {fraction}"
        raise ValueError(msg)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    masks = []
    for i, lin in enumerate(linears):
        w = lin.weight.detach()
        if i == len(linears) - 1 or fraction == 0:
            masks.append(torch.ones_like(w))
            continue
        k = round(fraction * w.numel())
        if k == 0:
            masks.append(torch.ones_like(w))
            continue
        thresh = w.abs().reshape(-1).kthvalue(k).values
        masks.append((w.abs() > thresh).to(w.dtype))
    return masks


def _budget_hook(model: nn.Sequential, data: Dataset, v: Variant, reg: ScheduledRegularizer,
                 kept: dict[str, Any]) -> Callable[[int], dict[str, float]]:
    """The per-epoch step of a budgeted fine-tuning (``v.budget``, :class:`Variant`): offers
    every epoch (the ramp's included) to an :class:`~omlt_relax.epoch_budget.EpochBudget` (limit
    β × the starting network's validation RMSE in standardized units), applies its back-off to
    ``reg.multiplier`` (so the ramp stops climbing while the network is over budget) and stores
    the weights to keep in ``kept["state"]``."""
    xv, yv = data.tensors("val")

    def val_rmse() -> float:
        with torch.no_grad():
            return math.sqrt(float(torch.mean((model(xv) - yv) ** 2)))

    budget = EpochBudget(v.budget * val_rmse(), data.std_box, v.stability_bounds,
                         v.budget_backoff)

    def on_epoch(epoch: int) -> dict[str, float]:
        val = val_rmse()
        if budget.offer(model, val, back_off=True):
            kept["state"] = copy.deepcopy(model.state_dict())
            kept["epoch"] = epoch
        reg.multiplier = budget.scale
        return {"val_rmse_std": val, "budget_unstable": float(budget.last_unstable),
                "budget_scale": budget.scale, "budget_kept": float(kept.get("epoch", -1))}

    return on_epoch


def finetune_epochs(v: Variant, cfg: TrainConfig) -> int:
    """Epochs a ``finetune`` (or pruning) variant trains after its starting network
    (:func:`fit`)."""
    frac = cfg.finetune_fraction if v.ft_epochs is None else v.ft_epochs
    return max(1, round(frac * cfg.epochs))


def total_epochs(v: Variant, cfg: TrainConfig, baseline_given: bool = False) -> int:
    """Epochs :func:`fit` reports through ``progress`` for ``v`` (a fine-tuning variant also
    trains its starting network unless ``baseline_given``)."""
    if v.finetune:
        return finetune_epochs(v, cfg) + (0 if baseline_given else cfg.epochs)
    return cfg.epochs


def fit(
    data: Dataset,
    variant: Variant | str = "unregularized",
    scale: float = 1.0,
    config: TrainConfig | None = None,
    baseline: nn.Sequential | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train one variant at one scale and return the network in original units.

    Args:
        data: the splits (:func:`~omlt_relax.data.split_arrays`); training uses the standardized
            training split and box.
        variant: a :class:`Variant` or a name in :data:`VARIANTS`.
        scale: multiplies every term of the variant (pruning: the fraction pruned); ignored by
            the unregularized variant.
        config: :class:`TrainConfig` (defaults if ``None``).
        baseline: the ``std_model`` of a :class:`TrainResult` of the unregularized variant (a
            float32 network in standardized units), from the same data and config: pruning
            and fine-tuning variants start from it (a fine-tuning variant trains it first
            when it is not given).
        progress: called as ``progress(n)`` after each epoch (:func:`total_epochs` in all).
    """
    cfg = config or TrainConfig()
    v = get_variant(variant) if isinstance(variant, str) else variant
    if scale < 0 or not math.isfinite(scale):
        msg = f"weight scale must be a finite number >= 0, got {scale}"
        raise ValueError(msg)
    t0 = time.perf_counter()
    box = data.std_box
    steps_per_epoch = math.ceil(data.x_train.shape[0] / min(cfg.batch_size, data.x_train.shape[0]))
    warm = cfg.warmup_fraction if v.warmup_fraction is None else v.warmup_fraction
    warmup = int(warm * cfg.epochs * steps_per_epoch)
    if v.finetune:
        if baseline is None:  # train it first (same data, config and seed)
            baseline = fit(data, "unregularized", 0.0, cfg, progress=progress).std_model
        model = copy.deepcopy(baseline)
        ft = finetune_epochs(v, cfg)
        reg = _regularizer(model, box, v, scale, cfg, 0)
        if reg is not None and v.ft_ramp > 0:
            reg = ScheduledRegularizer(reg, Schedule(warmup=0.0, ramp=v.ft_ramp),
                                       ft * steps_per_epoch)
        lr0 = 2 * cfg.lr * cfg.final_lr_fraction if v.ft_lr is None else v.ft_lr * cfg.lr
        on_epoch, kept = None, {}
        if v.budget and reg is not None:
            on_epoch = _budget_hook(model, data, v, reg, kept)
        history = _train_loop(model, data, cfg, ft, lr0, None, reg, None, progress,
                              hold=v.ft_hold, final_lr=v.ft_final_lr, on_epoch=on_epoch)
        if kept:  # the budget's epoch, not the last
            model.load_state_dict(kept["state"])
    elif v.prune:
        if baseline is not None:
            model = copy.deepcopy(baseline)
            history: list[dict[str, float]] = []
            if progress is not None:
                progress(cfg.epochs)
        else:
            model = build_model(data.n_inputs, cfg.hidden, data.n_outputs, cfg.seed)
            history = _train_loop(model, data, cfg, cfg.epochs, cfg.lr, None, None, None, progress)
        masks = prune_masks(model, scale)
        with torch.no_grad():
            for lin, m in zip([m for m in model if isinstance(m, nn.Linear)], masks):
                lin.weight.mul_(m)
        ft = finetune_epochs(v, cfg)
        # fine-tune from where the baseline ended: a small learning rate, decaying further
        ft_lr = 2 * cfg.lr * cfg.final_lr_fraction
        history += _train_loop(model, data, cfg, ft, ft_lr, None, None, masks, None)
    else:
        model = build_model(data.n_inputs, cfg.hidden, data.n_outputs, cfg.seed)
        extra = None
        if v.l1:
            w_l1 = v.l1 * scale
            ramp = [0]

            def extra(_xb: torch.Tensor) -> torch.Tensor:
                ramp[0] += 1
                if ramp[0] <= warmup:
                    return torch.zeros(())
                return w_l1 * _l1(model)

        reg = _regularizer(model, box, v, scale, cfg, warmup)
        history = _train_loop(model, data, cfg, cfg.epochs, cfg.lr, extra, reg, None, progress)
    folded = fold_standardization(model, data.scaler)
    res = TrainResult(
        folded,
        v.name,
        float(scale) if v.regularized else 0.0,
        rmse(predict(folded, data.x_val), data.y_val),
        rmse(predict(folded, data.x_train), data.y_train),
        time.perf_counter() - t0,
        history,
        model,
    )
    return res


def regularizer_for(model: nn.Sequential, data: Dataset, variant: Variant, scale: float,
                    config: TrainConfig, warmup: int = 0) -> Any:
    """The regularizer :func:`fit` adds for ``variant`` at ``scale`` (``None`` if it has none),
    switched on after ``warmup`` steps; for training loops that continue an existing network."""
    return _regularizer(model, data.std_box, variant, scale, config, warmup)


def train_epochs(model: nn.Sequential, data: Dataset, config: TrainConfig, epochs: int,
                 lr: float, loss_extra: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 reg: Any = None, progress: Callable[[int], None] | None = None,
                 ) -> list[dict[str, float]]:
    """:func:`fit`'s loop on an existing standardized network, in place: ``epochs`` epochs of
    Adam from ``lr`` with cosine decay on MSE + ``loss_extra(x)`` + ``reg(x)``."""
    return _train_loop(model, data, config, epochs, lr, loss_extra, reg, None, progress)


#: The name the benchmark suite has always used for :func:`fit`.
train_variant = fit


@dataclass
class Selection:
    """Outcome of :func:`select_weight`: the chosen network and every scale tried."""

    result: TrainResult
    within_tolerance: bool
    tried: list[dict[str, float]]


def select_weight(
    data: Dataset,
    variant: Variant | str,
    baseline_val_rmse: float,
    config: TrainConfig | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    baseline: nn.Sequential | None = None,
    progress: Callable[[int], None] | None = None,
    search: str = "bisect",
) -> Selection:
    r"""Apply the weight-selection rule of the module docstring to one variant.

    Finds the largest scale on the variant's grid whose validation RMSE is
    ``<= tolerance * baseline_val_rmse``. ``search="linear"`` trains the scales from the largest
    down and stops at the first that qualifies; ``"bisect"`` (default) assumes the validation
    RMSE grows with the scale and finds the same scale by bisection over the grid, with about
    :math:`\log_2` of the grid's length trainings.
    """
    if search not in ("bisect", "linear"):
        msg = f"unknown search {search!r}; use 'bisect' or 'linear'"
        raise ValueError(msg)
    v = get_variant(variant) if isinstance(variant, str) else variant
    if not v.regularized:
        res = fit(data, v, 0.0, config, progress=progress)
        return Selection(res, True, [{"scale": 0.0, "val_rmse": res.val_rmse}])
    if (v.prune or v.finetune) and baseline is None:
        baseline = fit(data, "unregularized", 0.0, config).std_model
    grid = sorted(set(v.grid), reverse=True)
    tried: list[dict[str, float]] = []
    done: dict[int, TrainResult] = {}

    def ok(i: int) -> bool:
        if i not in done:
            done[i] = fit(data, v, grid[i], config,
                                    baseline=baseline if (v.prune or v.finetune) else None,
                                    progress=progress)
            r = done[i].val_rmse
            tried.append({"scale": grid[i], "val_rmse": r, "ratio": r / baseline_val_rmse})
        return done[i].val_rmse <= tolerance * baseline_val_rmse

    if search == "linear":
        for i in range(len(grid)):
            if ok(i):
                return Selection(done[i], True, tried)
        return Selection(done[len(grid) - 1], False, tried)
    # bisection over indices 0..n, n meaning "no scale qualifies"
    lo, hi = 0, len(grid)
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    if lo == len(grid):
        last = len(grid) - 1
        ok(last)
        return Selection(done[last], False, tried)
    return Selection(done[lo], True, tried)


def with_overrides(config: TrainConfig, **kw: Any) -> TrainConfig:
    """``config`` with some fields replaced (``None`` values ignored)."""
    return replace(config, **{k: v for k, v in kw.items() if v is not None})


__all__ = [
    "DEFAULT_TOLERANCE",
    "FT_RECIPE",
    "GRID_BOUND",
    "GRID_L1",
    "GRID_LP",
    "GRID_PRUNE",
    "LP_WARMUP",
    "SUITE_VARIANTS",
    "VARIANTS",
    "Selection",
    "TrainConfig",
    "TrainResult",
    "Variant",
    "build_model",
    "finetune_epochs",
    "fit",
    "get_variant",
    "hold_cosine",
    "prune_masks",
    "regularizer_for",
    "select_weight",
    "total_epochs",
    "train_epochs",
    "train_variant",
    "with_overrides",
]
