"""Optimization-based bound tightening (OBBT) of ReLU pre-activations with HiGHS.

Notation as in :mod:`omlt_relax.network`: hidden layers :math:`k = 1, \\dots, L-1`,
:math:`\\hat z_k = W_k z_{k-1} + b_k`, :math:`z_k = \\max(0, \\hat z_k)`, :math:`z_0 = x \\in
[x_{lo}, x_{hi}]`. Let :math:`R_k(l, u)` be the big-M LP relaxation (see
:mod:`omlt_relax.lp.relaxation`) of the network *truncated after layer k*, built with the current
bounds of layers :math:`1..k-1`, whose free output columns are :math:`\\hat z_k`. Layer by layer,

.. math::

    u_{kj} \\leftarrow \\min\\Big(u_{kj},\\ \\max_{R_k} \\hat z_{kj}\\Big),\\qquad
    l_{kj} \\leftarrow \\max\\Big(l_{kj},\\ \\min_{R_k} \\hat z_{kj}\\Big),

starting from sound CROWN bounds, so later layers see the tightened big-M constants of earlier ones
(the relaxation of a layer is the triangle :math:`z \\le u(\\hat z - l)/(u - l)`, which shrinks
with :math:`[l, u]`). ``method="milp"`` then solves the same problems with :math:`\\sigma \\in
\\{0, 1\\}` for the neurons still unstable and uses the MILP solver's *dual bound*.

Design decisions (each one measured or argued below):

* **Layer 1 is not solved**: :math:`\\hat z_1 = W_1 x + b_1` is affine on a box, where interval
  arithmetic is already exact; an LP cannot improve it.
* **One warm-started HiGHS LP per layer**, truncated after the layer being tightened, re-solved
  2·n_k times with only the objective changed (primal simplex from the previous optimal basis):
  first every max, then every min, neurons in a greedy order of similar weight rows.
  Layers after k could only cut relaxed (not true) points through their own, looser, bounds;
  on a 3×100 net keeping them made each solve 3–4× slower. The truncated LP is rebuilt per layer
  with the bounds tightened so far (building costs milliseconds).
* **Stably inactive neurons** (:math:`u \\le 0`) are skipped, and a neuron whose max-LP proves
  :math:`u \\le 0` gets no min-LP: :math:`z = 0` in every formulation and no later bound depends on
  its :math:`[l, u]`, so its lower bound is left as it was. **Stably active neurons** are
  tightened (LP only): their box is the range of :math:`z` that interval-based consumers
  (partition formulations, per-group bounds, variable bounds) use. Within one LP their tightened
  bounds would be redundant, so skipping them would not change any later LP bound — only their own.
* **Soundness of LP values**: HiGHS returns a point feasible only to within its tolerances (1e-7)
  and an objective that can miss the optimum by the dual infeasibility times the column ranges.
  Instead of trusting that value, each bound is re-derived from the returned row duals by weak
  Lagrangian duality, which holds for *any* multipliers (Neumaier–Shcherbina): for
  :math:`\\min c^\\top v` s.t. :math:`r_{lo} \\le Av \\le r_{hi}`,
  :math:`v_{lo} \\le v \\le v_{hi}` and any :math:`y`, with :math:`d = c - A^\\top y`,

  .. math::

      c^\\top v = y^\\top (A v) + d^\\top v \\ \\ge\\ \\sum_r \\min(y_r r_{lo,r},\\, y_r r_{hi,r})
      + \\sum_j \\min(d_j v_{lo,j},\\, d_j v_{hi,j})

  (a multiplier whose needed side is infinite is set to 0 first). HiGHS's tolerances only make the
  bound slightly less tight (the optimal multipliers are dual feasible only to 1e-7), never wrong;
  no tolerance-sized widening is needed. What is left is the float64 rounding of evaluating the
  right-hand side from the exact LP data: by the standard summation bound (Higham, *Accuracy and
  Stability of Numerical Algorithms*, §3.1) it is at most
  :math:`\\gamma_N \\big(\\sum |\\text{terms}| + \\sum_j \\max(|v_{lo,j}|, |v_{hi,j}|)\\,
  (|c_j| + (|A|^\\top |y|)_j)\\big)`, :math:`\\gamma_N = Nu/(1 - Nu)`, :math:`u = 2^{-53}`,
  :math:`N = m + n + 2`. We subtract twice that and round the result down one ulp. (The LP data are
  the float64 weights and bounds themselves, so the LP is an exact relaxation of the network.)
  A solve that is not optimal keeps the previous bound of that neuron.
* **Soundness of MILP values**: HiGHS's MILP dual bound is valid when a solve stops early (time
  limit), but its node LPs and pruning use absolute tolerances :math:`\\tau` = 1e-6
  (``mip_feasibility_tolerance``, also the integrality tolerance of :math:`\\sigma`). A violation
  of :math:`\\tau` in every row/column of a layer i, with :math:`\\sigma` off by :math:`\\tau`
  (moving :math:`z` by :math:`\\tau\\max(|l|, |u|)`), moves :math:`\\hat z_k` by at most
  :math:`\\tau P_k` with :math:`P_0 = 1`, :math:`P_i = 1 + \\max(|l_i|, |u_i|) + |W_i| P_{i-1}`,
  :math:`P_k = 1 + |W_k| P_{k-1}`. The MILP dual bound is widened by :math:`10\\tau P_k`. This is a
  tolerance argument, not a proof against arbitrary solver failure, so every MILP bound is also
  intersected with the rigorous LP bound of the same neuron (and MILP is only spent on neurons
  the LP leaves unstable, where it decides binaries and big-M constants).
* **Time limit** (``time_limit`` seconds, wall clock) is a budget for the whole call. LP solves get
  the remaining budget; each MILP solve gets an equal share of what remains over the MILP solves
  still expected (unused time rolls over). Once the budget is spent, remaining neurons keep the
  bounds they have (all sound). Each LP solve is also capped at
  :data:`~omlt_relax.lp.relaxation.ITERATION_LIMIT_FACTOR` simplex iterations per row and column
  (retried once from scratch), so a stalled LP costs a loose bound, never a hung pass.

The result is never looser than the starting bounds (elementwise intersection).
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp
from torch import nn

from omlt_relax.bounds import chain_numpy, sound_bounds
from omlt_relax.bounds.methods import BOUND_METHODS, OPTIMIZATION
from omlt_relax.lp.relaxation import (
    ITERATION_LIMIT_FACTOR,
    BigMRelaxationLP,
    greedy_tour,
    run_with_retry,
    set_solve_time_limit,
)
from omlt_relax.network import as_box, parse_network
from omlt_relax.neuron_bounds import NeuronBounds

#: HiGHS's absolute MILP feasibility/integrality tolerance (``mip_feasibility_tolerance``).
MILP_TOLERANCE = 1e-6
#: Safety factor on :data:`MILP_TOLERANCE` when widening MILP dual bounds.
MILP_WIDEN_FACTOR = 10.0
#: Relative MILP gap at which a per-neuron MILP stops (its dual bound is what is used).
MILP_REL_GAP = 1e-4

#: MILP statuses after which HiGHS's ``mip_dual_bound`` is a valid bound (stopped or solved)
_MILP_BOUND_VALID = (
    highspy.HighsModelStatus.kOptimal,
    highspy.HighsModelStatus.kTimeLimit,
    highspy.HighsModelStatus.kIterationLimit,
    highspy.HighsModelStatus.kSolutionLimit,
    highspy.HighsModelStatus.kInterrupt,
)

Chain = list[tuple[np.ndarray, np.ndarray]]


# -- rigorous LP bounds from duals ---------------------------------------------------------------
_UNIT_ROUNDOFF = 2.0**-53


def _gamma(n: int) -> float:
    """:math:`\\gamma_n = nu/(1 - nu)`: relative error bound of an n-term float64 sum."""
    return n * _UNIT_ROUNDOFF / (1.0 - n * _UNIT_ROUNDOFF)


@dataclass
class _LPData:
    """Snapshot of the LP HiGHS holds, for the weak-duality bound (minimization)."""

    a: sp.csc_matrix  # (m, n)
    a_abs: sp.csc_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    col_mag: np.ndarray  # max(|lo|, |hi|) over the finite ones (0 if none)
    free_cols: np.ndarray  # columns with an infinite bound and a single nonzero (the outputs y)
    free_rows: np.ndarray  # ... its row
    free_coef: np.ndarray  # ... its coefficient

    @classmethod
    def from_lp(cls, lp: BigMRelaxationLP) -> _LPData:
        hl = lp.h.getLp()
        am = hl.a_matrix_
        shape = (int(hl.num_row_), int(hl.num_col_))
        args = (np.asarray(am.value_), np.asarray(am.index_), np.asarray(am.start_))
        if am.format_ == highspy.MatrixFormat.kColwise:
            a = sp.csc_matrix(args, shape=shape)
        else:
            a = sp.csr_matrix(args, shape=shape).tocsc()
        # weights HiGHS dropped as too small: put them back, so that the bound holds for the LP
        # of the exact network (without them, bounds were unsound by 3e-7; found by fuzzing)
        tiny = [t for t in getattr(lp, "tiny_weights", []) if t[0].size]
        if tiny:
            r, c, v = (np.concatenate(p) for p in zip(*tiny))
            a = a.tolil()
            a[r, c] = v
            a = a.tocsc()
        a.sort_indices()
        col_lo = np.asarray(hl.col_lower_, dtype=np.float64)
        col_hi = np.asarray(hl.col_upper_, dtype=np.float64)
        mag = np.maximum(
            np.where(np.isfinite(col_lo), np.abs(col_lo), 0.0),
            np.where(np.isfinite(col_hi), np.abs(col_hi), 0.0),
        )
        nnz = np.diff(a.indptr)
        free = np.flatnonzero(~(np.isfinite(col_lo) & np.isfinite(col_hi)) & (nnz == 1))
        first = a.indptr[free]
        return cls(
            a, abs(a), np.asarray(hl.row_lower_, dtype=np.float64),
            np.asarray(hl.row_upper_, dtype=np.float64), col_lo, col_hi, mag,
            free, a.indices[first], a.data[first],
        )

    def lower_bound(self, cost: np.ndarray, row_dual: np.ndarray) -> float:
        """A rigorous lower bound on :math:`\\min c^\\top v` over the LP, from multipliers ``y``.

        The row of each free column (an output row :math:`y_i - W_L z = b_L`) gets the multiplier
        :math:`c_{y_i}`, which makes the free column's reduced cost exactly 0 (were it not, the
        bound would be :math:`-\\infty`, still valid).
        """
        y = np.array(row_dual, dtype=np.float64)
        y[self.free_rows] = cost[self.free_cols] / self.free_coef
        y[~np.isfinite(y)] = 0.0
        y[(y > 0) & ~np.isfinite(self.row_lo)] = 0.0
        y[(y < 0) & ~np.isfinite(self.row_hi)] = 0.0
        d = cost - self.a.T @ y
        need_lo = d > 0
        need_hi = d < 0
        if np.any(need_lo & ~np.isfinite(self.col_lo)) or np.any(
            need_hi & ~np.isfinite(self.col_hi)
        ):
            return -math.inf
        row_terms = np.where(y > 0, y * np.where(y > 0, self.row_lo, 0.0), 0.0) + np.where(
            y < 0, y * np.where(y < 0, self.row_hi, 0.0), 0.0
        )
        col_terms = np.where(need_lo, d * np.where(need_lo, self.col_lo, 0.0), 0.0) + np.where(
            need_hi, d * np.where(need_hi, self.col_hi, 0.0), 0.0
        )
        value = float(row_terms.sum() + col_terms.sum())
        magnitude = float(np.abs(row_terms).sum() + np.abs(col_terms).sum()) + float(
            self.col_mag @ (self.a_abs.T @ np.abs(y) + np.abs(cost))
        )
        if not math.isfinite(value) or not math.isfinite(magnitude):
            return -math.inf
        n_ops = self.a.shape[0] + self.a.shape[1] + 2
        return float(np.nextafter(value - 2.0 * _gamma(n_ops) * magnitude, -math.inf))


# -- bookkeeping ---------------------------------------------------------------------------------
@dataclass
class _Budget:
    deadline: float | None

    def remaining(self) -> float:
        if self.deadline is None:
            return math.inf
        return self.deadline - time.perf_counter()


@dataclass
class _Stats:
    lp_solves: int = 0
    lp_failed: int = 0
    milp_solves: int = 0
    milp_not_optimal: int = 0
    skipped_budget: int = 0
    max_lp_dual_slack: float = 0.0
    status_counts: dict[str, int] = field(default_factory=dict)

    def status(self, s: str) -> None:
        self.status_counts[s] = self.status_counts.get(s, 0) + 1


def _objective(h: highspy.Highs, cols: np.ndarray, j: int, sign: float, prev: list[int]) -> None:
    """Minimize ``sign * column[cols[j]]``, changing only the costs that differ."""
    for c in prev:
        h.changeColCost(int(c), 0.0)
    h.changeColCost(int(cols[j]), float(sign))
    prev[:] = [int(cols[j])]


def _run(
    h: highspy.Highs, cols: np.ndarray, j: int, sign: float, prev: list[int], seconds: float
) -> highspy.HighsModelStatus:
    """Minimize ``sign * column[cols[j]]`` within ``seconds``; the model status."""
    set_solve_time_limit(h, seconds)
    _objective(h, cols, j, sign, prev)
    return run_with_retry(h)


def _tighten(lo_k: np.ndarray, up_k: np.ndarray, j: int, sign: float, bound: float) -> None:
    """Apply a rigorous lower bound of ``sign * zhat_j`` (``sign > 0``: of :math:`\\hat z_j`, a
    new :math:`l_j`; else of :math:`-\\hat z_j`, a new :math:`u_j`) if it is tighter and keeps
    :math:`l_j \\le u_j`."""
    if sign > 0:
        if lo_k[j] < bound <= up_k[j]:
            lo_k[j] = bound
    elif lo_k[j] <= -bound < up_k[j]:
        up_k[j] = -bound


def _cost_vector(n: int, col: int, sign: float) -> np.ndarray:
    c = np.zeros(n)
    c[col] = sign
    return c


def _error_scale(
    chain: Chain, lower: list[np.ndarray], upper: list[np.ndarray], k: int
) -> np.ndarray:
    """:math:`P_k` of the module docstring: propagation of unit absolute violations to layer k."""
    p = np.ones(chain[0][0].shape[1])
    for i in range(k):
        w = chain[i][0]
        mag = np.maximum(np.abs(lower[i]), np.abs(upper[i]))
        p = 1.0 + mag + np.abs(w) @ p
    return 1.0 + np.abs(chain[k][0]) @ p


def _start_bounds(model: nn.Module, lo: np.ndarray, hi: np.ndarray, start: Any) -> NeuronBounds:
    crown = sound_bounds(model, lo, hi, "crown")
    if isinstance(start, NeuronBounds):
        given = start.numpy()
        given.check_compatible(crown.widths, lo, hi)
        for k, (a, b) in enumerate(zip(given.lower, given.upper)):
            if np.isnan(a).any() or np.isnan(b).any() or np.any(a > b):
                msg = f"start bounds of hidden layer {k} contain NaN or lower > upper"
                raise ValueError(msg)
        return crown.intersect(given, method="crown")
    if isinstance(start, str) and start in BOUND_METHODS:
        return crown if start == "crown" else sound_bounds(model, lo, hi, start)
    msg = f"unknown start {start!r}; use 'crown', 'ibp' or a NeuronBounds of this network and box"
    raise ValueError(msg)


# -- the two passes ------------------------------------------------------------------------------
def similarity_tour(w: np.ndarray, neurons: np.ndarray) -> np.ndarray:
    """Greedy nearest-neighbour order of ``neurons`` by cosine similarity of their weight rows.

    Consecutive objectives :math:`\\hat z_{kj} = W_{kj} z_{k-1} + b_{kj}` then point in similar
    directions, so the previous optimal basis is close: the one LP ordering
    (:func:`~omlt_relax.lp.relaxation.greedy_tour`) on the unit-normalized rows.
    """
    v = w[neurons]
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    return neurons[greedy_tour(v)]


def _lp_pass(
    lp: BigMRelaxationLP,
    k: int,
    lower: list[np.ndarray],
    upper: list[np.ndarray],
    budget: _Budget,
    stats: _Stats,
    bar: Any,
) -> None:
    """Tighten layer ``k`` in place with LP bounds over the LP ``lp`` (layer k = its outputs).

    Two sweeps over the neurons that are not stably inactive, in :func:`similarity_tour` order:
    first every max (one that proves :math:`u \\le 0` needs no min), then every min.
    """
    h = lp.h
    h.setOptionValue("simplex_strategy", 4)  # primal simplex: the previous basis stays feasible
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    data = _LPData.from_lp(lp)
    cols = lp.y_cols
    prev: list[int] = []
    lo_k, up_k = lower[k], upper[k]
    live = np.flatnonzero(up_k > 0)  # stably inactive: nothing downstream uses its bounds
    bar.update(2 * (lo_k.size - live.size))
    order = similarity_tour(lp.chain[-1][0], live)
    for sign in (-1.0, 1.0):  # minimize -zhat (the max), then zhat
        for j in order:
            bar.update(1)
            if sign > 0 and up_k[j] <= 0:
                continue
            rem = budget.remaining()
            if rem <= 0:
                stats.skipped_budget += 1
                continue
            status = _run(h, cols, int(j), sign, prev, rem)
            stats.lp_solves += 1
            if status != highspy.HighsModelStatus.kOptimal:
                stats.lp_failed += 1
                stats.status("lp: " + h.modelStatusToString(status))
                continue
            row_dual = np.asarray(h.getSolution().row_dual)
            bound = data.lower_bound(_cost_vector(lp.num_col, int(cols[j]), sign), row_dual)
            reported = float(h.getInfo().objective_function_value)
            if math.isfinite(bound):
                slack = abs(reported - bound)
                stats.max_lp_dual_slack = max(stats.max_lp_dual_slack, slack)
            _tighten(lo_k, up_k, int(j), sign, bound)


def _milp_pass(
    chain: Chain,
    k: int,
    lower: list[np.ndarray],
    upper: list[np.ndarray],
    input_box: tuple[np.ndarray, np.ndarray],
    budget: _Budget,
    expected_later: int,
    stats: _Stats,
    bar: Any,
) -> None:
    """Tighten the unstable neurons of layer ``k`` in place with per-neuron MILP dual bounds."""
    lo_k, up_k = lower[k], upper[k]
    todo = np.flatnonzero((lo_k < 0) & (up_k > 0))
    if todo.size == 0:
        return
    bar.add(2 * int(todo.size))
    mp = BigMRelaxationLP(chain[: k + 1], lower[:k], upper[:k], *input_box)
    h = mp.h
    sig = np.concatenate([li.sigma for li in mp.layers]).astype(np.int32)
    if any(t[0].size for t in mp.tiny_weights):
        # HiGHS drops weights below 1e-9 from its matrix, so its MILP dual bound is for another
        # network; the rigorous LP bounds (which restore them) stay
        bar.update(2 * int(todo.size))
        return
    if sig.size == 0:
        # every earlier neuron is stable: the "MILP" is the LP the LP pass already solved, and
        # HiGHS reports mip_dual_bound = 0 for an LP (using it gave unsound bounds; found by
        # fuzzing)
        bar.update(2 * int(todo.size))
        return
    if sig.size:
        h.changeColsIntegrality(
            sig.size, sig, np.full(sig.size, highspy.HighsVarType.kInteger)
        )
    h.setOptionValue("presolve", "choose")
    h.setOptionValue("mip_rel_gap", MILP_REL_GAP)
    h.setOptionValue("mip_feasibility_tolerance", MILP_TOLERANCE)
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    widen = MILP_WIDEN_FACTOR * MILP_TOLERANCE * _error_scale(chain, lower, upper, k)
    cols = mp.y_cols
    prev: list[int] = []
    left = 2 * todo.size + expected_later
    for j in todo:
        for sign in (-1.0, 1.0):
            bar.update(1)
            if sign > 0 and up_k[j] <= 0:
                left -= 1
                continue
            rem = budget.remaining()
            if rem <= 0:
                stats.skipped_budget += 1
                left -= 1
                continue
            share = rem / max(left, 1)
            left -= 1
            status = _run(h, cols, int(j), sign, prev, share)
            stats.milp_solves += 1
            if status != highspy.HighsModelStatus.kOptimal:
                stats.milp_not_optimal += 1
                stats.status("milp: " + h.modelStatusToString(status))
            if status not in _MILP_BOUND_VALID:
                continue
            dual = float(h.getInfo().mip_dual_bound)
            if not math.isfinite(dual):
                continue
            bound = dual - float(widen[j])
            _tighten(lo_k, up_k, int(j), sign, bound)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def add(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar(_NoBar):
    """A tqdm bar whose total can grow (the MILP pass learns its size after the LP pass)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, n: int) -> None:
        self.bar.update(n)

    def add(self, n: int) -> None:
        self.bar.total += n
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def obbt_bounds(
    model: nn.Module,
    lb: Any,
    ub: Any = None,
    method: str = "lp",
    time_limit: float | None = None,
    start: str | NeuronBounds = "crown",
    progress: bool = False,
) -> NeuronBounds:
    """Pre-activation bounds of every hidden layer, tightened by LP or MILP (HiGHS).

    For each hidden layer :math:`k \\ge 2` and neuron j, in order,

    .. math::

        u_{kj} = \\min\\big(u^0_{kj},\\ \\overline{\\max}_{R_k} \\hat z_{kj}\\big),\\qquad
        l_{kj} = \\max\\big(l^0_{kj},\\ \\underline{\\min}_{R_k} \\hat z_{kj}\\big),

    where :math:`[l^0, u^0]` are the starting bounds, :math:`R_k` the big-M relaxation (LP, or MILP
    with binary :math:`\\sigma`) over the already tightened layers :math:`< k`, and
    :math:`\\overline{\\max}`, :math:`\\underline{\\min}` rigorous float64 bounds on the optimal
    values (LP: weak duality from the solver's multipliers; MILP: the solver's dual bound widened
    by its tolerances). See the module docstring for the derivations and design decisions.

    Args:
        model: an ``nn.Sequential`` of ``Linear``/``ReLU`` (optionally ending in an
            :class:`~omlt_relax.IncrementalQuantileHead`), as accepted by
            :func:`~omlt_relax.parse_network`.
        lb, ub: the input box, two 1-D array-likes of length :math:`n_0`, or ``lb=(lb, ub)``.
        method: ``"lp"`` (two LPs per neuron) or ``"milp"`` (the LP pass, then two MILPs per
            neuron still unstable, using the MILP dual bound).
        time_limit: total wall-clock budget in seconds for the whole call (``None``: no limit).
            When it runs out, remaining neurons keep their current (sound) bounds.
        start: the sound float64 bounds to start from: ``"crown"`` (default) or ``"ibp"``
            (:func:`~omlt_relax.bounds.sound_bounds`), or a sound :class:`NeuronBounds` of this
            network over a box containing ``[lb, ub]`` (intersected with the CROWN bounds first).
            The result is never looser than the start.
        progress: show a ``tqdm`` progress bar (one step per LP/MILP, skipped ones included).

    Returns:
        float64 :class:`NeuronBounds` with ``method`` ``"lp"`` or ``"milp"``, never looser than the
        starting bounds; ``meta`` holds solve counts, failures and wall time.

    Raises:
        UnsupportedNetworkError: the model is not a supported ReLU network.
        ValueError: bad input box (missing, NaN/inf, inverted, wrong length), unknown ``method`` or
            ``start``, or a negative/NaN ``time_limit``.
    """
    if method not in OPTIMIZATION:
        msg = f"unknown OBBT method {method!r}; use 'lp' or 'milp'"
        raise ValueError(msg)
    if time_limit is not None and (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, numbers.Real)
        or not float(time_limit) >= 0  # also rejects NaN
    ):
        msg = f"time_limit must be a non-negative number of seconds or None, got {time_limit!r}"
        raise ValueError(msg)
    t0 = time.perf_counter()
    parsed = parse_network(model)
    lo, hi = as_box(lb, ub, parsed.n_inputs)
    base = _start_bounds(model, lo, hi, start)
    chain = chain_numpy(model, lo, hi)
    lower = [np.array(a, dtype=np.float64) for a in base.lower]
    upper = [np.array(a, dtype=np.float64) for a in base.upper]
    budget = _Budget(None if time_limit is None else t0 + float(time_limit))
    stats = _Stats()
    n_hidden = len(lower)
    passes = range(1, n_hidden)
    total = 2 * sum(lower[k].size for k in passes)
    bar: Any = _NoBar()
    if progress:
        from tqdm.auto import tqdm

        bar = _Bar(tqdm(total=total, desc=f"OBBT ({method})", unit="solve"))
    try:
        for k in passes:
            lp = BigMRelaxationLP(chain[: k + 1], lower[:k], upper[:k], lo, hi,
                                  iteration_limit_factor=ITERATION_LIMIT_FACTOR)
            _lp_pass(lp, k, lower, upper, budget, stats, bar)
            if method == "milp":
                later = sum(
                    2 * int(((lower[i] < 0) & (upper[i] > 0)).sum())
                    for i in range(k + 1, n_hidden)
                )
                _milp_pass(chain, k, lower, upper, (lo, hi), budget, later, stats, bar)
    finally:
        bar.close()
    # never looser than the start (the updates above only tighten; this makes it explicit)
    lower = [np.maximum(a, b) for a, b in zip(lower, base.lower)]
    upper = [np.minimum(a, b) for a, b in zip(upper, base.upper)]
    meta = {
        "start": f"{start.method} (given)" if isinstance(start, NeuronBounds) else str(start),
        "time_limit": time_limit,
        "wall_time_s": time.perf_counter() - t0,
        "lp_solves": stats.lp_solves,
        "lp_not_optimal": stats.lp_failed,
        "milp_solves": stats.milp_solves,
        "milp_not_optimal": stats.milp_not_optimal,
        "skipped_for_time": stats.skipped_budget,
        "max_lp_dual_slack": stats.max_lp_dual_slack,
        "statuses": stats.status_counts,
    }
    return NeuronBounds(lower, upper, method, lo, hi, meta)


__all__ = ["MILP_TOLERANCE", "obbt_bounds"]
