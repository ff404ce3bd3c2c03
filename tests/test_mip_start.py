"""MIP starts from forward passes (omlt_relax.mip_start, solve(warm_start=), solve_milp(start=)),
with real solvers; every optimum checked against a forward pass at the MILP's solution."""

from __future__ import annotations

import importlib.util

import numpy as np
import pyomo.environ as pyo
import pytest
from conftest import random_net

from omlt_relax import export_onnx, load_onnx
from omlt_relax.chain import forward_chain, probe_inputs
from omlt_relax.fuzz import model_chain
from omlt_relax.mip_start import (
    best_local_input,
    best_probe_input,
    probe_start,
    start_from_input,
)
from omlt_relax.optimize import build_milp, solve_milp
from omlt_relax.solve import solve

SOLVERS = [
    "highs",
    pytest.param("gurobi", marks=pytest.mark.skipif(
        importlib.util.find_spec("gurobipy") is None, reason="gurobipy is not installed")),
]
LO, HI = np.full(2, -2.0), np.full(2, 2.0)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    model = random_net(2, [12, 12, 12], seed=5)
    path = tmp_path_factory.mktemp("start") / "n.onnx"
    export_onnx(model, path, (LO, HI), bounds="lp")
    net, nb = load_onnx(path)
    return model_chain(model), net, nb


@pytest.mark.parametrize("sense", ["min", "max"])
def test_best_probe_is_the_best_forward_pass(network, sense):
    chain, net, _ = network
    x, v = best_probe_input(net, sense, n=500, seed=1)
    vals = forward_chain(chain, probe_inputs(LO, HI, 500, 1))[:, 0]
    assert v == (vals.min() if sense == "min" else vals.max())
    assert forward_chain(chain, x[None, :])[0, 0] == pytest.approx(v, abs=1e-12)
    assert np.all(x >= LO) and np.all(x <= HI)
    with pytest.raises(ValueError, match="sense"):
        best_probe_input(net, "minimize")


def test_completion_holds_the_forward_pass_and_frees_the_inputs(network):
    chain, net, nb = network
    m, _ = build_milp(net, nb, "min")
    x = np.array([0.7, -1.3])
    res = start_from_input(m, m.nn, x)
    assert res.status == "optimal"
    out = pyo.value(next(iter(m.nn.outputs.values())))
    assert out == pytest.approx(forward_chain(chain, x[None, :])[0, 0], abs=1e-6)
    assert not any(v.fixed for v in m.nn.inputs.values())
    # an input the caller fixed stays fixed at the caller's value
    first = next(iter(m.nn.inputs.values()))
    first.fix(0.25)
    assert start_from_input(m, m.nn, x).status == "optimal"
    assert first.fixed and first.value == 0.25
    out = pyo.value(next(iter(m.nn.outputs.values())))
    assert out == pytest.approx(forward_chain(chain, np.array([[0.25, -1.3]]))[0, 0], abs=1e-6)
    with pytest.raises(ValueError, match="3 input values; the network block has 2"):
        start_from_input(m, m.nn, [0.0, 0.0, 0.0])


def test_highs_is_handed_the_start(network):
    """With no time at all HiGHS reports the start as its incumbent; without one it has none."""
    chain, net, nb = network
    m, _ = build_milp(net, nb, "min")
    assert solve(m, "highs", time_limit=0.0).status == "no_solution"
    st = probe_start(m, m.nn, net, "min")
    assert st.ok and st.objective == pytest.approx(st.value, abs=1e-6)
    res = solve(m, "highs", time_limit=0.0, warm_start=True)
    assert res.status == "feasible"
    assert res.objective == pytest.approx(st.value, abs=1e-6)


@pytest.mark.parametrize("start", ["probe", "local"])
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("sense", ["min", "max"])
@pytest.mark.parametrize("formulation", ["bounded", "omlt"])
def test_solve_milp_with_a_start_is_the_verified_optimum(network, solver, sense, formulation,
                                                         start):
    chain, net, nb = network
    r = solve_milp(net, nb, sense, 60, solver=solver, start=start, formulation=formulation)
    assert r.status == "optimal" and r.start == start
    fx = forward_chain(chain, np.array([r.x]))[0, 0]
    assert abs(fx - r.objective) <= 1e-5 * (1 + abs(fx))
    plain = solve_milp(net, nb, sense, 60, solver=solver, formulation=formulation)
    assert plain.start is None and plain.start_objective is None and plain.start_time is None
    assert r.objective == pytest.approx(plain.objective, abs=1e-5)
    # the start is a feasible point: never better than the optimum
    assert r.start_objective is not None and r.start_time > 0
    assert r.total_time == pytest.approx(r.time + r.start_time) and plain.total_time == plain.time
    if sense == "min":
        assert r.start_objective >= r.objective - 1e-6
    else:
        assert r.start_objective <= r.objective + 1e-6


def test_unknown_start_is_refused(network):
    _, net, nb = network
    with pytest.raises(ValueError, match="unknown start 'random'"):
        solve_milp(net, nb, "min", 60, start="random")


@pytest.mark.parametrize("sense", ["min", "max"])
def test_local_start_is_never_worse_than_the_probe_nor_past_the_optimum(network, sense):
    chain, net, nb = network
    xp, vp = best_probe_input(net, sense)
    xl, vl = best_local_input(net, sense)
    assert forward_chain(chain, xl[None, :])[0, 0] == pytest.approx(vl, abs=1e-12)
    assert np.all(xl >= LO) and np.all(xl <= HI)
    opt = solve_milp(net, nb, sense, 60).objective
    # (1e-12: a batched and a one-row forward pass may round differently)
    if sense == "min":
        assert opt - 1e-6 <= vl <= vp + 1e-12
    else:
        assert vp - 1e-12 <= vl <= opt + 1e-6
    with pytest.raises(ValueError, match="starts must be at least 1"):
        best_local_input(net, sense, starts=0)
