"""Training with the paper's protocol: the regularizers (built from the library's penalties),
the schedules and the best-validation checkpoint (see :mod:`omlt_relax.bench.paper`)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from omlt_relax.bench.paper.protocol import (
    BUDGET_BACKOFF,
    LP_SAMPLES,
    LR_FLOOR,
    Array,
    Job,
    PaperConfig,
    PaperData,
    PaperVariant,
    get_paper_variant,
    paper_network,
)
from omlt_relax.epoch_budget import EpochBudget
from omlt_relax.lp.gap import LPGapPenalty
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.regularizer import RelaxationRegularizer, term_backward
from omlt_relax.train import hold_cosine


class PaperRegularizer:
    r""":math:`R(\theta; x)` of one variant: the sum of its terms, each weighted 1.

    Built from the library's penalties, so the suite measures what users get: ``width`` is
    :class:`~omlt_relax.BigMPenalty` (``"range"``, per-layer means; with equal widths exactly the
    paper's mean over all hidden neurons), ``stable`` is :class:`~omlt_relax.StabilityPenalty`
    (``"min"``, weight :math:`1/N` for the paper's mean), ``lpgap`` is
    :class:`~omlt_relax.LPGapPenalty` (``sense="min"``, IBP big-M constants, :data:`LP_SAMPLES`
    points per batch), combined by :class:`~omlt_relax.RelaxationRegularizer` (IBP bounds once
    per step, the IBP and CROWN terms on its numpy fast path; ``every``: its lazy
    regularization, the ``l1``/``l2`` terms stay on every step).
    """

    def __init__(self, model: nn.Sequential, variant: PaperVariant,
                 box: tuple[Array, Array], seed: int, every: int = 1) -> None:
        self.model = model
        self.variant = variant
        self.linears = [m for m in model if isinstance(m, nn.Linear)]
        n_hidden = sum(int(lin.out_features) for lin in self.linears[:-1])
        widths = {int(lin.out_features) for lin in self.linears[:-1]}
        terms = set(variant.terms)
        bigm = stab = gap = None
        if "width" in terms:
            if len(widths) != 1:
                msg = "the paper's bound-width term is defined here for equal hidden widths"
                raise ValueError(msg)
            bigm = BigMPenalty(model, box, weight=1.0, bounds=variant.bounds, variant="range")
        if "stable" in terms:
            stab = StabilityPenalty(model, box, weight=1.0 / n_hidden, bounds=variant.bounds,
                                    variant="min")
        if "lpgap" in terms:
            gap = LPGapPenalty(model, box, weight=1.0, sense="min", bounds="ibp",
                               derivative=variant.lp_derivative, subsample=LP_SAMPLES, seed=seed)
        self._weight_terms = bool(terms & {"l1", "l2"})
        self.reg = None
        if bigm is not None or stab is not None or gap is not None:
            self.reg = RelaxationRegularizer(model, box, bigm=bigm, stability=stab, lp_gap=gap,
                                             bounds=variant.bounds, every=every)

    def metrics(self) -> dict[str, float]:
        """The regularizer's metrics of the last step (unstable neurons, big-M, LP gap)."""
        return self.reg.metrics() if self.reg is not None else {}

    def _weight_term(self) -> torch.Tensor:
        """The ``l1``/``l2`` terms of the variant (with graph)."""
        params = [p for lin in self.linears for p in (lin.weight, lin.bias)]
        total = torch.zeros(())
        if "l1" in self.variant.terms:
            total = total + sum(p.abs().sum() for p in params)
        if "l2" in self.variant.terms:
            total = total + sum((p * p).sum() for p in params)
        return total

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        total = self.reg(x) if self.reg is not None else torch.zeros(())
        if not self._weight_terms:
            return total
        return total + self._weight_term()

    def backward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """Add :math:`\\lambda \\nabla_\\theta R` (λ = ``scale``) to the parameters' ``.grad``
        and return :math:`\\lambda R` detached: the gradient of ``loss + scale * self(x)``
        after ``loss.backward()``, the bound terms through
        :meth:`~omlt_relax.RelaxationRegularizer.backward` (no autograd graph on the numpy
        path)."""
        total = self.reg.backward(x, scale) if self.reg is not None else torch.zeros(())
        if self._weight_terms:
            total = total + term_backward(self._weight_term(), scale)
        return total


def epochs_of(variant: PaperVariant, epochs: int) -> int:
    """Epochs a variant trains: ``epochs``, or half of them for a fine-tuning."""
    return max(1, epochs // 2) if variant.finetunes else epochs


def schedule_factor(variant: PaperVariant, epoch: int, epochs: int) -> float:
    """Multiplier of λ at ``epoch`` (0-based) of a run of ``epochs`` epochs: 1 (constant), the
    continuation ramp (0 for the first half, linear to 1 over the third quarter), or the
    fine-tuning ramp (linear to 1 over the first half)."""
    if variant.schedule == "constant":
        return 1.0
    if variant.finetunes:
        start, end = 0, max(1, epochs // 2)
    else:
        start, end = epochs // 2, (3 * epochs) // 4
    if epoch < start:
        return 0.0
    if epoch >= end:
        return 1.0
    return (epoch - start + 1) / max(1, end - start)


def lr_factor(variant: PaperVariant, epoch: int, epochs: int) -> float:
    r"""Multiplier of the learning rate at ``epoch`` (0-based) of ``epochs``: 1, or for an
    ``lr_decay`` variant 1 over the first half and then the cosine
    :math:`\rho + (1 - \rho)\,\tfrac12(1 + \cos(\pi t))`, :math:`t = (e - h + 1)/(E - h)`,
    :math:`h = \lfloor E/2 \rfloor`, down to :math:`\rho` = :data:`LR_FLOOR` at the last epoch."""
    if not variant.lr_decay:
        return 1.0
    return hold_cosine(epoch + 1, epochs, epochs // 2, LR_FLOOR)


def checkpoint_from(variant: PaperVariant, epochs: int) -> int:
    """First epoch whose parameters may be kept (after the ramp of a schedule)."""
    if variant.schedule == "continuation":
        return (3 * epochs) // 4
    if variant.finetunes:
        return max(1, epochs // 2) - 1
    return 0


@dataclass
class TrainedNet:
    """A trained network of one job (float32, [0, 1] target scale) and how it was trained."""

    model: nn.Sequential
    best_epoch: int
    best_val_mse: float
    train_time: float
    history: list[dict[str, float]] = field(default_factory=list)


def train_paper(job: Job, cfg: PaperConfig, data: PaperData,
                progress: Callable[[int], None] | None = None,
                init: dict[str, torch.Tensor] | None = None) -> TrainedNet:
    """Train one job with the protocol: Adam, batch 64, best-validation-MSE checkpoint.

    ``init``: the state dict to start from (required by a ``"finetune"`` variant: the trained
    unregularized network of the same function, depth and seed).
    """
    v = get_paper_variant(job.variant)
    model = paper_network(data.x_train.shape[1], job.depth, cfg.width, job.seed)
    if v.finetunes:
        if init is None:
            msg = f"{job.key} fine-tunes the unregularized network, which is not trained yet"
            raise ValueError(msg)
        model.load_state_dict(init)
    epochs = epochs_of(v, cfg.epochs)
    reg = (PaperRegularizer(model, v, (data.lower, data.upper), job.seed, cfg.penalty_every)
           if v.regularized else None)
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.float32)
    xv = torch.as_tensor(data.x_val, dtype=torch.float32)
    yv = torch.as_tensor(data.y_val, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(job.seed)
    n, bs = x.shape[0], cfg.batch_size
    first_ckpt = checkpoint_from(v, epochs)
    best_state, best_val, best_epoch = None, math.inf, -1
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    budget = None
    if v.budget:  # limit: β × the starting (unregularized) network's validation MSE
        with torch.no_grad():
            val0 = float(torch.mean((model(xv) - yv) ** 2))
        budget = EpochBudget(v.budget * val0, (data.lower, data.upper), v.bounds, BUDGET_BACKOFF)
    for epoch in range(epochs):
        lam = job.lam * schedule_factor(v, epoch, epochs) if reg is not None else 0.0
        if budget is not None:
            lam *= budget.scale
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(v, epoch, epochs)
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            xb, yb = x[idx], y[idx]
            loss = torch.mean((model(xb) - yb) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if lam > 0:  # the gradient of loss + lam * reg(xb), without a graph for reg
                loss = loss.detach() + reg.backward(xb, lam)
            opt.step()
            tot += float(loss.detach())
        if not math.isfinite(tot):
            msg = (f"{job.key}: the training loss became non-finite at epoch {epoch}; lower the "
                   "learning rate or the weight λ")
            raise FloatingPointError(msg)
        with torch.no_grad():
            val = float(torch.mean((model(xv) - yv) ** 2))
        rec = {"epoch": float(epoch), "loss": tot / math.ceil(n / bs), "val_mse": val,
               "lam": lam, "lr": opt.param_groups[0]["lr"]}
        if reg is not None and epoch % 10 == 0:
            rec.update({k: float(t) for k, t in reg.metrics().items()})
        history.append(rec)
        if epoch >= first_ckpt:
            if budget is None:
                keep = val < best_val
            else:
                keep = budget.offer(model, val, back_off=epoch >= v.budget_from * epochs - 1)
                rec["budget_unstable"] = float(budget.last_unstable)
            if keep:
                best_val, best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(1)
    assert best_state is not None
    model.load_state_dict(best_state)
    return TrainedNet(model, best_epoch, best_val, time.perf_counter() - t0, history)
