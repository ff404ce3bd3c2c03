"""LP-gap penalty: values against closed forms and an independent LP, dual gradients against finite
differences, failure handling and input checks. Real HiGHS throughout (no mocks)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import load_script, random_net
from scipy.optimize import linprog
from torch import nn

from omlt_relax import IncrementalQuantileHead, NeuronBounds, crown_bounds, interval_bounds
from omlt_relax.bounds import chain_numpy
from omlt_relax.lp.gap import LPGapPenalty, greedy_tour, lp_gap
from omlt_relax.lp.relaxation import BigMRelaxationLP
from omlt_relax.neuron_bounds import BoundsMismatchError

GAP_TOL = 1e-6  # LP values are exact to HiGHS's 1e-7 feasibility/optimality tolerances
VALUE_TOL = 1e-6  # agreement of two LP solves / a closed form
FD_STEP = 1e-6  # central finite-difference step in parameter space (float64)
FD_RTOL = 1e-4  # relative agreement of the dual gradient with a finite difference
N_DIRECTIONS = 6

BOX = (np.array([-2.0, -1.0]), np.array([1.0, 2.0]))


def _x(n: int, seed: int, box: tuple = BOX) -> torch.Tensor:
    lo, hi = box
    return torch.as_tensor(np.random.default_rng(seed).uniform(lo, hi, (n, lo.size)))


def _np_ibp(chain: list, lo: np.ndarray, hi: np.ndarray) -> tuple[list, list]:
    """Interval bounds of the hidden layers, written out in numpy (independent of the package)."""
    lows, ups = [], []
    zl, zu = lo, hi
    for w, b in chain[:-1]:
        mid, rad = (zl + zu) / 2, (zu - zl) / 2
        c, r = w @ mid + b, np.abs(w) @ rad
        lows.append(c - r)
        ups.append(c + r)
        zl, zu = np.maximum(c - r, 0), np.maximum(c + r, 0)
    return lows, ups


def _triangle_slack(zhat: np.ndarray, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:math:`t(\\hat z) - relu(\\hat z)`: the room the LP has above the ReLU (0 when stable)."""
    unstable = (l < 0) & (u > 0)
    t = np.where(unstable, u * (zhat - l) / np.where(unstable, u - l, 1.0), 0.0)
    return np.where(unstable, t - np.maximum(zhat, 0), 0.0)


def _linprog_value(chain: list, lows: list, ups: list, x: np.ndarray, c: np.ndarray, sense: str):
    """max/min c^T y of the big-M LP relaxation, built densely from the weights for scipy.

    Independent of :class:`BigMRelaxationLP`: every hidden neuron gets a sigma and the same three
    big-M rows (as plain OMLT does), whatever its stability.
    """
    names: list[tuple[str, int, int]] = []
    bounds: list[tuple[float, float]] = []

    def add(kind: str, k: int, n: int, lo, hi) -> list[int]:
        start = len(names)
        for j in range(n):
            names.append((kind, k, j))
            bounds.append(
                (float(lo[j]) if lo is not None else None, float(hi[j]) if hi is not None else None)
            )
        return list(range(start, start + n))

    xi = add("x", 0, x.size, x, x)
    layers = []
    for k, (w, _b) in enumerate(chain[:-1]):
        n = w.shape[0]
        zh = add("zhat", k, n, lows[k], ups[k])
        z = add("z", k, n, np.zeros(n), np.maximum(ups[k], 0))
        s = add("sigma", k, n, np.zeros(n), np.ones(n))
        layers.append((zh, z, s))
    y = add("y", 0, chain[-1][0].shape[0], None, None)
    nv = len(names)
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    prev = xi
    for k, (w, b) in enumerate(chain):
        out = layers[k][0] if k < len(layers) else y
        for j in range(w.shape[0]):
            row = np.zeros(nv)
            row[out[j]] = 1.0
            row[prev] -= w[j]
            a_eq.append(row)
            b_eq.append(b[j])
        if k == len(layers):
            break
        zh, z, s = layers[k]
        for j in range(len(zh)):
            l, u = lows[k][j], ups[k][j]
            r = np.zeros(nv)  # zhat - z <= 0
            r[zh[j]], r[z[j]] = 1.0, -1.0
            a_ub.append(r)
            b_ub.append(0.0)
            r = np.zeros(nv)  # z - zhat - l sigma <= -l
            r[z[j]], r[zh[j]], r[s[j]] = 1.0, -1.0, -l
            a_ub.append(r)
            b_ub.append(-l)
            r = np.zeros(nv)  # z - u sigma <= 0
            r[z[j]], r[s[j]] = 1.0, -u
            a_ub.append(r)
            b_ub.append(0.0)
        prev = z
    cost = np.zeros(nv)
    cost[y] = -c if sense == "max" else c
    res = linprog(
        cost,
        A_ub=np.array(a_ub),
        b_ub=b_ub,
        A_eq=np.array(a_eq),
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    assert res.status == 0, res.message
    return -res.fun if sense == "max" else res.fun


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize("sense", ["max", "min", "both"])
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_gap_nonnegative(sense: str, method: str) -> None:
    for seed, widths in enumerate([[12], [8, 8], [6, 6, 6]]):
        net = random_net(2, widths, n_out=2, seed=seed)
        g = lp_gap(net, _x(20, seed), BOX, sense=sense, bounds=method)
        assert g.shape == (20,)
        assert torch.isfinite(g).all()
        assert (g >= -GAP_TOL).all(), g.min()
        assert g.max() > 1e-3  # random nets over this box have unstable neurons: a real gap


@pytest.mark.parametrize(
    ("widths", "n_out", "sense", "method"),
    [
        ([7, 5], 1, "max", "ibp"),
        ([6, 6, 4], 2, "min", "ibp"),
        ([5, 5, 5, 5], 2, "max", "crown"),
        ([4, 6, 3], 3, "both", "crown"),
    ],
)
def test_gap_equals_independent_linprog(widths: list[int], n_out: int, sense: str, method: str):
    net = random_net(2, widths, n_out=n_out, seed=len(widths) + n_out)
    c = np.linspace(1.0, -0.5, n_out)
    x = _x(5, 7)
    g = lp_gap(net, x, BOX, sense=sense, bounds=method, c=c).detach().numpy()
    nb = (interval_bounds if method == "ibp" else crown_bounds)(net, *BOX).numpy()
    chain = chain_numpy(net, *BOX)
    f = net(x).detach().numpy() @ c
    for i in range(x.shape[0]):
        ref = 0.0
        if sense in ("max", "both"):
            ref += _linprog_value(chain, nb.lower, nb.upper, x[i].numpy(), c, "max") - f[i]
        if sense in ("min", "both"):
            ref += f[i] - _linprog_value(chain, nb.lower, nb.upper, x[i].numpy(), c, "min")
        assert g[i] == pytest.approx(ref, abs=VALUE_TOL)


def test_quantile_head_network_equals_independent_linprog() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 4), IncrementalQuantileHead())
    net = net.double()
    x = _x(3, 5)
    c = np.full(4, 0.25)  # the mean of the quantiles
    g = lp_gap(net, x, BOX, sense="both", c=c).detach().numpy()
    nb = interval_bounds(net, *BOX).numpy()
    chain = chain_numpy(net, *BOX)  # the head lowered to a ReLU layer + a fixed linear layer
    f = net(x).detach().numpy() @ c
    for i in range(3):
        hi = _linprog_value(chain, nb.lower, nb.upper, x[i].numpy(), c, "max")
        lo = _linprog_value(chain, nb.lower, nb.upper, x[i].numpy(), c, "min")
        assert hi - lo >= -GAP_TOL
        assert g[i] == pytest.approx((hi - f[i]) + (f[i] - lo), abs=VALUE_TOL)


@pytest.mark.parametrize("sense", ["max", "min", "both"])
def test_one_hidden_layer_closed_form(sense: str) -> None:
    """x fixed: zhat_1 is fixed and each z_1j ranges over [relu(zhat), t(zhat)], so with
    w = W_2^T c the gap is sum_j w_j^+ (t_j - relu_j) for "max", w_j^- (...) for "min" and
    |w_j| (...) for "both"."""
    net = random_net(2, [16], n_out=3, seed=11)
    c = np.array([1.0, -2.0, 0.5])
    x = _x(10, 3)
    g = lp_gap(net, x, BOX, sense=sense, c=c).detach().numpy()
    chain = chain_numpy(net, *BOX)
    (w1, b1), (w2, _b2) = chain
    lows, ups = _np_ibp(chain, *BOX)
    w = w2.T @ c
    slack = _triangle_slack(x.numpy() @ w1.T + b1, lows[0], ups[0])
    weight = {"max": np.maximum(w, 0), "min": np.maximum(-w, 0), "both": np.abs(w)}[sense]
    np.testing.assert_allclose(g, slack @ weight, atol=VALUE_TOL)
    assert g.max() > 1e-2


def test_two_hidden_layers_closed_form_when_first_layer_stable() -> None:
    """All first-layer neurons stably active: layer 1 is exact, zhat_2 is fixed by x and the gap
    is the one-hidden-layer closed form on layer 2, with IBP bounds of layer 2 written by hand."""
    net = random_net(2, [6, 10], n_out=1, seed=5)
    with torch.no_grad():
        net[0].bias.fill_(4.0)  # |W_1| row sums over the box stay below 4: all active
    nb = interval_bounds(net, *BOX)
    assert nb.unstable_mask()[0].sum() == 0 and nb.unstable_mask()[1].sum() > 3
    x = _x(10, 4)
    g = lp_gap(net, x, BOX).detach().numpy()
    chain = chain_numpy(net, *BOX)
    (w1, b1), (w2, b2), (w3, _b3) = chain
    lows, ups = _np_ibp(chain, *BOX)
    zhat2 = np.maximum(x.numpy() @ w1.T + b1, 0) @ w2.T + b2
    expected = _triangle_slack(zhat2, lows[1], ups[1]) @ np.maximum(w3[0], 0)
    np.testing.assert_allclose(g, expected, atol=VALUE_TOL)
    assert g.max() > 1e-2


def test_gap_zero_where_relaxation_is_exact() -> None:
    # (a) every neuron stable: a small box around a generic point
    net = random_net(2, [8, 8], n_out=2, seed=2)
    centre = np.array([0.3, -0.2])
    box = (centre - 1e-3, centre + 1e-3)
    assert interval_bounds(net, *box).unstable_count() == 0
    g = lp_gap(net, _x(8, 1, box), box, sense="both")
    assert g.abs().max() < GAP_TOL
    # (b) one hidden layer, W_2^T c <= 0: "max" wants every z_1 small, relu is attainable
    net = random_net(2, [10], seed=3)
    with torch.no_grad():
        net[2].weight.copy_(-net[2].weight.abs())
    x = _x(8, 2)
    assert lp_gap(net, x, BOX, sense="max").abs().max() < GAP_TOL
    assert lp_gap(net, x, BOX, sense="min").min() > 1e-2  # but not for "min"
    # (c) one input at an end of its interval: each zhat_1j sits at l_1j or u_1j (IBP is exact for
    # one input), so t(zhat) = relu(zhat), layer 1 is exact and a one-hidden-layer net has gap 0
    net = random_net(1, [12], seed=4)
    box1 = (np.array([-1.5]), np.array([2.0]))
    ends = torch.tensor([[-1.5], [2.0]], dtype=torch.float64)
    assert lp_gap(net, ends, box1, sense="both").abs().max() < GAP_TOL
    assert lp_gap(net, torch.tensor([[0.25]], dtype=torch.float64), box1, sense="both") > 1e-2


def test_float32_model_matches_float64_and_survives_box_corners() -> None:
    net64 = random_net(2, [20, 20], seed=8)
    net32 = copy.deepcopy(net64).float()
    lo, hi = BOX
    corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
    x = torch.as_tensor(np.vstack([corners, _x(6, 9).numpy()]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no skipped LP: float32 bounds are widened for the LP
        g32 = lp_gap(net32, x.float(), BOX, sense="both")
    assert g32.dtype == torch.float32
    assert (g32 >= -GAP_TOL).all()
    g64 = lp_gap(copy.deepcopy(net32).double(), x, BOX, sense="both")
    np.testing.assert_allclose(g32.detach().numpy(), g64.detach().numpy(), rtol=1e-3, atol=1e-3)


# -- the LP underneath ---------------------------------------------------------------------


def test_highs_duals_satisfy_stationarity_for_both_senses() -> None:
    """The envelope function S relies on cost = A^T row_dual + col_dual for max and min alike."""
    net = random_net(2, [8, 8], n_out=2, seed=6)
    nb = interval_bounds(net, *BOX).numpy()
    chain = chain_numpy(net, *BOX)
    lp = BigMRelaxationLP(chain, nb.lower, nb.upper, *BOX, formulation="triangle")
    lp.fix_input(np.array([0.1, 0.4]))
    for maximize in (True, False):
        lp.set_objective(np.array([1.0, -0.3]), lp.y_cols, maximize)
        sol = lp.solve()
        assert sol.ok
        hl = lp.h.getLp()
        a = sp.csc_matrix(
            (
                np.asarray(hl.a_matrix_.value_),
                np.asarray(hl.a_matrix_.index_),
                np.asarray(hl.a_matrix_.start_),
            ),
            shape=(lp.num_row, lp.num_col),
        )
        cost = np.asarray(hl.col_cost_)
        np.testing.assert_allclose(cost, a.T @ sol.row_dual + sol.col_dual, atol=1e-9)


def test_triangle_formulation_equals_bigm_and_tightening() -> None:
    net = random_net(2, [8, 8, 6], n_out=2, seed=9)
    nb = interval_bounds(net, *BOX).numpy()
    chain = chain_numpy(net, *BOX)
    lps = {
        f: BigMRelaxationLP(chain, nb.lower, nb.upper, *BOX, formulation=f)
        for f in ("bigm", "triangle")
    }
    assert lps["triangle"].num_col < lps["bigm"].num_col
    rng = np.random.default_rng(0)
    x0 = np.array([0.2, 0.7])
    (w1, b1), (w2, b2) = chain[0], chain[1]
    v = w2 @ np.maximum(w1 @ x0 + b1, 0) + b2  # true zhat_2(x0)
    for step in range(2):
        if step == 1:  # tighten layer 2 around zhat_2(x0): half its neurons become stable
            pick = rng.random(v.size) < 0.5
            new_lo = np.where(pick, v - 0.5 * np.abs(v), nb.lower[1])
            new_up = np.where(pick, v + 0.5 * np.abs(v), nb.upper[1])
            for lp in lps.values():
                lp.update_layer_bounds(1, new_lo, new_up)
            lo_now, up_now = lps["triangle"].current_bounds()
            assert ((lo_now[1] >= 0) | (up_now[1] <= 0))[pick].all()
        for box in (BOX, (x0, x0)):
            if step == 1 and box is BOX:
                continue  # the tightened bounds hold at x0 only
            for _ in range(3):
                cost, maximize = rng.normal(size=2), bool(rng.random() < 0.5)
                vals = []
                for lp in lps.values():
                    lp.set_input_box(*box)
                    lp.set_objective(cost, lp.y_cols, maximize)
                    sol = lp.solve()
                    assert sol.ok
                    vals.append(sol.value)
                assert vals[0] == pytest.approx(vals[1], abs=VALUE_TOL)
    with pytest.raises(ValueError, match="formulation must be"):
        BigMRelaxationLP(chain, nb.lower, nb.upper, *BOX, formulation="hull")


def test_greedy_tour_is_a_permutation() -> None:
    pts = np.random.default_rng(0).normal(size=(30, 4))
    for start in (0, 17):
        order = greedy_tour(pts, start)
        assert order[0] == start and sorted(order) == list(range(30))
    assert list(greedy_tour(np.zeros((1, 3)))) == [0]


# -- gradients -----------------------------------------------------------------------------


def _perturbed(net: nn.Module, dirs: list[torch.Tensor], t: float) -> nn.Module:
    m = copy.deepcopy(net)
    with torch.no_grad():
        for p, d in zip(m.parameters(), dirs):
            p.add_(t * d)
    return m


def _directional(
    net: nn.Module, x: torch.Tensor, sense: str, bounds, derivative: str, fd_bounds, seed: int
) -> list[tuple[float, float, float, float]]:
    """(dual gradient . d, central FD, forward FD, backward FD) for random directions d."""
    params = list(net.parameters())
    g = lp_gap(net, x, BOX, sense=sense, bounds=bounds, derivative=derivative).sum()
    grads = torch.autograd.grad(g, params)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_DIRECTIONS):
        dirs = [torch.as_tensor(rng.normal(size=p.shape)) for p in params]
        analytic = float(sum((gr * d).sum() for gr, d in zip(grads, dirs)))

        def value(t: float, dirs=dirs) -> float:
            m = _perturbed(net, dirs, t)
            g = lp_gap(m, x, BOX, sense=sense, bounds=fd_bounds, derivative=derivative)
            return float(g.detach().sum())

        v0, vp, vm = value(0.0), value(FD_STEP), value(-FD_STEP)
        out.append((analytic, (vp - vm) / (2 * FD_STEP), (vp - v0) / FD_STEP, (v0 - vm) / FD_STEP))
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= FD_RTOL * (1.0 + abs(b))


@pytest.mark.parametrize(
    ("sense", "method", "widths"),
    [
        ("max", "ibp", [8, 8]),
        ("min", "ibp", [6, 6, 6]),
        ("both", "crown", [6, 6, 6]),
        ("max", "crown", [10]),
    ],
)
def test_total_gradient_matches_finite_differences(sense: str, method: str, widths: list[int]):
    """ "total": bounds recomputed (IBP/CROWN of the perturbed net) in the finite differences."""
    net = random_net(2, widths, seed=len(widths) + 20)
    res = _directional(net, _x(3, 1), sense, method, "total", method, seed=0)
    agree = sum(_close(a, c) for a, c, _, _ in res)
    assert agree >= N_DIRECTIONS - 1, res
    assert any(abs(a) > 1e-3 for a, *_ in res)


@pytest.mark.parametrize("sense", ["max", "min", "both"])
def test_direct_gradient_matches_finite_differences_at_generic_bounds(sense: str) -> None:
    """ "direct" with fixed bounds (looser than IBP, so the LP optimum is a generic vertex): the
    dual gradient is the derivative of the re-solved LP value with l, u held fixed."""
    net = random_net(2, [6, 6, 6], seed=30)
    nb = interval_bounds(net, *BOX).numpy()
    loose = NeuronBounds([a - 0.05 for a in nb.lower], [a + 0.05 for a in nb.upper], "ibp", *BOX)
    res = _directional(net, _x(3, 2), sense, loose, "direct", loose, seed=1)
    agree = sum(_close(a, c) for a, c, _, _ in res)
    assert agree >= N_DIRECTIONS - 1, res


@pytest.mark.parametrize(("sense", "method"), [("max", "ibp"), ("min", "crown")])
def test_direct_gradient_with_ibp_bounds_is_a_one_sided_derivative(sense: str, method: str):
    """ "direct" with the net's own IBP/CROWN bounds held fixed. The LP optimum often puts a
    pre-activation exactly at its bound (its inputs at their interval corners), so the value
    with l, u frozen has a kink at the current weights: the dual gradient must then match the
    forward or the backward difference (both, where the point is smooth)."""
    net = random_net(2, [6, 6, 6], seed=31)
    fixed = (interval_bounds if method == "ibp" else crown_bounds)(net, *BOX).numpy()
    res = _directional(net, _x(3, 3), sense, method, "direct", fixed, seed=2)
    agree = sum(_close(a, c) or _close(a, f) or _close(a, b) for a, c, f, b in res)
    assert agree >= N_DIRECTIONS - 1, res


def test_direct_and_total_differ_and_total_through_given_tensor_bounds() -> None:
    net = random_net(2, [8, 8], seed=12)
    x = _x(4, 5)
    grads = {}
    for derivative in ("direct", "total"):
        net.zero_grad()
        lp_gap(net, x, BOX, derivative=derivative).sum().backward()
        grads[derivative] = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert (grads["direct"] - grads["total"]).abs().max() > 1e-3
    # tensor NeuronBounds (with graph) passed in: the same total gradient as bounds="ibp"
    net.zero_grad()
    lp_gap(net, x, BOX, bounds=interval_bounds(net, *BOX), derivative="total").sum().backward()
    given = torch.cat([p.grad.flatten() for p in net.parameters()])
    torch.testing.assert_close(given, grads["total"])


# -- the penalty ---------------------------------------------------------------------------


def test_penalty_subsample_value_metrics_and_reuse() -> None:
    net = random_net(2, [10, 10], seed=13)
    pen = LPGapPenalty(net, BOX, weight=0.5, sense="max", subsample=8, seed=3)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(3)  # the penalty's subsample stream
    for step in range(3):
        x = _x(20, 100 + step)
        idx = torch.randperm(20, generator=gen)[:8]
        ref = lp_gap(net, x[idx], BOX, sense="max")  # fresh LP, cold start
        val = pen(x)  # reused LP, reloaded with new weights, warm start
        assert val.dim() == 0
        assert float(val.detach()) == pytest.approx(0.5 * float(ref.detach().mean()), abs=VALUE_TOL)
        assert pen.metrics()["mean_gap"] == pytest.approx(float(ref.detach().mean()), abs=VALUE_TOL)
        opt.zero_grad()
        val.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
        opt.step()
    m = pen.metrics()
    assert m["lps_solved"] == 24 and m["skipped"] == 0
    # precomputed bounds of the same method give the same value; of another method, an error
    x = _x(5, 1)
    pen_all = LPGapPenalty(net, BOX, subsample=None, bounds="ibp")
    assert float(pen_all(x, bounds=interval_bounds(net, *BOX)).detach()) == pytest.approx(
        float(pen_all(x).detach()), abs=VALUE_TOL
    )
    mismatch = "uses 'ibp' bounds but was given bounds computed with 'crown'"
    with pytest.raises(ValueError, match=mismatch):
        pen_all(x, bounds=crown_bounds(net, *BOX))
    # what RelaxationRegularizer reads
    assert pen_all.model is net and pen_all.bounds_method == "ibp"
    np.testing.assert_array_equal(pen_all.input_bounds[0], BOX[0])


def test_failed_lps_are_skipped_with_a_warning_and_counted() -> None:
    net = random_net(2, [8, 8], seed=14)
    nb = interval_bounds(net, *BOX).numpy()
    # inconsistent bounds: one layer-2 neuron with l > u makes every per-sample LP infeasible
    lower = [nb.lower[0], nb.lower[1].copy()]
    upper = [nb.upper[0], nb.upper[1].copy()]
    lower[1][0], upper[1][0] = 1.0, 0.5
    bad = NeuronBounds(lower, upper, "broken", *BOX)
    x = _x(4, 2)
    with pytest.warns(RuntimeWarning, match=r"4 of 4 per-sample LPs .* not solved to optimality"):
        g = lp_gap(net, x, BOX, bounds=bad)
    assert torch.equal(g, torch.zeros(4, dtype=torch.float64))
    # some samples outside the box: their first-layer pre-activations leave [l_1, u_1]
    pen = LPGapPenalty(net, BOX, subsample=None, sense="both")
    x_mixed = torch.cat([x, torch.tensor([[5.0, 5.0], [-9.0, 0.0]], dtype=torch.float64)])
    with pytest.warns(RuntimeWarning, match="outside"):
        val = pen(x_mixed)
    val.backward()  # training goes on: finite value and gradients
    assert torch.isfinite(val)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = lp_gap(net, x, BOX, sense="both")
    assert float(val.detach()) == pytest.approx(float(ref.detach().sum()) / 6, abs=VALUE_TOL)
    assert pen.metrics()["mean_gap"] == pytest.approx(float(ref.detach().mean()), abs=VALUE_TOL)
    assert pen.metrics()["skipped"] == 4  # 2 samples x 2 senses
    assert pen.metrics()["lps_solved"] == 8
    # non-finite bounds: everything skipped, still no NaN
    nan_b = NeuronBounds([nb.lower[0], nb.lower[1] * np.nan], nb.upper, "nan", *BOX)
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        g = lp_gap(net, x, BOX, bounds=nan_b)
    assert torch.equal(g, torch.zeros(4, dtype=torch.float64))


def test_bad_input_gives_clear_errors() -> None:
    net = random_net(2, [6, 6], n_out=2, seed=15)
    x = _x(3, 0)
    with pytest.raises(
        ValueError, match=r"x must be a batch of shape \(B, 2\).*got shape \(3, 3\)"
    ):
        lp_gap(net, torch.zeros(3, 3, dtype=torch.float64), BOX)
    with pytest.raises(ValueError, match=r"shape \(B, 2\).*got shape \(2,\)"):
        lp_gap(net, torch.zeros(2, dtype=torch.float64), BOX)
    with pytest.raises(ValueError, match="x contains NaN"):
        lp_gap(net, torch.full((1, 2), float("nan"), dtype=torch.float64), BOX)
    with pytest.raises(
        ValueError, match="sense must be one of 'max', 'min', 'both'; got 'maximum'"
    ):
        lp_gap(net, x, BOX, sense="maximum")
    with pytest.raises(
        ValueError, match="derivative must be one of 'total', 'direct'; got 'exact'"
    ):
        lp_gap(net, x, BOX, derivative="exact")
    with pytest.raises(ValueError, match="bounds must be 'ibp', 'crown' or a NeuronBounds"):
        lp_gap(net, x, BOX, bounds="lp")
    with pytest.raises(ValueError, match="c has 3 entries but the network has 2 outputs"):
        lp_gap(net, x, BOX, c=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="inverted"):
        lp_gap(net, x, (BOX[1], BOX[0]))
    other = interval_bounds(random_net(2, [5, 6], seed=0), *BOX)
    with pytest.raises(BoundsMismatchError, match="another network"):
        lp_gap(net, x, BOX, bounds=other)
    with pytest.raises(ValueError, match="subsample must be a positive whole number"):
        LPGapPenalty(net, BOX, subsample=0)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        LPGapPenalty(net, BOX, weight=-1.0)
    with pytest.raises(ValueError, match="sense must be one of"):
        LPGapPenalty(net, BOX, sense="up")
    pen = LPGapPenalty(net, BOX)
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        pen(torch.zeros(4, 5))
    with pytest.raises(TypeError, match="bounds must be a NeuronBounds or None"):
        pen(x, bounds="ibp")


def test_basis_sharing_of_the_limits_benchmark_is_exact() -> None:
    """``benchmarks/bench_lp_gap.py --models``: a sample the anchor's optimal basis is primal
    feasible for gets exactly HiGHS's optimum from the basis map (its own solve agrees)."""
    bench = load_script("benchmarks/bench_lp_gap.py")
    net = random_net(2, [12, 12], seed=3)
    x = np.random.default_rng(0).uniform(BOX[0], BOX[1], (24, 2))
    lp, zlo, zhi, _ = bench.reduced_lp(net, BOX, x)
    arrays = bench.lp_arrays(lp)
    lp.set_input_box(zlo[0], zhi[0])
    anchor = lp.solve()
    ok, v = bench.BasisMap(lp, *arrays).evaluate(zlo, zhi)
    assert ok[0]
    np.testing.assert_allclose(v[0], anchor.col_value, atol=1e-9)
    assert 1 < ok.sum() < x.shape[0]  # shared by some samples, not all
    for i in range(x.shape[0]):
        lp.set_input_box(zlo[i], zhi[i])
        sol = lp.solve()
        if ok[i]:
            assert v[i][lp.y_cols].sum() == pytest.approx(sol.value, abs=1e-9)
    m = bench.lp_limits(net, BOX, 16, seed=1)
    assert 1 <= m["cover"] <= 16 and m["max_err"] < 1e-9
    assert m["alt_err"] < 1e-9 and 0 <= m["certified"] <= 16


def _per_sample_optima(bench, net: nn.Module, x: np.ndarray) -> tuple:
    """The limits benchmark's reduced per-sample LP (sense max) at the rows of ``x`` and HiGHS's
    optimum of each: ``(lp, zlo, zhi, optima)``."""
    lp, zlo, zhi, _ = bench.reduced_lp(net, BOX, x)
    optima = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        lp.set_input_box(zlo[i], zhi[i])
        sol = lp.solve()
        assert sol.ok
        optima[i] = sol.value
    return lp, zlo, zhi, optima


def test_primal_dual_alternation_of_the_limits_benchmark_is_a_certificate() -> None:
    """``benchmarks/bench_lp_gap.py``'s batched primal-dual alternation: every sample's dual
    value is a lower bound on HiGHS's optimum of the same per-sample LP, and a sample it
    certifies has exactly that optimum (no solver involved)."""
    bench = load_script("benchmarks/bench_lp_gap.py")
    net = random_net(2, [12, 12, 12], seed=2)
    x = np.random.default_rng(2).uniform(BOX[0], BOX[1], (40, 2))
    lp, zlo, zhi, highs = _per_sample_optima(bench, net, x)  # sense max of the output
    cert, dual, iters = bench.primal_dual_alternation(
        lp.chain, [li.lower for li in lp.layers], [li.upper for li in lp.layers], zlo, zhi,
        -np.ones(1))
    assert np.all(-dual >= highs - 1e-9)  # min of -y: -dual bounds max y from above
    assert 0 < cert.sum() < x.shape[0]  # certifies some samples, not every one
    np.testing.assert_allclose(-dual[cert], highs[cert], rtol=0, atol=1e-9)
    assert np.all(iters[cert] >= 1) and np.all(iters[~cert] == 0)


def test_block_lp_of_the_limits_benchmark_separates_into_the_per_sample_optima() -> None:
    """``benchmarks/bench_lp_gap.py --block``: the block-diagonal LP of K samples has, copy by
    copy, each sample's own optimum (HiGHS on the per-sample LP), and its value is their sum;
    the side-by-side run reports both ways agreeing."""
    import highspy

    bench = load_script("benchmarks/bench_lp_gap.py")
    net = random_net(2, [10, 10, 10], seed=4)
    x = np.random.default_rng(4).uniform(BOX[0], BOX[1], (6, 2))
    lp, zlo, zhi, own = _per_sample_optima(bench, net, x)  # sense max of the output
    assert np.ptp(own) > 1e-3  # the samples' optima differ
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(bench.block_lp(lp, zlo, zhi))
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    col = np.asarray(h.getSolution().col_value).reshape(x.shape[0], -1)
    np.testing.assert_allclose(col[:, lp.y_cols[0]], own, rtol=0, atol=1e-9)
    assert h.getObjectiveValue() == pytest.approx(own.sum(), abs=1e-8)
    m = bench.block_vs_sequential(net, BOX, calls=3, k=4, seed=0)
    assert m["max_err"] < 1e-8 and m["seq_us"] > 0 and m["block_us"] > 0


def test_a_stalled_lp_is_cut_off_retried_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-sample LPs stop at the iteration cap (a stalled simplex once held a training run
    for minutes): a sample whose LP hits it twice (warm, then cold) counts as gap 0 with a
    warning; at the default cap every LP solves and the gaps are the exact ones."""
    import omlt_relax.lp.gap as gap_mod

    net = random_net(2, [10, 10], seed=7)
    x = _x(6, 1)
    exact = LPGapPenalty(net, BOX, subsample=None)
    want = exact.engine.gaps(x).detach()
    assert exact.metrics()["skipped"] == 0 and float(want.abs().sum()) > 0
    monkeypatch.setattr(gap_mod, "ITERATION_LIMIT_FACTOR", 1e-9)  # one iteration per solve
    capped = LPGapPenalty(net, BOX, subsample=None)
    with pytest.warns(RuntimeWarning, match="Iteration limit reached"):
        got = capped.engine.gaps(x).detach()
    skipped = ~capped.engine.last_ok
    assert skipped.any() and capped.metrics()["skipped"] == skipped.sum()
    assert torch.all(got[torch.as_tensor(skipped)] == 0)
    ok = torch.as_tensor(~skipped)
    torch.testing.assert_close(got[ok], want[ok])
    lp = capped.engine.lps["max"]
    assert lp.h.getOptionValue("simplex_iteration_limit")[1] == 1
    with pytest.raises(ValueError, match="iteration_limit_factor must be positive"):
        BigMRelaxationLP([(np.ones((1, 2)), np.zeros(1))], [], [], np.zeros(2), np.ones(2),
                         iteration_limit_factor=0.0)
