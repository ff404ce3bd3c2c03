"""Measuring one trained network the paper's way and ours: bounds, root LP, MILPs verified by a
forward pass, the true function at the minimizer (see :mod:`omlt_relax.bench.paper`)."""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bench.measure import root_lp_bounds
from omlt_relax.bench.paper.protocol import PAPER_FUNCTIONS, PaperConfig, PaperData
from omlt_relax.bounds import sound_bounds
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.optimize import solve_milp
from omlt_relax.solve import SolverUnavailableError


def _milp(net: Any, bounds: Any, solver: str, cfg: PaperConfig,
          formulation: str = "bounded") -> dict[str, Any]:
    try:
        r = solve_milp(net, bounds, "min", cfg.time_limit, solver=solver, threads=1,
                       formulation=formulation, mip_gap=cfg.mip_gap)
    except SolverUnavailableError as e:
        return {"status": "unavailable", "why": str(e).splitlines()[0]}
    return r.to_dict()


def formulation_bounds(m64: nn.Sequential, lo: np.ndarray, hi: np.ndarray,
                       formulations: Sequence[str], ibp: NeuronBounds | None = None,
                       ) -> dict[str, NeuronBounds]:
    """The stored bounds of each MILP: ``"paper"`` IBP (binaries for IBP-unstable neurons),
    ``"ours"`` LP-OBBT (:func:`~omlt_relax.bounds.obbt.obbt_bounds`), both sound in float64
    (``"stock"`` has none: stock OMLT computes its own from the ONNX file's input bounds)."""
    out: dict[str, NeuronBounds] = {}
    if "paper" in formulations:
        out["paper"] = ibp if ibp is not None else sound_bounds(m64, lo, hi, "ibp")
    if "ours" in formulations:
        out["ours"] = obbt_bounds(m64, lo, hi, method="lp")
    return out


def measure_paper(model: nn.Sequential, data: PaperData, cfg: PaperConfig,
                  log: Callable[[str], None] | None = None,
                  solved: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The paper's metrics of one trained network (module docstring), JSON-ready.

    ``solved``: MILP results already measured on this very network with the same time limit
    and MIP gap (``record["milp"]``): a (formulation, solver) found there is kept as it is
    instead of solved again, and formulations there but not in ``cfg`` are carried over, so
    that adding a solver to a finished job does not repeat (or lose) its 1800 s baselines.
    """
    fn = PAPER_FUNCTIONS[data.function]
    m64 = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        pred = m64(torch.as_tensor(data.x_test)).numpy()
    err = pred - data.y_test
    out: dict[str, Any] = {
        "test_mse": float(np.mean(err**2)),
        "test_mae": float(np.mean(np.abs(err))),
        "test_max_err": float(np.max(np.abs(err))),
    }
    lo, hi = data.lower, data.upper
    ibp = sound_bounds(m64, lo, hi, "ibp")
    widths = np.concatenate([u - low for low, u in zip(ibp.lower, ibp.upper)])
    out.update(neurons=int(widths.size), unstable_ibp=ibp.unstable_count(),
               mean_width_ibp=float(widths.mean()), max_width_ibp=float(widths.max()))
    t0 = time.perf_counter()
    bounds = formulation_bounds(m64, lo, hi, cfg.formulations, ibp)
    if "ours" in bounds:
        out["obbt_time"] = time.perf_counter() - t0
        out["unstable_obbt"] = bounds["ours"].unstable_count()
    span = data.y_max - data.y_min
    solved = solved or {}
    milps: dict[str, Any] = {f: dict(r) for f, r in solved.items() if f not in cfg.formulations}
    with tempfile.TemporaryDirectory() as tmp:
        for form in cfg.formulations:
            path = os.path.join(tmp, f"{form}.onnx")
            # net is what plain OMLT loads from the file; stock OMLT ignores the stored bounds
            export_onnx(m64, path, (lo, hi), bounds=bounds.get(form, "ibp"))
            net, stored = load_onnx(path)
            stock = form == "stock"
            root = None if stock else root_lp_bounds(m64, stored)["min"]
            res: dict[str, Any] = {**solved.get(form, {}), "root_lp": root}
            for solver in cfg.solvers:
                if solver in res:
                    if log is not None:
                        log(f"    {form:5s} {solver:6s} {_cell(res[solver])} (measured before)")
                    continue
                r = _milp(net, stored, solver, cfg, "omlt" if stock else "bounded")
                if r.get("x") is not None:
                    xs = np.asarray(r["x"], np.float64)[None, :]
                    with torch.no_grad():
                        r["net_at_x"] = float(m64(torch.as_tensor(xs))[0, 0])
                    r["verify_err"] = abs(r["net_at_x"] - r["objective"])
                    f_x = float(fn(xs)[0])
                    r["f_at_x"] = f_x
                    r["f_error"] = f_x - fn.f_min
                if r.get("objective") is not None and root is not None and math.isfinite(root):
                    r["root_gap"] = r["objective"] - root
                res[solver] = r
                if log is not None:
                    log(f"    {form:5s} {solver:6s} {_cell(r)}")
            milps[form] = res
    out["milp"] = milps
    out["y_span"] = span
    return out


def _cell(r: dict[str, Any]) -> str:
    st = r.get("status")
    if st == "unavailable":
        return "unavailable"
    if st == "optimal":
        return f"{r['time']:.3g} s ({r.get('nodes')} nodes)"
    gap = r.get("gap")
    g = f"{100 * gap:.3g}%" if gap is not None else "-"
    return f"≥{r['time']:.4g} s ({st}, gap {g})"
