"""Linear regions of a ReLU network and the local search over them (omlt_relax.linear_regions),
checked against float64 forward passes and, for the search's end point, against the MILP."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_net

from omlt_relax import export_onnx, load_onnx
from omlt_relax.chain import forward_hidden, probe_inputs
from omlt_relax.fuzz import model_chain
from omlt_relax.linear_regions import (
    activation_pattern,
    descend_regions,
    region_map,
    region_optimum,
)
from omlt_relax.optimize import solve_milp

LO, HI = np.full(2, -2.0), np.full(2, 2.0)


def _f(chain, x):
    return forward_hidden(chain, np.atleast_2d(x))[-1][:, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_map_is_the_network_on_its_region(seed):
    chain = model_chain(random_net(3, [10, 8, 6], seed=seed))
    rng = np.random.default_rng(seed)
    lo, hi = np.full(3, -1.5), np.full(3, 1.5)
    for x in lo + (hi - lo) * rng.random((20, 3)):
        hidden, (m_out, c_out) = region_map(chain, activation_pattern(chain, x))
        zs = forward_hidden(chain, x[None, :])
        for (m, c), z in zip(hidden, zs[:-1]):
            np.testing.assert_allclose(m @ x + c, z[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(m_out @ x + c_out, zs[-1][0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("sense", ["min", "max"])
def test_region_optimum_is_in_its_region_and_beats_every_sample_of_it(sense):
    chain = model_chain(random_net(2, [12, 12], seed=3))
    xs = probe_inputs(LO, HI, 20000, 4)
    x0 = xs[17]
    pattern = activation_pattern(chain, x0)
    x = region_optimum(chain, pattern, LO, HI, sense)
    assert x is not None and np.all(x >= LO) and np.all(x <= HI)
    # the optimum sits in the closure of the region: every neuron on its side, up to rounding
    for z, s in zip(forward_hidden(chain, x[None, :])[:-1], pattern):
        assert np.all(np.where(s, z[0], -z[0]) >= -1e-9)
    same = np.array([all(np.array_equal(a, b)
                         for a, b in zip(activation_pattern(chain, p), pattern)) for p in xs])
    vals = _f(chain, xs[same])
    assert same.sum() >= 1
    if sense == "min":
        assert _f(chain, x)[0] <= vals.min() + 1e-9
    else:
        assert _f(chain, x)[0] >= vals.max() - 1e-9


def test_an_empty_region_has_no_optimum():
    chain = model_chain(random_net(2, [6, 6], seed=0))
    pattern = activation_pattern(chain, np.zeros(2))
    # a first-layer neuron forced active where it is negative on the whole box
    w, b = chain[0]
    w[0], b[0] = 0.0, -1.0
    pattern[0][0] = True
    assert region_optimum(chain, pattern, LO, HI) is None


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("sense", ["min", "max"])
def test_descent_improves_ends_at_a_local_optimum_and_never_past_the_global_one(
        tmp_path, seed, sense):
    model = random_net(2, [15, 15, 15], seed=seed)
    chain = model_chain(model)
    x0 = np.random.default_rng(seed).uniform(LO, HI)
    d = descend_regions(chain, LO, HI, x0, sense)
    sign = 1.0 if sense == "min" else -1.0
    assert d.value == pytest.approx(_f(chain, d.x)[0], abs=1e-12)  # a forward pass
    assert d.start_value == pytest.approx(_f(chain, x0)[0], abs=1e-12)
    assert sign * d.value <= sign * d.start_value
    assert np.all(d.x >= LO) and np.all(d.x <= HI) and d.lps >= 1
    # a local optimum: no tiny step inside the box improves it by more than rounding
    rng = np.random.default_rng(100 + seed)
    steps = np.clip(d.x + 1e-7 * rng.standard_normal((400, 2)), LO, HI)
    assert np.all(sign * _f(chain, steps) >= sign * d.value - 1e-9)
    # and no better than the network's optimum over the box (the MILP, verified)
    path = tmp_path / "n.onnx"
    export_onnx(model, path, (LO, HI), bounds="lp")
    net, nb = load_onnx(path)
    opt = solve_milp(net, nb, sense, 60)
    assert opt.status == "optimal"
    assert sign * d.value >= sign * opt.objective - 1e-6


def test_descent_refuses_bad_input():
    chain = model_chain(random_net(2, [4], seed=0))
    with pytest.raises(ValueError, match="sense"):
        descend_regions(chain, LO, HI, np.zeros(2), "minimise")
    with pytest.raises(ValueError, match="outside the input box"):
        descend_regions(chain, LO, HI, np.array([0.0, 2.5]))


def test_an_affine_network_is_solved_by_one_region():
    """No hidden layer: one region, the box; the optimum is the LP's corner."""
    chain = [(np.array([[1.0, -2.0]]), np.array([0.5]))]
    lo, hi = np.full(2, -1.0), np.full(2, 1.0)
    low = descend_regions(chain, lo, hi, np.zeros(2), "min")
    high = descend_regions(chain, lo, hi, np.zeros(2), "max")
    np.testing.assert_array_equal(low.x, [-1.0, 1.0])
    np.testing.assert_array_equal(high.x, [1.0, -1.0])
    assert (low.value, high.value) == (-2.5, 3.5)
