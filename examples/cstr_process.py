"""Reactor design and operation over a ReLU surrogate: unregularized vs relaxation-informed.

The unit is a jacketed continuous stirred-tank reactor running the exothermic series reactions
A → B → C (first order, Arrhenius rates); B is the product. Three decisions: the reactor volume
:math:`V` (L), the feed flow :math:`F` (L/min) and the jacket temperature :math:`T_c` (K); the
jacket area, and so :math:`UA`, grows as :math:`V^{2/3}`. At steady state, with :math:`\\tau = V/F`
and :math:`k_i(T) = k_{i,\\mathrm{ref}}\\, e^{-(E_i/R)(1/T - 1/T_{ref})}`,

.. math::

    c_A = \\frac{c_{Af}}{1 + k_1\\tau},\\qquad c_B = \\frac{k_1 \\tau\\, c_A}{1 + k_2 \\tau},\\qquad
    0 = F\\rho c_p (T_f - T) + V\\big((-\\Delta H_1) k_1 c_A + (-\\Delta H_2) k_2 c_B\\big)
        + UA(V)\\,(T_c - T),

one equation in the reactor temperature :math:`T`, solved with ``scipy.optimize.brentq``. The
simulator refuses points with several steady states (none occur in the box used here).

A ReLU network :math:`\\hat f` learns :math:`(V, F, T_c) \\mapsto (P_B, T, X, Q)`: production rate
of B (:math:`F c_B`, mol/min), reactor temperature, conversion of A, and jacket duty
:math:`Q = UA(V)(T_c - T)` (kJ/min, positive when the jacket heats). The economics are then linear:

.. math::

    \\max\\ 60\\,\\big(p_B P_B - p_A c_{Af} F - c_{steam} Q^+ - c_{cw} Q^- - c_V V\\big)\\ \\$/h
    \\quad\\text{s.t.}\\quad Q^+ - Q^- = Q,\\ Q^\\pm \\ge 0,\\ T \\le T_{max},\\ X \\ge X_{min},\\
    P_B \\le D,\\ (P_B, T, X, Q) = \\hat f(V, F, T_c),

with :math:`D` the market demand for B and :math:`c_V` a capital charge per litre of reactor.

Two networks with the same architecture, data, initial weights, optimizer and epochs are trained:
one on the mean squared error alone, one with :class:`~omlt_relax.RelaxationRegularizer` added.
Each is exported with LP-tightened neuron bounds, loaded back, and embedded with
:class:`~omlt_relax.formulations.BoundedReluBigMFormulation` (binaries only for unstable neurons) in
the same Pyomo model, solved by HiGHS with a time limit. The table puts accuracy beside MILP size
and time, the design found, and what the simulator says about that design.

Run ``python examples/cstr_process.py`` (about two minutes on two cores) or add ``--quick``
(seconds; used by the tests).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import torch
from omlt import OmltBlock
from scipy.optimize import brentq, minimize
from torch import nn

from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.formulations import BoundedReluBigMFormulation
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.regularizer import RelaxationRegularizer
from omlt_relax.solve import solve
from omlt_relax.threads import single_thread

INPUT_NAMES = ("V", "F", "Tc")
INPUT_UNITS = ("L", "L/min", "K")
OUTPUT_NAMES = ("P_B", "T", "X", "Q")
OUTPUT_UNITS = ("mol/min", "K", "-", "kJ/min")
#: Design and operating box of (V, F, Tc).
INPUT_LOWER = np.array([50.0, 5.0, 300.0])
INPUT_UPPER = np.array([250.0, 60.0, 420.0])


# ------------------------------------------------------------------------------------------------
# the first-principles unit
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CSTR:
    """Jacketed CSTR, A → B → C, first order, exothermic. Units: L, min, mol, kJ, K."""

    c_af: float = 2.0  # feed concentration of A, mol/L
    t_feed: float = 310.0  # T_f, K
    rho_cp: float = 4.0  # kJ/(L K)
    ua_ref: float = 40.0  # jacket UA at v_ref, kJ/(min K)
    v_ref: float = 100.0  # L
    k1_ref: float = 0.6  # 1/min at t_ref
    e1_r: float = 7000.0  # E_1/R, K
    k2_ref: float = 0.08  # 1/min at t_ref
    e2_r: float = 10000.0  # E_2/R, K
    t_ref: float = 350.0  # K
    dh1: float = -40.0  # kJ/mol
    dh2: float = -30.0  # kJ/mol

    def ua(self, volume: float) -> float:
        """Jacket :math:`UA` in kJ/(min K); the wetted area scales as :math:`V^{2/3}`."""
        return self.ua_ref * (volume / self.v_ref) ** (2.0 / 3.0)

    def rates(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Arrhenius rate constants :math:`k_1(T), k_2(T)` in 1/min."""
        inv = 1.0 / np.asarray(t, dtype=np.float64) - 1.0 / self.t_ref
        return self.k1_ref * np.exp(-self.e1_r * inv), self.k2_ref * np.exp(-self.e2_r * inv)

    def concentrations(
        self, t: np.ndarray | float, volume: float, flow: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Steady-state :math:`c_A, c_B` (mol/L) at reactor temperature ``t``."""
        tau = volume / flow
        k1, k2 = self.rates(t)
        c_a = self.c_af / (1.0 + k1 * tau)
        return c_a, k1 * tau * c_a / (1.0 + k2 * tau)

    def energy_residual(
        self, t: np.ndarray | float, volume: float, flow: float, t_jacket: float
    ) -> np.ndarray:
        """Steady-state energy balance (kJ/min); zero at the operating temperature."""
        k1, k2 = self.rates(t)
        c_a, c_b = self.concentrations(t, volume, flow)
        heat = volume * (-self.dh1 * k1 * c_a - self.dh2 * k2 * c_b)
        return flow * self.rho_cp * (self.t_feed - t) + heat + self.ua(volume) * (t_jacket - t)

    def steady_state(self, volume: float, flow: float, t_jacket: float) -> np.ndarray:
        """``(P_B, T, X, Q)`` at the steady state of one design/operating point.

        :math:`T` is bracketed by the energy balance: turning all of A into C releases at most
        :math:`F c_{Af}(-\\Delta H_1 - \\Delta H_2)`, so :math:`T` lies in
        :math:`[\\min(T_f, T_c),\\ \\max(T_f, T_c) + c_{Af}(-\\Delta H_1 - \\Delta H_2)/\\rho c_p]`.
        Raises ``RuntimeError`` if the residual changes sign more than once on a 257-point grid
        of that bracket (several steady states: the surrogate would be ill-defined).
        """
        args = (volume, flow, t_jacket)
        lo = min(self.t_feed, t_jacket) - 1e-6
        hi = max(self.t_feed, t_jacket) + self.c_af * (-self.dh1 - self.dh2) / self.rho_cp + 1e-6
        sign = np.sign(self.energy_residual(np.linspace(lo, hi, 257), *args))
        if np.count_nonzero(sign[:-1] != sign[1:]) != 1:
            msg = (
                f"the CSTR has no unique steady state at V={volume}, F={flow}, Tc={t_jacket}; "
                "shrink the design box or change the parameters"
            )
            raise RuntimeError(msg)
        t = brentq(self.energy_residual, lo, hi, args=args, xtol=1e-10, rtol=1e-14)
        c_a, c_b = self.concentrations(t, volume, flow)
        duty = self.ua(volume) * (t_jacket - t)
        return np.array([flow * c_b, t, 1.0 - c_a / self.c_af, duty])

    def simulate(self, x: np.ndarray) -> np.ndarray:
        """Steady states of a batch of points ``x`` ``(N, 3)`` = (V, F, Tc) → ``(N, 4)``."""
        return np.array([self.steady_state(*row) for row in np.atleast_2d(x)])


@dataclass(frozen=True)
class Economics:
    """Prices, capital charge and limits ($ per mol, per kJ, per L of reactor and minute)."""

    price_b: float = 1.0  # product B, $/mol
    price_a: float = 0.25  # feed A, $/mol
    steam: float = 0.002  # jacket heating, $/kJ
    cooling_water: float = 0.0005  # jacket cooling, $/kJ
    capital: float = 0.04  # reactor capital charge, $/(L min)
    t_max: float = 350.0  # reactor temperature limit, K
    x_min: float = 0.75  # conversion spec, -
    demand: float = 30.0  # market for B, mol/min

    def profit(self, unit: CSTR, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Profit in $/h at points ``x`` ``(N, 3)`` with unit outputs ``y`` ``(N, 4)``."""
        x, y = np.atleast_2d(x), np.atleast_2d(y)
        rate = (
            self.price_b * y[:, 0]
            - self.price_a * unit.c_af * x[:, 1]
            - self.steam * np.maximum(y[:, 3], 0.0)
            - self.cooling_water * np.maximum(-y[:, 3], 0.0)
            - self.capital * x[:, 0]
        )
        return 60.0 * rate

    def violation(self, y: np.ndarray) -> np.ndarray:
        """Largest violation of the operating limits, relative to each limit (0 if feasible)."""
        y = np.atleast_2d(y)
        return np.maximum.reduce(
            [
                np.zeros(len(y)),
                (y[:, 1] - self.t_max) / self.t_max,
                (self.x_min - y[:, 2]) / self.x_min,
                (y[:, 0] - self.demand) / self.demand,
            ]
        )


def true_optimum(unit: CSTR, econ: Economics, n: int) -> tuple[float, np.ndarray]:
    """Best design of the simulator itself: an ``n``³ grid, then SLSQP from the best grid point.

    The reference the surrogate designs are judged against (a local polish of a grid search,
    so a good feasible design rather than a certified global optimum).
    """
    axes = [np.linspace(a, b, n) for a, b in zip(INPUT_LOWER, INPUT_UPPER)]
    x = np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T
    y = unit.simulate(x)
    p = np.where(econ.violation(y) <= 0, econ.profit(unit, x, y), -np.inf)
    x0 = x[int(np.argmax(p))]
    span = INPUT_UPPER - INPUT_LOWER

    def sim(s: np.ndarray) -> np.ndarray:
        return unit.steady_state(*(INPUT_LOWER + s * span))

    res = minimize(
        lambda s: -econ.profit(unit, INPUT_LOWER + s * span, sim(s))[0] / 100.0,
        (x0 - INPUT_LOWER) / span,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * 3,
        constraints=[
            {"type": "ineq", "fun": lambda s: (econ.t_max - sim(s)[1]) / 10.0},
            {"type": "ineq", "fun": lambda s: (sim(s)[2] - econ.x_min) * 10.0},
            {"type": "ineq", "fun": lambda s: (econ.demand - sim(s)[0]) / 10.0},
        ],
        options={"ftol": 1e-10, "maxiter": 200},
    )
    best = INPUT_LOWER + np.clip(res.x, 0.0, 1.0) * span
    y_best = unit.steady_state(*best)[None]
    if econ.violation(y_best)[0] > 1e-6 or econ.profit(unit, best, y_best)[0] < p.max():
        return float(p.max()), x0
    return float(econ.profit(unit, best, y_best)[0]), best


# ------------------------------------------------------------------------------------------------
# data and surrogates
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scaling:
    """Inputs mapped affinely onto [-1, 1]; outputs standardized with training mean and std."""

    x_lo: np.ndarray
    x_hi: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray

    def x_to_net(self, x: np.ndarray) -> np.ndarray:
        return 2.0 * (x - self.x_lo) / (self.x_hi - self.x_lo) - 1.0

    def y_to_net(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_mean) / self.y_std

    def y_from_net(self, s: np.ndarray) -> np.ndarray:
        return self.y_mean + s * self.y_std


@dataclass(frozen=True)
class Config:
    """Sizes, training settings and regularization weights of one run.

    The weights were picked at the default settings as the strongest of a few tried (big-M
    1e-4..3e-3, stability 0..1e-3, IBP and CROWN bounds) whose test RMSE stayed within 1.25× of the
    unregularized network's; stronger stability weights solve faster at a larger accuracy cost.
    """

    n_train: int = 2000
    n_test: int = 1000
    widths: tuple[int, ...] = (50, 50)
    epochs: int = 300
    batch: int = 200
    lr: float = 3e-3
    bigm: float = 1e-4
    stability: float = 2e-4
    reg_bounds: str = "ibp"
    time_limit: float = 30.0
    grid: int = 15
    seed: int = 0


#: ``--quick``: small networks and data, a few seconds; for tests, not for conclusions.
QUICK = Config(
    n_train=300, n_test=200, widths=(12, 12), epochs=100, batch=50, lr=1e-2, time_limit=10.0, grid=5
)


def make_data(unit: CSTR, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn uniformly from the design box and their simulated steady states."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(INPUT_LOWER, INPUT_UPPER, size=(n, len(INPUT_NAMES)))
    return x, unit.simulate(x)


def build_net(widths: tuple[int, ...], seed: int) -> nn.Sequential:
    """``Linear``/``ReLU`` network with the given hidden widths, seeded initial weights."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = len(INPUT_NAMES)
    for w in widths:
        layers += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    layers.append(nn.Linear(prev, len(OUTPUT_NAMES)))
    return nn.Sequential(*layers)


def net_box() -> tuple[np.ndarray, np.ndarray]:
    """The network's input box (the scaled design box)."""
    return -np.ones(len(INPUT_NAMES)), np.ones(len(INPUT_NAMES))


def train(
    xs: np.ndarray, ys: np.ndarray, cfg: Config, regularized: bool
) -> tuple[nn.Sequential, float]:
    """Adam on the MSE of scaled data, plus the relaxation term if ``regularized``.

    Both variants get the same initial weights, batch order, optimizer, schedule and epochs.
    Returns the model (float32, eval mode) and the training wall time in seconds.
    """
    model = build_net(cfg.widths, cfg.seed)
    reg = None
    if regularized:
        reg = RelaxationRegularizer(
            model, net_box(), bigm=cfg.bigm, stability=cfg.stability, bounds=cfg.reg_bounds
        )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    tx = torch.as_tensor(xs, dtype=torch.float32)
    ty = torch.as_tensor(ys, dtype=torch.float32)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(tx), generator=gen)
        for i in range(0, len(tx), cfg.batch):
            idx = perm[i : i + cfg.batch]
            loss = torch.mean((model(tx[idx]) - ty[idx]) ** 2)
            if reg is not None:
                loss = loss + reg(tx[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval(), time.perf_counter() - start


def predict(model: nn.Module, xs: np.ndarray) -> np.ndarray:
    """Forward pass in float64 (the precision the MILP works in) of scaled inputs ``(N, 3)``."""
    with torch.no_grad():
        return copy.deepcopy(model).double()(torch.as_tensor(xs, dtype=torch.float64)).numpy()


# ------------------------------------------------------------------------------------------------
# the optimization model
# ------------------------------------------------------------------------------------------------
def build_model(
    onnx_path: Path, scaling: Scaling, unit: CSTR, econ: Economics
) -> tuple[pyo.ConcreteModel, NeuronBounds]:
    """The design MILP around an exported surrogate; returns the model and the neuron bounds."""
    net, bounds = load_onnx(onnx_path)
    n_in, n_out = len(INPUT_NAMES), len(OUTPUT_NAMES)
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(n_in), bounds=lambda _m, i: (INPUT_LOWER[i], INPUT_UPPER[i]))
    m.nn = OmltBlock()
    m.nn.build_formulation(BoundedReluBigMFormulation(net, bounds))
    half = 0.5 * (scaling.x_hi - scaling.x_lo)
    mid = 0.5 * (scaling.x_hi + scaling.x_lo)
    m.scale_in = pyo.Constraint(
        range(n_in), rule=lambda _m, i: m.x[i] == mid[i] + half[i] * m.nn.inputs[i]
    )
    m.y = pyo.Expression(
        range(n_out),
        rule=lambda _m, j: scaling.y_mean[j] + scaling.y_std[j] * m.nn.outputs[j],
    )
    p_b, t, conv, duty = (m.y[j] for j in range(n_out))
    m.q_heat = pyo.Var(within=pyo.NonNegativeReals)
    m.q_cool = pyo.Var(within=pyo.NonNegativeReals)
    m.duty = pyo.Constraint(expr=m.q_heat - m.q_cool == duty)
    m.t_limit = pyo.Constraint(expr=t <= econ.t_max)
    m.conversion = pyo.Constraint(expr=conv >= econ.x_min)
    m.market = pyo.Constraint(expr=p_b <= econ.demand)
    m.profit = pyo.Objective(
        expr=60.0
        * (
            econ.price_b * p_b
            - econ.price_a * unit.c_af * m.x[1]
            - econ.steam * m.q_heat
            - econ.cooling_water * m.q_cool
            - econ.capital * m.x[0]
        ),
        sense=pyo.maximize,
    )
    return m, bounds


def count_binaries(block: pyo.Block) -> int:
    """Number of binary variables in ``block`` and its sub-blocks."""
    return sum(1 for v in block.component_data_objects(pyo.Var, descend_into=True) if v.is_binary())


@dataclass
class Design:
    """The design a MILP returned and what the surrogate and the simulator say about it."""

    x: np.ndarray  # (V, F, Tc)
    objective: float  # MILP objective, $/h
    y_milp: np.ndarray  # (P_B, T, X, Q) as the MILP has them
    y_forward: np.ndarray  # torch forward pass of the surrogate at x
    y_true: np.ndarray  # simulator at x
    profit_forward: float  # profit, $/h, from y_forward
    profit_true: float  # profit, $/h, from y_true


@dataclass
class Result:
    """One surrogate variant: accuracy, MILP statistics, and its design (None if none was found)."""

    name: str
    rmse: np.ndarray  # test RMSE per output, physical units
    rmse_scaled: float  # test RMSE over all outputs, standardized units
    train_time: float
    unstable: int
    binaries: int
    status: str  # "optimal", "feasible" (stopped early with a design), "no_solution", ...
    termination: str
    time: float
    nodes: int | None
    bound: float | None  # best bound on the profit, $/h
    gap: float | None
    design: Design | None
    model: nn.Sequential


def run_variant(
    name: str,
    regularized: bool,
    data: dict[str, np.ndarray],
    scaling: Scaling,
    unit: CSTR,
    econ: Economics,
    cfg: Config,
    workdir: Path,
) -> Result:
    """Train one surrogate, export it with LP-tightened bounds, embed it, solve, re-simulate."""
    model, t_train = train(data["xs"], data["ys"], cfg, regularized)
    pred = scaling.y_from_net(predict(model, data["xs_test"]))
    rmse = np.sqrt(np.mean((pred - data["y_test"]) ** 2, axis=0))
    err = scaling.y_to_net(pred) - scaling.y_to_net(data["y_test"])
    path = workdir / f"cstr_{name}.onnx"
    export_onnx(model, path, net_box(), bounds="lp")
    m, bounds = build_model(path, scaling, unit, econ)
    res = solve(m, solver="highs", time_limit=cfg.time_limit)
    design = None
    if res.objective is not None:
        x = np.array([pyo.value(m.x[i]) for i in range(len(INPUT_NAMES))])
        y_fwd = scaling.y_from_net(predict(model, scaling.x_to_net(x)[None]))[0]
        y_true = unit.steady_state(*x)
        design = Design(
            x=x,
            objective=res.objective,
            y_milp=np.array([pyo.value(m.y[j]) for j in range(len(OUTPUT_NAMES))]),
            y_forward=y_fwd,
            y_true=y_true,
            profit_forward=float(econ.profit(unit, x, y_fwd)[0]),
            profit_true=float(econ.profit(unit, x, y_true)[0]),
        )
    return Result(
        name=name,
        rmse=rmse,
        rmse_scaled=float(np.sqrt(np.mean(err**2))),
        train_time=t_train,
        unstable=bounds.unstable_count(),
        binaries=count_binaries(m.nn),
        status=res.status,
        termination=res.termination,
        time=res.wall_time,
        nodes=res.nodes,
        bound=res.bound,
        gap=res.gap,
        design=design,
        model=model,
    )


def _fmt(v: float | int | None, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def _status(r: Result) -> str:
    if r.status == "optimal":
        return "optimal"
    if r.termination == "maxTimeLimit":
        return "time limit"
    return f"{r.status} ({r.termination})"


def format_table(results: list[Result], econ: Economics, best: tuple[float, np.ndarray]) -> str:
    """A plain-text, side-by-side table of the variants and the simulator's own best design."""

    def per_design(fn: Callable[[Design], str]) -> list[str]:
        return [fn(r.design) if r.design is not None else "no design" for r in results]

    def pair(j: int, spec: str) -> list[str]:
        return per_design(lambda d: f"{d.y_forward[j]:{spec}} / {d.y_true[j]:{spec}}")

    rows: list[tuple[str, list[str]]] = [
        ("test RMSE, standardized", [_fmt(r.rmse_scaled, ".4f") for r in results]),
        *[
            (f"test RMSE {n} [{u}]", [_fmt(float(r.rmse[j]), ".3g") for r in results])
            for j, (n, u) in enumerate(zip(OUTPUT_NAMES, OUTPUT_UNITS))
        ],
        ("training time [s]", [_fmt(r.train_time, ".1f") for r in results]),
        ("unstable neurons (LP bounds)", [str(r.unstable) for r in results]),
        ("binaries in the MILP", [str(r.binaries) for r in results]),
        ("MILP status", [_status(r) for r in results]),
        ("MILP time [s]", [_fmt(r.time, ".2f") for r in results]),
        ("B&B nodes", [_fmt(r.nodes, "d") for r in results]),
        ("MILP profit [$/h]", per_design(lambda d: f"{d.objective:.2f}")),
        ("MILP best bound [$/h]", [_fmt(r.bound, ".2f") for r in results]),
        ("final gap", [_fmt(r.gap, ".1e") for r in results]),
        *[
            (f"{n}* [{u}]", per_design(lambda d, i=i: f"{d.x[i]:.2f}"))
            for i, (n, u) in enumerate(zip(INPUT_NAMES, INPUT_UNITS))
        ],
        ("at the design, surrogate / simulator:", ["" for _ in results]),
        (f"  T [K] (≤ {econ.t_max:g})", pair(1, ".2f")),
        (f"  X [-] (≥ {econ.x_min:g})", pair(2, ".4f")),
        (f"  P_B [mol/min] (≤ {econ.demand:g})", pair(0, ".2f")),
        ("  Q [kJ/min]", pair(3, ".0f")),
        ("  profit [$/h]", per_design(lambda d: f"{d.profit_forward:.2f} / {d.profit_true:.2f}")),
        (
            "limits met by the real unit",
            per_design(lambda d: "yes" if econ.violation(d.y_true)[0] <= 1e-9 else "NO"),
        ),
    ]
    head = [r.name for r in results]
    w0 = max(len(k) for k, _ in rows)
    wc = [max(len(h), *(len(v[i]) for _, v in rows)) for i, h in enumerate(head)]
    lines = [
        "  ".join([" " * w0, *[h.rjust(w) for h, w in zip(head, wc)]]),
        "-" * (w0 + sum(wc) + 2 * len(wc)),
    ]
    lines += ["  ".join([k.ljust(w0), *[c.rjust(w) for c, w in zip(v, wc)]]) for k, v in rows]
    design = ", ".join(f"{n}={v:.2f}" for n, v in zip(INPUT_NAMES, best[1]))
    lines.append(f"simulator's own best design (grid + SLSQP): {best[0]:.2f} $/h at {design}")
    base, ours = results[0], results[-1]
    lines.append(
        f"{ours.name}: test RMSE {ours.rmse_scaled / base.rmse_scaled:.2f}× the unregularized, "
        f"{ours.binaries} vs {base.binaries} binaries, MILP {_solve_summary(ours)} vs "
        f"{_solve_summary(base)}"
    )
    return "\n".join(lines)


def _solve_summary(r: Result) -> str:
    if r.status == "optimal":
        return f"optimal in {r.time:.1f} s"
    found = "a design" if r.design is not None else "no design"
    gap = f", gap {r.gap:.1e}" if r.gap is not None else ""
    return f"{_status(r)} after {r.time:.1f} s with {found}{gap}"


def run(cfg: Config, workdir: Path | None = None) -> tuple[list[Result], str]:
    """Data, both surrogates, both MILPs; returns the results and the table."""
    unit, econ = CSTR(), Economics()
    x, y = make_data(unit, cfg.n_train, cfg.seed)
    x_test, y_test = make_data(unit, cfg.n_test, cfg.seed + 1)
    scaling = Scaling(INPUT_LOWER, INPUT_UPPER, y.mean(axis=0), y.std(axis=0))
    data = {
        "xs": scaling.x_to_net(x),
        "ys": scaling.y_to_net(y),
        "xs_test": scaling.x_to_net(x_test),
        "y_test": y_test,
    }
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(workdir) if workdir is not None else Path(tmp)
        results = [
            run_variant(name, reg, data, scaling, unit, econ, cfg, where)
            for name, reg in (("unregularized", False), ("relaxation-informed", True))
        ]
    best = true_optimum(unit, econ, cfg.grid)
    return results, format_table(results, econ, best)


def parse_config(argv: list[str] | None = None) -> Config:
    """The run's :class:`Config` from command-line arguments (exits with a message on bad input)."""
    parser = argparse.ArgumentParser(
        description="CSTR design over an unregularized and a relaxation-informed ReLU surrogate, "
        "solved as MILPs with HiGHS."
    )
    parser.add_argument("--quick", action="store_true", help="tiny networks, a few seconds")
    parser.add_argument("--time-limit", type=float, help="MILP time limit in seconds")
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--seed", type=int, help="seed of data, initial weights, batches")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    for key in ("time_limit", "epochs", "seed"):
        if getattr(args, key) is not None:
            cfg = replace(cfg, **{key: getattr(args, key)})
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    single_thread()
    box = ", ".join(
        f"{n}∈[{a:g}, {b:g}] {u}"
        for n, a, b, u in zip(INPUT_NAMES, INPUT_LOWER, INPUT_UPPER, INPUT_UNITS)
    )
    print(
        f"CSTR A→B→C design: {box}; {cfg.n_train} simulated points, "
        f"{'×'.join(map(str, cfg.widths))} ReLU, {cfg.epochs} epochs, "
        f"MILP time limit {cfg.time_limit:g} s"
    )
    _, table = run(cfg)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
