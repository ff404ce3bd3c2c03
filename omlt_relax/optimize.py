"""Optimize one output of a trained network over its input box: build and solve the MILP.

What ``omlt-relax solve`` and the benchmark do with a network loaded by
:func:`~omlt_relax.load_onnx`: an ``OmltBlock`` with
:class:`~omlt_relax.BoundedReluBigMFormulation` (stored bounds, no binary on stable neurons) -- or
stock OMLT's ``ReluBigMFormulation`` for comparison -- and the objective
:math:`\\min` or :math:`\\max` of output ``k`` over the box, solved with
:func:`~omlt_relax.solve` (HiGHS by default). :class:`MilpResult` reports status, objective, best
bound, gap, times, nodes, binaries and the incumbent input.

With ``start="probe"`` the solver is first handed a feasible point (:mod:`omlt_relax.mip_start`:
the best of thousands of forward passes, completed with the inputs fixed); with ``"local"`` the
best few of them are first improved by a local search over the network's linear regions
(:mod:`omlt_relax.linear_regions`). Its cost is ``start_time``, apart from ``time``.

Times: ``time`` is the solver's own run time when :class:`~omlt_relax.SolveResult` reports it
(``solver_time``), else the wall time of the call.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import pyomo.environ as pyo
from omlt import OmltBlock
from omlt.neuralnet import ReluBigMFormulation, ReluPartitionFormulation
from omlt.neuralnet.layers.partition_based import default_partition_split_func

from omlt_relax.formulations import BoundedReluBigMFormulation, BoundedReluPartitionFormulation
from omlt_relax.mip_start import START_TIME_LIMIT, STARTS, probe_start
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.verify import solve_verified

SENSES = ("min", "max")
#: Formulations :func:`build_milp` builds.
FORMULATIONS = ("bounded", "partition", "omlt", "omlt_partition")
#: The stock OMLT formulations: they compute their own bounds and take no :class:`NeuronBounds`.
STOCK_FORMULATIONS = ("omlt", "omlt_partition")


@dataclass
class MilpResult:
    """One MILP solve of min or max of one network output over the box.

    Attributes:
        sense: ``"min"`` or ``"max"``.
        status: as :class:`~omlt_relax.solve.SolveResult` (``"optimal"``, ``"feasible"``, ...).
        objective, bound: incumbent value and best bound (``None`` if absent).
        gap: relative gap at the end (0 when solved).
        time: solver time in seconds (see module docstring); ``wall_time``: the whole call.
        build_time: seconds to build the Pyomo model.
        nodes: branch-and-bound nodes (``None`` if not reported).
        n_binaries: binaries in the formulation (``None`` if not reported).
        x: the incumbent input, or ``None``.
        time_limit: the limit the solve ran under.
        discrepancy, note: what the forward-pass check measured and, when it contradicts the
            solver (status ``"numerically_unreliable"``), what to do (:mod:`omlt_relax.verify`).
        start: the start mode (``None``, ``"probe"`` or ``"local"``); ``start_objective``: the
            objective at the start handed to the solver (``None``: none was); ``start_time``:
            seconds to build it (probes, local search, completion solve), not included in
            ``time``.
    """

    sense: str
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    time: float
    wall_time: float
    build_time: float
    nodes: int | None
    n_binaries: int | None
    x: list[float] | None
    time_limit: float | None
    discrepancy: float | None = None
    note: str | None = None
    start: str | None = None
    start_objective: float | None = None
    start_time: float | None = None

    @property
    def solved(self) -> bool:
        return self.status == "optimal"

    @property
    def total_time(self) -> float:
        """What the answer cost: the solver's ``time`` plus, with a MIP start, its
        ``start_time``."""
        return float(self.time) + float(self.start_time or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_milp(
    net: Any,
    bounds: NeuronBounds | None,
    sense: str,
    output: int = 0,
    formulation: str = "bounded",
    n_partitions: int = 2,
) -> tuple[Any, Any]:
    """A Pyomo model optimizing output ``output`` of an OMLT network over its input box.

    Args:
        net: OMLT ``NetworkDefinition`` with input bounds (from
            :func:`~omlt_relax.export.load_onnx`).
        bounds: the stored per-neuron bounds (``None`` only with a stock formulation,
            :data:`STOCK_FORMULATIONS`).
        sense: ``"min"`` or ``"max"``.
        output: index of the output to optimize.
        formulation: ``"bounded"`` (:class:`~omlt_relax.formulations.BoundedReluBigMFormulation`),
            ``"partition"`` (:class:`~omlt_relax.formulations.BoundedReluPartitionFormulation`:
            the same bounds, each unstable neuron's inputs split into ``n_partitions`` groups, a
            tighter relaxation with more continuous variables; still one binary per unstable
            neuron), ``"omlt"`` (stock OMLT ``ReluBigMFormulation``: its own float32 interval
            bounds, a binary for every neuron) or ``"omlt_partition"`` (stock OMLT
            ``ReluPartitionFormulation`` with its ``default_partition_split_func`` into
            ``n_partitions`` groups: its own interval bounds, a binary for every neuron).
        n_partitions: groups per neuron of ``"partition"`` and ``"omlt_partition"`` (1 is the
            big-M formulation).

    Returns ``(model, formulation_object)``; the network block is ``model.nn``.
    """
    if sense not in SENSES:
        msg = f"sense must be 'min' or 'max', got {sense!r}"
        raise ValueError(msg)
    if formulation not in FORMULATIONS:
        msg = f"unknown formulation {formulation!r}; use one of {FORMULATIONS}"
        raise ValueError(msg)
    if formulation not in STOCK_FORMULATIONS and bounds is None:
        msg = f"the {formulation} formulation needs the network's NeuronBounds"
        raise ValueError(msg)
    if formulation == "bounded":
        form = BoundedReluBigMFormulation(net, bounds)
    elif formulation == "partition":
        form = BoundedReluPartitionFormulation(net, bounds, n_partitions)
    elif formulation == "omlt_partition":
        if n_partitions < 1:
            msg = f"n_partitions must be at least 1, got {n_partitions}"
            raise ValueError(msg)
        form = ReluPartitionFormulation(
            net, split_func=partial(default_partition_split_func, n=n_partitions))
    else:
        form = ReluBigMFormulation(net)
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(form)
    outs = list(m.nn.outputs.keys())
    if not 0 <= output < len(outs):
        msg = f"output {output} does not exist; the network has {len(outs)} output(s)"
        raise ValueError(msg)
    m.obj = pyo.Objective(
        expr=m.nn.outputs[outs[output]], sense=pyo.minimize if sense == "min" else pyo.maximize
    )
    return m, form


def count_binaries(model: Any) -> int:
    """Number of binary (or integer) variables in a Pyomo model."""
    return sum(
        1
        for v in model.component_data_objects(pyo.Var, active=True)
        if v.is_binary() or v.is_integer()
    )


def solve_milp(
    net: Any,
    bounds: NeuronBounds | None,
    sense: str,
    time_limit: float | None = 60.0,
    output: int = 0,
    formulation: str = "bounded",
    solver: str = "highs",
    threads: int = 1,
    mip_gap: float | None = None,
    *,
    start: str | None = None,
    options: dict[str, Any] | None = None,
    n_partitions: int = 2,
) -> MilpResult:
    """Build (:func:`build_milp`) and solve one MILP; the incumbent input is read back.

    The answer is checked by the network's forward pass (:func:`omlt_relax.verify.solve_verified`):
    a contradicted one has status ``"numerically_unreliable"``, ``discrepancy`` and ``note``.

    Args:
        net, bounds, sense, output, formulation: as for :func:`build_milp`.
        time_limit: seconds (``None``: no limit).
        solver: ``"highs"`` (default), ``"gurobi"`` or ``"scip"`` (:func:`~omlt_relax.solve`).
        threads: solver threads.
        mip_gap: relative MIP gap at which to stop (``None``: the solver's default, 1e-4 for
            HiGHS and Gurobi; :func:`~omlt_relax.solve`).
        start: ``None`` (no MIP start), ``"probe"``: hand the solver the best of
            :data:`~omlt_relax.mip_start.DEFAULT_PROBES` forward passes as an incumbent
            (:func:`~omlt_relax.mip_start.probe_start`), or ``"local"``: the best of
            :data:`~omlt_relax.mip_start.LOCAL_STARTS` local searches from the best probes
            (:func:`~omlt_relax.mip_start.best_local_input`).
        options: solver-specific options by the solver's own names (:func:`~omlt_relax.solve`).
        n_partitions: as for :func:`build_milp`.
    """
    if start not in STARTS:
        msg = f"unknown start {start!r}; use one of {STARTS}"
        raise ValueError(msg)
    t0 = time.perf_counter()
    m, _form = build_milp(net, bounds, sense, output, formulation, n_partitions)
    build = time.perf_counter() - t0
    n_bin = count_binaries(m)
    mip_start = None
    if start is not None:
        limit = START_TIME_LIMIT if time_limit is None else min(time_limit, START_TIME_LIMIT)
        mip_start = probe_start(m, m.nn, net, sense, output, solver=solver, threads=threads,
                                time_limit=limit, local=start == "local")
    held = mip_start if mip_start is not None and mip_start.ok else None  # the model holds it
    res, x = solve_verified(m, m.nn, net, bounds, sense, output, solver=solver,
                            time_limit=time_limit, threads=threads, mip_gap=mip_gap,
                            options=options, warm_start=held is not None)
    solver_time = getattr(res, "solver_time", None)
    return MilpResult(
        sense=sense,
        status=res.status,
        objective=res.objective,
        bound=res.bound,
        gap=res.gap,
        time=float(solver_time) if solver_time is not None else float(res.wall_time),
        wall_time=float(res.wall_time),
        build_time=build,
        nodes=res.nodes,
        n_binaries=n_bin,
        x=x,
        time_limit=time_limit,
        discrepancy=res.discrepancy,
        note=res.note,
        start=start,
        start_objective=held.objective if held is not None else None,
        start_time=mip_start.time if mip_start is not None else None,
    )


__all__ = ["FORMULATIONS", "SENSES", "STOCK_FORMULATIONS", "MilpResult", "build_milp",
           "count_binaries", "solve_milp"]
