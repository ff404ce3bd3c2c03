"""The first-stage MILP over a quantile network of the recourse cost.

With a quantile network :math:`q(x) \\in \\mathbb{R}^K` (cost units, levels
:math:`\\tau_1 < \\dots <
\\tau_K`) embedded as an ``OmltBlock``, the first stage is

.. math::

    \\min_{x \\in \\{0,1\\}^n}\\ (1 + \\lambda) f^\\top x + \\frac{1}{K}\\sum_{k=1}^{K} q_k(x)
    + \\frac{\\lambda}{T}\\sum_{k=K-T+1}^{K} q_k(x),

the mean of the quantiles estimating :math:`E_\\xi[Q(x, \\xi)]`, the mean of the upper :math:`T`
("tail") quantiles estimating :math:`\\text{CVaR}_{1 - T/K}`, so the objective estimates
:math:`f^\\top x + E[Q] + \\lambda\\,\\text{CVaR}(f^\\top x + Q)`. Quantile2SP's setting is
:math:`K = 50`,
:math:`T = 15`, :math:`\\lambda = 0.5`.

The network goes through the same path as any surrogate: :func:`~omlt_relax.export_onnx` (input
box :math:`[0,1]^n`, tightened bounds), :func:`~omlt_relax.load_onnx`, and
:class:`~omlt_relax.BoundedReluBigMFormulation` (or the partition formulation); the model is solved
with :func:`~omlt_relax.solve` (HiGHS by default) and the result checked against a float64 forward
pass at the MILP's :math:`x`.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyomo.environ as pyo
from omlt import OmltBlock
from omlt.neuralnet import ReluBigMFormulation
from torch import nn

from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.formulations import BoundedReluBigMFormulation, BoundedReluPartitionFormulation
from omlt_relax.optimize import count_binaries
from omlt_relax.solve import solve
from omlt_relax.stochastic.instance import CFLPInstance
from omlt_relax.stochastic.quantile_net import predict_quantiles

#: Relative agreement required between the MILP objective and the forward pass at its solution
#: (the MILP's own feasibility tolerances allow a little slack).
FORWARD_RTOL = 1e-5


@dataclass(frozen=True)
class RiskObjective:
    """:math:`\\lambda` (risk weight, >= 0) and :math:`T` (tail quantiles, 1..K) of the
    objective."""

    lam: float = 0.5
    tail: int = 15

    def check(self, n_quantiles: int) -> RiskObjective:
        if not (isinstance(self.lam, (int, float)) and math.isfinite(self.lam) and self.lam >= 0):
            msg = f"the risk weight lambda must be a finite number >= 0, got {self.lam!r}"
            raise ValueError(msg)
        if isinstance(self.tail, bool) or not isinstance(self.tail, (int, np.integer)) or not (
            1 <= self.tail <= n_quantiles
        ):
            msg = (
                f"the tail size must be a whole number of quantiles between 1 and {n_quantiles}, "
                f"got {self.tail!r}"
            )
            raise ValueError(msg)
        return self

    def of_quantiles(self, fx: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Objective for fixed costs ``fx`` ``(N,)`` and quantiles ``q`` ``(N, K)``."""
        q = np.atleast_2d(q)
        self.check(q.shape[1])
        return (1.0 + self.lam) * fx + q.mean(axis=1) + self.lam * q[:, -self.tail :].mean(axis=1)


def surrogate_objective(
    model: nn.Module, instance: CFLPInstance, x: Any, risk: RiskObjective
) -> np.ndarray:
    """The first-stage objective of decisions ``x`` ``(N, n)`` by a float64 forward pass →
    ``(N,)``."""
    x = np.atleast_2d(instance.check_decision(x))
    return risk.of_quantiles(x @ instance.f, predict_quantiles(model, x))


def search_decision(
    model: nn.Module, instance: CFLPInstance, risk: RiskObjective, starts: int = 256,
    seed: int = 0, max_rounds: int = 1000,
) -> tuple[np.ndarray, float]:
    r"""The network's best first-stage decision found by forward passes alone: multi-start
    best-improvement local search over single flips.

    ``starts`` random decisions (opening probabilities spread over :math:`[0.05, 0.95]`) each
    move to their best neighbour :math:`x \oplus e_i` while that lowers the surrogate objective
    :func:`surrogate_objective`; the best local optimum is returned with its objective. This is
    what a user gets from the network without a MILP; it is a heuristic (no optimality
    certificate) for instances too large to enumerate, where it stands in for "what the network's
    MILP would return with unlimited time".

    Returns:
        ``(x, objective)``: the decision ``(n,)`` as 0/1 floats and its surrogate objective.
    """
    if isinstance(starts, bool) or not isinstance(starts, (int, np.integer)) or starts < 1:
        msg = f"starts must be a whole number >= 1, got {starts!r}"
        raise ValueError(msg)
    n = instance.n_facilities
    rng = np.random.default_rng(seed)
    p = np.linspace(0.05, 0.95, starts)[:, None]
    xs = (rng.random((starts, n)) < p).astype(np.float64)
    obj = surrogate_objective(model, instance, xs, risk)
    flips = np.eye(n)
    active = np.ones(starts, bool)
    for _ in range(max_rounds):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        cand = np.abs(xs[idx, None, :] - flips[None, :, :]).reshape(-1, n)  # (m·n, n)
        cobj = surrogate_objective(model, instance, cand, risk).reshape(idx.size, n)
        best = cobj.argmin(axis=1)
        bval = cobj[np.arange(idx.size), best]
        better = bval < obj[idx] - 1e-9 * np.maximum(1.0, np.abs(obj[idx]))
        moved = idx[better]
        xs[moved] = cand.reshape(idx.size, n, n)[better, best[better]]
        obj[moved] = bval[better]
        active[idx[~better]] = False
    i = int(np.argmin(obj))
    return xs[i].copy(), float(obj[i])


def onnx_quantiles(path: str | os.PathLike[str], x: Any) -> np.ndarray:
    """Quantiles ``(N, K)`` of decisions ``x`` by onnxruntime on an exported network (float64
    out)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float64 if "double" in inp.type else np.float32
    out = sess.run(None, {inp.name: np.atleast_2d(np.asarray(x, dtype=dtype))})[0]
    return np.asarray(out, np.float64)


def build_first_stage(
    net: Any, bounds: Any, instance: CFLPInstance, risk: RiskObjective, formulation: str = "bigm",
    n_partitions: int = 2,
) -> pyo.ConcreteModel:
    """The first-stage Pyomo model: binary ``m.x``, the network block ``m.nn``, objective
    ``m.cost``.

    ``net, bounds`` come from :func:`~omlt_relax.load_onnx` of a network whose inputs are ``x``
    (in :math:`[0,1]^n`) and outputs the quantiles in cost units. ``formulation`` is ``"bigm"``
    (:class:`~omlt_relax.BoundedReluBigMFormulation`), ``"partition"``
    (:class:`~omlt_relax.BoundedReluPartitionFormulation`) or ``"omlt"`` (stock OMLT
    ``ReluBigMFormulation``, a binary on every ReLU: the baseline users have without us).
    """
    n = instance.n_facilities
    n_in = len(next(iter(net.input_layers)).output_indexes)
    n_q = len(next(iter(net.output_layers)).output_indexes)
    if n_in != n:
        msg = f"the network takes {n_in} inputs but the instance has {n} facilities"
        raise ValueError(msg)
    risk.check(n_q)
    if formulation == "bigm":
        form = BoundedReluBigMFormulation(net, bounds)
    elif formulation == "partition":
        form = BoundedReluPartitionFormulation(net, bounds, n_partitions=n_partitions)
    elif formulation == "omlt":
        form = ReluBigMFormulation(net)
    else:
        msg = f"unknown formulation {formulation!r}; use 'bigm', 'partition' or 'omlt'"
        raise ValueError(msg)
    m = pyo.ConcreteModel()
    m.I = pyo.RangeSet(0, n - 1)
    m.K = pyo.RangeSet(0, n_q - 1)
    m.x = pyo.Var(m.I, within=pyo.Binary)
    m.nn = OmltBlock()
    m.nn.build_formulation(form)
    m.link = pyo.Constraint(m.I, rule=lambda _m, i: m.nn.inputs[i] == m.x[i])
    tail_from = n_q - risk.tail
    m.cost = pyo.Objective(
        expr=(1.0 + risk.lam) * sum(float(instance.f[i]) * m.x[i] for i in m.I)
        + sum(m.nn.outputs[k] for k in m.K) / n_q
        + risk.lam / risk.tail * sum(m.nn.outputs[k] for k in m.K if k >= tail_from),
        sense=pyo.minimize,
    )
    return m


@dataclass
class FirstStageResult:
    """A solved first stage.

    ``objective``/``bound``/``gap`` are HiGHS's; ``forward`` the objective by a forward pass at
    ``x``; ``binaries`` the binaries of the network block (the ``n`` of ``x`` are extra).
    """

    x: tuple[int, ...] | None
    objective: float | None
    bound: float | None
    gap: float | None
    forward: float | None
    status: str
    time: float
    nodes: int | None
    binaries: int
    unstable: int
    solver: str

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["x"] = list(self.x) if self.x is not None else None
        return d


def solve_first_stage(
    model: nn.Module,
    instance: CFLPInstance,
    risk: RiskObjective | None = None,
    onnx_path: str | os.PathLike[str] | None = None,
    bounds: str = "lp",
    formulation: str = "bigm",
    solver: str = "highs",
    time_limit: float | None = None,
    threads: int = 1,
    check: bool = True,
) -> FirstStageResult:
    """Export ``model`` (folded quantile network), build the first-stage MILP, solve, check.

    ``onnx_path``: where to write the ONNX file (a temporary file if ``None``); with ``model=None``
    the existing file is loaded as is and the forward pass is onnxruntime's. ``bounds`` is the
    export's bounds method (``"lp"``: LP-OBBT). With ``check`` a solved MILP must agree with the
    forward pass at its ``x`` (``RuntimeError`` otherwise).
    """
    risk = risk or RiskObjective()
    if model is None and onnx_path is None:
        msg = "solve_first_stage needs a model or the path of an exported network"
        raise ValueError(msg)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(onnx_path) if onnx_path is not None else Path(tmp) / "quantile_net.onnx"
        if model is not None:
            box = (np.zeros(instance.n_facilities), np.ones(instance.n_facilities))
            export_onnx(model, path, box, bounds=bounds)
        net, nb = load_onnx(path)
        m = build_first_stage(net, nb, instance, risk, formulation)
        res = solve(m, solver=solver, time_limit=time_limit, threads=threads)
        x = forward = None
        if res.objective is not None:
            x = tuple(round(pyo.value(m.x[i])) for i in m.I)
            xa = np.array(x, float)
            if model is not None:
                forward = float(surrogate_objective(model, instance, xa, risk)[0])
            else:
                forward = float(risk.of_quantiles(np.array([xa @ instance.f]),
                                                  onnx_quantiles(path, xa))[0])
    if forward is not None and check and not math.isclose(
        res.objective, forward, rel_tol=FORWARD_RTOL, abs_tol=1e-6
    ):
        msg = (
            f"the first-stage MILP objective {res.objective:.10g} disagrees with the forward pass "
            f"{forward:.10g} at x={list(x)}"
        )
        raise RuntimeError(msg)
    return FirstStageResult(
        x=x,
        objective=res.objective,
        bound=res.bound,
        gap=res.gap,
        forward=forward,
        status=res.status,
        time=res.wall_time,
        nodes=res.nodes,
        binaries=count_binaries(m.nn),
        unstable=nb.unstable_count(),
        solver=f"{res.solver} {res.solver_version}",
    )


__all__ = [
    "FORWARD_RTOL",
    "FirstStageResult",
    "RiskObjective",
    "build_first_stage",
    "onnx_quantiles",
    "search_decision",
    "solve_first_stage",
    "surrogate_objective",
]
