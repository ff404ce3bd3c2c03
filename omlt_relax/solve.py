"""One solver wrapper: solve a Pyomo (MI)LP with HiGHS, Gurobi or SCIP and report what happened.

:func:`solve` goes through Pyomo's solver interfaces (``pyomo.contrib.solver``: ``Highs``,
``GurobiDirect``, ``ScipDirect``, all in-process, no executables), loads the incumbent into the
model when there is one, and returns a :class:`SolveResult` with the solver-independent status,
objective, best bound, gap, wall time and branch-and-bound nodes.

``warm_start=True`` hands the values the model's variables hold to the solver as a MIP start
(HiGHS: ``setSolution`` with every variable that has a value, the others left for HiGHS to
complete; Gurobi and SCIP: the discrete variables, through Pyomo's ``warmstart_discrete_vars``).
A start the solver finds infeasible is dropped by the solver; it never changes the answer's
correctness, only how soon an incumbent is known. :mod:`omlt_relax.mip_start` builds one for a
network MILP from a forward pass.

A solver that is not installed, or Gurobi's size-limited pip licence (more than 2000 variables or
2000 constraints, ``GurobiError 10010``), raises :class:`SolverUnavailableError`, whose message
names HiGHS (``pip install highspy``, ``solver="highs"``) as the way out. Infeasible and unbounded
models are a status with ``objective=None``, never a number.
"""

from __future__ import annotations

import functools
import math
import numbers
import time
import warnings
from dataclasses import dataclass
from typing import Any

#: Solver names accepted by :func:`solve` and the Pyomo interface behind each.
SOLVERS = ("highs", "gurobi", "scip")
#: How reports name each solver.
SOLVER_NAMES = {"highs": "HiGHS", "gurobi": "Gurobi", "scip": "SCIP"}

_PIP = {"highs": "highspy", "gurobi": "gurobipy", "scip": "pyscipopt"}
_GUROBI_SIZE_LIMIT = 10010


class SolverUnavailableError(RuntimeError):
    """The requested solver cannot solve this model here (not installed, or licence limits)."""


@dataclass(frozen=True)
class SolveResult:
    """What a solve returned.

    Attributes:
        status: ``"optimal"``, ``"feasible"`` (a solution, stopped early: see ``termination``),
            ``"numerically_unreliable"`` (only after :func:`omlt_relax.verify.verified`),
            ``"infeasible"``, ``"unbounded"``, ``"infeasible_or_unbounded"``, ``"no_solution"``
            (stopped early without one) or ``"error"``.
        termination: Pyomo's solver-independent termination condition, e.g.
            ``"convergenceCriteriaSatisfied"``, ``"maxTimeLimit"``, ``"provenInfeasible"``.
        objective: objective value of the incumbent (loaded into the model), or ``None``.
        bound: best proven bound on the objective, or ``None``.
        gap: ``|objective - bound| / |objective|`` (``0`` when equal, ``inf`` if the objective is 0
            and they differ), or ``None`` without both.
        wall_time: seconds for the whole call (model translation included).
        solver_time: the solver's own run time in seconds where it reports one, else ``None``.
        nodes: branch-and-bound nodes where the solver reports them, else ``None``.
        solver, solver_version: e.g. ``"highs"``, ``"1.16.0"``.
        discrepancy, note: set by :func:`omlt_relax.verify.verified` when the answer was checked
            against a network (status ``"numerically_unreliable"`` when contradicted).
    """

    status: str
    termination: str
    objective: float | None
    bound: float | None
    gap: float | None
    wall_time: float
    nodes: int | None
    solver: str
    solver_version: str
    solver_time: float | None = None
    discrepancy: float | None = None
    note: str | None = None

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"

    @property
    def has_solution(self) -> bool:
        return self.objective is not None

    def __str__(self) -> str:
        parts = [f"{self.solver} {self.solver_version}: {self.status} ({self.termination})"]
        if self.objective is not None:
            parts.append(f"objective {self.objective:.10g}")
        if self.bound is not None:
            parts.append(f"bound {self.bound:.10g}")
        if self.gap is not None:
            parts.append(f"gap {self.gap:.3g}")
        if self.nodes is not None:
            parts.append(f"{self.nodes} nodes")
        parts.append(f"{self.wall_time:.3f} s")
        if self.solver_time is not None:
            parts.append(f"solver {self.solver_time:.3f} s")
        return ", ".join(parts)


def _unavailable(solver: str, why: str) -> SolverUnavailableError:
    msg = (
        f"solver {solver!r} is not usable here: {why}. Use HiGHS instead: solve(..., "
        "solver='highs') (pip install highspy; open source, no size limits)"
    )
    return SolverUnavailableError(msg)


@functools.cache
def _highs_with_start() -> type:
    """Pyomo's HiGHS interface, handing the model's current variable values to
    ``Highs.setSolution`` (a sparse primal start) just before the solve."""
    import numpy as np
    from pyomo.contrib.solver.solvers.highs import Highs
    from pyomo.version import version_info as pyomo_version

    class HighsWithStart(Highs):  # type: ignore[misc,valid-type]
        def _solve(self) -> Any:
            try:  # Pyomo's private column map (checked with Pyomo 6.10)
                columns = [
                    (col, self._vars[vid][0])
                    for vid, col in self._pyomo_var_to_solver_var_map.items()
                ]
            except (AttributeError, KeyError, TypeError):
                warnings.warn(
                    "warm_start: this Pyomo's HiGHS interface does not expose its column map; "
                    f"solving without the start (Pyomo {'.'.join(map(str, pyomo_version))})",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return super()._solve()
            start = [(c, v.value) for c, v in columns
                     if v.value is not None and math.isfinite(v.value)]
            if start:
                cols, vals = zip(*start)
                self._solver_model.setSolution(
                    len(cols), np.asarray(cols, np.int32), np.asarray(vals, np.float64)
                )
            return super()._solve()

    return HighsWithStart


def _interface(solver: str, warm_start: bool = False) -> Any:
    if solver not in SOLVERS:
        msg = f"unknown solver {solver!r}; use one of {SOLVERS}"
        raise ValueError(msg)
    try:
        if solver == "highs" and warm_start:
            cls = _highs_with_start()
        elif solver == "highs":
            from pyomo.contrib.solver.solvers.highs import Highs as cls
        elif solver == "gurobi":
            from pyomo.contrib.solver.solvers.gurobi.gurobi_direct import GurobiDirect as cls
        else:
            from pyomo.contrib.solver.solvers.scip.scip_direct import ScipDirect as cls
        opt = cls()
        available = opt.available()
    except ImportError as e:
        why = f"its Python package {_PIP[solver]} is not importable ({e})"
        raise _unavailable(solver, why) from e
    if not available:
        why = f"Pyomo reports it {available}; is the Python package {_PIP[solver]} installed"
        raise _unavailable(solver, f"{why} and licensed?")
    return opt


def _gap(objective: float | None, bound: float | None) -> float | None:
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    diff = abs(objective - bound)
    if diff == 0.0:
        return 0.0
    return diff / abs(objective) if objective != 0.0 else math.inf


def _status(term: Any, has_solution: bool) -> str:
    from pyomo.contrib.solver.common.results import TerminationCondition as TC

    if term == TC.convergenceCriteriaSatisfied:
        return "optimal" if has_solution else "no_solution"
    if term in (TC.provenInfeasible, TC.locallyInfeasible):
        return "infeasible"
    if term == TC.unbounded:
        return "unbounded"
    if term == TC.infeasibleOrUnbounded:
        return "infeasible_or_unbounded"
    if term == TC.error:
        return "error"
    return "feasible" if has_solution else "no_solution"


def _info(info: Any, key: str) -> Any:
    try:
        return info[key]
    except (KeyError, AttributeError, TypeError):
        return getattr(info, key, None)


def _nodes(solver: str, extra: Any) -> int | None:
    key = {"highs": "mip_node_count", "gurobi": "NodeCount", "scip": "NNodes"}[solver]
    val = _info(extra, key)
    if val is None:
        return None
    val = int(val)
    return val if val >= 0 else None


def _solver_time(solver: str, timing: Any) -> float | None:
    key = {"highs": "highs_time", "gurobi": "gurobi_time", "scip": "scip_time"}[solver]
    val = _info(timing, key)
    return float(val) if val is not None else None


def _check_options(threads: Any, time_limit: Any, mip_gap: Any) -> None:
    """One-line ``ValueError`` for a thread count, time limit or MIP gap a solver cannot take."""
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        msg = f"threads must be a whole number >= 1, got {threads!r}"
        raise ValueError(msg)
    for name, v in (("time_limit", time_limit), ("mip_gap", mip_gap)):
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0
        ):
            msg = f"{name} must be a finite number >= 0 or None, got {v!r}"
            raise ValueError(msg)


def solve(
    model: Any,
    solver: str = "highs",
    time_limit: float | None = None,
    threads: int = 1,
    tee: bool = False,
    *,
    mip_gap: float | None = None,
    options: dict[str, Any] | None = None,
    warm_start: bool = False,
) -> SolveResult:
    """Solve a Pyomo model; load the incumbent (if any) into it and report what happened.

    Args:
        model: a Pyomo model with one active objective (e.g. an ``OmltBlock`` inside).
        solver: ``"highs"`` (default, open source), ``"gurobi"`` or ``"scip"``.
        time_limit: seconds, or ``None`` for no limit.
        threads: solver threads (SCIP: LP threads).
        tee: stream the solver log.
        mip_gap: relative MIP gap at which to stop (solver default if ``None``: HiGHS and Gurobi
            1e-4, SCIP 0).
        options: solver-specific options by the solver's own names, e.g.
            ``{"mip_feasibility_tolerance": 1e-9}`` for HiGHS.
        warm_start: pass the variables' current values as a MIP start (module docstring), e.g.
            after :func:`omlt_relax.mip_start.start_from_input`.

    Raises:
        SolverUnavailableError: the solver is not installed, or Gurobi's size-limited licence
            cannot take the model; the message says to use HiGHS.
        ValueError: unknown solver name; ``threads`` below 1, a negative or non-finite
            ``time_limit`` or ``mip_gap``.
    """
    _check_options(threads, time_limit, mip_gap)
    opt = _interface(solver, warm_start)
    version = ".".join(str(v) for v in opt.version())
    kwargs: dict[str, Any] = {
        "load_solutions": False,
        "raise_exception_on_nonoptimal_result": False,
        "tee": tee,
        "threads": threads,
        "solver_options": dict(options or {}),
    }
    if time_limit is not None:
        kwargs["time_limit"] = float(time_limit)
    if mip_gap is not None:
        kwargs["rel_gap"] = float(mip_gap)
    if warm_start and solver != "highs":
        kwargs["warmstart_discrete_vars"] = True
    t0 = time.perf_counter()
    try:
        res = opt.solve(model, **kwargs)
    except Exception as e:
        if solver == "gurobi" and getattr(e, "errno", None) == _GUROBI_SIZE_LIMIT:
            why = (
                f"Gurobi's size-limited licence cannot take this model ({e}; the pip licence "
                "allows at most 2000 variables and 2000 constraints)"
            )
            raise _unavailable(solver, why) from e
        raise
    wall = time.perf_counter() - t0

    from pyomo.contrib.solver.common.results import SolutionStatus
    from pyomo.contrib.solver.common.results import TerminationCondition as TC

    if res.termination_condition == TC.licensingProblems:
        raise _unavailable(solver, "the solver reports a licensing problem")
    has_solution = res.solution_status in (SolutionStatus.feasible, SolutionStatus.optimal)
    status = _status(res.termination_condition, has_solution)
    objective = bound = None
    # an unbounded model may come with a "solution" at 1e30 (Gurobi): never report it
    if status in ("optimal", "feasible"):
        res.solution_loader.load_vars()
        if res.incumbent_objective is not None:
            objective = float(res.incumbent_objective)
    if status in ("optimal", "feasible", "no_solution") and res.objective_bound is not None:
        bound = float(res.objective_bound)
    return SolveResult(
        status=status,
        termination=res.termination_condition.name,
        objective=objective,
        bound=bound,
        gap=_gap(objective, bound),
        wall_time=wall,
        nodes=_nodes(solver, res.extra_info),
        solver=solver,
        solver_version=version,
        solver_time=_solver_time(solver, res.timing_info),
    )


__all__ = ["SOLVERS", "SolveResult", "SolverUnavailableError", "solve"]
