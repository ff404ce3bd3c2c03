r"""Linear regions of a ReLU network, and a local search over them with small LPs.

A ReLU network :math:`f` is affine on each *linear region*: fix the activation pattern
:math:`s = (s_1, \dots, s_{L-1})`, :math:`s_k \in \{0, 1\}^{n_k}` (1: the neuron is active),
and the pre-activations are affine in the input,

.. math::

    \hat z_1(x) = W_1 x + b_1 = M_1 x + m_1, \qquad
    \hat z_{k+1}(x) = W_{k+1}\,\mathrm{diag}(s_k)\,(M_k x + m_k) + b_{k+1}
    = M_{k+1} x + m_{k+1},

valid on the polyhedron

.. math::

    R(s) = \{x \in [l, u]:\ \hat z_{k,i}(x) \ge 0 \text{ if } s_{k,i} = 1,\
    \hat z_{k,i}(x) \le 0 \text{ if } s_{k,i} = 0\},

on which :math:`f_o(x) = (M_L x + m_L)_o` (:func:`region_map`). Minimizing (maximizing) that
affine function over :math:`R(s)` is an LP in the inputs alone (:func:`region_optimum`; a few
inputs, one row per hidden neuron).

:func:`descend_regions` is a local search built on it: from an input :math:`x^0`, solve the LP
of the region of :math:`x^0`; at its solution, some neurons sit at :math:`\hat z = 0`, on the
border of neighbouring regions; solve the LPs of the regions that flip one of those neurons,
move to the first that improves :math:`f_o`, and repeat until no region at hand improves. It
ends at a point no single flip improves (a local optimum of :math:`f_o` over the box, up to
degenerate vertices), usually after a few LPs. Every point it returns is checked by a float64
forward pass: it never claims a value the network does not take. It gives a MILP solver a
good incumbent (:mod:`omlt_relax.mip_start`), not a bound: the MILP is what proves optimality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np

from omlt_relax.chain import forward_hidden
from omlt_relax.threads import quiet_highs

#: A neuron with :math:`|\hat z| \le` this times :math:`1 + \max_i |\hat z_i|` of its layer counts
#: as on the border of its region (:func:`descend_regions` tries flipping it).
BORDER_TOL = 1e-7
#: At most this many LPs per call of :func:`descend_regions`.
MAX_LPS = 200
#: At most this many border neurons are tried per step.
MAX_FLIPS = 64

Pattern = list[np.ndarray]


def activation_pattern(chain: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> Pattern:
    """The pattern :math:`s_k = [\\hat z_k(x) > 0]` of each hidden layer at one input ``x``."""
    zs = forward_hidden(chain, np.asarray(x, np.float64)[None, :])[:-1]
    return [z[0] > 0 for z in zs]


def region_map(
    chain: Sequence[tuple[np.ndarray, np.ndarray]], pattern: Pattern
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """The affine pre-activations :math:`(M_k, m_k)` of every hidden layer on the region of
    ``pattern`` and the affine output :math:`(M_L, m_L)` (module docstring), float64."""
    w1, b1 = chain[0]
    m_mat, m_vec = np.asarray(w1, np.float64), np.asarray(b1, np.float64)
    hidden = []
    for (w, b), s in zip(chain[1:], pattern):
        hidden.append((m_mat, m_vec))
        keep = np.asarray(s, bool)
        w = np.asarray(w, np.float64)
        m_mat = w[:, keep] @ m_mat[keep]
        m_vec = w[:, keep] @ m_vec[keep] + np.asarray(b, np.float64)
    return hidden, (m_mat, m_vec)


def region_optimum(
    chain: Sequence[tuple[np.ndarray, np.ndarray]], pattern: Pattern, lo: np.ndarray,
    hi: np.ndarray, sense: str = "min", output: int = 0, h: highspy.Highs | None = None,
) -> np.ndarray | None:
    """The input minimizing (``sense="min"``) or maximizing :math:`f_o` over the region
    :math:`R(s)` of ``pattern`` (an LP, HiGHS), or ``None`` if the region is empty.

    ``h``: a HiGHS object to load the LP into (a caller solving many region LPs passes the same
    one, e.g. from :func:`~omlt_relax.threads.quiet_highs`); a new one by default."""
    hidden, (out_mat, _) = region_map(chain, pattern)
    n = out_mat.shape[1]
    rows = np.vstack([np.zeros((0, n)), *(m for m, _ in hidden)])
    offs = np.concatenate([np.zeros(0), *(v for _, v in hidden)])
    active = np.concatenate([np.zeros(0, bool), *(np.asarray(s, bool) for s in pattern)])
    # active: M x + m >= 0, i.e. M x >= -m; inactive: M x <= -m
    row_lo = np.where(active, -offs, -highspy.kHighsInf)
    row_hi = np.where(active, highspy.kHighsInf, -offs)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, rows.shape[0]
    sign = 1.0 if sense == "min" else -1.0
    lp.col_cost_ = sign * out_mat[output]
    lp.col_lower_, lp.col_upper_ = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = rows.shape[0] * np.arange(n + 1, dtype=np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(rows.shape[0], dtype=np.int32), n)
    lp.a_matrix_.value_ = rows.T.ravel()
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, rows.shape[0]
    h = quiet_highs() if h is None else h
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.clip(np.asarray(h.getSolution().col_value, np.float64), lo, hi)


@dataclass(frozen=True)
class Descent:
    """Result of :func:`descend_regions`.

    Attributes:
        x: the best input found (float64).
        value: :math:`f_o(x)` by a float64 forward pass.
        start_value: :math:`f_o(x^0)`.
        lps: LPs solved.
        moves: improving moves made.
    """

    x: np.ndarray
    value: float
    start_value: float
    lps: int
    moves: int


def _regions_at(chain: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> list[Pattern]:
    """The pattern of ``x``'s region (:func:`activation_pattern`), then those of the regions
    across one border neuron: one neuron at :math:`\\hat z \\approx 0` flipped (first layers
    first); one forward pass."""
    zs = [z[0] for z in forward_hidden(chain, x[None, :])[:-1]]
    base = [z > 0 for z in zs]
    flips: list[Pattern] = [base]
    for k, z in enumerate(zs):
        tol = BORDER_TOL * (1.0 + float(np.max(np.abs(z), initial=0.0)))
        for i in np.flatnonzero(np.abs(z) <= tol):
            p = [s.copy() for s in base]
            p[k][i] = not p[k][i]
            flips.append(p)
            if len(flips) > MAX_FLIPS:
                return flips
    return flips


def descend_regions(
    chain: Sequence[tuple[np.ndarray, np.ndarray]], lo: np.ndarray, hi: np.ndarray,
    x0: np.ndarray, sense: str = "min", output: int = 0, max_lps: int = MAX_LPS,
) -> Descent:
    """Local search over linear regions from ``x0`` (module docstring): returns the best input
    found, never worse than ``x0`` (every value by a float64 forward pass).

    Raises:
        ValueError: ``sense`` is neither ``"min"`` nor ``"max"``, or ``x0`` is outside the box.
    """
    if sense not in ("min", "max"):
        msg = f"sense must be 'min' or 'max', got {sense!r}"
        raise ValueError(msg)
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    x = np.asarray(x0, np.float64).ravel().copy()
    if np.any(x < lo) or np.any(x > hi):
        msg = f"the start {x.tolist()} is outside the input box [{lo.tolist()}, {hi.tolist()}]"
        raise ValueError(msg)
    sign = 1.0 if sense == "min" else -1.0

    def value(p: np.ndarray) -> float:
        return float(forward_hidden(chain, p[None, :])[-1][0, output])

    v = start = value(x)
    lps = moves = 0
    h = quiet_highs()
    while lps < max_lps:
        moved = False
        # the region of x first, then those across one of its border neurons
        for pattern in _regions_at(chain, x):
            if lps >= max_lps:
                break
            lps += 1
            x1 = region_optimum(chain, pattern, lo, hi, sense, output, h)
            if x1 is None:
                continue
            v1 = value(x1)
            if sign * (v - v1) > 1e-12 * (1.0 + abs(v)):
                x, v, moved = x1, v1, True
                moves += 1
                break
        if not moved:
            break
    return Descent(x=x, value=v, start_value=start, lps=lps, moves=moves)


__all__ = [
    "BORDER_TOL",
    "MAX_FLIPS",
    "MAX_LPS",
    "Descent",
    "activation_pattern",
    "descend_regions",
    "region_map",
    "region_optimum",
]
