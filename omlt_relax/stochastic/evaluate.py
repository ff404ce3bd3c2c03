"""Scoring first-stage decisions by exact second-stage solves on held-out scenarios (SAA).

For a decision :math:`x` and scenarios :math:`\\xi_1, \\dots, \\xi_S` (a seed the training data
never
used), with :math:`Q_s = Q(x, \\xi_s)` solved exactly:

* expected cost :math:`f^\\top x + \\frac{1}{S}\\sum_s Q_s`;
* :math:`\\text{CVaR}_\\alpha(Q) = \\min_t\\ t + \\frac{1}{(1 - \\alpha) S}\\sum_s (Q_s - t)_+`,
  the mean of the
  worst :math:`(1-\\alpha)S` costs (fractional weight on the boundary one), with
  :math:`\\alpha = 1 - T/K` matching the tail of :math:`T` of :math:`K` quantiles;
* the risk objective
  :math:`(1 + \\lambda) f^\\top x + \\frac{1}{S}\\sum_s Q_s + \\lambda\\,\\text{CVaR}_\\alpha(Q)`,
  what the first stage (:mod:`omlt_relax.stochastic.first_stage`) estimates.

:func:`saa_optimum` finds the exact SAA optimum over all :math:`2^n` decisions, solving exactly
only those whose valid lower bound (:func:`recourse_lower_bound`) can still beat the best found so
far; :func:`saa_table` enumerates all :math:`2^n` decisions (small :math:`n` only) on the same
scenarios,
solving the :math:`2^n S` second stages in parallel and caching them (resumable), and gives the
exact SAA optimum against which a decision's relative gap is measured.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omlt_relax.stochastic.cache import ChunkCache
from omlt_relax.stochastic.data import RecoursePool, solve_parallel
from omlt_relax.stochastic.first_stage import RiskObjective
from omlt_relax.stochastic.instance import CFLPInstance

#: Largest number of facilities :func:`saa_optimum` enumerates (2^n decisions).
MAX_ENUMERATION = 16
#: Default seed of the held-out evaluation scenarios (training data use ``Sampling.seed``).
EVAL_SEED = 1_000_003


def cvar(costs: Any, alpha: float) -> float:
    """Empirical :math:`\\text{CVaR}_\\alpha` of equally likely ``costs`` (Rockafellar–Uryasev)."""
    q = np.sort(np.asarray(costs, np.float64).reshape(-1))[::-1]
    if not 0.0 <= alpha < 1.0:
        msg = f"the CVaR level alpha must be in [0, 1), got {alpha}"
        raise ValueError(msg)
    k = (1.0 - alpha) * len(q)
    whole = int(np.floor(k + 1e-12))
    total = q[:whole].sum()
    if whole < len(q) and k - whole > 1e-12:
        total += (k - whole) * q[whole]
    return float(total / k)


def tail_alpha(risk: RiskObjective, n_quantiles: int = 50) -> float:
    """:math:`\\alpha = 1 - T/K`."""
    risk.check(n_quantiles)
    return 1.0 - risk.tail / n_quantiles


@dataclass(frozen=True)
class Evaluation:
    """A decision scored on ``n_scenarios`` held-out scenarios (module docstring)."""

    x: tuple[int, ...]
    n_scenarios: int
    fixed_cost: float
    mean_recourse: float
    expected_cost: float
    cvar: float
    alpha: float
    risk_objective: float
    lam: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["x"] = list(self.x)
        return d


def score(
    instance: CFLPInstance, x: Any, q: Any, risk: RiskObjective, n_quantiles: int = 50
) -> Evaluation:
    """The :class:`Evaluation` of decision ``x`` from its exact recourse costs ``q`` ``(S,)``."""
    x = instance.check_decision(x)
    q = np.asarray(q, np.float64).reshape(-1)
    alpha = tail_alpha(risk, n_quantiles)
    fx = float(x @ instance.f)
    mq = float(q.mean())
    cv = cvar(q, alpha)
    return Evaluation(
        x=tuple(int(v) for v in x),
        n_scenarios=len(q),
        fixed_cost=fx,
        mean_recourse=mq,
        expected_cost=fx + mq,
        cvar=cv,
        alpha=alpha,
        risk_objective=(1.0 + risk.lam) * fx + mq + risk.lam * cv,
        lam=float(risk.lam),
    )


def evaluate_decision(
    instance: CFLPInstance,
    x: Any,
    scenarios: np.ndarray,
    risk: RiskObjective | None = None,
    workers: int | None = None,
    progress: bool = False,
    n_quantiles: int = 50,
) -> Evaluation:
    """Score ``x`` on ``scenarios`` ``(S, m)`` by exact second-stage solves (in parallel)."""
    risk = risk or RiskObjective()
    x = instance.check_decision(x)
    if x.ndim != 1:
        msg = "evaluate_decision scores one decision; pass a 1-D 0/1 vector"
        raise ValueError(msg)
    scenarios = np.atleast_2d(np.asarray(scenarios, np.float64))
    blocks = np.array_split(np.arange(len(scenarios)), max(1, min(len(scenarios), 8)))
    q = np.empty(len(scenarios))
    tasks = [(b, np.repeat(x[None], len(b), axis=0), scenarios[b]) for b in blocks if len(b)]
    for b, qb in solve_parallel(instance, tasks, workers, desc="evaluate", progress=progress):
        q[b] = qb
    return score(instance, x, q, risk, n_quantiles)


def all_decisions(n: int) -> np.ndarray:
    """All :math:`2^n` 0/1 vectors ``(2^n, n)`` in lexicographic order."""
    if not 1 <= n <= MAX_ENUMERATION:
        msg = (
            f"enumerating 2^{n} decisions is refused: the exact SAA optimum is for instances with "
            f"at most {MAX_ENUMERATION} facilities"
        )
        raise ValueError(msg)
    return np.array(list(itertools.product((0.0, 1.0), repeat=n)))


@dataclass
class SAATable:
    """Exact recourse costs ``q`` ``(2^n, S)`` of every decision on the same scenarios."""

    instance: CFLPInstance
    decisions: np.ndarray
    q: np.ndarray

    def objectives(self, risk: RiskObjective, n_quantiles: int = 50) -> np.ndarray:
        """The risk objective of every decision ``(2^n,)``."""
        return score_rows(self.instance, self.decisions, self.q, risk, n_quantiles)

    def index(self, x: Any) -> int:
        x = self.instance.check_decision(x)
        return int(sum(int(v) << (len(x) - 1 - i) for i, v in enumerate(x)))

    def optimum(self, risk: RiskObjective) -> tuple[float, tuple[int, ...]]:
        obj = self.objectives(risk)
        i = int(np.argmin(obj))
        return float(obj[i]), tuple(int(v) for v in self.decisions[i])

    def gap(self, x: Any, risk: RiskObjective) -> float:
        """Relative gap :math:`(F(x) - F^*)/|F^*|` of ``x`` to the SAA optimum."""
        obj = self.objectives(risk)
        best = float(obj.min())
        return float((obj[self.index(x)] - best) / abs(best))

    def evaluation(self, x: Any, risk: RiskObjective) -> Evaluation:
        return score(self.instance, x, self.q[self.index(x)], risk)


def saa_table(
    instance: CFLPInstance,
    scenarios: np.ndarray,
    cache_dir: str | os.PathLike[str],
    workers: int | None = None,
    progress: bool = True,
    chunk: int = 16,
) -> SAATable:
    """Recourse costs of all :math:`2^n` decisions on ``scenarios``, parallel, cached, resumable.

    Raises:
        ValueError: more than :data:`MAX_ENUMERATION` facilities.
        CacheMismatchError: ``cache_dir`` holds a table for another instance or scenario set.
    """
    xs = all_decisions(instance.n_facilities)
    scenarios = np.atleast_2d(np.asarray(scenarios, np.float64))
    n_chunks = int(np.ceil(len(xs) / chunk))
    key = {
        "kind": "cflp-saa-table",
        "instance": instance.key(),
        "scenarios_sha256": _digest(scenarios),
        "n_scenarios": len(scenarios),
        "chunk": chunk,
    }
    cache = ChunkCache(Path(cache_dir), key, n_chunks)
    S = len(scenarios)

    def compute(indices: Any) -> Any:
        tasks = []
        for c in indices:
            block = xs[c * chunk : (c + 1) * chunk]
            tasks.append((c, np.repeat(block, S, axis=0), np.tile(scenarios, (len(block), 1))))
        for c, q in solve_parallel(instance, tasks, workers, desc=f"SAA {instance.name}",
                                   progress=progress):
            yield c, {"q": q.reshape(-1, S)}

    q = cache.fill(compute)["q"]
    return SAATable(instance, xs, q)


def recourse_lower_bound(instance: CFLPInstance, xs: Any, scenarios: Any) -> np.ndarray:
    """A valid lower bound ``(D, S)`` on :math:`Q(x_d, \\xi_s)`, without solving.

    With :math:`\\underline c_j = \\min(P, \\min_{i: x_i = 1} c_{ij})` and the total open capacity
    :math:`U = \\sum_i u_i x_i`, at most :math:`k_s` customers can be served, :math:`k_s` the
    largest number of demands :math:`\\xi_{sj}` (smallest first) that fit in :math:`U`; so at least
    :math:`r_s = m - k_s` pay :math:`P` and

    .. math::

        Q(x, \\xi_s) \\ge \\sum_j \\underline c_j + \\text{(sum of the } r_s
        \\text{ smallest } P - \\underline c_j).
    """
    xs = np.atleast_2d(instance.check_decision(xs))
    scen = np.atleast_2d(np.asarray(scenarios, np.float64))
    pen = instance.penalty
    big = np.where(xs[:, :, None] > 0.5, instance.c[None], np.inf)  # (D, n, m)
    cmin = np.minimum(pen, big.min(axis=1))  # (D, m)
    slack = np.sort(pen - cmin, axis=1)
    slack_cum = np.concatenate([np.zeros((len(xs), 1)), np.cumsum(slack, axis=1)], axis=1)
    cap = xs @ instance.u.astype(np.float64)  # (D,)
    demand_cum = np.cumsum(np.sort(scen, axis=1), axis=1)  # (S, m)
    served = np.stack([np.searchsorted(row, cap + 1e-9, side="right") for row in demand_cum], 1)
    r = instance.n_customers - served  # (D, S)
    return cmin.sum(axis=1)[:, None] + np.take_along_axis(slack_cum, r, axis=1)


@dataclass
class SAAOptimum:
    """The exact SAA optimum (``objective`` at ``x``) and how much had to be solved for it.

    ``solved``: decisions whose :math:`S` second stages were solved exactly (the others were
    skipped because their lower bound was no better than the optimum); ``total`` = :math:`2^n`.
    """

    objective: float
    x: tuple[int, ...]
    solved: int
    total: int
    evaluation: Evaluation

    def gap(self, value: float) -> float:
        """Relative gap :math:`(F(x) - F^*)/|F^*|` of a decision with SAA objective ``value``."""
        return float((value - self.objective) / abs(self.objective))

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "x": list(self.x), "solved": self.solved,
                "total": self.total, "evaluation": self.evaluation.to_dict()}


def saa_optimum(
    instance: CFLPInstance,
    scenarios: np.ndarray,
    risk: RiskObjective,
    cache_dir: str | os.PathLike[str],
    workers: int | None = None,
    progress: bool = True,
    chunk: int = 16,
    n_quantiles: int = 50,
) -> SAAOptimum:
    """The exact SAA optimum :math:`\\min_x F(x)` over all :math:`2^n` decisions on ``scenarios``.

    Decisions are taken in increasing order of the lower bound :math:`\\underline F(x)` (the risk
    objective of :func:`recourse_lower_bound`, valid because the mean and CVaR are monotone), in
    chunks solved in parallel and cached (resumable); enumeration stops when the next lower bound
    is no better than the best exact :math:`F` found, which is then optimal.
    """
    xs = all_decisions(instance.n_facilities)
    scenarios = np.atleast_2d(np.asarray(scenarios, np.float64))
    lb_obj = score_rows(instance, xs, recourse_lower_bound(instance, xs, scenarios), risk,
                        n_quantiles)
    order = np.argsort(lb_obj, kind="stable")
    n_chunks = int(np.ceil(len(xs) / chunk))
    key = {
        "kind": "cflp-saa-optimum",
        "instance": instance.key(),
        "scenarios_sha256": _digest(scenarios),
        "n_scenarios": len(scenarios),
        "lam": float(risk.lam),
        "tail": int(risk.tail),
        "n_quantiles": n_quantiles,
        "chunk": chunk,
    }
    cache = ChunkCache(Path(cache_dir), key, n_chunks)
    S = len(scenarios)
    best, best_i, solved = np.inf, -1, 0
    with RecoursePool(instance, workers) as pool:

        def compute(indices: Any) -> Any:
            tasks = []
            for c in indices:
                block = xs[order[c * chunk : (c + 1) * chunk]]
                tasks.append((c, np.repeat(block, S, axis=0), np.tile(scenarios, (len(block), 1))))
            for c, q in pool.run(tasks, desc=f"SAA {instance.name}", progress=progress):
                yield c, {"q": q.reshape(-1, S)}

        c = 0
        while c < n_chunks and lb_obj[order[c * chunk]] < best:
            batch = [
                k for k in range(c, min(n_chunks, c + pool.workers))
                if lb_obj[order[k * chunk]] < best
            ]
            for k, arrays in cache.get(batch, compute).items():
                idx = order[k * chunk : (k + 1) * chunk]
                obj = score_rows(instance, xs[idx], arrays["q"], risk, n_quantiles)
                solved += len(idx)
                j = int(np.argmin(obj))
                if obj[j] < best:
                    best, best_i = float(obj[j]), int(idx[j])
            c += len(batch) if batch else n_chunks
    x_best = xs[best_i]
    q_best = None
    for k in range(n_chunks):
        idx = order[k * chunk : (k + 1) * chunk]
        if best_i in idx and cache.path(k).is_file():
            q_best = cache.load(k)["q"][int(np.flatnonzero(idx == best_i)[0])]
            break
    return SAAOptimum(best, tuple(int(v) for v in x_best), solved, len(xs),
                      score(instance, x_best, q_best, risk, n_quantiles))


def score_rows(
    instance: CFLPInstance, xs: np.ndarray, q: np.ndarray, risk: RiskObjective,
    n_quantiles: int = 50,
) -> np.ndarray:
    """Risk objectives ``(D,)`` of decisions ``xs`` ``(D, n)`` from recourse costs ``q`` ``(D, S)``.
    """
    alpha = tail_alpha(risk, n_quantiles)
    cv = np.array([cvar(row, alpha) for row in q])
    return (1.0 + risk.lam) * (xs @ instance.f) + q.mean(axis=1) + risk.lam * cv


def _digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, np.float64).tobytes()).hexdigest()[:16]


__all__ = [
    "EVAL_SEED",
    "MAX_ENUMERATION",
    "Evaluation",
    "SAAOptimum",
    "SAATable",
    "all_decisions",
    "cvar",
    "evaluate_decision",
    "recourse_lower_bound",
    "saa_optimum",
    "saa_table",
    "score",
    "score_rows",
    "tail_alpha",
]
