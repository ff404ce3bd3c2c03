"""Throughput of the LP-gap penalty: per-sample LPs per second on a 2x50 ReLU net, one thread.

Measures, for sense "max":

* ``baseline``: the full big-M LP with x fixed by its column bounds, samples in random order;
* ``reduced LP``: the per-sample LP that :mod:`omlt_relax.lp.gap` solves (first layer
  substituted, triangle rows), weights fixed, in random and in greedy-tour order;
* ``LPGapPenalty fwd+bwd``: the penalty (bounds, LPs, envelope function) and its backward pass,
  for the ``"direct"`` and ``"total"`` derivatives, with an Adam step on the peaks MSE between
  calls (weights change every call, as in training, so every call reloads the LP).

Rates are per CPU-second of this process (the machine may be shared) and per wall-second.

With ``--models`` (networks saved by the paper suite) it measures instead how far exact per-sample
LPs can go: HiGHS's cost per warm solve, how many distinct optimal bases the samples have and
how many kink neurons (:func:`kinks`) those bases hold, the LP-gap penalty's rate, and a batched
solver-free method (:func:`primal_dual_alternation`) that is exact where it certifies.
Run: ``python benchmarks/bench_lp_gap.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import highspy
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import nn

from omlt_relax.bench.functions import peaks_tensor as peaks
from omlt_relax.bounds import chain_numpy, interval_bounds
from omlt_relax.lp.gap import LPGapPenalty, greedy_tour
from omlt_relax.lp.relaxation import ITERATION_LIMIT_FACTOR, BigMRelaxationLP, LPSolution
from omlt_relax.threads import quiet_highs, single_thread
from omlt_relax.train import build_model

BOX = (np.array([-3.0, -3.0]), np.array([3.0, 3.0]))


def make_net(seed: int) -> nn.Sequential:
    return build_model(2, (50, 50), 1, seed)


class Clock:
    """Wall and CPU (this process) time of the timed sections."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c

    def rates(self, n: int) -> str:
        return f"{n / self.cpu:7.0f} LPs/s per CPU-second, {n / self.wall:7.0f} LPs/s wall"


def bench_full_bigm(net: nn.Sequential, x: np.ndarray) -> Clock:
    """Baseline: the full big-M LP (x, zhat_1, sigma kept), x fixed per sample, random order."""
    lo, hi = BOX
    nb = interval_bounds(net, lo, hi).numpy()
    lp = BigMRelaxationLP(chain_numpy(net, lo, hi), nb.lower, nb.upper, lo, hi)
    lp.set_objective(np.ones(1), lp.y_cols, maximize=True)
    clock = Clock()
    with clock:
        for xi in x:
            lp.fix_input(xi)
            lp.solve()
    return clock


def per_sample_data(
    net: nn.Sequential, box: tuple[np.ndarray, np.ndarray], x: np.ndarray
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray], list[np.ndarray],
           np.ndarray, np.ndarray, np.ndarray]:
    """The data of :mod:`omlt_relax.lp.gap`'s per-sample LPs at the rows of ``x``: the chain
    without its first layer, the IBP bounds of the other hidden layers, and per sample the box
    ``[relu(zhat_1), t(zhat_1)]`` of the input columns: ``(tail, lower, upper, zlo, zhi,
    zhat_1)``; ``lower[0]``/``upper[0]`` are the first layer's (the input columns' box is
    ``[relu(l_1), relu(u_1)]``)."""
    lo, hi = box
    nb = interval_bounds(net, lo, hi).numpy()
    ch = chain_numpy(net, lo, hi)
    w1, b1 = ch[0]
    l1, u1 = nb.lower[0], nb.upper[0]
    zh = x @ w1.T + b1
    un = (l1 < 0) & (u1 > 0)
    zlo = np.maximum(zh, 0.0)
    zhi = np.maximum(np.where(un, u1 * (zh - l1) / np.where(un, u1 - l1, 1.0), zlo), zlo)
    return ch[1:], list(nb.lower), list(nb.upper), zlo, zhi, zh


def reduced_lp(
    net: nn.Sequential, box: tuple[np.ndarray, np.ndarray], x: np.ndarray
) -> tuple[BigMRelaxationLP, np.ndarray, np.ndarray, np.ndarray]:
    """The per-sample LP of :mod:`omlt_relax.lp.gap` (first layer substituted, triangle rows,
    IBP bounds, sense max of the output) and, per row of ``x``, the box
    ``[relu(zhat_1), t(zhat_1)]`` of its input columns: ``(lp, zlo, zhi, zhat_1)``."""
    tail, lower, upper, zlo, zhi, zh = per_sample_data(net, box, x)
    lp = BigMRelaxationLP(tail, lower[1:], upper[1:], np.maximum(lower[0], 0),
                          np.maximum(upper[0], 0), formulation="triangle")
    lp.set_objective(np.ones(1), lp.y_cols, maximize=True)
    return lp, zlo, zhi, zh


def bench_lp_only(net: nn.Sequential, x: np.ndarray, tour: bool) -> Clock:
    """The reduced per-sample LP (first layer substituted) alone, weights fixed."""
    lp, zlo, zhi, zh = reduced_lp(net, BOX, x)
    order = greedy_tour(zh) if tour else np.arange(x.shape[0])
    clock = Clock()
    with clock:
        for i in order:
            lp.set_input_box(zlo[i], zhi[i])
            lp.solve()
    return clock


def bench_penalty(
    net: nn.Sequential, derivative: str, steps: int, batch: int, subsample: int, seed: int
) -> tuple[Clock, dict[str, float]]:
    """Penalty forward + backward per call, an Adam step on the peaks MSE between calls."""
    pen = LPGapPenalty(
        net,
        BOX,
        weight=1e-2,
        sense="max",
        bounds="ibp",
        derivative=derivative,
        subsample=subsample,
        seed=seed,
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    xs = [torch.rand(batch, 2, generator=g) * 6 - 3 for _ in range(steps + 1)]
    loss = pen(xs[-1])  # first call builds the LP (cold start): not timed
    loss.backward()
    clock = Clock()
    for x in xs[:steps]:
        opt.zero_grad()
        mse = ((net(x) - peaks(x)) ** 2).mean()
        mse.backward()
        with clock:
            loss = pen(x)
            loss.backward()
        opt.step()
    return clock, pen.metrics()


# -- limits: how far can exact per-sample LPs go? ---------------------------------------------
_BASIC = int(highspy.HighsBasisStatus.kBasic)
_UPPER = int(highspy.HighsBasisStatus.kUpper)
_LOWER = int(highspy.HighsBasisStatus.kLower)


class BasisMap:
    """The reduced LP's primal solution as an affine function of its input-column bounds, for
    the simplex basis HiGHS ended its last solve with.

    Nonbasic columns sit at the bound their status names (free nonbasic at 0), nonbasic rows at
    theirs; the basic columns solve the square system
    :math:`A_{N_r B_c} v_B = r_N - A_{N_r N_c} v_N` (#basic columns = #nonbasic rows). Only the
    nonbasic input columns move with the sample, so :math:`v_B(i) = p - Q v_x(i)`. ``A`` and
    the objective do not depend on the sample, so the basis is dual feasible for every sample:
    where :math:`v(i)` is primal feasible (columns and basic rows within bounds) it is optimal,
    with the anchor's duals.
    """

    def __init__(self, lp: BigMRelaxationLP, a: sp.csr_matrix, col_lo: np.ndarray,
                 col_hi: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray) -> None:
        basis = lp.h.getBasis()
        cs = np.array([int(v) for v in basis.col_status])
        rs = np.array([int(v) for v in basis.row_status])
        basic_c = np.flatnonzero(cs == _BASIC)
        nonbasic_r = np.flatnonzero(rs != _BASIC)
        v0 = np.zeros(a.shape[1])
        v0[cs == _LOWER] = col_lo[cs == _LOWER]
        v0[cs == _UPPER] = col_hi[cs == _UPPER]
        r_n = np.where(rs[nonbasic_r] == _UPPER, row_hi[nonbasic_r], row_lo[nonbasic_r])
        xc = lp.x_cols
        self.x_nonbasic = cs[xc] != _BASIC
        self.x_at_hi = cs[xc] == _UPPER
        a_n = a[nonbasic_r]
        lu = spla.splu(a_n[:, basic_c].tocsc())
        fixed = np.setdiff1d(np.flatnonzero(cs != _BASIC), xc)
        self.p = lu.solve(r_n - a_n[:, fixed] @ v0[fixed])
        xn = xc[self.x_nonbasic]
        self.q = lu.solve(a_n[:, xn].toarray()) if xn.size else np.zeros((basic_c.size, 0))
        self.basic_c, self.xn, self.xc, self.v0 = basic_c, xn, xc, v0
        self.basic_r = np.flatnonzero(rs == _BASIC)
        self.a_r = a[self.basic_r]
        self.col_lo, self.col_hi, self.row_lo, self.row_hi = col_lo, col_hi, row_lo, row_hi

    def evaluate(self, zlo: np.ndarray, zhi: np.ndarray, tol: float = 1e-9
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(optimal, v)`` for samples with input boxes ``zlo``/``zhi`` ``(n, n_x)``: the basis
        is optimal where every column and basic row lies within its bounds (tolerance
        ``tol * (1 + |value|)``)."""
        xv = np.where(self.x_at_hi, zhi, zlo)[:, self.x_nonbasic]
        v = np.tile(self.v0, (zlo.shape[0], 1))
        v[:, self.xn] = xv
        v[:, self.basic_c] = self.p - xv @ self.q.T
        lo = np.tile(self.col_lo, (zlo.shape[0], 1))
        hi = np.tile(self.col_hi, (zlo.shape[0], 1))
        lo[:, self.xc], hi[:, self.xc] = zlo, zhi
        slack = tol * (1 + np.abs(v))
        ok = ((v >= lo - slack) & (v <= hi + slack)).all(1)
        r = (self.a_r @ v.T).T
        slack = tol * (1 + np.abs(r))
        ok &= ((r >= self.row_lo[self.basic_r] - slack)
               & (r <= self.row_hi[self.basic_r] + slack)).all(1)
        return ok, v


def lp_arrays(lp: BigMRelaxationLP) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray,
                                            np.ndarray]:
    """The LP HiGHS holds: ``(A, col_lo, col_hi, row_lo, row_hi)`` (input columns as loaded)."""
    m = lp.h.getLp()
    a = m.a_matrix_
    mat = sp.csc_matrix(
        (np.asarray(a.value_), np.asarray(a.index_), np.asarray(a.start_)),
        shape=(m.num_row_, m.num_col_),
    ).tocsr()
    return (mat, np.asarray(m.col_lower_), np.asarray(m.col_upper_), np.asarray(m.row_lower_),
            np.asarray(m.row_upper_))


def _layers(tail: list[tuple[np.ndarray, np.ndarray]], lower: list[np.ndarray],
            upper: list[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """Per hidden layer of the reduced LP: ``(W, b, l, u, active, unstable, s, s l)``."""
    out = []
    for (w, b), lo, up in zip(tail[:-1], lower, upper):
        un = (lo < 0) & (up > 0)
        s = np.where(un, up / np.where(un, up - lo, 1.0), 0.0)
        out.append((w, b, lo, up, (lo >= 0).astype(np.float64), un, s, s * lo))
    return out


def _dual_pass(layers: list[tuple[np.ndarray, ...]], out: tuple[np.ndarray, np.ndarray],
               c: np.ndarray, zlo: np.ndarray, zhi: np.ndarray, pos: list[np.ndarray]
               ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """A lower bound on :math:`\\min c^\\top y` per sample, by one backward pass: an unstable
    neuron with coefficient :math:`a < 0` takes the triangle's upper face
    :math:`a z \\ge a s(\\hat z - l)`, one with :math:`a \\ge 0` the lower face
    :math:`a z \\ge a\\alpha \\hat z`, :math:`\\alpha = 1` where ``pos`` else 0; the input columns
    their best bound. Returns ``(bound, upper-face masks, input-at-upper mask)``."""
    w_out, b_out = out
    a = np.broadcast_to(c @ w_out, (zlo.shape[0], w_out.shape[1]))
    const = np.full(zlo.shape[0], float(c @ b_out))
    faces: list[np.ndarray] = [np.zeros(0, bool)] * len(layers)
    for k in range(len(layers) - 1, -1, -1):
        w, b, _, _, act, un, s, sl = layers[k]
        neg = (a < 0) & un
        g = a * (act + un * np.where(neg, s, pos[k]))
        const = const - (a * neg * sl).sum(1) + g @ b
        faces[k] = neg
        a = g @ w
    return const + np.minimum(a * zlo, a * zhi).sum(1), faces, a < 0


def _primal_pass(layers: list[tuple[np.ndarray, ...]], out: tuple[np.ndarray, np.ndarray],
                 c: np.ndarray, zlo: np.ndarray, zhi: np.ndarray, faces: list[np.ndarray],
                 hi: np.ndarray, tol: float) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """The forward pass through the chosen faces (upper face where ``faces``, else
    :math:`z = \\operatorname{relu}(\\hat z)`): ``(c^T y, sign masks of zhat, feasible)``; the point
    is feasible where every :math:`\\hat z` lies in :math:`[l, u]`."""
    z = np.where(hi, zhi, zlo)
    feasible = np.ones(z.shape[0], bool)
    pos = []
    for k, (w, b, lo, up, act, un, s, sl) in enumerate(layers):
        zh = z @ w.T + b
        slack_lo, slack_hi = tol * (1 + np.abs(lo)), tol * (1 + np.abs(up))
        feasible &= ((zh >= lo - slack_lo) & (zh <= up + slack_hi)).all(1)
        z = np.where(un, np.where(faces[k], s * zh - sl, np.maximum(zh, 0.0)), act * zh)
        pos.append(zh > 0)
    w_out, b_out = out
    return (z @ w_out.T + b_out) @ c, pos, feasible


def primal_dual_alternation(tail: list[tuple[np.ndarray, np.ndarray]], lower: list[np.ndarray],
                            upper: list[np.ndarray], zlo: np.ndarray, zhi: np.ndarray,
                            c: np.ndarray, max_iter: int = 10, tol: float = 1e-9
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batched exact method for the reduced per-sample LP :math:`\\min c^\\top y`, certified.

    From the network's own point, alternate a backward pass (:func:`_dual_pass`, slopes
    :math:`\\alpha \\in \\{0, 1\\}` from the signs of the last primal point) and a forward pass
    (:func:`_primal_pass`, faces from the signs of the dual coefficients). Every backward pass is
    a valid lower bound :math:`d` and every feasible forward pass an upper bound :math:`p`, so a
    sample with :math:`p - d \\le` ``tol`` :math:`(1 + |p|)` has its LP optimum certified, with no
    solver. It cannot certify an optimum at which some lower-face neuron sits at its kink
    :math:`\\hat z = 0` (the optimal slope is fractional there). Returns ``(certified, value,
    iterations)`` per sample (``value`` the best :math:`d`; iterations 0 where not certified).
    """
    layers = _layers(tail, lower, upper)
    out = tail[-1]
    n = zlo.shape[0]
    none = [np.zeros((n, lo.size), bool) for lo in lower]
    p, pos, feasible = _primal_pass(layers, out, c, zlo, zhi, none, np.zeros(zlo.shape, bool), tol)
    best_p = np.where(feasible, p, np.inf)
    best_d = np.full(n, -np.inf)
    certified = np.zeros(n, bool)
    iters = np.zeros(n, int)
    for t in range(max_iter):
        d, faces, hi = _dual_pass(layers, out, c, zlo, zhi, pos)
        best_d = np.maximum(best_d, d)
        p, pos, feasible = _primal_pass(layers, out, c, zlo, zhi, faces, hi, tol)
        best_p = np.where(feasible & (p < best_p), p, best_p)
        new = (best_p - best_d <= tol * (1 + np.abs(best_p))) & ~certified
        iters[new] = t + 1
        certified |= new
        if certified.all():
            break
    return certified, best_d, iters


def kinks(lp: BigMRelaxationLP, cs: np.ndarray, rs: np.ndarray) -> int:
    """Neurons at a kink of an optimal basis of ``lp`` (column and row statuses ``cs``, ``rs``):
    both lower faces :math:`z \\ge 0` and :math:`z \\ge \\hat z` active (nonbasic), i.e.
    :math:`\\hat z = z = 0`, where the optimal slope is fractional."""
    count = 0
    for li in lp.layers:
        if li.unstable.size:
            at0 = cs[li.z[li.unstable]] != _BASIC
            below = rs[li.bigm_rows[:, 0]] != _BASIC
            upper = rs[li.bigm_rows[:, 1]] != _BASIC
            count += int((at0 & below & ~upper).sum())
    return count


def lp_limits(net: nn.Sequential, box: tuple[np.ndarray, np.ndarray], n: int, seed: int
              ) -> dict[str, float]:
    """Per-LP HiGHS cost and how many solves an exact basis-sharing method would still need.

    ``n`` uniform samples of ``box``, visited in greedy-tour order (as the penalty does). Then a
    greedy cover: solve the first pending sample with HiGHS, take its optimal basis
    (:class:`BasisMap`), accept every pending sample the basis is primal feasible for (checked
    against HiGHS's own values), repeat.
    """
    x = np.random.default_rng(seed).uniform(box[0], box[1], (n, box[0].size))
    lp, zlo, zhi, zh = reduced_lp(net, box, x)
    order = greedy_tour(zh)
    run_s = np.zeros(n)
    iters = np.zeros(n)
    values = np.zeros(n)
    bases: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    n_kinks = np.zeros(n, int)
    for _ in range(2):  # the second pass is timed (the first warms the basis and caches)
        bases.clear()
        for t, i in enumerate(order):
            lp.set_input_box(zlo[i], zhi[i])
            c0 = time.process_time()
            lp.h.run()
            run_s[t] = time.process_time() - c0
            iters[t] = lp.h.getInfo().simplex_iteration_count
            values[i] = lp.h.getInfo().objective_function_value
            b = lp.h.getBasis()
            cs = np.array([int(v) for v in b.col_status])
            rs = np.array([int(v) for v in b.row_status])
            bases.add((tuple(cs), tuple(rs)))
            n_kinks[i] = kinks(lp, cs, rs)
    # the batched primal-dual alternation on the same LPs (the data `lp` holds; sense max: min
    # of -y), timed alone
    c0 = time.process_time()
    cert, dual, _ = primal_dual_alternation(lp.chain, [li.lower for li in lp.layers],
                                            [li.upper for li in lp.layers], zlo, zhi, -np.ones(1))
    alt_s = time.process_time() - c0
    alt_err = float(np.abs(-dual[cert] - values[cert]).max(initial=0.0))
    arrays = lp_arrays(lp)
    pending = order.copy()
    solves = 0
    err = 0.0
    while pending.size:
        i = pending[0]
        lp.set_input_box(zlo[i], zhi[i])
        lp.h.run()
        solves += 1
        ok, v = BasisMap(lp, *arrays).evaluate(zlo[pending], zhi[pending])
        ok[0] = True  # the anchor itself (HiGHS's optimum)
        got = v[ok][:, lp.y_cols].sum(1)
        err = max(err, float(np.abs(got[1:] - values[pending[ok]][1:]).max(initial=0.0)))
        pending = pending[~ok]
    low = iters <= 1
    return {
        "unstable": float(interval_bounds(net, *box).unstable_count()),
        "rows": float(lp.num_row), "cols": float(lp.num_col),
        "run_us": 1e6 * float(run_s.mean()), "iters": float(iters.mean()),
        "floor_us": 1e6 * float(np.median(run_s[low])) if low.any() else float("nan"),
        "distinct": float(len(bases)), "cover": float(solves), "max_err": err,
        "kinks": float(n_kinks.mean()), "kink_free": float((n_kinks == 0).sum()),
        "certified": float(cert.sum()), "alt_us": 1e6 * alt_s / n, "alt_err": alt_err,
    }


def load_suite_network(path: str) -> tuple[str, nn.Sequential, tuple[np.ndarray, np.ndarray]]:
    """A network saved by the paper suite (``<out>/models/<key>.pt``), with its function's box."""
    from omlt_relax.bench.paper.protocol import PAPER_FUNCTIONS, paper_network

    state = torch.load(path, weights_only=False)["state"]
    weights = [state[k] for k in state if k.endswith("weight")]
    net = paper_network(weights[0].shape[1], len(weights) - 1, weights[0].shape[0], seed=0)
    net.load_state_dict(state)
    key = os.path.basename(path).removesuffix(".pt")
    fn = PAPER_FUNCTIONS[key.split("-")[0]]
    return key, net, (np.asarray(fn.lower, np.float64), np.asarray(fn.upper, np.float64))


def penalty_split(net: nn.Sequential, box: tuple[np.ndarray, np.ndarray], calls: int,
                  subsample: int, seed: int) -> tuple[float, float]:
    """``(LPs per CPU-second, share of the time in the LP solves)`` of the LP-gap penalty
    (direct derivative, fwd+bwd, weights changing by an Adam step between calls)."""
    spent = [0.0]
    solve = BigMRelaxationLP.solve

    def timed(self: BigMRelaxationLP) -> LPSolution:
        c0 = time.process_time()
        try:
            return solve(self)
        finally:
            spent[0] += time.process_time() - c0

    pen = LPGapPenalty(net, box, weight=1e-3, derivative="direct", subsample=subsample, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    lo, hi = (torch.as_tensor(a, dtype=torch.float32) for a in box)
    xs = [lo + (hi - lo) * torch.rand(64, lo.numel(), generator=g) for _ in range(calls + 1)]
    pen(xs[-1]).backward()
    BigMRelaxationLP.solve = timed
    try:
        clock = Clock()
        for x in xs[:calls]:
            opt.zero_grad()
            with clock:
                pen(x).backward()
            opt.step()
    finally:
        BigMRelaxationLP.solve = solve
    return calls * subsample / clock.cpu, spent[0] / clock.cpu


def block_lp(lp: BigMRelaxationLP, zlo: np.ndarray, zhi: np.ndarray) -> highspy.HighsLp:
    """The per-sample LPs of the rows of ``zlo``/``zhi`` as one LP: ``lp``'s LP (matrix, row and
    column bounds, objective) ``K = len(zlo)`` times on the block diagonal, copy ``i`` with its
    input columns in ``[zlo[i], zhi[i]]``. The copies share no row and no column, so the LP
    separates: copy ``i`` of an optimum (values and duals) is an optimum of sample ``i``'s LP,
    and the objective is the sum of the ``K`` optima."""
    one = lp.h.getLp()
    nc, nr, k = one.num_col_, one.num_row_, zlo.shape[0]
    a = sp.csc_matrix((np.asarray(one.a_matrix_.value_), np.asarray(one.a_matrix_.index_),
                       np.asarray(one.a_matrix_.start_)), shape=(nr, nc))
    big = sp.block_diag([a] * k, format="csc")
    col_lo = np.tile(np.asarray(one.col_lower_), k).reshape(k, nc)
    col_hi = np.tile(np.asarray(one.col_upper_), k).reshape(k, nc)
    col_lo[:, lp.x_cols], col_hi[:, lp.x_cols] = zlo, zhi
    out = highspy.HighsLp()
    out.num_col_, out.num_row_ = nc * k, nr * k
    out.sense_ = one.sense_
    out.col_cost_ = np.tile(np.asarray(one.col_cost_), k)
    out.col_lower_, out.col_upper_ = col_lo.reshape(-1), col_hi.reshape(-1)
    out.row_lower_ = np.tile(np.asarray(one.row_lower_), k)
    out.row_upper_ = np.tile(np.asarray(one.row_upper_), k)
    out.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    out.a_matrix_.start_, out.a_matrix_.index_ = big.indptr, big.indices
    out.a_matrix_.value_ = big.data
    out.a_matrix_.num_col_, out.a_matrix_.num_row_ = nc * k, nr * k
    return out


def block_vs_sequential(net: nn.Sequential, box: tuple[np.ndarray, np.ndarray], calls: int,
                        k: int, seed: int) -> dict[str, float]:
    """The ``k`` per-sample LPs of a training step (sense min, the paper's) solved two exact
    ways, side by side on the same weights and samples, over ``calls`` steps whose weights move
    by an Adam step of the LP-gap penalty:

    * sequential, as :class:`~omlt_relax.LPGapPenalty` does: the one LP object reloaded with
      the step's weights (basis kept), then per sample its input columns' box and a dual simplex
      warm-started from the previous sample, in greedy-tour order;
    * one block LP (:func:`block_lp`) per step, warm-started from the previous step's block
      basis (HiGHS's fixed cost per ``run()`` paid once per step instead of ``k`` times).

    Returns CPU µs per LP (building and loading included; ``block_run_us``: its ``run()``
    alone), simplex iterations per LP and the largest difference of an optimum between them."""
    pen = LPGapPenalty(net, box, weight=1e-3, derivative="direct", subsample=k, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    rng = np.random.default_rng(seed)
    lo, hi = box
    seq: BigMRelaxationLP | None = None
    blk = quiet_highs(1)
    blk.setOptionValue("presolve", "off")  # as BigMRelaxationLP
    basis, layout = None, None
    cpu = {"seq": 0.0, "block": 0.0, "block_run": 0.0}
    iters = {"seq": 0, "block": 0}
    max_err = 0.0
    for _ in range(calls):
        x = rng.uniform(lo, hi, (k, lo.size))
        tail, lower, upper, zlo, zhi, zh = per_sample_data(net, box, x)
        data = (tail, lower[1:], upper[1:], np.maximum(lower[0], 0), np.maximum(upper[0], 0))
        c0 = time.process_time()
        if seq is None:
            seq = BigMRelaxationLP(*data, formulation="triangle",
                                   iteration_limit_factor=ITERATION_LIMIT_FACTOR)
        else:
            seq.load(*data, warm_start=True)
        seq.set_objective(np.ones(1), seq.y_cols, maximize=False)
        v_seq = np.zeros(k)
        for i in greedy_tour(zh):
            seq.set_input_box(zlo[i], zhi[i])
            sol = seq.solve()
            if not sol.ok:
                msg = f"a per-sample LP was not solved to optimality: {sol.status}"
                raise RuntimeError(msg)
            v_seq[i] = sol.value
            iters["seq"] += seq.h.getInfo().simplex_iteration_count
        c1 = time.process_time()
        blk.passModel(block_lp(seq, zlo, zhi))
        if basis is not None and layout == seq._layout_key:
            blk.setBasis(basis)
        c2 = time.process_time()
        blk.run()
        c3 = time.process_time()
        if blk.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            msg = f"the block LP was not solved: {blk.modelStatusToString(blk.getModelStatus())}"
            raise RuntimeError(msg)
        col = np.asarray(blk.getSolution().col_value).reshape(k, -1)
        v_blk = col[:, seq.y_cols[0]]
        basis, layout = blk.getBasis(), seq._layout_key
        cpu["seq"] += c1 - c0
        cpu["block"] += time.process_time() - c1
        cpu["block_run"] += c3 - c2
        iters["block"] += blk.getInfo().simplex_iteration_count
        max_err = max(max_err, float(np.abs(v_blk - v_seq).max()))
        opt.zero_grad()
        pen(torch.as_tensor(x, dtype=torch.float32)).backward()
        opt.step()
    n = calls * k
    return {"seq_us": 1e6 * cpu["seq"] / n, "block_us": 1e6 * cpu["block"] / n,
            "block_run_us": 1e6 * cpu["block_run"] / n, "seq_it": iters["seq"] / n,
            "block_it": iters["block"] / n, "max_err": max_err}


def block_report(paths: list[str], calls: int, k: int, seed: int) -> None:
    """Print, per network, the sequential per-sample solves against one block LP per step."""
    print(f"{calls} training steps of {k} per-sample LPs (sense min), the same weights and "
          "samples both ways, an Adam step of the LP-gap penalty between steps")
    print("| network | sequential µs/LP (simplex it.) | one block LP per step µs/LP (it.) "
          "| block run() alone µs/LP | block / sequential | max abs diff of the optima |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        key, net, box = load_suite_network(path)
        m = block_vs_sequential(net, box, calls, k, seed)
        print(f"| {key} | {m['seq_us']:.0f} ({m['seq_it']:.1f}) | {m['block_us']:.0f} "
              f"({m['block_it']:.1f}) | {m['block_run_us']:.0f} | "
              f"{m['block_us'] / m['seq_us']:.2f}x | {m['max_err']:.1e} |", flush=True)


def limits_report(paths: list[str], samples: int, calls: int, subsample: int, seed: int) -> None:
    """Print, per network, the per-LP HiGHS cost, the basis cover, and the penalty's split."""
    print(f"{samples} samples per network, greedy-tour order; penalty: {calls} calls x "
          f"{subsample} LPs, direct derivative, an Adam step between calls")
    print("| network | unstable | rows x cols | simplex it./LP | run() µs/LP | run() µs at <=1 it. "
          "| HiGHS-only ceiling LPs/s | distinct optimal bases | HiGHS solves to cover (exact, "
          "max err) | penalty LPs/s | share in LP solves |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    second: list[str] = []
    for path in paths:
        key, net, box = load_suite_network(path)
        m = lp_limits(net.double(), box, samples, seed)
        rate, share = penalty_split(net, box, calls, subsample, seed)
        print(f"| {key} | {m['unstable']:.0f} | {m['rows']:.0f} x {m['cols']:.0f} | "
              f"{m['iters']:.1f} | {m['run_us']:.0f} | {m['floor_us']:.0f} | "
              f"{1e6 / m['run_us']:,.0f} | {m['distinct']:.0f}/{samples} | "
              f"{m['cover']:.0f}/{samples} ({m['max_err']:.1e}) | {rate:,.0f} | {share:.0%} |",
              flush=True)
        second.append(
            f"| {key} | {m['kinks']:.1f} | {m['kink_free']:.0f}/{samples} | "
            f"{m['certified']:.0f}/{samples} ({m['alt_err']:.1e}) | {m['alt_us']:.1f} |")
    print("\nbatched primal-dual alternation (all samples at once, <= 10 forward + backward passes,"
          " certified where primal = dual), beside the kinks of HiGHS's optimal bases")
    print("| network | kink neurons per optimal basis (mean) | LPs whose optimum has no kink "
          "| certified by the alternation (max err vs HiGHS) | alternation µs/LP |")
    print("|---|---|---|---|---|")
    print("\n".join(second), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000, help="LPs for the 'lp only' rate")
    ap.add_argument("--steps", type=int, default=40, help="training steps per derivative mode")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--subsample", type=int, default=32, help="LPs per penalty call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="", help="comma-separated paper-suite networks "
                    "(<out>/models/<key>.pt): measure the limits of exact per-sample LPs instead")
    ap.add_argument("--calls", type=int, default=100, help="penalty calls per network (--models)")
    ap.add_argument("--block", type=int, default=0, metavar="K",
                    help="with --models: K per-sample LPs per step, solved one by one (as the "
                    "penalty does) against one block-diagonal LP per step")
    args = ap.parse_args()
    single_thread()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} | "
        f"python {platform.python_version()} torch {torch.__version__} "
        f"HiGHS {highspy.Highs().version()} | "
        f"torch threads {torch.get_num_threads()}, HiGHS threads 1"
    )
    if args.models and args.block:
        block_report(args.models.split(","), args.calls, args.block, args.seed)
        return
    if args.models:
        limits_report(args.models.split(","), args.samples, args.calls, args.subsample, args.seed)
        return
    net = make_net(args.seed)
    nb = interval_bounds(net, *BOX)
    print(f"net: 2x50 ReLU (float32 weights), IBP unstable neurons {nb.unstable_count()}/100")
    x = np.random.default_rng(args.seed).uniform(BOX[0], BOX[1], (args.samples, 2))
    clock = bench_full_bigm(net, x)
    print(f"baseline: full big-M LP, x fixed, random order    : {clock.rates(args.samples)}")
    for tour in (False, True):
        clock = bench_lp_only(net, x, tour)
        label = "greedy tour" if tour else "random order"
        rates = clock.rates(args.samples)
        print(f"reduced LP, x fixed, {label:12s}                 : {rates}")
    n_lp = args.steps * min(args.batch, args.subsample)
    for derivative in ("direct", "total"):
        clock, m = bench_penalty(
            make_net(args.seed), derivative, args.steps, args.batch, args.subsample, args.seed
        )
        print(
            f"LPGapPenalty max {derivative:6s} fwd+bwd, {args.steps} calls x "
            f"{min(args.batch, args.subsample)} LPs, weights changing: {clock.rates(n_lp)}, "
            f"{1e3 * clock.cpu / args.steps:.1f} CPU-ms/call, skipped {m['skipped']:.0f}"
        )


if __name__ == "__main__":
    main()
