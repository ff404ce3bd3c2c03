"""The LP relaxation of the big-M formulation of a ReLU network, held in one reusable HiGHS object.

Columns (in this order): inputs :math:`x` (:math:`n_0`), then per hidden layer k the
pre-activations :math:`\\hat z_k` and activations :math:`z_k` (:math:`n_k` each), then the relaxed
indicators :math:`\\sigma_k` of the neurons listed in ``unstable[k]``, and last the outputs
:math:`y` (:math:`n_L`, free). Column bounds:

.. math::

    x_{lo} \\le x \\le x_{hi},\\quad l_k \\le \\hat z_k \\le u_k,\\quad
    0 \\le z_k \\le \\max(u_k, 0),\\quad 0 \\le \\sigma \\le 1.

Rows (in this order): per hidden layer, first the affine rows
:math:`\\hat z_k - W_k z_{k-1} = b_k` (:math:`z_0 = x`), then per neuron j of the layer

* stably active (:math:`l \\ge 0`): one row :math:`z - \\hat z = 0`;
* stably inactive (:math:`u \\le 0`): no row (:math:`z` is fixed to 0 by its column bounds);
* unstable: three rows, in this order,

  .. math::

      z - \\hat z \\ge 0,\\qquad z - \\hat z - l\\,\\sigma \\le -l,\\qquad z - u\\,\\sigma \\le 0,

  i.e. :math:`z \\ge \\hat z`, :math:`z \\le \\hat z - l(1-\\sigma)`, :math:`z \\le u\\sigma`;

and finally the output rows :math:`y - W_L z_{L-1} = b_L`.

``formulation="triangle"`` builds the same LP with :math:`\\sigma` projected out (it appears in no
other row): no :math:`\\sigma` columns, and per unstable neuron two rows, in this order,

.. math::

    z - \\hat z \\ge 0,\\qquad z - s\\,\\hat z \\le -s\\,l,\\qquad s = \\frac{u}{u - l},

i.e. :math:`z \\le u(\\hat z - l)/(u - l)`, the triangle. With :math:`l \\le \\hat z \\le u` it is
the exact projection of the big-M rows, so every optimal value is the same, from a smaller LP
(used by the LP-gap penalty, :mod:`omlt_relax.lp.gap`).

``max``/``min`` of :math:`c^\\top y` (or of any column, for bound tightening) over this LP is the
root relaxation a MILP solver starts from. Fixing :math:`x` by its column bounds gives the
per-sample LP of the LP-gap penalty. Bounds of a layer can later be tightened in place
(:meth:`BigMRelaxationLP.update_layer_bounds`); a neuron that becomes stable keeps its rows and gets
:math:`\\sigma` fixed to 1 (active) or 0 (inactive), which makes the rows exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from omlt_relax.threads import quiet_highs

INF = highspy.kHighsInf
#: HiGHS's ``small_matrix_value`` bound (1e-9 by default): smaller matrix entries are dropped.
TINY_WEIGHT = 1e-9
#: Simplex iterations per row and column after which a capped solve stops (a warm-started solve
#: takes a few, a cold one about one per row): a stalled degenerate LP once held a training run
#: for over ten minutes. Used by the LP gap and LP-OBBT (``iteration_limit_factor``).
ITERATION_LIMIT_FACTOR = 20.0
Chain = list[tuple[np.ndarray, np.ndarray]]
Layers = list[np.ndarray]


@dataclass
class LPSolution:
    """Result of one LP solve. ``value`` is NaN unless ``ok``.

    ``row_dual`` / ``col_dual`` follow HiGHS's convention for the sense solved (see
    :meth:`BigMRelaxationLP.solve`).
    """

    ok: bool
    status: str
    value: float
    col_value: np.ndarray
    row_dual: np.ndarray
    col_dual: np.ndarray


@dataclass
class LayerIndex:
    """Column and row positions of one hidden layer."""

    zhat: np.ndarray  # column of zhat_j
    z: np.ndarray  # column of z_j
    affine_rows: np.ndarray  # row of the affine equality of neuron j
    unstable: np.ndarray  # neuron indices that got a sigma column (big-M) or triangle rows
    sigma: np.ndarray  # column of sigma for each entry of `unstable` (empty for "triangle")
    # big-M: (len(unstable), 3) rows z>=zhat, z<=zhat-l(1-s), z<=u s;
    # triangle: (len(unstable), 2) rows z>=zhat, z - u/(u-l) zhat <= -u l/(u-l)
    bigm_rows: np.ndarray
    active: np.ndarray  # neuron indices stably active at build time
    active_rows: np.ndarray  # row z - zhat = 0 for each entry of `active`
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))


class BigMRelaxationLP:
    """One HiGHS LP of the big-M relaxation, built once and re-solved under changing data.

    Args:
        chain: float64 ``[(W_k, b_k)]`` with ``W_k`` of shape ``(n_k, n_{k-1})``; the last pair is
            the (linear) output layer.
        lower, upper: pre-activation bounds of the hidden layers (float64 arrays).
        input_lower, input_upper: the input box.
        threads: HiGHS threads (1 by default).
        formulation: ``"bigm"`` (default) or ``"triangle"`` (:math:`\\sigma` projected out; see
            the module docstring).
        iteration_limit_factor: if given, every solve stops after
            ``ceil(factor * (rows + columns))`` simplex iterations (set again at each
            :meth:`load`) and reports status "Iteration limit reached" instead of running on: a
            guard against a degenerate LP on which the simplex stalls (HiGHS's ``time_limit``
            counts the object's cumulative run time; see :func:`set_solve_time_limit`). A
            capped solve is retried once from scratch (:func:`run_with_retry`).
    """

    def __init__(
        self, chain: Chain, lower: Layers, upper: Layers, input_lower: np.ndarray,
        input_upper: np.ndarray, threads: int = 1, formulation: str = "bigm",
        iteration_limit_factor: float | None = None,
    ) -> None:
        if formulation not in ("bigm", "triangle"):
            msg = f"formulation must be 'bigm' or 'triangle'; got {formulation!r}"
            raise ValueError(msg)
        if iteration_limit_factor is not None and not iteration_limit_factor > 0:
            msg = f"iteration_limit_factor must be positive or None; got {iteration_limit_factor!r}"
            raise ValueError(msg)
        self.formulation = formulation
        self.iteration_limit_factor = iteration_limit_factor
        self.h = quiet_highs(threads)
        self.h.setOptionValue("presolve", "off")
        self.load(chain, lower, upper, input_lower, input_upper)

    # -- building ------------------------------------------------------------------------
    def load(
        self, chain: Chain, lower: Layers, upper: Layers, input_lower: np.ndarray,
        input_upper: np.ndarray, warm_start: bool = False,
    ) -> None:
        """(Re)build the LP for new weights or bounds, reusing the HiGHS object.

        With ``warm_start``, if the new LP has the same layout as the one loaded before (same
        widths and the same unstable / stably active neurons), the last simplex basis is handed to
        the new LP: after a small weight change (a training step) it is usually nearly optimal.
        """
        old_key = getattr(self, "_layout_key", None)
        basis = self.h.getBasis() if warm_start and old_key is not None else None
        chain = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in chain]
        if len(lower) != len(chain) - 1 or len(upper) != len(chain) - 1:
            msg = f"{len(lower)} bound layers for a network with {len(chain) - 1} hidden layers"
            raise ValueError(msg)
        self.chain = chain
        n0 = chain[0][0].shape[1]
        col_lo: list[np.ndarray] = [np.asarray(input_lower, np.float64)]
        col_hi: list[np.ndarray] = [np.asarray(input_upper, np.float64)]
        self.x_cols = np.arange(n0)
        ncol = n0
        # first pass: columns
        self.layers: list[LayerIndex] = []
        for k in range(len(chain) - 1):
            n = chain[k][0].shape[0]
            lo = np.asarray(lower[k], np.float64).reshape(-1)
            up = np.asarray(upper[k], np.float64).reshape(-1)
            if lo.size != n or up.size != n:
                msg = f"hidden layer {k}: bounds have {lo.size} entries, layer has {n} neurons"
                raise ValueError(msg)
            zhat = np.arange(ncol, ncol + n)
            z = np.arange(ncol + n, ncol + 2 * n)
            ncol += 2 * n
            unstable = np.flatnonzero((lo < 0) & (up > 0))
            active = np.flatnonzero(lo >= 0)
            n_sigma = unstable.size if self.formulation == "bigm" else 0
            sigma = np.arange(ncol, ncol + n_sigma)
            ncol += n_sigma
            col_lo += [lo, np.zeros(n), np.zeros(n_sigma)]
            col_hi += [up, np.maximum(up, 0.0), np.ones(n_sigma)]
            self.layers.append(
                LayerIndex(
                    zhat, z, np.zeros(0, int), unstable, sigma, np.zeros((0, 3), int), active,
                    np.zeros(0, int), lo.copy(), up.copy(),
                )
            )
        n_out = chain[-1][0].shape[0]
        self.y_cols = np.arange(ncol, ncol + n_out)
        ncol += n_out
        col_lo.append(np.full(n_out, -INF))
        col_hi.append(np.full(n_out, INF))
        # second pass: rows (COO triplets)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        #: weight entries below HiGHS's ``small_matrix_value`` (it drops them from its matrix):
        #: ``(rows, cols, values)`` per affine block, for bounds that must hold for the exact LP
        self.tiny_weights: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        row_lo: list[np.ndarray] = []
        row_hi: list[np.ndarray] = []
        nrow = 0
        prev = self.x_cols

        def affine(out_cols: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
            nonlocal nrow
            n, m = w.shape
            r = np.arange(nrow, nrow + n)
            rows.append(r)
            cols.append(out_cols)
            vals.append(np.ones(n))
            rr, cc = np.nonzero(w)
            rows.append(r[rr])
            cols.append(prev[cc])
            vals.append(-w[rr, cc])
            tiny = np.abs(w[rr, cc]) < TINY_WEIGHT  # HiGHS drops these; kept for exact bounds
            self.tiny_weights.append((r[rr][tiny], prev[cc][tiny], -w[rr, cc][tiny]))
            row_lo.append(b)
            row_hi.append(b)
            nrow += n
            return r

        for k, li in enumerate(self.layers):
            w, b = chain[k]
            li.affine_rows = affine(li.zhat, w, b)
            na = li.active.size
            ar = np.arange(nrow, nrow + na)
            rows += [ar, ar]
            cols += [li.z[li.active], li.zhat[li.active]]
            vals += [np.ones(na), -np.ones(na)]
            row_lo.append(np.zeros(na))
            row_hi.append(np.zeros(na))
            li.active_rows = ar
            nrow += na
            nu = li.unstable.size
            if self.formulation == "triangle":
                nrow = self._triangle_rows(li, nrow, rows, cols, vals, row_lo, row_hi)
                prev = li.z
                continue
            br = np.arange(nrow, nrow + 3 * nu).reshape(nu, 3)
            zc, hc, sc = li.z[li.unstable], li.zhat[li.unstable], li.sigma
            lo, up = li.lower[li.unstable], li.upper[li.unstable]
            # z - zhat >= 0
            rows += [br[:, 0], br[:, 0]]
            cols += [zc, hc]
            vals += [np.ones(nu), -np.ones(nu)]
            # z - zhat - l sigma <= -l
            rows += [br[:, 1], br[:, 1], br[:, 1]]
            cols += [zc, hc, sc]
            vals += [np.ones(nu), -np.ones(nu), -lo]
            # z - u sigma <= 0
            rows += [br[:, 2], br[:, 2]]
            cols += [zc, sc]
            vals += [np.ones(nu), -up]
            rl = np.empty((nu, 3))
            rh = np.empty((nu, 3))
            rl[:, 0], rh[:, 0] = 0.0, INF
            rl[:, 1], rh[:, 1] = -INF, -lo
            rl[:, 2], rh[:, 2] = -INF, 0.0
            row_lo.append(rl.reshape(-1))
            row_hi.append(rh.reshape(-1))
            li.bigm_rows = br
            nrow += 3 * nu
            prev = li.z
        w, b = chain[-1]
        self.output_rows = affine(self.y_cols, w, b)
        a = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(nrow, ncol),
        )
        a.sort_indices()
        lp = highspy.HighsLp()
        lp.num_col_ = ncol
        lp.num_row_ = nrow
        lp.col_cost_ = np.zeros(ncol)
        lp.col_lower_ = np.concatenate(col_lo)
        lp.col_upper_ = np.concatenate(col_hi)
        lp.row_lower_ = np.concatenate(row_lo)
        lp.row_upper_ = np.concatenate(row_hi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr
        lp.a_matrix_.index_ = a.indices
        lp.a_matrix_.value_ = a.data
        lp.a_matrix_.num_col_ = ncol
        lp.a_matrix_.num_row_ = nrow
        self.num_col, self.num_row = ncol, nrow
        self._x_cols32 = self.x_cols.astype(np.int32)
        self._layout_key = (
            n0,
            n_out,
            tuple((li.unstable.tobytes(), li.active.tobytes()) for li in self.layers),
        )
        self.h.passModel(lp)
        if self.iteration_limit_factor is not None:
            limit = math.ceil(self.iteration_limit_factor * (nrow + ncol))
            self.h.setOptionValue("simplex_iteration_limit", int(min(limit, 2**31 - 1)))
        if basis is not None and basis.valid and old_key == self._layout_key:
            self.h.setBasis(basis)
        self._fixed_sigma: dict[int, float] = {}

    @staticmethod
    def _triangle_rows(
        li: LayerIndex,
        nrow: int,
        rows: list[np.ndarray],
        cols: list[np.ndarray],
        vals: list[np.ndarray],
        row_lo: list[np.ndarray],
        row_hi: list[np.ndarray],
    ) -> int:
        """Append the two triangle rows of each unstable neuron; return the new row count."""
        nu = li.unstable.size
        br = np.arange(nrow, nrow + 2 * nu).reshape(nu, 2)
        zc, hc = li.z[li.unstable], li.zhat[li.unstable]
        lo, up = li.lower[li.unstable], li.upper[li.unstable]
        slope = up / (up - lo)
        # z - zhat >= 0
        rows += [br[:, 0], br[:, 0]]
        cols += [zc, hc]
        vals += [np.ones(nu), -np.ones(nu)]
        # z - s zhat <= -s l
        rows += [br[:, 1], br[:, 1]]
        cols += [zc, hc]
        vals += [np.ones(nu), -slope]
        rl = np.empty((nu, 2))
        rh = np.empty((nu, 2))
        rl[:, 0], rh[:, 0] = 0.0, INF
        rl[:, 1], rh[:, 1] = -INF, -slope * lo
        row_lo.append(rl.reshape(-1))
        row_hi.append(rh.reshape(-1))
        li.bigm_rows = br
        return nrow + 2 * nu

    # -- data changes ----------------------------------------------------------------------
    def set_input_box(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Restrict the inputs to ``[lo, hi]`` (equal for a fixed input)."""
        lo = np.asarray(lo, np.float64)
        hi = np.asarray(hi, np.float64)
        self.h.changeColsBounds(self.x_cols.size, self._x_cols32, lo, hi)

    def fix_input(self, x: np.ndarray) -> None:
        """Fix :math:`z_0 = x` (the per-sample LP of the LP-gap penalty)."""
        self.set_input_box(x, x)

    def set_objective(self, cost: np.ndarray, cols: np.ndarray, maximize: bool) -> None:
        """Objective ``sum(cost * column[cols])`` (all other costs 0)."""
        c = np.zeros(self.num_col)
        c[np.asarray(cols)] = cost
        self.h.changeColsCost(self.num_col, np.arange(self.num_col, dtype=np.int32), c)
        self.h.changeObjectiveSense(
            highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
        )

    def update_layer_bounds(self, k: int, lower: np.ndarray, upper: np.ndarray) -> None:
        """Tighten hidden layer ``k``'s bounds in place (coefficients, right-hand sides, columns).

        The new bounds must lie inside the ones the LP was built with (tightening only).
        """
        li = self.layers[k]
        lo = np.maximum(np.asarray(lower, np.float64), li.lower)
        up = np.minimum(np.asarray(upper, np.float64), li.upper)
        up = np.maximum(up, lo)
        li.lower, li.upper = lo, up
        n = lo.size
        self.h.changeColsBounds(n, li.zhat.astype(np.int32), lo, up)
        self.h.changeColsBounds(n, li.z.astype(np.int32), np.zeros(n), np.maximum(up, 0.0))
        if self.formulation == "triangle":
            for t, j in enumerate(li.unstable):
                r1, hc = int(li.bigm_rows[t, 1]), int(li.zhat[j])
                lj, uj = lo[j], up[j]
                if lj >= 0:  # now stably active: z <= zhat
                    slope, lj = 1.0, 0.0
                elif uj <= 0:  # now stably inactive: z <= 0
                    slope, lj = 0.0, 0.0
                else:
                    slope = uj / (uj - lj)
                self.h.changeCoeff(r1, hc, -slope)
                self.h.changeRowBounds(r1, -INF, -slope * lj)
            return
        for t, j in enumerate(li.unstable):
            r = li.bigm_rows[t]
            s = int(li.sigma[t])
            lj, uj = lo[j], up[j]
            if lj >= 0:
                self.h.changeColBounds(s, 1.0, 1.0)
                lj = min(lj, 0.0)
            elif uj <= 0:
                self.h.changeColBounds(s, 0.0, 0.0)
                uj = max(uj, 0.0)
            self.h.changeCoeff(int(r[1]), s, -lj)
            self.h.changeRowBounds(int(r[1]), -INF, -lj)
            self.h.changeCoeff(int(r[2]), s, -uj)

    # -- solving ---------------------------------------------------------------------------
    def solve(self) -> LPSolution:
        """Solve (warm-started from the previous basis; see :func:`run_with_retry`). Duals as
        HiGHS reports them.

        HiGHS reports duals so that, for either sense, at an optimum
        ``cost = A^T row_dual + col_dual`` (Lagrangian of the problem as posed).
        """
        status = run_with_retry(self.h)
        ok = status == highspy.HighsModelStatus.kOptimal
        if not ok:
            return LPSolution(
                False, self.h.modelStatusToString(status), float("nan"),
                np.zeros(0), np.zeros(0), np.zeros(0),
            )
        sol = self.h.getSolution()
        return LPSolution(
            True,
            "optimal",
            float(self.h.getObjectiveValue()),
            np.asarray(sol.col_value),
            np.asarray(sol.row_dual),
            np.asarray(sol.col_dual),
        )

    def current_bounds(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The hidden-layer bounds the LP holds now."""
        return [li.lower.copy() for li in self.layers], [li.upper.copy() for li in self.layers]


def run_with_retry(h: highspy.Highs) -> highspy.HighsModelStatus:
    """``h.run()``; if it stopped at the simplex iteration limit (a stall, see
    ``iteration_limit_factor``), run once more from scratch (solver state and basis cleared).
    Returns the model status."""
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kIterationLimit:
        h.clearSolver()
        h.run()
        status = h.getModelStatus()
    return status


def set_solve_time_limit(h: highspy.Highs, seconds: float) -> None:
    """Let the next ``h.run()`` take at most ``seconds`` (``inf``: no limit).

    HiGHS compares its ``time_limit`` with the object's *cumulative* run time (every earlier
    ``run()`` included; ``clearModel``/``passModel`` do not reset it), so the limit is set to that
    total plus ``seconds``.
    """
    h.setOptionValue("time_limit", float(min(h.getRunTime() + seconds, 1e30)))


def greedy_tour(points: np.ndarray, start: int = 0) -> np.ndarray:
    """Visiting order of the rows of ``points`` ``(B, d)``: nearest unvisited neighbour first.

    The one ordering of a sequence of similar LPs solved on one warm-started
    :class:`BigMRelaxationLP`: consecutive LPs then differ little, so the simplex restarts close to
    the previous optimal basis. Used for the samples of the LP gap (points :math:`\\hat z_1(x_i)`;
    measured on a 2x50 net: ~15-20 pivots per LP in random order, ~3 in tour order) and for the
    neurons of OBBT (unit-normalized weight rows, i.e. by cosine similarity; ~10-15% fewer
    iterations).
    """
    n = points.shape[0]
    if n <= 2:
        return np.roll(np.arange(n), -start) if n else np.zeros(0, dtype=int)
    sq = (points**2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2.0 * points @ points.T
    order = np.empty(n, dtype=int)
    visited = np.zeros(n, dtype=bool)
    cur = start
    for t in range(n):
        order[t] = cur
        visited[cur] = True
        if t + 1 < n:
            row = np.where(visited, np.inf, dist[cur])
            cur = int(np.argmin(row))
    return order
