"""OBBT (LP and MILP) with real HiGHS solves: soundness by sampling, tightness, errors."""

from __future__ import annotations

import copy
import itertools
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from omlt_relax.bounds import chain_numpy, sound_bounds
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.network import UnsupportedNetworkError
from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds
from omlt_relax.quantile import IncrementalQuantileHead
from omlt_relax.train import build_model

N_SAMPLES = 10_000
#: slack allowed when comparing two bound sets computed through different LPs (solver noise)
COMPARE_TOL = 1e-6
#: strict tightening: some neuron must gain at least this much over CROWN
MIN_GAIN = 1e-6
#: where the LP is exact, the rigorous bound may miss the true extreme by solver noise only
#: (HiGHS's dual feasibility tolerance 1e-7 times column ranges)
EDGE_TOL = 1e-6


def make_net(seed: int, n_in: int, widths: list[int], n_out: int = 1) -> nn.Sequential:
    return build_model(n_in, widths, n_out, seed)


def make_box(seed: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-2.0, 0.5, n_in)
    return lo, lo + rng.uniform(0.5, 3.0, n_in)


def sample_inputs(lo: np.ndarray, hi: np.ndarray, seed: int) -> np.ndarray:
    """Uniform samples, every corner of the box, and samples on its faces."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, size=(N_SAMPLES, lo.size))
    corners = np.array(list(itertools.product(*zip(lo, hi))))
    faces = rng.uniform(lo, hi, size=(2000, lo.size))
    idx = rng.integers(0, lo.size, 2000)
    faces[np.arange(2000), idx] = np.where(rng.random(2000) < 0.5, lo[idx], hi[idx])
    return np.vstack([x, corners, faces])


def preactivations(chain: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> list[np.ndarray]:
    """Float64 hidden pre-activations ``(B, n_k)`` of the affine chain."""
    out = []
    z = x
    for w, b in chain[:-1]:
        zhat = z @ w.T + b
        out.append(zhat)
        z = np.maximum(zhat, 0.0)
    return out


def assert_sound(model: nn.Module, bounds: NeuronBounds, lo: np.ndarray, hi: np.ndarray) -> None:
    chain = chain_numpy(model, lo, hi)
    x = sample_inputs(lo, hi, seed=123)
    # the chain is the model (guards the sampling itself)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(torch.as_tensor(x)).numpy()
    z = x
    for k, (w, b) in enumerate(chain):
        z = z @ w.T + b
        if k < len(chain) - 1:
            z = np.maximum(z, 0.0)
    np.testing.assert_allclose(z, ref, rtol=1e-9, atol=1e-9)
    for k, zhat in enumerate(preactivations(chain, x)):
        lo_k, up_k = bounds.lower[k], bounds.upper[k]
        assert np.all(zhat >= lo_k), f"layer {k}: a sample is below the lower bound"
        assert np.all(zhat <= up_k), f"layer {k}: a sample is above the upper bound"


def assert_not_looser(tight: NeuronBounds, loose: NeuronBounds, tol: float = 0.0) -> None:
    for a_lo, a_up, b_lo, b_up in zip(tight.lower, tight.upper, loose.lower, loose.upper):
        assert np.all(a_lo >= b_lo - tol)
        assert np.all(a_up <= b_up + tol)


NETS = [
    # (seed, inputs, hidden widths)
    (0, 1, [8]),
    (1, 2, [30]),
    (2, 1, [12, 10]),
    (3, 2, [20, 20]),
    (4, 3, [30, 25]),
    (5, 4, [16, 16]),
    (6, 2, [10, 10, 10]),
    (7, 3, [20, 15, 12]),
    (8, 4, [30, 30, 30]),
    (9, 2, [24, 30, 16]),
]


@pytest.mark.parametrize(("seed", "n_in", "widths"), NETS)
def test_lp_obbt_sound_and_never_looser_than_crown(seed: int, n_in: int, widths: list[int]) -> None:
    model = make_net(seed, n_in, widths, n_out=2)
    lo, hi = make_box(seed, n_in)
    crown = sound_bounds(model, lo, hi, "crown")
    obbt = obbt_bounds(model, lo, hi)
    assert obbt.method == "lp"
    assert obbt.widths == tuple(widths)
    for a in [*obbt.lower, *obbt.upper]:
        assert isinstance(a, np.ndarray)
        assert a.dtype == np.float64
    assert all(np.all(lo_k <= up_k) for lo_k, up_k in zip(obbt.lower, obbt.upper))
    assert_not_looser(obbt, crown)
    assert obbt.unstable_count() <= crown.unstable_count()
    assert_sound(model, obbt, lo, hi)
    # the rigorous dual bound is within solver tolerance of HiGHS's reported optimum
    assert abs(obbt.meta["max_lp_dual_slack"]) < 1e-6
    assert obbt.meta["lp_not_optimal"] == 0
    if len(widths) == 1:  # nothing to solve: layer 1 is exact by interval arithmetic
        assert obbt.meta["lp_solves"] == 0


@pytest.mark.parametrize(("seed", "n_in", "widths"), [n for n in NETS if len(n[2]) >= 2])
def test_lp_obbt_strictly_tighter_on_deeper_nets(seed: int, n_in: int, widths: list[int]) -> None:
    model = make_net(seed, n_in, widths)
    lo, hi = make_box(seed, n_in)
    crown = sound_bounds(model, lo, hi, "crown")
    obbt = obbt_bounds(model, lo, hi)
    gain = max(
        max(float((o_lo - c_lo).max()), float((c_up - o_up).max()))
        for o_lo, o_up, c_lo, c_up in zip(obbt.lower[1:], obbt.upper[1:], crown.lower[1:],
                                          crown.upper[1:])
    )
    assert gain > MIN_GAIN


def test_first_layer_is_left_to_interval_arithmetic() -> None:
    model = make_net(3, 2, [20, 20])
    lo, hi = make_box(3, 2)
    crown = sound_bounds(model, lo, hi, "crown")
    obbt = obbt_bounds(model, lo, hi)
    np.testing.assert_array_equal(obbt.lower[0], crown.lower[0])
    np.testing.assert_array_equal(obbt.upper[0], crown.upper[0])


@pytest.mark.parametrize(("seed", "n_in", "widths"), [(2, 1, [12, 10]), (6, 2, [10, 10, 10])])
def test_milp_at_most_as_wide_as_lp(seed: int, n_in: int, widths: list[int]) -> None:
    model = make_net(seed, n_in, widths)
    lo, hi = make_box(seed, n_in)
    lp = obbt_bounds(model, lo, hi, method="lp")
    milp = obbt_bounds(model, lo, hi, method="milp", time_limit=20.0)
    assert milp.method == "milp"
    assert milp.meta["milp_solves"] > 0
    assert_sound(model, milp, lo, hi)
    assert_not_looser(milp, sound_bounds(model, lo, hi, "crown"))
    assert milp.unstable_count() <= lp.unstable_count()
    for m_lo, m_up, l_lo, l_up in zip(milp.lower, milp.upper, lp.lower, lp.upper):
        assert np.all(m_up <= l_up + COMPARE_TOL)
        # lower bounds of stably inactive neurons are not tightened (nothing uses them)
        live = m_up > 0
        assert np.all(m_lo[live] >= l_lo[live] - COMPARE_TOL)


def test_milp_with_tiny_time_limit_is_sound() -> None:
    model = make_net(8, 4, [30, 30, 30])
    lo, hi = make_box(8, 4)
    t0 = time.perf_counter()
    milp = obbt_bounds(model, lo, hi, method="milp", time_limit=1.5)
    wall = time.perf_counter() - t0
    assert wall < 1.5 + 2.0
    assert_sound(model, milp, lo, hi)
    assert_not_looser(milp, sound_bounds(model, lo, hi, "crown"))
    meta = milp.meta
    stopped = meta["milp_not_optimal"] + meta["skipped_for_time"] + meta["lp_not_optimal"]
    assert stopped > 0, "the time limit was meant to stop some solves early"


def test_tiny_time_limit_lp_is_sound() -> None:
    model = make_net(9, 2, [60, 60, 60])
    lo, hi = make_box(9, 2)
    obbt = obbt_bounds(model, lo, hi, time_limit=0.02)
    assert_sound(model, obbt, lo, hi)
    assert_not_looser(obbt, sound_bounds(model, lo, hi, "crown"))
    assert obbt.meta["lp_not_optimal"] + obbt.meta["skipped_for_time"] > 0


def test_zero_time_limit_returns_the_start() -> None:
    model = make_net(6, 2, [10, 10, 10])
    lo, hi = make_box(6, 2)
    crown = sound_bounds(model, lo, hi, "crown")
    for method in ("lp", "milp"):
        obbt = obbt_bounds(model, (lo, hi), method=method, time_limit=0)
        for a, b in zip([*obbt.lower, *obbt.upper], [*crown.lower, *crown.upper]):
            np.testing.assert_array_equal(a, b)


def _exact_extremes(chain: list[tuple[np.ndarray, np.ndarray]], lo: np.ndarray, hi: np.ndarray,
                    layer: int) -> tuple[list[Fraction], list[Fraction]]:
    """Exact (rational) min and max of layer ``layer``'s pre-activations over the box corners."""
    lows: list[Fraction] | None = None
    highs: list[Fraction] | None = None
    for corner in itertools.product(*zip(lo, hi)):
        z = [Fraction(float(v)) for v in corner]
        for k in range(layer + 1):
            w, b = chain[k]
            zhat = [
                sum((Fraction(float(w[i, j])) * z[j] for j in range(len(z))), Fraction(0))
                + Fraction(float(b[i]))
                for i in range(w.shape[0])
            ]
            z = [max(v, Fraction(0)) for v in zhat]
        lows = zhat if lows is None else [min(a, c) for a, c in zip(lows, zhat)]
        highs = zhat if highs is None else [max(a, c) for a, c in zip(highs, zhat)]
    assert lows is not None and highs is not None
    return lows, highs


def test_float64_soundness_at_the_edge() -> None:
    """Layer 1 stably active or inactive: layer 2 is affine in x, its extremes sit at corners,
    the LP is exact, and the bound must contain the exact rational extreme yet stay close."""
    torch.manual_seed(11)
    l1, l2 = nn.Linear(3, 6), nn.Linear(6, 5)
    with torch.no_grad():
        l1.bias.copy_(torch.tensor([9.0, 8.5, 7.3, -9.0, 11.1, -8.2]))  # |W1 x| < 2 on the box
        l1.weight.mul_(1.7)
        l2.weight.mul_(3.3)
    model = nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), nn.Linear(5, 1))
    lo = np.array([-1.1, -0.3, 0.2])
    hi = np.array([0.7, 1.3, 1.9])
    with torch.no_grad():  # centre layer 2 on the box: unstable, one neuron stably active
        centre = torch.as_tensor((lo + hi) / 2, dtype=torch.float32)
        l2.bias.sub_(model[:3](centre) - torch.tensor([0.0, 0.1, -0.2, 0.3, 40.0]))
    chain = chain_numpy(model, lo, hi)
    # start from IBP, which is loose on the composed affine map, so the LP sets the bound
    ibp = sound_bounds(model, lo, hi, "ibp")
    obbt = obbt_bounds(model, lo, hi, start="ibp")
    assert obbt.meta["lp_solves"] > 0
    lows, highs = _exact_extremes(chain, lo, hi, layer=1)
    assert lows[4] > 0  # the stably active one
    for j in range(5):
        up, low = obbt.upper[1][j], obbt.lower[1][j]
        assert Fraction(float(low)) <= lows[j]
        assert float(lows[j]) - low < EDGE_TOL * (1 + abs(float(lows[j])))
        assert Fraction(float(up)) >= highs[j]
        assert up - float(highs[j]) < EDGE_TOL * (1 + abs(float(highs[j])))
        assert up <= ibp.upper[1][j]


def test_quantile_head() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 6),
        IncrementalQuantileHead(),
    )
    lo, hi = np.array([-1.0, 0.0]), np.array([2.0, 1.5])
    crown = sound_bounds(model, lo, hi, "crown")
    obbt = obbt_bounds(model, lo, hi)
    assert obbt.widths == (16, 12, 6)
    assert obbt.lower[2][0] >= 0  # the shifted o_0 is stably active
    assert_not_looser(obbt, crown)
    assert_sound(model, obbt, lo, hi)
    milp = obbt_bounds(model, lo, hi, method="milp", time_limit=3.0)
    assert_sound(model, milp, lo, hi)


def test_start_from_given_bounds_and_serialization(capsys: pytest.CaptureFixture[str]) -> None:
    model = make_net(3, 2, [20, 20])
    lo, hi = make_box(3, 2)
    ibp = sound_bounds(model, lo, hi, "ibp")
    crown = sound_bounds(model, lo, hi, "crown")
    obbt = obbt_bounds(model, lo, hi, start=ibp, progress=True)
    assert "OBBT (lp)" in capsys.readouterr().err
    assert_not_looser(obbt, crown)
    assert_sound(model, obbt, lo, hi)
    back = NeuronBounds.from_json(obbt.to_json())
    for a, b in zip([*back.lower, *back.upper], [*obbt.lower, *obbt.upper]):
        np.testing.assert_array_equal(a, b)
    assert back.meta["lp_solves"] == obbt.meta["lp_solves"]


def test_network_without_hidden_layers() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    obbt = obbt_bounds(model, np.zeros(3), np.ones(3))
    assert obbt.widths == ()
    assert obbt.unstable_count() == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lb": [1.0, 0.0], "ub": [0.0, 1.0]}, ValueError, "inverted at input 0"),
        ({"lb": [0.0, float("nan")], "ub": [1.0, 1.0]}, ValueError, "not finite"),
        ({"lb": [0.0, 0.0, 0.0], "ub": [1.0, 1.0, 1.0]}, ValueError, "network has 2 inputs"),
        ({"lb": [0.0, 0.0], "ub": None}, ValueError, "input bounds are missing"),
        ({"method": "sdp"}, ValueError, "unknown OBBT method 'sdp'"),
        ({"time_limit": -1.0}, ValueError, "time_limit must be a non-negative"),
        ({"time_limit": float("nan")}, ValueError, "time_limit must be a non-negative"),
        ({"time_limit": "10"}, ValueError, "time_limit must be a non-negative"),
        ({"start": "alpha-crown"}, ValueError, "unknown start 'alpha-crown'"),
    ],
)
def test_bad_input(kwargs: dict, error: type[Exception], match: str) -> None:
    model = make_net(0, 2, [5, 5])
    args = {"lb": [0.0, 0.0], "ub": [1.0, 1.0], **kwargs}
    with pytest.raises(error, match=match):
        obbt_bounds(model, **args)


def test_unsupported_layers() -> None:
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    with pytest.raises(UnsupportedNetworkError, match=r"module 1 \(Tanh\) is not supported"):
        obbt_bounds(model, [0.0, 0.0], [1.0, 1.0])


def test_start_bounds_of_another_network() -> None:
    model = make_net(0, 2, [5, 5])
    other = sound_bounds(make_net(0, 2, [5, 6]), [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(BoundsMismatchError, match="belong to another network"):
        obbt_bounds(model, [0.0, 0.0], [1.0, 1.0], start=other)
    smaller_box = sound_bounds(model, [0.0, 0.0], [0.5, 0.5])
    with pytest.raises(BoundsMismatchError, match="does not contain the requested box"):
        obbt_bounds(model, [0.0, 0.0], [1.0, 1.0], start=smaller_box)


def test_dual_bound_is_valid_for_any_multipliers() -> None:
    """Weak duality: the bound holds for arbitrary (even wrong) multipliers, and is tight for
    HiGHS's optimal ones. This is what makes LP-OBBT sound regardless of solver tolerances."""
    import highspy

    from omlt_relax.bounds.obbt import _LPData
    from omlt_relax.lp.relaxation import BigMRelaxationLP

    model = make_net(7, 3, [20, 15, 12])
    lo, hi = make_box(7, 3)
    crown = sound_bounds(model, lo, hi)
    chain = chain_numpy(model, lo, hi)
    lp = BigMRelaxationLP(chain[:3], crown.lower[:2], crown.upper[:2], lo, hi)
    data = _LPData.from_lp(lp)
    rng = np.random.default_rng(0)
    lp.h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    for j in range(4):
        for sign in (-1.0, 1.0):
            col = int(lp.y_cols[j])
            cost = np.zeros(lp.num_col)
            cost[col] = sign
            lp.h.changeColsCost(lp.num_col, np.arange(lp.num_col, dtype=np.int32), cost)
            lp.h.run()
            value = lp.h.getInfo().objective_function_value
            duals = np.asarray(lp.h.getSolution().row_dual)
            tight = data.lower_bound(cost, duals)
            assert tight <= value + 1e-9
            assert value - tight < 1e-7
            for scale in (1e-6, 1e-2, 1.0):
                noisy = duals + scale * rng.standard_normal(duals.size)
                assert data.lower_bound(cost, noisy) <= value + 1e-9
            assert data.lower_bound(cost, np.zeros_like(duals)) <= value + 1e-9


def test_per_solve_time_limit_counts_from_now_not_from_the_first_solve() -> None:
    """HiGHS compares ``time_limit`` with the object's cumulative run time: a budget of s
    seconds for the next LP must be s seconds more than the time already spent, or every LP
    after the first s seconds of a layer would stop at once (bounds sound but left loose)."""
    import highspy

    from omlt_relax.bounds.obbt import _run
    from omlt_relax.lp.relaxation import BigMRelaxationLP

    net = build_model(2, (30, 30), 1, seed=2)
    lo, hi = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
    nb = sound_bounds(net, lo, hi, "ibp")
    lp = BigMRelaxationLP(chain_numpy(net, lo, hi), nb.lower, nb.upper, lo, hi)
    cols, prev = lp.layers[1].zhat, []
    budget = 0.02
    while lp.h.getRunTime() <= 2 * budget:  # spend more than the budget on earlier solves
        lp.h.clearSolver()
        assert _run(lp.h, cols, 0, 1.0, prev, 1e30) == highspy.HighsModelStatus.kOptimal
    lp.h.clearSolver()
    assert _run(lp.h, cols, 1, -1.0, prev, budget) == highspy.HighsModelStatus.kOptimal


def test_lp_obbt_iteration_cap_leaves_sound_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """At an absurdly low iteration cap the LPs stop early: counted, retried, and the neurons
    keep sound (starting) bounds; at the default cap none stops."""
    import omlt_relax.bounds.obbt as obbt_mod

    net = build_model(2, (20, 20, 20), 1, seed=4)
    lo, hi = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
    full = obbt_bounds(net, lo, hi, method="lp")
    assert full.meta["lp_not_optimal"] == 0
    monkeypatch.setattr(obbt_mod, "ITERATION_LIMIT_FACTOR", 1e-9)
    capped = obbt_bounds(net, lo, hi, method="lp")
    assert capped.meta["statuses"].get("lp: Iteration limit reached", 0) > 0
    x = torch.as_tensor(np.random.default_rng(0).uniform(lo, hi, (4000, 2)))
    z = x
    for k, lin in enumerate(m for m in net.double() if isinstance(m, nn.Linear)):
        if k == len(capped.lower):
            break
        zhat = lin(z).detach().numpy()
        assert np.all(zhat >= capped.lower[k]) and np.all(zhat <= capped.upper[k])
        assert np.all(capped.lower[k] <= full.lower[k] + 1e-12)
        z = torch.relu(lin(z))
