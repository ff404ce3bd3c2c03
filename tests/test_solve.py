"""solve(): one wrapper over HiGHS / Gurobi / SCIP with real solvers (skipped if not importable)."""

from __future__ import annotations

import importlib.util

import pyomo.environ as pyo
import pytest

from omlt_relax.solve import SolveResult, SolverUnavailableError, solve

SOLVER_PACKAGES = {"highs": "highspy", "gurobi": "gurobipy", "scip": "pyscipopt"}
ALL = [
    pytest.param(
        s,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(p) is None, reason=f"{p} is not installed"
        ),
    )
    for s, p in SOLVER_PACKAGES.items()
]
#: Gurobi's pip licence allows at most this many variables / constraints.
GUROBI_SIZE_LIMIT = 2000


def knapsack() -> pyo.ConcreteModel:
    """max 5a + 4b + 3c + 2d s.t. 2a + 3b + 2c + 2d <= 5, binary: optimum 9 at a = b = 1."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(4), within=pyo.Binary)
    value, weight = [5, 4, 3, 2], [2, 3, 2, 2]
    m.cap = pyo.Constraint(expr=sum(weight[i] * m.x[i] for i in range(4)) <= 5)
    m.obj = pyo.Objective(expr=sum(value[i] * m.x[i] for i in range(4)), sense=pyo.maximize)
    return m


@pytest.mark.parametrize("solver", ALL)
def test_optimal_milp(solver):
    m = knapsack()
    res = solve(m, solver, time_limit=30)
    assert isinstance(res, SolveResult)
    assert res.status == "optimal" and res.optimal and res.has_solution
    assert res.termination == "convergenceCriteriaSatisfied"
    assert res.objective == pytest.approx(9.0)
    assert res.bound == pytest.approx(9.0)
    assert res.gap == pytest.approx(0.0, abs=1e-9)
    assert res.wall_time > 0 and res.solver == solver
    assert res.solver_time is not None and 0 <= res.solver_time <= res.wall_time
    assert res.solver_version[0].isdigit()
    assert res.nodes is not None and res.nodes >= 0
    # the incumbent is loaded into the model
    assert pyo.value(m.obj) == pytest.approx(9.0)
    assert solver in str(res) and "optimal" in str(res)


@pytest.mark.parametrize("solver", ALL)
def test_infeasible_is_a_status_not_an_objective(solver):
    m = knapsack()
    m.need = pyo.Constraint(expr=sum(m.x[i] for i in range(4)) >= 4)
    res = solve(m, solver)
    assert res.status in ("infeasible", "infeasible_or_unbounded")
    assert res.objective is None and res.gap is None and not res.optimal


@pytest.mark.parametrize("solver", ALL)
def test_unbounded_is_a_status_not_an_objective(solver):
    m = pyo.ConcreteModel()
    m.x = pyo.Var(within=pyo.NonNegativeReals)
    m.y = pyo.Var(within=pyo.Binary)
    m.c = pyo.Constraint(expr=m.x >= m.y)
    m.obj = pyo.Objective(expr=m.x + m.y, sense=pyo.maximize)
    res = solve(m, solver)
    assert res.status in ("unbounded", "infeasible_or_unbounded")
    assert res.objective is None


def test_highs_lp_has_no_nodes_and_time_limit_reported():
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 2))
    m.obj = pyo.Objective(expr=-m.x)
    res = solve(m)
    assert res.status == "optimal" and res.objective == pytest.approx(-2.0)
    assert res.nodes is None  # an LP: no branch and bound
    res = solve(knapsack(), time_limit=0.0)
    assert res.termination == "maxTimeLimit"
    assert res.status in ("feasible", "no_solution")


def test_mip_gap_and_options_reach_the_solver():
    res = solve(knapsack(), mip_gap=0.5, options={"mip_feasibility_tolerance": 1e-9})
    assert res.status == "optimal"


def test_unknown_solver():
    with pytest.raises(ValueError, match="unknown solver 'cplex'"):
        solve(knapsack(), "cplex")


def _gurobi_size_limited() -> bool:
    """Probe the licence with gurobipy itself: does a model over the limit raise error 10010?"""
    gurobipy = pytest.importorskip("gurobipy")
    probe = gurobipy.Model()
    probe.Params.OutputFlag = 0
    probe.addVars(GUROBI_SIZE_LIMIT + 1)
    try:
        probe.optimize()
    except gurobipy.GurobiError as e:
        return e.errno == 10010
    finally:
        probe.dispose()
    return False


def test_gurobi_size_limit_names_highs():
    if not _gurobi_size_limited():
        pytest.skip("this Gurobi licence is not size-limited")
    import gurobipy

    n = GUROBI_SIZE_LIMIT + 100
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(n), within=pyo.Binary)
    m.c = pyo.Constraint(expr=sum((i % 7 + 1) * m.x[i] for i in range(n)) <= 100)
    m.obj = pyo.Objective(expr=sum(m.x[i] for i in range(n)), sense=pyo.maximize)
    with pytest.raises(SolverUnavailableError, match=r"size-limited.*Use HiGHS instead") as err:
        solve(m, "gurobi")
    assert isinstance(err.value.__cause__, gurobipy.GurobiError)


def test_highs_warm_start_is_its_first_incumbent_and_an_infeasible_one_is_dropped():
    """The model's values reach HiGHS: stopped before any search it reports the start (value 7);
    an infeasible start is dropped and the optimum found as without one."""
    m = knapsack()
    for i, v in enumerate([0, 1, 1, 0]):
        m.x[i].value = v
    assert solve(m, "highs", time_limit=0.0).status == "no_solution"
    res = solve(m, "highs", time_limit=0.0, warm_start=True)
    assert res.status == "feasible" and res.objective == pytest.approx(7.0)
    m = knapsack()
    for i, v in enumerate([1, 1, 1, 0]):
        m.x[i].value = v
    res = solve(m, "highs", time_limit=30, warm_start=True)
    assert res.status == "optimal" and res.objective == pytest.approx(9.0)


@pytest.mark.parametrize("solver", ALL)
def test_warm_start_keeps_the_optimum(solver):
    m = knapsack()
    for i, v in enumerate([0, 1, 1, 0]):
        m.x[i].value = v
    res = solve(m, solver, time_limit=30, warm_start=True)
    assert res.status == "optimal" and res.objective == pytest.approx(9.0)
    assert [round(pyo.value(m.x[i])) for i in range(4)] == [1, 1, 0, 0]
