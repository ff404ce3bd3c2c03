"""MILP solve time: stock OMLT ``ReluBigMFormulation`` versus our bounded big-M formulation.

Setting (issue 3): an *unregularized* 2x50 ReLU net fitted to MATLAB's ``peaks`` on [-3, 3]^2
(``--samples`` seeded uniform samples, full-batch Adam, ``--epochs`` steps; default 1000:
at 3000 steps no formulation closes the gap in 600 s), exported with
:func:`~omlt_relax.export_onnx` and loaded back with :func:`~omlt_relax.load_onnx` (and, for the
stock formulation, with plain ``omlt.io.load_onnx_neural_network_with_bounds``). The MILP minimizes
(``--sense``) the network output over the box, solved by HiGHS with one thread and a time limit:

* ``omlt``: stock ``ReluBigMFormulation`` (float32 interval bounds, a binary for every ReLU);
* ``crown``: :class:`~omlt_relax.BoundedReluBigMFormulation` with sound CROWN bounds;
* ``lp-obbt``: the same with LP-based OBBT bounds (if :mod:`omlt_relax.bounds.obbt` exists);
* ``milp-obbt`` (only with ``--bounds ... milp``): MILP-based OBBT bounds (its time is printed).

Times are HiGHS's own run time (``SolveResult.solver_time``); the speed-up is stock / ours
(``>=`` if only the stock solve hit the time limit; none if both did: compare the final gaps).
The machine is shared, so expect noise; the node counts are the machine-independent part.

Run: ``python benchmarks/bench_formulations.py`` (defaults: ``--time-limit 600 --sense min
--bounds crown,lp``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import torch
from omlt import OmltBlock
from omlt.io import load_onnx_neural_network_with_bounds
from omlt.neuralnet import ReluBigMFormulation
from torch import nn

from omlt_relax.bench.functions import peaks
from omlt_relax.bounds import sound_bounds
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.formulations import BoundedReluBigMFormulation
from omlt_relax.solve import SolveResult, solve
from omlt_relax.threads import single_thread

LO = np.array([-3.0, -3.0])
HI = np.array([3.0, 3.0])


def log(msg: str) -> None:
    print(msg, flush=True)


def machine_info() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    pkgs = ", ".join(f"{p} {version(p)}" for p in ("highspy", "pyomo", "omlt", "torch"))
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, load {load[0]:.2f}/{load[1]:.2f}/"
        f"{load[2]:.2f}, Python {platform.python_version()}; {pkgs}"
    )


def train_peaks(n_samples: int, epochs: int, seed: int) -> tuple[nn.Sequential, float]:
    """Fit an unregularized 2x50 ReLU net to peaks (MSE, full-batch Adam): (net, test RMSE)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(LO, HI, size=(n_samples, 2))
    y = peaks(x)[:, None]
    x_test = rng.uniform(LO, HI, size=(2000, 2))
    y_test = peaks(x_test)[:, None]
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 1))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for step in range(epochs):
        opt.zero_grad()
        loss = torch.mean((net(xt) - yt) ** 2)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, epochs // 4) == 0:
            log(f"  step {step + 1}/{epochs}: train RMSE {loss.item() ** 0.5:.4f}")
    with torch.no_grad():
        pred = net(torch.tensor(x_test, dtype=torch.float32)).numpy()
    return net, float(np.sqrt(np.mean((pred - y_test) ** 2)))


def run(formulation, sense: str, time_limit: float) -> tuple[SolveResult, int]:
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(formulation)
    m.obj = pyo.Objective(
        expr=m.nn.outputs[0], sense=pyo.minimize if sense == "min" else pyo.maximize
    )
    n_bin = sum(1 for v in m.component_data_objects(pyo.Var) if v.is_binary())
    return solve(m, "highs", time_limit=time_limit, threads=1), n_bin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--time-limit", type=float, default=600.0, help="seconds per MILP")
    p.add_argument("--sense", choices=["min", "max", "both"], default="min")
    p.add_argument("--samples", type=int, default=3000)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bounds", default="crown,lp", help="our runs: any of crown,lp,milp")
    p.add_argument("--obbt-time-limit", type=float, default=300.0, help="MILP-OBBT budget (s)")
    p.add_argument("--skip-stock", action="store_true", help="only run our formulations")
    args = p.parse_args(argv)
    single_thread()

    log(f"machine: {machine_info()}")
    log(f"training 2x50 on peaks ({args.samples} samples, {args.epochs} steps, seed {args.seed})")
    t0 = time.perf_counter()
    model, test_rmse = train_peaks(args.samples, args.epochs, args.seed)
    log(f"  done in {time.perf_counter() - t0:.1f} s, test RMSE {test_rmse:.4f}")

    workdir = Path(tempfile.mkdtemp(prefix="bench_formulations_"))
    ibp = sound_bounds(model, LO, HI, method="ibp")
    runs: dict[str, tuple] = {}
    crown_path = workdir / "peaks_crown.onnx"
    export_onnx(model, crown_path, (LO, HI), bounds="crown")
    net, crown = load_onnx(crown_path)
    log(f"unstable neurons: IBP {ibp.unstable_count()}, CROWN {crown.unstable_count()} of 100, "
        f"mean big-M IBP {ibp.mean_bigm():.3g}, CROWN {crown.mean_bigm():.3g}")
    wanted = [b.strip() for b in args.bounds.split(",") if b.strip()]
    if "crown" in wanted:
        runs["crown"] = (lambda: BoundedReluBigMFormulation(net, crown), crown)
    have_obbt = importlib.util.find_spec("omlt_relax.bounds.obbt") is not None
    for method in ("lp", "milp"):
        if method not in wanted:
            continue
        if not have_obbt:
            log(f"omlt_relax.bounds.obbt not found: {method}-obbt run skipped")
            continue
        log(f"{method.upper()}-OBBT ...")
        t0 = time.perf_counter()
        path = workdir / f"peaks_{method}.onnx"
        limit = args.obbt_time_limit if method == "milp" else None
        export_onnx(model, path, (LO, HI), bounds=method, time_limit=limit)
        net_m, nb = load_onnx(path)
        log(
            f"  {method.upper()}-OBBT + export: {time.perf_counter() - t0:.2f} s, unstable "
            f"{nb.unstable_count()}, mean big-M {nb.mean_bigm():.3g}"
        )
        runs[f"{method}-obbt"] = (
            lambda net_m=net_m, nb=nb: BoundedReluBigMFormulation(net_m, nb), nb
        )
    if not args.skip_stock:
        plain = load_onnx_neural_network_with_bounds(os.fspath(crown_path))
        runs["omlt"] = (lambda: ReluBigMFormulation(plain), None)

    senses = ["min", "max"] if args.sense == "both" else [args.sense]
    results: dict[tuple[str, str], SolveResult] = {}
    for sense in senses:
        for name, (make, _) in runs.items():
            log(f"solving {name} ({sense}), HiGHS 1 thread, time limit {args.time_limit:g} s ...")
            res, n_bin = run(make(), sense, args.time_limit)
            results[name, sense] = res
            log(f"  {name:8s} {n_bin:3d} binaries: {res}")

    log("")
    log(f"{'sense':5s} {'formulation':12s} {'status':9s} {'objective':>12s} {'gap':>9s} "
        f"{'nodes':>8s} {'HiGHS s':>9s} {'wall s':>9s} {'speed-up':>9s}")
    for sense in senses:
        stock = results.get(("omlt", sense))
        for name in runs:
            res = results[name, sense]
            t = res.solver_time if res.solver_time is not None else res.wall_time
            ratio = ""
            if stock is not None and name != "omlt":
                ts = stock.solver_time if stock.solver_time is not None else stock.wall_time
                done = (stock.status == "optimal", res.status == "optimal")
                prefix = {(True, True): "", (False, True): ">=", (True, False): "<="}.get(done)
                if prefix is not None:  # both stopped at the limit: compare the gaps instead
                    ratio = f"{prefix}{ts / max(t, 1e-9):.1f}x"
            obj = f"{res.objective:.6f}" if res.objective is not None else "-"
            gap = f"{res.gap:.3g}" if res.gap is not None else "-"
            log(f"{sense:5s} {name:12s} {res.status:9s} {obj:>12s} {gap:>9s} {res.nodes or 0:8d} "
                f"{t:9.2f} {res.wall_time:9.2f} {ratio:>9s}")
    log(f"machine at end: {machine_info()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
