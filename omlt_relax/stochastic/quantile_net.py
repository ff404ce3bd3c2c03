"""Quantile networks of the recourse cost, trained with pinball loss and our regularizers.

A quantile network maps a first-stage decision :math:`x` to :math:`K` quantiles
:math:`q_1(x) \\le \\dots \\le q_K(x)` of :math:`Q(x, \\xi)` at levels
:math:`\\tau = \\text{linspace}(0.01, 0.99, K)` (:data:`DEFAULT_LEVELS`, :math:`K = 50`). It is an
``nn.Sequential`` of ``Linear``/``ReLU`` layers ending in
:class:`~omlt_relax.IncrementalQuantileHead`, so quantiles never cross and the network exports,
bounds and formulates like any surrogate (:func:`~omlt_relax.export_onnx`).

Training minimizes the mean pinball loss in standardized units plus the relaxation-informed term,

.. math::

    \\mathcal{L}(\\theta) = \\frac{1}{BK}\\sum_{b,k} \\rho_{\\tau_k}\\big(\\bar y_b - \\bar
    q_k(\\bar x_b)\\big)
    + R(\\theta; \\bar x),\\qquad \\rho_\\tau(r) = \\max(\\tau r, (\\tau - 1) r),

with :math:`\\bar x = (x - \\mu_x)/\\sigma_x`, :math:`\\bar y = (y - \\mu_y)/\\sigma_y`
(training-split
statistics) and :math:`R` a :class:`~omlt_relax.RelaxationRegularizer` (big-M, stability and LP-gap
penalties, :class:`Penalties`) over the standardized image of :math:`[0, 1]^n`. The trained network
is
returned with the standardization folded in (:func:`fold_quantile_standardization`): it takes
:math:`x` and returns quantiles in cost units.

This is a small pinball training loop (Adam, cosine decay, warm-up before the penalties switch
on); the penalties are the library's own objects.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.lp.gap import LPGapPenalty
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.quantile import IncrementalQuantileHead
from omlt_relax.regularizer import RelaxationRegularizer
from omlt_relax.snapping import snap_change_bound, snap_negligible_weights
from omlt_relax.stochastic.instance import check_whole

#: Quantile levels of the Quantile2SP networks: linspace(0.01, 0.99, 50).
DEFAULT_LEVELS = np.linspace(0.01, 0.99, 50)


def quantile_levels(n_quantiles: int = 50) -> np.ndarray:
    """:math:`\\tau = \\text{linspace}(0.01, 0.99, K)`."""
    return np.linspace(0.01, 0.99, check_whole("the number of quantiles", n_quantiles, 2))


def build_quantile_net(
    n_inputs: int, hidden: Sequence[int], n_quantiles: int = 50, seed: int = 0
) -> nn.Sequential:
    """``Linear``/``ReLU`` layers of widths ``hidden``, ``Linear(., K)``,
    ``IncrementalQuantileHead``."""
    hidden = tuple(hidden)
    if not hidden or any(
        isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in hidden
    ):
        msg = f"hidden widths must be one or more whole numbers >= 1, got {list(hidden)}"
        raise ValueError(msg)
    quantile_levels(n_quantiles)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = int(n_inputs)
    for w in hidden:
        layers += [nn.Linear(prev, int(w)), nn.ReLU()]
        prev = int(w)
    layers += [nn.Linear(prev, int(n_quantiles)), IncrementalQuantileHead()]
    return nn.Sequential(*layers)


def pinball_loss(q: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss :math:`\\frac{1}{BK}\\sum \\rho_{\\tau_k}(y_b - q_{bk})`; ``q`` ``(B,
    K)``, ``y`` ``(B,)``."""
    r = y.reshape(-1, 1) - q
    return torch.mean(torch.maximum(levels * r, (levels - 1.0) * r))


def pinball_numpy(q: np.ndarray, y: np.ndarray, levels: np.ndarray) -> float:
    """:func:`pinball_loss` in numpy (float64), in the units of ``y``."""
    r = np.asarray(y, np.float64).reshape(-1, 1) - np.asarray(q, np.float64)
    return float(np.mean(np.maximum(levels * r, (levels - 1.0) * r)))


@dataclass(frozen=True)
class Standardization:
    """Column means/population stds of :math:`x` and the scalar mean/std of the cost."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> Standardization:
        sx = x.std(axis=0)
        sy = float(y.std())
        return cls(
            x.mean(axis=0), np.where(sx > 0, sx, 1.0), float(y.mean()), sy if sy > 0 else 1.0
        )

    def box(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The standardized image of :math:`[0, 1]^n`."""
        return (np.zeros(n) - self.x_mean) / self.x_std, (np.ones(n) - self.x_mean) / self.x_std


def fold_quantile_standardization(model: nn.Sequential, std: Standardization) -> nn.Sequential:
    """A float64 copy taking :math:`x` and returning quantiles in cost units.

    First layer: :math:`W \\leftarrow W\\,\\text{diag}(1/\\sigma_x)`,
    :math:`b \\leftarrow b - W\\mu_x/\\sigma_x`.
    Last ``Linear`` (before the head): :math:`W \\leftarrow \\sigma_y W`,
    :math:`b \\leftarrow \\sigma_y b +
    \\mu_y e_0`; exact because :math:`\\sigma_y \\max(0, o) = \\max(0, \\sigma_y
    o)` for :math:`\\sigma_y > 0` and
    only the first increment is shifted, so :math:`q = \\mu_y + \\sigma_y \\bar q`.
    """
    out = copy.deepcopy(model).to(torch.float64)
    linears = [m for m in out if isinstance(m, nn.Linear)]
    if not isinstance(out[-1], IncrementalQuantileHead):
        msg = "fold_quantile_standardization expects a network ending in IncrementalQuantileHead"
        raise ValueError(msg)
    with torch.no_grad():
        first, last = linears[0], linears[-1]
        first.weight.div_(torch.as_tensor(std.x_std, dtype=torch.float64)[None, :])
        first.bias.sub_(first.weight @ torch.as_tensor(std.x_mean, dtype=torch.float64))
        last.weight.mul_(std.y_std)
        last.bias.mul_(std.y_std)
        last.bias[0] += std.y_mean
    return out.eval()


@dataclass(frozen=True)
class Penalties:
    """Weights of the relaxation-informed terms (0: off) and their options.

    ``bigm``: :class:`~omlt_relax.BigMPenalty` (``range``, IBP); ``stability``:
    :class:`~omlt_relax.StabilityPenalty` (``triangle``, ``stability_bounds``); ``lp_gap``:
    :class:`~omlt_relax.LPGapPenalty` (sense ``both``, total derivative, ``lp_subsample`` samples
    per
    step).
    """

    bigm: float = 0.0
    stability: float = 0.0
    lp_gap: float = 0.0
    stability_bounds: str = "crown"
    lp_subsample: int = 4

    def __post_init__(self) -> None:
        for name in ("bigm", "stability", "lp_gap"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                msg = f"penalty weight {name} must be a finite number >= 0, got {v!r}"
                raise ValueError(msg)

    @property
    def active(self) -> bool:
        return bool(self.bigm or self.stability or self.lp_gap)

    def regularizer(self, model: nn.Module, box: tuple[np.ndarray, np.ndarray], warmup: int) -> Any:
        """The :class:`~omlt_relax.RelaxationRegularizer` of these weights (``None`` if all 0)."""
        if not self.active:
            return None
        bigm = BigMPenalty(model, box, weight=self.bigm) if self.bigm else None
        stab = (
            StabilityPenalty(model, box, weight=self.stability, bounds=self.stability_bounds,
                             variant="triangle")
            if self.stability else None
        )
        gap = (
            LPGapPenalty(model, box, weight=self.lp_gap, sense="both", derivative="total",
                         subsample=self.lp_subsample)
            if self.lp_gap else None
        )
        return RelaxationRegularizer(model, box, bigm=bigm, stability=stab, lp_gap=gap,
                                     warmup=warmup)


@dataclass(frozen=True)
class TrainSettings:
    """Pinball training: architecture, optimizer and schedule.

    ``warmup_fraction`` of the steps run without penalties; ``val_fraction`` and
    ``test_fraction`` of the rows are held out (split by ``seed``).
    """

    hidden: tuple[int, ...] = (100, 100)
    n_quantiles: int = 50
    epochs: int = 100
    batch_size: int = 256
    lr: float = 3e-3
    final_lr_fraction: float = 0.05
    warmup_fraction: float = 0.2
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            check_whole(name, getattr(self, name))
        if not (0 < self.lr < 1):
            msg = f"the learning rate must be in (0, 1), got {self.lr}"
            raise ValueError(msg)
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 0.9):
            msg = "val_fraction and test_fraction must be >= 0 and leave >= 10% of rows to train"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


@dataclass
class QuantileFit:
    """A trained quantile network (float64, standardization folded in) and its record."""

    model: nn.Sequential
    settings: TrainSettings
    penalties: Penalties
    standardization: Standardization
    val_pinball: float
    test_pinball: float
    train_time: float
    history: list[dict[str, float]] = field(default_factory=list)


def split_rows(n: int, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of the train, validation and test splits (a permutation by ``settings.seed``)."""
    perm = np.random.default_rng(settings.seed).permutation(n)
    n_val = round(settings.val_fraction * n)
    n_test = round(settings.test_fraction * n)
    n_train = n - n_val - n_test
    if n_train < 2:
        msg = f"only {n} rows: too few to train on after holding out validation and test rows"
        raise ValueError(msg)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def fit_quantile_net(
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainSettings | None = None,
    penalties: Penalties | None = None,
    progress: bool = False,
) -> QuantileFit:
    """Train a quantile network on decisions ``x`` ``(N, n)`` (in [0, 1]) and costs ``y`` ``(N,)``.

    Returns the network in original units; pinball losses are in cost units, on the held-out
    validation and test rows (all rows if a fraction is 0).
    """
    from tqdm.auto import tqdm

    s = settings or TrainSettings()
    pen = penalties or Penalties()
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        msg = f"decisions {x.shape} and costs {y.shape} must have the same number of rows"
        raise ValueError(msg)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        msg = "the data contain NaN or infinite values"
        raise ValueError(msg)
    tr, va, te = split_rows(len(y), s)
    std = Standardization.fit(x[tr], y[tr])
    levels_np = quantile_levels(s.n_quantiles)
    levels = torch.as_tensor(levels_np, dtype=torch.float32)
    model = build_quantile_net(x.shape[1], s.hidden, s.n_quantiles, s.seed)
    xt = torch.as_tensor((x[tr] - std.x_mean) / std.x_std, dtype=torch.float32)
    yt = torch.as_tensor((y[tr] - std.y_mean) / std.y_std, dtype=torch.float32)
    n = xt.shape[0]
    bs = min(s.batch_size, n)
    steps = math.ceil(n / bs)
    total = s.epochs * steps
    reg = pen.regularizer(model, std.box(x.shape[1]), warmup=int(s.warmup_fraction * total))
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda k: s.final_lr_fraction
        + (1 - s.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * min(k, total) / total)),
    )
    gen = torch.Generator().manual_seed(s.seed + 1)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for epoch in tqdm(range(s.epochs), desc="train", disable=not progress, unit="epoch"):
        perm = torch.randperm(n, generator=gen)
        tot = tot_pin = 0.0
        for k in range(steps):
            idx = perm[k * bs : (k + 1) * bs]
            xb = xt[idx]
            pin = pinball_loss(model(xb), yt[idx], levels)
            loss = pin + reg(xb) if reg is not None else pin
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach())
            tot_pin += float(pin.detach())
        rec = {"epoch": float(epoch), "loss": tot / steps, "pinball": tot_pin / steps}
        if reg is not None and (epoch % 10 == 0 or epoch == s.epochs - 1):
            rec.update({f"reg_{k}": float(v) for k, v in reg.metrics().items()
                        if isinstance(v, (int, float))})
        history.append(rec)
    train_time = time.perf_counter() - t0
    folded = fold_quantile_standardization(model, std)
    va = va if len(va) else tr
    te = te if len(te) else tr
    return QuantileFit(
        model=folded,
        settings=s,
        penalties=pen,
        standardization=std,
        val_pinball=pinball_numpy(predict_quantiles(folded, x[va]), y[va], levels_np),
        test_pinball=pinball_numpy(predict_quantiles(folded, x[te]), y[te], levels_np),
        train_time=train_time,
        history=history,
    )


def predict_quantiles(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Quantiles ``(N, K)`` in cost units by a float64 forward pass of a folded network."""
    with torch.no_grad():
        return model.double()(torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)).numpy()


__all__ = [
    "DEFAULT_LEVELS",
    "Penalties",
    "QuantileFit",
    "Standardization",
    "TrainSettings",
    "build_quantile_net",
    "fit_quantile_net",
    "fold_quantile_standardization",
    "pinball_loss",
    "pinball_numpy",
    "predict_quantiles",
    "quantile_levels",
    "snap_change_bound",
    "snap_negligible_weights",
    "split_rows",
]
