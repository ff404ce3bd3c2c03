"""Everything the benchmark measures about one trained network.

Per network (float64, original units) and input box:

* **accuracy**: test RMSE (and, in the suite, its ratio to the unregularized network's), and the
  standard deviation of the test targets (RMSE / std says how well the function is fitted at all);
* **bounds**: unstable neurons under sound IBP, sound CROWN and LP-based OBBT bounds
  (:func:`~omlt_relax.bounds.obbt.obbt_bounds`), mean big-M :math:`\\max(-l, u)` over unstable
  neurons (OBBT bounds), OBBT time;
* **MILP**: the network is exported with its OBBT bounds (:func:`~omlt_relax.export.export_onnx`),
  loaded back (:func:`~omlt_relax.export.load_onnx`) and formulated with
  :class:`~omlt_relax.formulations.BoundedReluBigMFormulation` in an ``OmltBlock`` (stable neurons
  get no binary): exactly what a user gets. Its minimum and maximum over the box are solved with
  :func:`~omlt_relax.solve.solve` (HiGHS, one thread, time limit): status, objective, best bound,
  final gap, nodes, solver time and wall time (Pyomo translation included);
* **root LP**: the LP relaxation of the same formulation (:class:`~omlt_relax.lp.relaxation.
  BigMRelaxationLP` with the same bounds), its optimum against the MILP's, as a fraction of the
  network's range :math:`\\max f - \\min f` over the box;
* **true optimality**: with a known function, :math:`f(x^*_{\\min}) - \\min f` and
  :math:`\\max f - f(x^*_{\\max})` at the MILP's solutions, as fractions of
  :math:`\\max f - \\min f`.

Times: ``time`` is the solver's own run time when :class:`~omlt_relax.solve.SolveResult` reports
it (``solver_time``), else the wall time of the call.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from torch import nn

from omlt_relax.bench.data import Dataset, predict, rmse
from omlt_relax.bench.functions import BenchFunction
from omlt_relax.bounds import chain_numpy, sound_bounds
from omlt_relax.neuron_bounds import NeuronBounds

SENSES = ("min", "max")


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

    @property
    def solved(self) -> bool:
        return self.status == "optimal"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_milp(
    net: Any,
    bounds: NeuronBounds | None,
    sense: str,
    output: int = 0,
    formulation: str = "bounded",
) -> tuple[Any, Any]:
    """A Pyomo model optimizing output ``output`` of an OMLT network over its input box.

    Args:
        net: OMLT ``NetworkDefinition`` with input bounds (from
            :func:`~omlt_relax.export.load_onnx`).
        bounds: the stored per-neuron bounds (``None`` only with ``formulation="omlt"``).
        sense: ``"min"`` or ``"max"``.
        output: index of the output to optimize.
        formulation: ``"bounded"`` (:class:`~omlt_relax.formulations.BoundedReluBigMFormulation`)
            or ``"omlt"`` (stock OMLT ``ReluBigMFormulation``: its own float32 interval bounds, a
            binary for every neuron).

    Returns ``(model, formulation_object)``; the network block is ``model.nn``.
    """
    import pyomo.environ as pyo
    from omlt import OmltBlock

    if sense not in SENSES:
        msg = f"sense must be 'min' or 'max', got {sense!r}"
        raise ValueError(msg)
    if formulation == "bounded":
        from omlt_relax.formulations import BoundedReluBigMFormulation

        if bounds is None:
            msg = "the bounded formulation needs the network's NeuronBounds"
            raise ValueError(msg)
        form = BoundedReluBigMFormulation(net, bounds)
    elif formulation == "omlt":
        from omlt.neuralnet import ReluBigMFormulation

        form = ReluBigMFormulation(net)
    else:
        msg = f"unknown formulation {formulation!r}; use 'bounded' or 'omlt'"
        raise ValueError(msg)
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
    import pyomo.environ as pyo

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
) -> MilpResult:
    """Build (:func:`build_milp`) and solve one MILP; the incumbent input is read back.

    The answer is checked by the network's forward pass (:func:`omlt_relax.verify.solve_verified`):
    a contradicted one has status ``"numerically_unreliable"``, ``discrepancy`` and ``note``.
    """
    from omlt_relax.verify import solve_verified

    t0 = time.perf_counter()
    m, _form = build_milp(net, bounds, sense, output, formulation)
    build = time.perf_counter() - t0
    n_bin = count_binaries(m)
    res, x = solve_verified(m, m.nn, net, bounds, sense, output, solver=solver,
                            time_limit=time_limit, threads=threads)
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
    )


def root_lp_bounds(model: nn.Module, bounds: NeuronBounds, output: int = 0) -> dict[str, float]:
    """Root LP relaxation values ``{"min": ..., "max": ...}`` of one output over the bounds' box."""
    from omlt_relax.lp.relaxation import BigMRelaxationLP

    nb = bounds.numpy()
    lo, hi = nb.input_lower, nb.input_upper
    lp = BigMRelaxationLP(chain_numpy(model, lo, hi), nb.lower, nb.upper, lo, hi)
    out: dict[str, float] = {}
    for sense in SENSES:
        cost = np.zeros(lp.y_cols.size)
        cost[output] = 1.0
        lp.set_objective(cost, lp.y_cols, maximize=sense == "max")
        sol = lp.solve()
        out[sense] = sol.value if sol.ok else math.nan
    return out


def measure_network(
    model: nn.Module,
    data: Dataset,
    fn: BenchFunction | None = None,
    time_limit: float | None = 60.0,
    obbt_time_limit: float | None = None,
    workdir: str | os.PathLike[str] | None = None,
    senses: tuple[str, ...] = SENSES,
) -> dict[str, Any]:
    """All measurements of one network (see the module docstring) as a JSON-ready dict.

    Args:
        model: float64 ``nn.Sequential`` in original units (one output is optimized: output 0).
        data: its data set (test RMSE on ``data.x_test``; the box is ``data.lower, data.upper``).
        fn: the true function, for the optimality of the MILP's solutions (optional).
        time_limit: per MILP solve, seconds.
        obbt_time_limit: budget of the LP-based bound tightening (``None``: no limit).
        workdir: where the ONNX file goes (a temporary directory if ``None``).
        senses: which MILPs to solve.
    """
    from omlt_relax.bounds.obbt import obbt_bounds
    from omlt_relax.export import export_onnx, load_onnx

    lo, hi = np.asarray(data.lower, np.float64), np.asarray(data.upper, np.float64)
    out: dict[str, Any] = {
        "test_rmse": rmse(predict(model, data.x_test), data.y_test),
        "val_rmse": rmse(predict(model, data.x_val), data.y_val),
        "test_std": float(np.std(data.y_test)),
    }
    ibp = sound_bounds(model, lo, hi, "ibp")
    crown = sound_bounds(model, lo, hi, "crown")
    t0 = time.perf_counter()
    obbt = obbt_bounds(model, lo, hi, method="lp", time_limit=obbt_time_limit)
    out["obbt_time"] = time.perf_counter() - t0
    out["neurons"] = int(sum(obbt.widths))
    out["unstable_ibp"] = ibp.unstable_count()
    out["unstable_crown"] = crown.unstable_count()
    out["unstable_obbt"] = obbt.unstable_count()
    out["mean_bigm_ibp"] = ibp.mean_bigm()
    out["mean_bigm_obbt"] = obbt.mean_bigm()
    out["max_bigm_obbt"] = obbt.max_bigm()

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = os.path.join(tmp, "net.onnx")
        export_onnx(model, path, (lo, hi), bounds=obbt)
        net, stored = load_onnx(path)
        milps = {s: solve_milp(net, stored, s, time_limit) for s in senses}
    root = root_lp_bounds(model, stored)
    out["milp"] = {s: r.to_dict() for s, r in milps.items()}
    out["root_lp"] = root
    out["time_total"] = float(sum(r.time for r in milps.values()))
    out["solved_all"] = all(r.solved for r in milps.values())
    out["nodes_total"] = int(sum(r.nodes or 0 for r in milps.values()))
    # root LP gap relative to the network's range over the box
    f_lo = milps["min"].objective if "min" in milps else None
    f_hi = milps["max"].objective if "max" in milps else None
    span = (f_hi - f_lo) if f_lo is not None and f_hi is not None else None
    out["net_min"], out["net_max"] = f_lo, f_hi
    gaps: dict[str, float | None] = {}
    for s, r in milps.items():
        if r.objective is None or span is None or span <= 0 or not math.isfinite(root[s]):
            gaps[s] = None
        else:
            gaps[s] = abs(root[s] - r.objective) / span
    out["root_gap"] = gaps
    if fn is not None:
        true: dict[str, Any] = {}
        for s, r in milps.items():
            if r.x is None:
                true[s] = None
                continue
            fx = float(fn(np.asarray(r.x))[0])
            err = fx - fn.f_min if s == "min" else fn.f_max - fx
            true[s] = {"f_at_x": fx, "f_opt": fn.f_min if s == "min" else fn.f_max,
                       "error": err, "rel_error": err / fn.f_range}
        out["true_opt"] = true
    return out


__all__ = [
    "SENSES",
    "MilpResult",
    "build_milp",
    "count_binaries",
    "measure_network",
    "root_lp_bounds",
    "solve_milp",
]
