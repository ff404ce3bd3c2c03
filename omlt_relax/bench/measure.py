"""Everything the benchmark measures about one trained network.

Per network (float64, original units) and input box:

* **accuracy**: test RMSE (and, in the suite, its ratio to the unregularized network's), and the
  standard deviation of the test targets (RMSE / std says how well the function is fitted at all);
* **bounds**: unstable neurons under sound IBP, sound CROWN and LP-based OBBT bounds
  (:func:`~omlt_relax.bounds.obbt.obbt_bounds`), mean big-M :math:`\\max(-l, u)` over unstable
  neurons (OBBT bounds), OBBT time;
* **MILP** (:mod:`omlt_relax.optimize`, re-exported here): the network is exported with its
  OBBT bounds (:func:`~omlt_relax.export.export_onnx`), loaded back
  (:func:`~omlt_relax.export.load_onnx`) and formulated with
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
from typing import Any

import numpy as np
from torch import nn

from omlt_relax.bench.functions import BenchFunction
from omlt_relax.bounds import chain_numpy, sound_bounds
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.data import Dataset, predict, rmse
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.lp.relaxation import BigMRelaxationLP
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.optimize import SENSES, MilpResult, build_milp, count_binaries, solve_milp


def root_lp_bounds(model: nn.Module, bounds: NeuronBounds, output: int = 0) -> dict[str, float]:
    """Root LP relaxation values ``{"min": ..., "max": ...}`` of one output over the bounds' box."""
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


def measure_stock_omlt(
    model: nn.Module,
    data: Dataset,
    time_limit: float | None = 60.0,
    workdir: str | os.PathLike[str] | None = None,
    senses: tuple[str, ...] = SENSES,
) -> dict[str, Any]:
    """The MILPs a user of stock OMLT gets today for ``model``, as a JSON-ready dict.

    The network is exported to ONNX with its input box (:func:`~omlt_relax.export.export_onnx`;
    the sidecar ``<file>.bounds.json`` is OMLT's own format), loaded with plain
    ``omlt.io.load_onnx_neural_network_with_bounds`` and formulated with OMLT's
    ``ReluBigMFormulation`` (OMLT's own interval bounds, a binary for every hidden neuron). Each
    sense is solved with the same wrapper, solver, thread count and limit as ours
    (:func:`~omlt_relax.optimize.solve_milp`, ``formulation="omlt"``). The incumbent's
    objective is checked by a float64 forward pass of ``model``: ``forward`` (per sense) is
    :math:`f(x^*)` and ``forward_error`` :math:`|f(x^*) - \text{objective}|`.

    Keys: ``milp`` (per sense, :meth:`MilpResult.to_dict` plus ``forward`` and ``forward_error``),
    ``time_total``, ``solved_all``, ``nodes_total``, ``n_binaries``.
    """
    import torch
    from omlt.io import load_onnx_neural_network_with_bounds

    lo, hi = np.asarray(data.lower, np.float64), np.asarray(data.upper, np.float64)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = os.path.join(tmp, "net.onnx")
        export_onnx(model, path, (lo, hi), bounds="ibp")  # the stored bounds are not used
        net = load_onnx_neural_network_with_bounds(path)
        milps = {s: solve_milp(net, None, s, time_limit, formulation="omlt") for s in senses}
    out: dict[str, Any] = {"milp": {}}
    for s, r in milps.items():
        d = r.to_dict()
        d["forward"] = d["forward_error"] = None
        if r.x is not None:
            p = next(model.parameters())
            with torch.no_grad():
                fx = model(torch.as_tensor([r.x], dtype=p.dtype))[0, 0]
            d["forward"] = float(fx)
            if r.objective is not None:
                d["forward_error"] = abs(float(fx) - r.objective)
        out["milp"][s] = d
    out["time_total"] = float(sum(r.time for r in milps.values()))
    out["solved_all"] = all(r.solved for r in milps.values())
    out["nodes_total"] = int(sum(r.nodes or 0 for r in milps.values()))
    out["n_binaries"] = max((r.n_binaries or 0 for r in milps.values()), default=0)
    return out


__all__ = [
    "SENSES",
    "MilpResult",
    "build_milp",
    "count_binaries",
    "measure_network",
    "measure_stock_omlt",
    "root_lp_bounds",
    "solve_milp",
]
