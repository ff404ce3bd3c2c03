"""The second stage of the CFLP: binary assignment recourse, solved exactly with HiGHS.

For a first-stage decision :math:`x \\in \\{0,1\\}^n` (open facility :math:`i`) and a demand
scenario
:math:`\\xi \\in \\mathbb{R}^m`, the recourse cost is

.. math::

    Q(x, \\xi) = \\min_{y, z}\\ \\sum_{ij} c_{ij} y_{ij} + P \\sum_j z_j \\quad\\text{s.t.}\\quad
    \\sum_i y_{ij} + z_j \\ge 1\\ \\forall j,\\qquad
    \\sum_j \\xi_j y_{ij} \\le u_i x_i\\ \\forall i,\\qquad
    y_{ij} \\le x_i,\\qquad y, z \\in \\{0,1\\},

each customer either served by an open facility within its capacity or penalized by :math:`P`.
The MIP is built column-wise in numpy and passed to ``highspy`` directly (no Pyomo): only the
columns :math:`y_{ij}` of open facilities exist (that is :math:`y_{ij} \\le x_i`), one thread,
relative
and absolute MIP gap 0 on :math:`Q` itself. :class:`RecourseSolver` keeps one ``Highs`` object for
many solves (a worker of :mod:`omlt_relax.stochastic.data` holds one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from omlt_relax.lp.relaxation import set_solve_time_limit
from omlt_relax.stochastic.instance import CFLPInstance
from omlt_relax.threads import quiet_highs


class RecourseSolver:
    """Exact second-stage solves :math:`Q(x, \\xi)` for one instance (HiGHS, one thread).

    Args:
        instance: the CFLP instance.
        time_limit: seconds per solve (``None``: none). A solve that stops before proving
            optimality raises ``RuntimeError``: labels must be exact.
    """

    def __init__(self, instance: CFLPInstance, time_limit: float | None = None) -> None:
        import highspy

        self.instance = instance
        self._highspy = highspy
        h = quiet_highs()
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 0.0)
        h.setOptionValue("random_seed", 0)
        self._time_limit = None if time_limit is None else float(time_limit)
        self._h = h

    def solve(self, x: Any, xi: Any) -> float:
        """:math:`Q(x, \\xi)` for one decision ``(n,)`` and one scenario ``(m,)``."""
        inst = self.instance
        x = inst.check_decision(x)
        xi = np.asarray(xi, dtype=np.float64)
        if x.ndim != 1 or xi.shape != (inst.n_customers,):
            msg = (
                f"solve takes one decision ({inst.n_facilities},) and one scenario "
                f"({inst.n_customers},); got {x.shape} and {xi.shape}"
            )
            raise ValueError(msg)
        if np.any(xi < 0) or not np.all(np.isfinite(xi)):
            msg = "demand scenarios must be finite and >= 0"
            raise ValueError(msg)
        m = inst.n_customers
        open_ = np.flatnonzero(x > 0.5)
        k = len(open_)
        if k == 0:
            return float(inst.penalty * m)
        # y columns (i-major over open facilities), then z columns
        n_y = k * m
        n_col = n_y + m
        n_row = m + k
        cost = np.concatenate([inst.c[open_].reshape(-1), np.full(m, inst.penalty)])
        # column of y_ij: coverage row j (coef 1), capacity row m + i' (coef xi_j)
        j_idx = np.tile(np.arange(m, dtype=np.int32), k)
        cap_row = (m + np.repeat(np.arange(k, dtype=np.int32), m)).astype(np.int32)
        y_index = np.stack([j_idx, cap_row], axis=1).reshape(-1)
        y_value = np.stack([np.ones(n_y), np.tile(xi, k)], axis=1).reshape(-1)
        a_index = np.concatenate([y_index, np.arange(m, dtype=np.int32)]).astype(np.int32)
        a_value = np.concatenate([y_value, np.ones(m)])
        a_start = np.concatenate([2 * np.arange(n_y + 1), 2 * n_y + 1 + np.arange(m - 1)])
        a_start = a_start.astype(np.int32)
        row_lo = np.concatenate([np.ones(m), np.full(k, -math.inf)])
        row_up = np.concatenate([np.full(m, math.inf), inst.u[open_].astype(np.float64)])
        h = self._h
        hp = self._highspy
        h.clearModel()
        h.passModel(
            n_col, n_row, len(a_value), 1, 1, 0.0,
            cost, np.zeros(n_col), np.ones(n_col), row_lo, row_up,
            a_start, a_index, a_value, np.ones(n_col, dtype=np.int32),
        )
        if self._time_limit is not None:
            set_solve_time_limit(h, self._time_limit)
        h.run()
        status = h.getModelStatus()
        if status != hp.HighsModelStatus.kOptimal:
            msg = (
                f"the second-stage MIP of {inst.name} stopped without proving optimality "
                f"({h.modelStatusToString(status)}); raise the time limit"
            )
            raise RuntimeError(msg)
        return float(h.getInfo().objective_function_value)

    def solve_many(self, x: Any, xis: Any) -> np.ndarray:
        """:math:`Q(x, \\xi_s)` for one decision and scenarios ``(S, m)`` → ``(S,)``."""
        xis = np.atleast_2d(np.asarray(xis, dtype=np.float64))
        return np.array([self.solve(x, xi) for xi in xis])


def recourse_cost(instance: CFLPInstance, x: Any, xi: Any) -> float:
    """:math:`Q(x, \\xi)` by one exact HiGHS solve (builds a fresh solver; see
    :class:`RecourseSolver`)."""
    return RecourseSolver(instance).solve(x, xi)


__all__ = ["RecourseSolver", "recourse_cost"]
