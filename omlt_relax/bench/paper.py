r"""The paper's own protocol as a benchmark suite (``omlt-relax bench --suite paper``).

Tsay 2026 (arXiv 2604.22746) trains width-25 ReLU networks on three 2-D test functions and times the
MILP that minimizes each network. This module reproduces those settings exactly (see
``shared/PAPER.md``) and runs our own variants beside them, on the same data, seeds and solvers:

=============================  ====================================================================
setting                        value
=============================  ====================================================================
functions, domains             peaks on :math:`[-2, 2]^2`, Himmelblau on :math:`[-5, 5]^2`,
                               Ackley (a = 20, b = 0.2, c = 2π) on :math:`[-3.5, 3.5]^2`
networks                       width 25, depth 2, 3 or 5 hidden ReLU layers, linear output;
                               Kaiming-normal hidden / Xavier-normal output weights, zero biases
data                           Latin hypercube: 70,000 train, 30,000 validation, 10,000 test
                               (seeds s, s+1, s+2); targets min-max scaled to [0, 1] with the
                               training min/max; inputs unscaled
training                       :math:`\mathrm{MSE} + \lambda R`; Adam, lr 1e-3, batch 64, 200
                               epochs; the parameters with the lowest validation MSE are kept
weights                        :math:`\lambda \in \{10^{-4}, 10^{-3}, 10^{-2}\}`
MILP                           minimize the output; big-M; MIP gap 1e-4; time limit 1800 s
=============================  ====================================================================

Regularizers :math:`R(\theta)` (hidden neurons :math:`i = 1..N`, IBP pre-activation bounds
:math:`l_i \le \hat z_i \le u_i` over the box, differentiable in :math:`\theta`):

* ``width`` (the paper's "bound width"): :math:`\frac1N \sum_i (u_i - l_i)`;
* ``stable`` (the paper's "stable neuron"):
  :math:`\frac1N \sum_i \min(\max(-l_i, 0), \max(u_i, 0))`, zero on a stable neuron, so only
  neurons that cost a binary are penalized;
* ``lpgap``: the mean over 8 points of the mini-batch of :math:`f(x) - \min_{LP(x)} y`, the
  big-M LP relaxation with the input fixed to :math:`x` and the IBP big-M constants held
  constant; gradient from the LP duals (:class:`~omlt_relax.LPGapPenalty`, ``"direct"``);
* ``width+lpgap``: the sum of the two (weight 1 each); ``l1``/``l2``: sums of :math:`|\theta|`,
  :math:`\theta^2` over all parameters.

Our variants beside them (same data, seeds, epochs, checkpoint rule): ``stable_crown`` (the stable
neuron penalty on CROWN bounds), ``lpgap_total`` (LP gap with the total derivative through the
big-M constants), and ``stable_cont`` (continuation: the first half of the epochs plain, the
stable-neuron penalty ramped linearly to :math:`\lambda` over the next quarter, held for the last
quarter; the checkpoint is the best validation MSE after the ramp).

Every trained network is measured two ways, minimization only, HiGHS and Gurobi one thread each
(Gurobi where its size-limited pip licence allows):

* **paper MILP**: big-M with sound IBP bounds (float64, rounded outward), a binary only for
  IBP-unstable neurons -- :class:`~omlt_relax.BoundedReluBigMFormulation` with
  :func:`~omlt_relax.sound_bounds` ``"ibp"``;
* **ours**: the same formulation with LP-based OBBT bounds (:func:`~omlt_relax.obbt_bounds`).

Metrics per network: test MSE/MAE/max error on the [0, 1] scale, unstable neurons (IBP and OBBT),
mean/max IBP bound width, root LP gap (MILP min minus LP min), MILP time, nodes, final gap, the true
function at the MILP minimizer minus the known minimum, and the network's own value at that input
(the forward pass that verifies the MILP).

Every (function, depth, seed, variant, λ) is one *job*: its trained network and its measurements are
files of their own under ``OUT/models`` and ``OUT/jobs``, so a run can be interrupted and resumed,
and several processes can share one output folder.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bench.functions import BenchFunction, ackley, himmelblau, peaks
from omlt_relax.bench.measure import root_lp_bounds
from omlt_relax.bounds import sound_bounds
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.lp.gap import LPGapPenalty
from omlt_relax.optimize import solve_milp
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.regularizer import RelaxationRegularizer
from omlt_relax.solve import SolverUnavailableError

Array = np.ndarray

#: Width of every hidden layer.
WIDTH = 25
#: Depths (hidden layers) of the paper.
DEPTHS = (2, 3, 5)
#: Penalty weights of the paper (targets on the [0, 1] scale).
LAMBDAS = (1e-4, 1e-3, 1e-2)
#: Seeds of the paper.
SEEDS = tuple(range(20))
#: MILP time limit of the paper, seconds.
TIME_LIMIT = 1800.0
#: Relative MIP gap of the paper.
MIP_GAP = 1e-4
#: Samples of the LP-gap penalty per mini-batch.
LP_SAMPLES = 8
#: Test MSE ratio (to the unregularized network of the same function, depth and seed set) within
#: which a regularized network counts as "at competitive accuracy" for the headline speed-up.
MSE_RATIO = 1.5


def _ackley_box_max() -> float:
    g = np.linspace(-3.5, 3.5, 1401)
    xx, yy = np.meshgrid(g, g)
    return float(ackley(np.column_stack([xx.ravel(), yy.ravel()])).max())


#: The paper's functions on the paper's domains (``f_max`` only scales relative errors).
PAPER_FUNCTIONS: dict[str, BenchFunction] = {
    "peaks": BenchFunction(
        "peaks", peaks, (-2.0, -2.0), (2.0, 2.0), f_min=-6.551133332835842,
        f_max=8.106213589442648, x_min=(0.2282789, -1.6255349), x_max=(-0.0093176, 1.5813680),
    ),
    "himmelblau": BenchFunction(
        "himmelblau", himmelblau, (-5.0, -5.0), (5.0, 5.0), f_min=0.0, f_max=890.0,
        x_min=(3.0, 2.0), x_max=(5.0, 5.0),
    ),
    "ackley": BenchFunction(
        "ackley", ackley, (-3.5, -3.5), (3.5, 3.5), f_min=0.0, f_max=_ackley_box_max(),
        x_min=(0.0, 0.0), x_max=(3.5, 3.5),
    ),
}


# -- variants -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperVariant:
    """One regularizer of the suite.

    Attributes:
        name: key in :data:`PAPER_VARIANTS`.
        origin: ``"paper"`` (the paper's definition) or ``"ours"``.
        terms: the terms of :math:`R`, each weighted 1 (``"width"``, ``"stable"``, ``"lpgap"``,
            ``"l1"``, ``"l2"``).
        bounds: ``"ibp"`` or ``"crown"``, the differentiable bounds of ``width``/``stable``.
        lp_derivative: ``"direct"`` (the paper's) or ``"total"``.
        schedule: ``"constant"`` (λ from the first step) or ``"continuation"`` (see the module
            docstring).
        description: one line for tables.
    """

    name: str
    origin: str
    terms: tuple[str, ...] = ()
    bounds: str = "ibp"
    lp_derivative: str = "direct"
    schedule: str = "constant"
    description: str = ""

    @property
    def regularized(self) -> bool:
        return bool(self.terms)


PAPER_VARIANTS: dict[str, PaperVariant] = {
    v.name: v
    for v in (
        PaperVariant("none", "paper", description="unregularized"),
        PaperVariant("l1", "paper", ("l1",), description="L1 on all parameters"),
        PaperVariant("l2", "paper", ("l2",), description="L2 on all parameters"),
        PaperVariant("width", "paper", ("width",), description="bound width (IBP)"),
        PaperVariant("stable", "paper", ("stable",), description="stable neuron (IBP)"),
        PaperVariant("lpgap", "paper", ("lpgap",), description="LP gap (direct derivative)"),
        PaperVariant("width+lpgap", "paper", ("width", "lpgap"),
                     description="bound width + LP gap"),
        PaperVariant("stable_crown", "ours", ("stable",), bounds="crown",
                     description="stable neuron on CROWN bounds"),
        PaperVariant("lpgap_total", "ours", ("lpgap",), lp_derivative="total",
                     description="LP gap, total derivative"),
        PaperVariant("stable_cont", "ours", ("stable",), schedule="continuation",
                     description="stable neuron (IBP), continuation schedule"),
    )
}


def get_paper_variant(name: str) -> PaperVariant:
    """The variant called ``name`` (``ValueError`` listing the known names)."""
    try:
        return PAPER_VARIANTS[name]
    except KeyError:
        msg = f"unknown paper-suite variant {name!r}; known: {', '.join(PAPER_VARIANTS)}"
        raise ValueError(msg) from None


# -- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperConfig:
    """What one paper-suite run covers (defaults: the paper's full grid).

    Jobs run in the order functions × depths × seeds × (variant, λ), so that a partial run has
    every variant of the first function and depth rather than one variant of every function.
    """

    functions: tuple[str, ...] = tuple(PAPER_FUNCTIONS)
    depths: tuple[int, ...] = DEPTHS
    seeds: tuple[int, ...] = SEEDS
    variants: tuple[str, ...] = tuple(PAPER_VARIANTS)
    lambdas: tuple[float, ...] = LAMBDAS
    width: int = WIDTH
    n_train: int = 70_000
    n_val: int = 30_000
    n_test: int = 10_000
    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    time_limit: float = TIME_LIMIT
    mip_gap: float = MIP_GAP
    solvers: tuple[str, ...] = ("highs", "gurobi")
    formulations: tuple[str, ...] = ("paper", "ours")

    def __post_init__(self) -> None:
        for f in self.functions:
            if f not in PAPER_FUNCTIONS:
                msg = f"unknown paper function {f!r}; known: {', '.join(PAPER_FUNCTIONS)}"
                raise ValueError(msg)
        for v in self.variants:
            get_paper_variant(v)
        for name in ("n_train", "n_val", "n_test", "epochs", "batch_size", "width"):
            if getattr(self, name) < 1:
                msg = f"{name} must be at least 1, got {getattr(self, name)}"
                raise ValueError(msg)
        if any(d < 1 for d in self.depths):
            msg = f"depths must be at least 1, got {self.depths}"
            raise ValueError(msg)
        if any(not (math.isfinite(lam) and lam > 0) for lam in self.lambdas):
            msg = f"lambdas must be positive numbers, got {self.lambdas}"
            raise ValueError(msg)
        if not (math.isfinite(self.time_limit) and self.time_limit > 0):
            msg = f"time_limit must be a positive number of seconds, got {self.time_limit}"
            raise ValueError(msg)
        for f in self.formulations:
            if f not in ("paper", "ours"):
                msg = f"unknown formulation {f!r}; use 'paper' (IBP bounds) or 'ours' (LP-OBBT)"
                raise ValueError(msg)

    def train_key(self) -> dict[str, Any]:
        """The settings a trained network depends on (stored with it, checked on reuse)."""
        keys = ("width", "n_train", "n_val", "n_test", "epochs", "batch_size", "lr")
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class Job:
    """One network of the suite."""

    function: str
    depth: int
    seed: int
    variant: str
    lam: float

    @property
    def key(self) -> str:
        lam = "0" if self.variant == "none" else f"{self.lam:g}"
        return f"{self.function}-d{self.depth}-s{self.seed}-{self.variant}-{lam}"


def jobs_of(cfg: PaperConfig) -> list[Job]:
    """The jobs of a configuration in run order (``none`` first within each block)."""
    out: list[Job] = []
    for f in cfg.functions:
        for d in cfg.depths:
            for s in cfg.seeds:
                for v in cfg.variants:
                    lams = (0.0,) if v == "none" else cfg.lambdas
                    out += [Job(f, d, s, v, float(lam)) for lam in lams]
    return out


# -- data -----------------------------------------------------------------------------------------
@dataclass
class PaperData:
    """Latin-hypercube samples of one function, targets on the [0, 1] scale of the training split.

    ``y_*`` are scaled; ``y_min``/``y_max`` (training split) map them back:
    :math:`f = y_{min} + (y_{max} - y_{min})\\,y`.
    """

    function: str
    seed: int
    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    x_test: Array
    y_test: Array
    y_min: float
    y_max: float
    lower: Array
    upper: Array


def latin_hypercube(n: int, lower: Sequence[float], upper: Sequence[float], seed: int) -> Array:
    """``n`` Latin-hypercube points in the box (scipy's ``qmc.LatinHypercube``), ``(n, d)``."""
    from scipy.stats import qmc

    lo, hi = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    unit = qmc.LatinHypercube(d=lo.size, seed=np.random.default_rng(seed)).random(n)
    return qmc.scale(unit, lo, hi)


def paper_data(function: str, seed: int, n_train: int = 70_000, n_val: int = 30_000,
               n_test: int = 10_000) -> PaperData:
    """The three splits of the protocol: LHS with seeds ``seed``, ``seed+1``, ``seed+2``."""
    fn = PAPER_FUNCTIONS[function]
    lo, hi = fn.box
    xs = [latin_hypercube(n, lo, hi, seed + k) for k, n in enumerate((n_train, n_val, n_test))]
    ys = [fn(x)[:, None] for x in xs]
    y_min, y_max = float(ys[0].min()), float(ys[0].max())
    span = y_max - y_min
    if not span > 0:
        msg = f"{function}: the training targets are constant; nothing to scale to [0, 1]"
        raise ValueError(msg)
    sc = [(y - y_min) / span for y in ys]
    return PaperData(function, seed, xs[0], sc[0], xs[1], sc[1], xs[2], sc[2], y_min, y_max,
                     lo, hi)


# -- networks and regularizers --------------------------------------------------------------------
def paper_network(n_in: int, depth: int, width: int, seed: int) -> nn.Sequential:
    """Float32 ReLU MLP with the paper's initialization (Kaiming/Xavier normal, zero biases)."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    prev = n_in
    for _ in range(depth):
        lin = nn.Linear(prev, width)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)
        mods += [lin, nn.ReLU()]
        prev = width
    out = nn.Linear(prev, 1)
    nn.init.xavier_normal_(out.weight)
    nn.init.zeros_(out.bias)
    mods.append(out)
    return nn.Sequential(*mods)


class PaperRegularizer:
    r""":math:`R(\theta; x)` of one variant: the sum of its terms, each weighted 1.

    Built from the library's penalties, so the suite measures what users get: ``width`` is
    :class:`~omlt_relax.BigMPenalty` (``"range"``, per-layer means; with equal widths exactly the
    paper's mean over all hidden neurons), ``stable`` is :class:`~omlt_relax.StabilityPenalty`
    (``"min"``, weight :math:`1/N` for the paper's mean), ``lpgap`` is
    :class:`~omlt_relax.LPGapPenalty` (``sense="min"``, IBP big-M constants, :data:`LP_SAMPLES`
    points per batch), combined by :class:`~omlt_relax.RelaxationRegularizer` (IBP bounds once
    per step, the IBP terms on its numpy fast path).
    """

    def __init__(self, model: nn.Sequential, variant: PaperVariant,
                 box: tuple[Array, Array], seed: int) -> None:
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
        self.reg = None
        if bigm is not None or stab is not None or gap is not None:
            self.reg = RelaxationRegularizer(model, box, bigm=bigm, stability=stab, lp_gap=gap,
                                             bounds=variant.bounds)

    def metrics(self) -> dict[str, float]:
        """The regularizer's metrics of the last step (unstable neurons, big-M, LP gap)."""
        return self.reg.metrics() if self.reg is not None else {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        total = self.reg(x) if self.reg is not None else torch.zeros(())
        params = [p for lin in self.linears for p in (lin.weight, lin.bias)]
        if "l1" in self.variant.terms:
            total = total + sum(p.abs().sum() for p in params)
        if "l2" in self.variant.terms:
            total = total + sum((p * p).sum() for p in params)
        return total


def schedule_factor(variant: PaperVariant, epoch: int, epochs: int) -> float:
    """Multiplier of λ at ``epoch`` (0-based): 1, or the continuation ramp 0 → 1."""
    if variant.schedule == "constant":
        return 1.0
    start, end = epochs // 2, (3 * epochs) // 4
    if epoch < start:
        return 0.0
    if epoch >= end:
        return 1.0
    return (epoch - start + 1) / max(1, end - start)


def checkpoint_from(variant: PaperVariant, epochs: int) -> int:
    """First epoch whose parameters may be kept (after the ramp of a continuation)."""
    return (3 * epochs) // 4 if variant.schedule == "continuation" else 0


@dataclass
class TrainedNet:
    """A trained network of one job (float32, [0, 1] target scale) and how it was trained."""

    model: nn.Sequential
    best_epoch: int
    best_val_mse: float
    train_time: float
    history: list[dict[str, float]] = field(default_factory=list)


def train_paper(job: Job, cfg: PaperConfig, data: PaperData,
                progress: Callable[[int], None] | None = None) -> TrainedNet:
    """Train one job with the protocol: Adam, batch 64, best-validation-MSE checkpoint."""
    v = get_paper_variant(job.variant)
    model = paper_network(data.x_train.shape[1], job.depth, cfg.width, job.seed)
    reg = PaperRegularizer(model, v, (data.lower, data.upper), job.seed) if v.regularized else None
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.float32)
    xv = torch.as_tensor(data.x_val, dtype=torch.float32)
    yv = torch.as_tensor(data.y_val, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(job.seed)
    n, bs = x.shape[0], cfg.batch_size
    first_ckpt = checkpoint_from(v, cfg.epochs)
    best_state, best_val, best_epoch = None, math.inf, -1
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        lam = job.lam * schedule_factor(v, epoch, cfg.epochs) if reg is not None else 0.0
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            xb, yb = x[idx], y[idx]
            loss = torch.mean((model(xb) - yb) ** 2)
            if lam > 0:
                loss = loss + lam * reg(xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach())
        if not math.isfinite(tot):
            msg = (f"{job.key}: the training loss became non-finite at epoch {epoch}; lower the "
                   "learning rate or the weight λ")
            raise FloatingPointError(msg)
        with torch.no_grad():
            val = float(torch.mean((model(xv) - yv) ** 2))
        rec = {"epoch": float(epoch), "loss": tot / math.ceil(n / bs), "val_mse": val,
               "lam": lam}
        if reg is not None and epoch % 10 == 0:
            rec.update({k: float(t) for k, t in reg.metrics().items()})
        history.append(rec)
        if epoch >= first_ckpt and val < best_val:
            best_val, best_epoch = val, epoch
            best_state = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(1)
    assert best_state is not None
    model.load_state_dict(best_state)
    return TrainedNet(model, best_epoch, best_val, time.perf_counter() - t0, history)


# -- measurement ----------------------------------------------------------------------------------
def _milp(net: Any, bounds: Any, solver: str, cfg: PaperConfig) -> dict[str, Any]:
    try:
        r = solve_milp(net, bounds, "min", cfg.time_limit, solver=solver, threads=1)
    except SolverUnavailableError as e:
        return {"status": "unavailable", "why": str(e).splitlines()[0]}
    return r.to_dict()


def measure_paper(model: nn.Sequential, data: PaperData, cfg: PaperConfig,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The paper's metrics of one trained network (module docstring), JSON-ready."""
    fn = PAPER_FUNCTIONS[data.function]
    m64 = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        pred = m64(torch.as_tensor(data.x_test)).numpy()
    err = pred - data.y_test
    out: dict[str, Any] = {
        "test_mse": float(np.mean(err**2)),
        "test_mae": float(np.mean(np.abs(err))),
        "test_max_err": float(np.max(np.abs(err))),
    }
    lo, hi = data.lower, data.upper
    ibp = sound_bounds(m64, lo, hi, "ibp")
    widths = np.concatenate([u - low for low, u in zip(ibp.lower, ibp.upper)])
    out.update(neurons=int(widths.size), unstable_ibp=ibp.unstable_count(),
               mean_width_ibp=float(widths.mean()), max_width_ibp=float(widths.max()))
    t0 = time.perf_counter()
    bounds = {"paper": ibp}
    if "ours" in cfg.formulations:
        obbt = obbt_bounds(m64, lo, hi, method="lp")
        out["obbt_time"] = time.perf_counter() - t0
        out["unstable_obbt"] = obbt.unstable_count()
        bounds["ours"] = obbt
    span = data.y_max - data.y_min
    milps: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for form in cfg.formulations:
            path = os.path.join(tmp, f"{form}.onnx")
            export_onnx(m64, path, (lo, hi), bounds=bounds[form])
            net, stored = load_onnx(path)
            root = root_lp_bounds(m64, stored)["min"]
            res: dict[str, Any] = {"root_lp": root}
            for solver in cfg.solvers:
                r = _milp(net, stored, solver, cfg)
                if r.get("x") is not None:
                    xs = np.asarray(r["x"], np.float64)[None, :]
                    with torch.no_grad():
                        r["net_at_x"] = float(m64(torch.as_tensor(xs))[0, 0])
                    r["verify_err"] = abs(r["net_at_x"] - r["objective"])
                    f_x = float(fn(xs)[0])
                    r["f_at_x"] = f_x
                    r["f_error"] = f_x - fn.f_min
                if r.get("objective") is not None and math.isfinite(root):
                    r["root_gap"] = r["objective"] - root
                res[solver] = r
                if log is not None:
                    log(f"    {form:5s} {solver:6s} {_cell(r)}")
            milps[form] = res
    out["milp"] = milps
    out["y_span"] = span
    return out


def _cell(r: dict[str, Any]) -> str:
    st = r.get("status")
    if st == "unavailable":
        return "unavailable"
    if st == "optimal":
        return f"{r['time']:.3g} s ({r.get('nodes')} nodes)"
    gap = r.get("gap")
    g = f"{100 * gap:.3g}%" if gap is not None else "-"
    return f"≥{r['time']:.4g} s ({st}, gap {g})"


# -- running --------------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Machine and library versions of a run."""
    import highspy

    try:
        import gurobipy

        grb = ".".join(map(str, gurobipy.gurobi.version()))
    except Exception:  # an optional solver: any failure means 'not available'
        grb = None
    return {
        "machine": platform.machine(), "processor": platform.processor() or None,
        "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "highs": highspy.Highs().version(), "gurobi": grb, "host": platform.node(),
    }


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run_job(job: Job, cfg: PaperConfig, out: Path, data_cache: dict[tuple[str, int], PaperData],
            log: Callable[[str], None] | None = None,
            progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train (or reuse the stored network of) one job, measure it, write ``jobs/<key>.json``."""
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    dkey = (job.function, job.seed)
    if dkey not in data_cache:
        data_cache.clear()
        data_cache[dkey] = paper_data(job.function, job.seed, cfg.n_train, cfg.n_val, cfg.n_test)
    data = data_cache[dkey]
    mpath = out / "models" / f"{job.key}.pt"
    trained = None
    if mpath.is_file():
        saved = torch.load(mpath, weights_only=False)
        if saved.get("train_key") == cfg.train_key():
            model = paper_network(data.x_train.shape[1], job.depth, cfg.width, job.seed)
            model.load_state_dict(saved["state"])
            trained = TrainedNet(model, saved["best_epoch"], saved["best_val_mse"],
                                 saved["train_time"], saved["history"])
    if trained is None:
        trained = train_paper(job, cfg, data, progress)
        tmp = mpath.with_name(f".{mpath.name}.{os.getpid()}.tmp")
        torch.save({"state": trained.model.state_dict(), "train_key": cfg.train_key(),
                    "best_epoch": trained.best_epoch, "best_val_mse": trained.best_val_mse,
                    "train_time": trained.train_time, "history": trained.history}, tmp)
        os.replace(tmp, mpath)
    if log is not None:
        log(f"  trained in {trained.train_time:.0f} s (best epoch {trained.best_epoch}, "
            f"val MSE {trained.best_val_mse:.3g})")
    t0 = time.perf_counter()
    meas = measure_paper(trained.model, data, cfg, log)
    rec = {"job": asdict(job), "key": job.key, "train_key": cfg.train_key(),
           "time_limit": cfg.time_limit, "mip_gap": cfg.mip_gap,
           "train_time": trained.train_time, "best_epoch": trained.best_epoch,
           "best_val_mse": trained.best_val_mse, "measure_time": time.perf_counter() - t0,
           "environment": environment(), **meas}
    _write_json(out / "jobs" / f"{job.key}.json", rec)
    return rec


def _done(path: Path, cfg: PaperConfig) -> bool:
    if not path.is_file():
        return False
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (rec.get("train_key") == cfg.train_key() and rec.get("time_limit") == cfg.time_limit
            and all(f in rec.get("milp", {}) for f in cfg.formulations)
            and all(s in rec["milp"][f] for f in cfg.formulations for s in cfg.solvers))


def _claim(lock: Path) -> bool:
    """Create ``lock`` holding this process's id; take over a lock whose process is gone.

    Only for processes of one machine (the id is checked with ``os.kill(pid, 0)``).
    """
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().split()[0])
                os.kill(pid, 0)
            except (OSError, ValueError, IndexError):
                lock.unlink(missing_ok=True)  # its process died: the job is free again
                continue
            return False
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return True
    return False


def run_paper(cfg: PaperConfig, out_dir: str | os.PathLike[str],
              log: Callable[[str], None] | None = print, progress: bool = True) -> list[dict]:
    """Run every job of ``cfg`` not yet done in ``out_dir`` (resumable), then write the report.

    A job is claimed with an ``O_EXCL`` lock file, so several processes may run on one folder.
    Returns the records of all finished jobs of ``cfg``.
    """
    out = Path(out_dir)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    _write_json(cfg_path, {"config": cfg.to_dict(), "environment": environment()})
    todo = [j for j in jobs_of(cfg) if not _done(out / "jobs" / f"{j.key}.json", cfg)]
    cache: dict[tuple[str, int], PaperData] = {}
    if log is not None:
        log(f"paper suite: {len(jobs_of(cfg))} jobs, {len(todo)} to run, results in {out}")
    from tqdm.auto import tqdm

    for i, job in enumerate(todo, 1):
        lock = out / "jobs" / f".{job.key}.lock"
        if not _claim(lock):
            if log is not None:
                log(f"[{i}/{len(todo)}] {job.key}: running elsewhere (lock {lock}), skipped")
            continue
        try:
            if log is not None:
                log(f"[{i}/{len(todo)}] {job.key}")
            with tqdm(total=cfg.epochs, desc=job.key, unit="epoch", leave=False,
                      disable=not progress) as bar:
                run_job(job, cfg, out, cache, log, bar.update)
        finally:
            lock.unlink(missing_ok=True)
        write_report(out, cfg)
    write_report(out, cfg)
    return load_records(out, cfg)


# -- reporting ------------------------------------------------------------------------------------
REPORT_FILE = "paper.md"


def load_records(out_dir: str | os.PathLike[str], cfg: PaperConfig | None = None) -> list[dict]:
    """Every finished job record in ``out_dir`` (of ``cfg``'s jobs only, if given)."""
    recs = []
    keys = {j.key for j in jobs_of(cfg)} if cfg is not None else None
    for p in sorted(Path(out_dir, "jobs").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if keys is None or rec.get("key") in keys:
            recs.append(rec)
    return recs


def _solve_time(r: dict[str, Any] | None) -> tuple[float | None, bool]:
    """(time, hit-the-limit) of one MILP record; ``None`` time if unavailable."""
    if not r or r.get("status") in (None, "unavailable"):
        return None, False
    return float(r["time"]), r["status"] != "optimal"


def _stat(vals: Iterable[float | None], spec: str = ".3g") -> str:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    if not v:
        return "-"
    if len(v) == 1:
        return format(v[0], spec)
    return f"{format(float(np.mean(v)), spec)} ± {format(float(np.std(v)), spec)}"


def _time_cell(recs: list[dict], form: str, solver: str) -> tuple[str, float | None, bool]:
    ts, hit = [], False
    for r in recs:
        t, h = _solve_time(r["milp"].get(form, {}).get(solver))
        if t is None:
            return "-", None, False
        ts.append(t)
        hit |= h
    mean = float(np.mean(ts))
    return (("≥" if hit else "") + f"{mean:.3g}"), mean, hit


def summarize(records: list[dict]) -> list[dict[str, Any]]:
    """One row per (function, depth, variant, λ): means over the seeds present, speed-ups.

    Speed-up = mean MILP time of ``none`` / mean MILP time of the row, per formulation and
    solver, over the seeds both have; ``≥`` when ``none`` hit the limit on any of them.
    """
    groups: dict[tuple[str, int, str, float], list[dict]] = {}
    for r in records:
        j = r["job"]
        groups.setdefault((j["function"], j["depth"], j["variant"], j["lam"]), []).append(r)
    rows = []
    for (f, d, v, lam), recs in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], list(PAPER_VARIANTS).index(kv[0][2]), kv[0][3])):
        base = groups.get((f, d, "none", 0.0))
        seeds = {r["job"]["seed"] for r in recs}
        base_same = [b for b in (base or []) if b["job"]["seed"] in seeds]
        mine = [r for r in recs if base is None or r["job"]["seed"] in
                {b["job"]["seed"] for b in base}]
        row: dict[str, Any] = {
            "function": f, "depth": d, "variant": v, "lam": lam,
            "origin": PAPER_VARIANTS[v].origin if v in PAPER_VARIANTS else "?",
            "seeds": sorted(seeds), "records": recs,
            "test_mse": float(np.mean([r["test_mse"] for r in recs])),
        }
        if base_same:
            row["mse_ratio"] = row["test_mse"] / float(np.mean([b["test_mse"]
                                                                 for b in base_same]))
        row["speedup"] = {}
        for form in ("paper", "ours"):
            for solver in ("highs", "gurobi"):
                _, t, hit = _time_cell(mine, form, solver)
                _, tb, hitb = _time_cell(base_same, form, solver) if base_same else ("", None, 0)
                if t is None or tb is None or not mine:
                    continue
                row["speedup"][f"{form}/{solver}"] = {
                    "time": t, "hit": hit, "base_time": tb, "base_hit": hitb,
                    "ratio": tb / max(t, 1e-3), "lower_bound": bool(hitb and not hit),
                    "undetermined": bool(hit),
                }
        rows.append(row)
    return rows


def _ratio_cell(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    if s["undetermined"]:
        return "limit"
    return ("≥" if s["lower_bound"] else "") + f"{s['ratio']:.3g}×"


def headline(rows: list[dict[str, Any]], ratio: float = MSE_RATIO) -> list[dict[str, Any]]:
    """Per (function, depth, formulation/solver): the best speed-up at test MSE ≤ ratio × none."""
    best: dict[tuple[str, int, str], dict[str, Any]] = {}
    for row in rows:
        if row["variant"] == "none" or row.get("mse_ratio") is None:
            continue
        if row["mse_ratio"] > ratio:
            continue
        for fs, s in row["speedup"].items():
            if s["undetermined"]:
                continue
            k = (row["function"], row["depth"], fs)
            if k not in best or s["ratio"] > best[k]["ratio"]:
                best[k] = {**s, "variant": row["variant"], "lam": row["lam"],
                           "mse_ratio": row["mse_ratio"], "function": row["function"],
                           "depth": row["depth"], "solver": fs}
    return [best[k] for k in sorted(best)]


def dominance(rows: list[dict[str, Any]], fs: str = "paper/highs") -> list[dict[str, Any]]:
    """For every paper-regularizer row: is there one of ours at least as accurate and fast?

    Compared per function and depth on the same seeds, test MSE and mean MILP time
    (formulation/solver ``fs``; a row that hit the limit counts at the limit).
    """
    out = []
    for r in rows:
        if r["origin"] != "paper" or r["variant"] == "none" or fs not in r["speedup"]:
            continue
        t = r["speedup"][fs]["time"]
        mates = [o for o in rows if o["origin"] == "ours" and o["function"] == r["function"]
                 and o["depth"] == r["depth"] and fs in o["speedup"]
                 and o["seeds"] == r["seeds"]]
        win = [o for o in mates if o["test_mse"] <= r["test_mse"]
               and o["speedup"][fs]["time"] <= t and not o["speedup"][fs]["hit"]]
        out.append({"function": r["function"], "depth": r["depth"], "variant": r["variant"],
                    "lam": r["lam"], "test_mse": r["test_mse"], "time": t,
                    "dominated_by": [f"{o['variant']} {o['lam']:g}" for o in win],
                    "compared": len(mates)})
    return out


def equal_accuracy(rows: list[dict[str, Any]], fs: str = "ours/highs") -> list[dict[str, Any]]:
    """Speed-up at equal accuracy (DESIGN.md): per regularized row, the fastest unregularized
    network of *any* depth of the same function that is at least as accurate (test MSE), over
    this row's time. ``base`` is ``None`` when no unregularized network is as accurate.
    """
    out = []
    for r in rows:
        if r["variant"] == "none" or fs not in r["speedup"]:
            continue
        s = r["speedup"][fs]
        cands = [o for o in rows if o["variant"] == "none" and o["function"] == r["function"]
                 and o["test_mse"] <= r["test_mse"] and fs in o["speedup"]]
        rec = {"function": r["function"], "depth": r["depth"], "variant": r["variant"],
               "lam": r["lam"], "test_mse": r["test_mse"], "time": s["time"], "hit": s["hit"],
               "base": None}
        if cands:
            b = min(cands, key=lambda o: o["speedup"][fs]["time"])
            bt = b["speedup"][fs]
            rec.update(base={"depth": b["depth"], "test_mse": b["test_mse"], "time": bt["time"],
                             "hit": bt["hit"]},
                       ratio=bt["time"] / max(s["time"], 1e-3),
                       lower_bound=bool(bt["hit"] and not s["hit"]))
        out.append(rec)
    return out


def pareto_plots(records: list[dict], out_dir: str | os.PathLike[str]) -> list[Path]:
    """One plot per function: test MSE against MILP time (HiGHS), every network of the run.

    Filled markers solved, hollow ones hit the time limit (drawn at the limit); one colour per
    variant, one marker per depth; left panel the paper's MILP (IBP bounds), right ours.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    by_fn: dict[str, list[dict]] = {}
    for r in records:
        by_fn.setdefault(r["job"]["function"], []).append(r)
    variants = list(PAPER_VARIANTS)
    colours = plt.get_cmap("tab10")
    markers = {2: "o", 3: "s", 5: "D"}
    for f, recs in sorted(by_fn.items()):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
        for ax, form in zip(axes, ("paper", "ours")):
            seen = set()
            for r in recs:
                m = r["milp"].get(form, {}).get("highs")
                t, hit = _solve_time(m)
                if t is None:
                    continue
                v, d = r["job"]["variant"], r["job"]["depth"]
                c = colours(variants.index(v) % 10)
                label = v if v not in seen else None
                seen.add(v)
                ax.scatter(r["test_mse"], max(t, 1e-2), marker=markers.get(d, "^"), s=40,
                           facecolors="none" if hit else c, edgecolors=c, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("test MSE ([0, 1] scale)")
            kind = "IBP big-M (paper)" if form == "paper" else "LP-OBBT big-M (ours)"
            ax.set_title(f"{f}: {kind}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("HiGHS time [s], 1 thread (hollow: time limit)")
        axes[1].legend(fontsize=7, title="variant (marker: depth 2 o, 3 □, 5 ◇)",
                       title_fontsize=7)
        path = Path(out_dir) / f"pareto_{f}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def markdown_report(records: list[dict], cfg: PaperConfig | None = None) -> str:
    """The paper-suite report: per-network means, speed-ups, the headline and the dominance test."""
    rows = summarize(records)
    lines = ["# Paper protocol (Tsay 2026) — results", ""]
    if records:
        env = records[-1].get("environment", {})
        lines.append(f"Machine: {env.get('machine')}, {env.get('cpus')} CPUs, Python "
                     f"{env.get('python')}, torch {env.get('torch')}, HiGHS {env.get('highs')}, "
                     f"Gurobi {env.get('gurobi')}; one solver thread; MIP gap "
                     f"{records[-1].get('mip_gap')}; time limit "
                     f"{records[-1].get('time_limit'):g} s per MILP.")
    lines += [
        f"{len(records)} networks finished. Times are solver seconds for minimizing the network "
        "(mean over seeds); `≥` marks a baseline that hit the time limit (so the speed-up is a "
        "lower bound), `limit` a row that hit it itself. `paper` = big-M with IBP bounds "
        "(binaries for IBP-unstable neurons), `ours` = big-M with LP-OBBT bounds. MSE on the "
        "[0, 1] target scale; ratio = test MSE / that of `none` (same function, depth, seeds).",
        "",
        "| function | depth | variant | λ | seeds | test MSE | ratio | unstable IBP/OBBT | "
        "mean width | root gap | paper HiGHS s | paper Gurobi s | ours HiGHS s | ours Gurobi s"
        " | speed-up paper H/G | speed-up ours H/G | f(x*) − f* |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        recs = row["records"]
        cells = [_time_cell(recs, f, s)[0] for f in ("paper", "ours") for s in ("highs", "gurobi")]
        sp = row["speedup"]
        root = [r["milp"]["paper"].get("highs", {}).get("root_gap") for r in recs]
        ferr = [r["milp"]["paper"].get("highs", {}).get("f_error") for r in recs]
        lines.append(
            f"| {row['function']} | {row['depth']} | {row['variant']} | "
            f"{'-' if row['variant'] == 'none' else format(row['lam'], 'g')} | "
            f"{len(row['seeds'])} | {_stat([r['test_mse'] for r in recs])} | "
            f"{format(row['mse_ratio'], '.3g') if row.get('mse_ratio') else '-'} | "
            f"{_stat([r['unstable_ibp'] for r in recs], '.4g')}/"
            f"{_stat([r.get('unstable_obbt') for r in recs], '.4g')} | "
            f"{_stat([r['mean_width_ibp'] for r in recs])} | {_stat(root)} | "
            + " | ".join(cells) + " | "
            f"{_ratio_cell(sp.get('paper/highs'))} / {_ratio_cell(sp.get('paper/gurobi'))} | "
            f"{_ratio_cell(sp.get('ours/highs'))} / {_ratio_cell(sp.get('ours/gurobi'))} | "
            f"{_stat(ferr)} |")
    lines += ["", f"## Best speed-up at test MSE ≤ {MSE_RATIO}× the unregularized network", "",
              "| function | depth | MILP/solver | variant | λ | MSE ratio | time s | baseline s |"
              " speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for h in headline(rows):
        lines.append(
            f"| {h['function']} | {h['depth']} | {h['solver']} | {h['variant']} | "
            f"{h['lam']:g} | {h['mse_ratio']:.3g} | {h['time']:.3g} | "
            f"{'≥' if h['base_hit'] else ''}{h['base_time']:.4g} | "
            f"{'≥' if h['lower_bound'] else ''}{h['ratio']:.3g}× |")
    dom = dominance(rows)
    if dom:
        lines += ["", "## Better than the paper on its own ground? (paper MILP, HiGHS)", "",
                  "For each point the paper's regularizers reach: our variants (same seeds) at "
                  "least as accurate and at least as fast.", "",
                  "| function | depth | paper variant | λ | test MSE | time s | ours that "
                  "dominate |", "|---|---|---|---|---|---|---|"]
        for d in dom:
            who = ", ".join(d["dominated_by"]) or (
                "**none**" if d["compared"] else "(no variant of ours measured yet)")
            lines.append(f"| {d['function']} | {d['depth']} | {d['variant']} | {d['lam']:g} | "
                         f"{d['test_mse']:.3g} | {d['time']:.3g} | {who} |")
    eq = [e for e in equal_accuracy(rows) if e["base"] is not None]
    if eq:
        lines += ["", "## Speed-up at equal accuracy (ours MILP, HiGHS)", "",
                  "Fastest unregularized network of any depth at least as accurate, over the row's"
                  " time.", "",
                  "| function | depth | variant | λ | test MSE | time s | unregularized: depth, "
                  "MSE, time s | speed-up |", "|---|---|---|---|---|---|---|---|"]
        for e in eq:
            b = e["base"]
            lines.append(
                f"| {e['function']} | {e['depth']} | {e['variant']} | {e['lam']:g} | "
                f"{e['test_mse']:.3g} | {'≥' if e['hit'] else ''}{e['time']:.3g} | "
                f"{b['depth']}, {b['test_mse']:.3g}, {'≥' if b['hit'] else ''}{b['time']:.4g} | "
                + ("limit" if e["hit"] else
                   f"{'≥' if e['lower_bound'] else ''}{e['ratio']:.3g}×") + " |")
    times = [(r["job"]["variant"], r["train_time"]) for r in records]
    plain = [t for v, t in times if v == "none"]
    if plain:
        lines += ["", "## Training time (mean seconds per network; all depths)", "",
                  "| variant | networks | train s | × plain |", "|---|---|---|---|"]
        p = float(np.mean(plain))
        for v in PAPER_VARIANTS:
            ts = [t for vv, t in times if vv == v]
            if ts:
                lines.append(f"| {v} | {len(ts)} | {np.mean(ts):.0f} | "
                             f"{np.mean(ts) / p:.2f} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | os.PathLike[str], cfg: PaperConfig | None = None) -> Path:
    """Write ``OUT/paper.md`` from every finished job in ``out_dir``; returns its path."""
    path = Path(out_dir) / REPORT_FILE
    records = load_records(out_dir, cfg)
    text = markdown_report(records, cfg)
    pareto_plots(records, out_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def with_overrides(cfg: PaperConfig, **kw: Any) -> PaperConfig:
    """``cfg`` with the given fields replaced (``None`` values ignored)."""
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})


__all__ = [
    "DEPTHS",
    "LAMBDAS",
    "PAPER_FUNCTIONS",
    "PAPER_VARIANTS",
    "Job",
    "PaperConfig",
    "PaperData",
    "PaperRegularizer",
    "PaperVariant",
    "equal_accuracy",
    "headline",
    "jobs_of",
    "latin_hypercube",
    "markdown_report",
    "measure_paper",
    "paper_data",
    "paper_network",
    "pareto_plots",
    "run_paper",
    "summarize",
    "train_paper",
    "with_overrides",
    "write_report",
]
