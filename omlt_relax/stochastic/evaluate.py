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

:func:`saa_table` enumerates all :math:`2^n` decisions (small :math:`n` only) on the same
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
from omlt_relax.stochastic.data import solve_parallel
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
        alpha = tail_alpha(risk, n_quantiles)
        fx = self.decisions @ self.instance.f
        cv = np.array([cvar(row, alpha) for row in self.q])
        return (1.0 + risk.lam) * fx + self.q.mean(axis=1) + risk.lam * cv

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


def _digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, np.float64).tobytes()).hexdigest()[:16]


__all__ = [
    "EVAL_SEED",
    "MAX_ENUMERATION",
    "Evaluation",
    "SAATable",
    "all_decisions",
    "cvar",
    "evaluate_decision",
    "saa_table",
    "score",
    "tail_alpha",
]
