"""The ``omlt-relax`` command: demo, train, solve, bench.

.. code-block:: text

    omlt-relax demo  [--out DIR]                       # peaks 5×25: plain vs relaxation-informed
    omlt-relax train data.csv --out net.onnx [--regularize relax]   # CSV -> ONNX with bounds
    omlt-relax train data.csv --out net.onnx --budget 1.2           # strongest weight in budget
    omlt-relax solve net.onnx [--sense both] [--compare-omlt]       # ONNX -> MILP report
    omlt-relax tighten in.onnx --out out.onnx [--bounds lp]         # any dense ReLU ONNX + bounds
    omlt-relax bench [--functions 2d] [--variants all] --out DIR    # the benchmark suite
    omlt-relax tune data.csv --budget 1.25 --trials 40 --out DIR    # Optuna study (on Dask)
    omlt-relax bench --suite scale --out DIR                        # 2x100/3x100, two baselines
    omlt-relax bench --suite cflp --out DIR                         # two-stage facility location
    omlt-relax cflp data|train|solve|evaluate ...                   # the two-stage workflow

Bad input (a missing file, a wrong number of columns, an inverted box, ...) ends the command with
exit status 2 and one line on standard error, ``omlt-relax: error: ...``; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from omlt_relax.cli_input import CliError, csv_dataset
from omlt_relax.cli_input import check_positive as _positive
from omlt_relax.cli_input import floats_arg as _floats
from omlt_relax.cli_input import ints_arg as _ints
from omlt_relax.files import write_text_atomic
from omlt_relax.solve import SOLVER_NAMES, SOLVERS
from omlt_relax.tables import fmt, format_table, milp_cell
from omlt_relax.threads import single_thread

#: Exit status for bad input.
EXIT_USAGE = 2
#: Exit status of ``solve`` when an answer is contradicted by the network's forward pass.
EXIT_UNRELIABLE = 3
#: The status of such an answer (:data:`omlt_relax.verify.UNRELIABLE`).
UNRELIABLE = "numerically_unreliable"

#: Defaults of ``bench``: sized so that the suite's first 11 variants on its 8 functions
#: (``--jobs 2``) fit in about 40 minutes on a 2-core machine; each variant added since (the
#: fine-tuning recipes) adds its share.
BENCH_EPOCHS = 200
BENCH_TIME_LIMIT = 20.0

#: The demo's relaxation-informed training (variant and weight scale), fixed in advance.
DEMO_VARIANT = "bigm+stability"
DEMO_SCALE = 1e-3
DEMO_EPOCHS = 1000
#: The demo's network: five hidden layers of 25 (the paper's deepest size), big enough that the
#: unregularized MILP finds no incumbent within the demo's time limit on 2 cores.
DEMO_HIDDEN = "25,25,25,25,25"


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default after its help, unless the help already says it or the
    default is ``None`` (no "(default: None)" after "(default: the last column)")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or "%(default)" in text or action.default is None:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and shows defaults in ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- helpers ------------------------------------------------------------------------------------
def _fmt(x: Any, spec: str = ".4g") -> str:
    return fmt(x, spec, missing="-")


def _milp_cell(m: dict[str, Any]) -> str:
    return milp_cell(m, text=True)


# -- demo ---------------------------------------------------------------------------------------
def cmd_demo(a: argparse.Namespace) -> int:
    """Peaks on [-3, 3]², a 5×25 network, plain vs relaxation-informed training."""
    from omlt_relax.bench.data import sample_function
    from omlt_relax.bench.functions import get_function
    from omlt_relax.bench.measure import measure_network
    from omlt_relax.bench.report import fmt_bound
    from omlt_relax.train import TrainConfig, fit, get_variant

    single_thread()
    _positive(a.time_limit, "--time-limit")
    hidden = _ints(a.hidden, "--hidden")
    if a.epochs < 1:
        msg = f"--epochs must be at least 1, got {a.epochs}"
        raise CliError(msg)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fn = get_function("peaks")
    data = sample_function(fn, a.n_train, max(50, a.n_train // 4), a.n_train, seed=a.seed)
    cfg = TrainConfig(hidden=hidden, epochs=a.epochs, seed=a.seed)
    variant = get_variant(a.variant)
    t_start = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    from tqdm.auto import tqdm

    for label, v, scale in (("unregularized", get_variant("unregularized"), 0.0),
                            ("relaxation-informed", variant, a.scale)):
        with tqdm(total=cfg.epochs, desc=f"train {label}", unit="epoch", leave=False,
                  disable=a.quiet) as bar:
            res = fit(data, v, scale, cfg, progress=bar.update)
        if not a.quiet:
            print(f"trained {label} ({v.description}, scale {scale:g}) in {res.train_time:.1f} s",
                  flush=True)
        t0 = time.perf_counter()
        meas = measure_network(res.model, data, fn, a.time_limit)
        if not a.quiet:
            print(f"  MILPs (min, max): {_milp_cell(meas['milp']['min'])}, "
                  f"{_milp_cell(meas['milp']['max'])}; measured in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
        runs[label] = {"variant": v.name, "scale": scale, "train_time": res.train_time,
                       "model": res.model, **meas}
    base, reg = runs["unregularized"], runs["relaxation-informed"]
    sp = base["time_total"] / max(reg["time_total"], 1e-9)
    flag = "≥" if not base["solved_all"] else ""
    ratio = reg["test_rmse"] / base["test_rmse"]
    rows = []
    for label, r in runs.items():
        rows.append([
            label, _fmt(r["test_rmse"]), _fmt(r["test_rmse"] / base["test_rmse"], ".3f"),
            f"{r['unstable_ibp']}/{r['unstable_crown']}/{r['unstable_obbt']}",
            _fmt(r["mean_bigm_obbt"], ".3g"),
            _milp_cell(r["milp"]["min"]), _milp_cell(r["milp"]["max"]),
            str(r["nodes_total"]),
            _fmt(((r.get("true_opt") or {}).get("min") or {}).get("f_at_x"), ".4g"),
        ])
    print()
    print(f"peaks on [-3, 3]^2, hidden layers {list(hidden)}, {a.epochs} epochs, "
          f"HiGHS 1 thread, time limit {a.time_limit:g} s per MILP")
    print(format_table(["training", "test RMSE", "ratio", "unstable IBP/CROWN/OBBT",
                        "mean big-M", "MILP min", "MILP max", "nodes", "f(x*_min)"], rows))
    print(f"true min of peaks: {fn.f_min:.4g}")
    print(f"MILP speed-up (min + max): {fmt_bound(sp, flag, 'x')} at {ratio:.3f}x the baseline "
          "test RMSE"
          + (" (the baseline hit the time limit, so the true speed-up is larger)" if flag else ""))
    record = {
        "function": "peaks",
        "config": {**cfg.to_dict(), "time_limit": a.time_limit, "n_train": a.n_train,
                   "variant": variant.name, "scale": a.scale},
        "speedup": sp,
        "speedup_is_lower_bound": bool(flag),
        "rmse_ratio": ratio,
        "runs": {k: {kk: vv for kk, vv in v.items() if kk != "model"} for k, v in runs.items()},
        "wall_time": time.perf_counter() - t_start,
    }
    from omlt_relax.bench.suite import environment

    record["environment"] = environment()
    write_text_atomic(out / "demo.json", json.dumps(record, indent=1))
    _demo_plot(fn, runs, out / "demo.png", sp, flag, ratio)
    print(f"wrote {out / 'demo.json'} and {out / 'demo.png'} "
          f"({record['wall_time']:.0f} s in total)")
    return 0


def _demo_plot(fn: Any, runs: dict[str, dict[str, Any]], path: Path, sp: float, flag: str,
               ratio: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omlt_relax.data import predict

    lo, hi = fn.box
    g = np.linspace(lo[0], hi[0], 121)
    xx, yy = np.meshgrid(g, g)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    panels = [("peaks (true)", fn(pts), None)]
    for label, r in runs.items():
        panels.append((f"{label}\nRMSE {r['test_rmse']:.3g}, {r['unstable_obbt']} unstable",
                       predict(r["model"], pts)[:, 0], r))
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    vmin = min(float(np.min(z)) for _, z, _ in panels)
    vmax = max(float(np.max(z)) for _, z, _ in panels)
    levels = np.linspace(vmin, vmax, 31)
    for ax, (title, z, r) in zip(axes, panels):
        cs = ax.contourf(xx, yy, z.reshape(xx.shape), levels=levels, cmap="viridis")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        if r is not None:
            for s, mk in (("min", "v"), ("max", "^")):
                x = r["milp"][s]["x"]
                if x is not None:
                    ax.plot(x[0], x[1], mk, color="red", ms=9, mec="white")
        else:
            ax.plot(*fn.x_min, "v", color="red", ms=9, mec="white")
            ax.plot(*fn.x_max, "^", color="red", ms=9, mec="white")
    fig.colorbar(cs, ax=axes[:3], shrink=0.8)
    ax = axes[3]
    labels = list(runs)
    for i, s in enumerate(("min", "max")):
        ts = [runs[k]["milp"][s]["time"] for k in labels]
        bars = ax.bar(np.arange(len(labels)) + 0.38 * i, ts, 0.36, label=f"MILP {s}")
        for b, k in zip(bars, labels):
            if runs[k]["milp"][s]["status"] != "optimal":
                b.set_hatch("//")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(labels)) + 0.19, ["unregularized", "relaxation-\ninformed"])
    ax.set_ylabel("HiGHS time [s] (hatched: time limit)")
    ax.set_title(f"speed-up {flag}{sp:.3g}× at {ratio:.2f}× RMSE", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


# -- train --------------------------------------------------------------------------------------
def _check_train_args(a: argparse.Namespace) -> None:
    """Numeric options of ``train`` that argparse's types cannot check."""
    if a.batch_size < 1:
        msg = f"--batch-size must be at least 1, got {a.batch_size}"
        raise CliError(msg)
    _positive(a.lr, "--lr")
    for name, v in (("--val-fraction", a.val_fraction), ("--test-fraction", a.test_fraction)):
        if not (math.isfinite(v) and 0 <= v < 1):
            msg = f"{name} must be in [0, 1), got {v}"
            raise CliError(msg)
    _output_path(a.out, "--out")


def _output_path(text: str, what: str) -> Path:
    """``text`` as a file path to write: its folder is created; a file in the way is an error."""
    out = Path(text)
    if out.is_dir():
        msg = f"{what} {out} is a folder; give a file name such as {out / 'net.onnx'}"
        raise CliError(msg)
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                msg = f"{what} {out} cannot be written: {parent} is a file, not a folder"
                raise CliError(msg)
            break
    out.parent.mkdir(parents=True, exist_ok=True)
    return out




def cmd_train(a: argparse.Namespace) -> int:
    """CSV -> (optionally relaxation-informed) network -> ONNX with per-neuron bounds."""
    from omlt_relax.data import predict, rmse
    from omlt_relax.export import export_onnx
    from omlt_relax.train import TrainConfig, fit, get_variant, total_epochs

    single_thread()
    hidden = _ints(a.hidden, "--hidden")
    if a.epochs < 1:
        msg = f"--epochs must be at least 1, got {a.epochs}"
        raise CliError(msg)
    _check_train_args(a)
    if a.weight < 0 or not math.isfinite(a.weight):
        msg = f"--weight must be a number >= 0, got {a.weight}"
        raise CliError(msg)
    if getattr(a, "budget", None) is not None:
        from omlt_relax.cli_tune import cmd_train_budget

        return cmd_train_budget(a, hidden)
    data, lo, hi, in_names, out_names = csv_dataset(a)
    v = get_variant("unregularized" if a.regularize == "none" else a.regularize)
    cfg = TrainConfig(hidden=hidden, epochs=a.epochs, lr=a.lr, batch_size=a.batch_size,
                      seed=a.seed)
    from tqdm.auto import tqdm

    with tqdm(total=total_epochs(v, cfg), desc="train", unit="epoch", disable=a.quiet) as bar:
        res = fit(data, v, a.weight if v.regularized else 0.0, cfg, progress=bar.update)
    out = _output_path(a.out, "--out")
    nb = export_onnx(res.model, out, (lo, hi), bounds=a.bounds)
    test = rmse(predict(res.model, data.x_test), data.y_test)
    print(f"trained {len(in_names)} -> {list(hidden)} -> {len(out_names)} "
          f"({v.description}) in {res.train_time:.1f} s; validation RMSE {res.val_rmse:.4g}, "
          f"test RMSE {test:.4g}")
    print(f"bounds ({nb.method}): {nb.unstable_summary()}, mean big-M {nb.mean_bigm():.3g}")
    print(f"wrote {out} and {out}.bounds.json (inputs {', '.join(in_names)}; "
          f"outputs {', '.join(out_names)})")
    return 0


# -- solve --------------------------------------------------------------------------------------
def cmd_solve(a: argparse.Namespace) -> int:
    """ONNX (ours, or any dense ReLU network: bounds on the fly) -> MILP min/max -> report."""
    from omlt_relax.optimize import STOCK_FORMULATIONS, solve_milp
    from omlt_relax.solve import SolverUnavailableError

    _positive(a.time_limit, "--time-limit")
    if a.threads < 1:
        msg = f"--threads must be at least 1, got {a.threads}"
        raise CliError(msg)
    if a.partitions < 1:
        msg = f"--partitions must be at least 1, got {a.partitions}"
        raise CliError(msg)
    p = Path(a.onnx)
    if not p.is_file():
        msg = f"no ONNX file at {p}"
        raise CliError(msg)
    from omlt_relax.neuron_bounds import BoundsMismatchError
    from omlt_relax.tighten import load_network

    box = _box_args(a)
    try:
        t0 = time.perf_counter()
        net, nb, computed = load_network(p, box, a.bounds, logits=a.logits, log=print)
        if computed:
            print(f"bounds ({nb.method}) in {time.perf_counter() - t0:.3g} s")
    except (ValueError, FileNotFoundError, BoundsMismatchError):
        raise
    except Exception as e:  # a file onnx/OMLT cannot parse at all
        msg = f"{p} is not an ONNX network omlt-relax can read ({type(e).__name__}: {e})"
        raise CliError(msg) from None
    senses = ("min", "max") if a.sense == "both" else (a.sense,)
    ours = "partition" if a.formulation == "partition" else "bounded"
    stock = "omlt_partition" if ours == "partition" else "omlt"
    forms = [ours, stock] if a.compare_omlt else [ours]
    labels = {"bounded": "omlt_relax big-M", "omlt": "stock OMLT big-M",
              "partition": f"omlt_relax partition ({a.partitions})",
              "omlt_partition": f"stock OMLT partition ({a.partitions})"}
    rows = []
    report: dict[str, Any] = {"onnx": str(p), "solver": a.solver, "bounds_method": nb.method,
                              "unstable": nb.unstable_count(), "neurons": int(sum(nb.widths)),
                              "unstable_per_layer": nb.unstable_per_layer(),
                              "input_lower": nb.input_lower.tolist(),
                              "input_upper": nb.input_upper.tolist(), "results": []}
    for form in forms:
        for s in senses:
            try:
                r = solve_milp(net, None if form in STOCK_FORMULATIONS else nb, s, a.time_limit,
                               output=a.output, formulation=form, solver=a.solver,
                               threads=a.threads, n_partitions=a.partitions,
                               start=None if a.mip_start == "none" else a.mip_start)
            except SolverUnavailableError as e:
                msg = f"{e}; on the command line: omlt-relax solve {p} --solver highs"
                raise CliError(msg) from None
            report["results"].append({"formulation": form, **r.to_dict()})
            rows.append([
                labels[form], s, r.status,
                _fmt(r.objective, ".8g"), _fmt(r.bound, ".8g"),
                _fmt(100 * r.gap, ".3g") + "%" if r.gap is not None else "-",
                f"{r.time:.3g}", str(r.nodes if r.nodes is not None else "-"),
                str(r.n_binaries), "[" + ", ".join(f"{v:.5g}" for v in r.x) + "]" if r.x else "-",
                _fmt(r.start_objective, ".8g"),
            ])
    print(f"{p}: {nb.unstable_summary()} under the "
          f"{'computed' if computed else 'stored'} {nb.method} bounds; output {a.output}; "
          f"{SOLVER_NAMES[a.solver]}, {a.threads} thread(s)")
    print(format_table(["formulation", "sense", "status", "objective", "bound", "gap", "time s",
                        "nodes", "binaries", "x*", "start"], rows))
    if a.json:
        write_text_atomic(_output_path(a.json, "--json"), json.dumps(report, indent=1))
        print(f"wrote {a.json}")
    bad = [r for r in report["results"] if r["status"] == UNRELIABLE]
    for r in bad:
        print(f"omlt-relax solve: error: {r['sense']} ({r['formulation']}): {r['note']}",
              file=sys.stderr)
    return EXIT_UNRELIABLE if bad else 0


# -- tighten ------------------------------------------------------------------------------------
def _box_args(a: argparse.Namespace) -> tuple[list[float], list[float]] | None:
    """``(lb, ub)`` from ``--lb``/``--ub`` (both or neither), else ``None`` (use the sidecar)."""
    lb, ub = _floats(a.lb, "--lb"), _floats(a.ub, "--ub")
    if (lb is None) != (ub is None):
        msg = "give both --lb and --ub (or neither, to use the <file>.bounds.json sidecar)"
        raise CliError(msg)
    return None if lb is None or ub is None else (lb, ub)


def cmd_tighten(a: argparse.Namespace) -> int:
    """Any dense ReLU ONNX -> a copy with our per-neuron bounds and OMLT's sidecar."""
    from omlt_relax.tighten import METHOD_NAMES, tighten_onnx

    single_thread()
    _positive(a.time_limit, "--time-limit")
    out = Path(a.out)
    if out.parent and not out.parent.exists():
        msg = f"the directory of --out ({out.parent}) does not exist"
        raise CliError(msg)
    t0 = time.perf_counter()
    box = _box_args(a)
    print(f"computing {METHOD_NAMES[a.bounds]} bounds of {a.onnx} over "
          f"{'the given box' if box else f'{a.onnx}.bounds.json'} ...")
    nb = tighten_onnx(a.onnx, out, box, a.bounds, time_limit=a.time_limit, logits=a.logits)
    print(f"bounds ({nb.method}) in {time.perf_counter() - t0:.3g} s: {nb.unstable_summary()}, "
          f"mean big-M {nb.mean_bigm():.3g}")
    print(f"wrote {out} and {out}.bounds.json")
    return 0


# -- bench --------------------------------------------------------------------------------------
def cmd_bench(a: argparse.Namespace) -> int:
    """The benchmark suite (see :mod:`omlt_relax.bench.suite`), ``--suite paper`` or
    ``--suite cflp`` (:mod:`omlt_relax.stochastic.bench`)."""

    if a.subset is not None and a.suite != "paper":
        raise CliError(f"--subset {a.subset} belongs to the paper suite; add --suite paper")
    if a.train_only and a.suite != "paper":
        raise CliError("--train-only belongs to the paper suite; add --suite paper")
    if a.suite == "paper":
        return _bench_paper(a)
    if a.suite == "scale":
        return _bench_scale(a)
    if a.suite == "cflp":
        from omlt_relax.stochastic.cli import cmd_bench_cflp

        single_thread()
        return cmd_bench_cflp(a)
    defaults = (("functions", "2d"), ("variants", "all"), ("time_limit", BENCH_TIME_LIMIT),
                ("n_train", 2000), ("epochs", BENCH_EPOCHS), ("hidden", hidden_default()),
                ("tolerance", 1.2))
    for name, default in defaults:
        if getattr(a, name) is None:
            setattr(a, name, default)

    from omlt_relax.bench.functions import FUNCTIONS
    from omlt_relax.bench.suite import (
        PLOT_FILE,
        RESULTS_FILE,
        TABLE_FILE,
        SuiteConfig,
        parse_list,
        run_suite,
    )
    from omlt_relax.train import SUITE_VARIANTS, VARIANTS, TrainConfig

    single_thread()
    _positive(a.time_limit, "--time-limit")
    _positive(a.tolerance, "--tolerance")
    if a.jobs < 1:
        msg = f"--jobs must be at least 1, got {a.jobs}"
        raise CliError(msg)
    if a.epochs < 1:
        msg = f"--epochs must be at least 1, got {a.epochs}"
        raise CliError(msg)
    funcs = parse_list(a.functions, list(FUNCTIONS), "function")
    variants = parse_list(a.variants, list(VARIANTS), "variant", SUITE_VARIANTS)
    base = TrainConfig()
    cfg = SuiteConfig(
        functions=funcs,
        variants=variants,
        train=TrainConfig(hidden=_ints(a.hidden, "--hidden"), epochs=a.epochs,
                          batch_size=base.batch_size, lr=base.lr, seed=a.seed),
        time_limit=a.time_limit,
        tolerance=a.tolerance,
        n_train=a.n_train,
        n_val=max(20, a.n_train // 4),
        n_test=a.n_train,
    )
    t0 = time.perf_counter()
    log = None if a.quiet else (lambda s: print(s, flush=True))
    from omlt_relax.cli_tune import dask_for

    with dask_for(a) as client:
        results = run_suite(cfg, a.out, fresh=a.fresh, progress=not a.quiet, log=log,
                            client=client)
    out = Path(a.out)
    if not a.quiet:
        print((out / TABLE_FILE).read_text())
    summ = results["summary"]
    print(f"{len(results['entries'])} entries; wrote {out / RESULTS_FILE}, {out / TABLE_FILE}, "
          f"{out / PLOT_FILE} in {time.perf_counter() - t0:.0f} s")
    g = summ.get("best_ours_geomean_2d")
    if g is not None:
        print(f"geometric-mean speed-up of our fastest variant within 1.25x RMSE over "
              f"{summ['best_ours_2d_functions']} 2-D functions: {g:.3g}x")
    return 0


def _bench_paper(a: argparse.Namespace) -> int:
    """``omlt-relax bench --suite paper``: Tsay 2026's protocol (:mod:`omlt_relax.bench.paper`)."""
    from omlt_relax.bench.paper import (
        FORMULATIONS,
        MINIMUM_SUBSET,
        PAPER_FUNCTIONS,
        PAPER_VARIANTS,
        REPORT_FILE,
        PaperConfig,
        jobs_of,
        run_paper,
        write_report,
    )
    from omlt_relax.bench.paper.report import REFUSED_DIR, load_refused
    from omlt_relax.bench.paper.run import stored_networks
    from omlt_relax.bench.suite import parse_list

    single_thread()
    # --subset minimum: the subset's functions, depths, seeds, variants and λ where not given
    base = MINIMUM_SUBSET if a.subset == "minimum" else PaperConfig()
    _positive(a.time_limit, "--time-limit")
    lambdas = tuple(_floats(a.lambdas, "--lambdas") or base.lambdas)
    for lam in lambdas:
        _positive(lam, "--lambdas")
    seeds = tuple(int(s) for s in a.seeds.split(",")) if a.seeds else base.seeds
    try:
        cfg = PaperConfig(
            functions=(tuple(parse_list(a.functions, list(PAPER_FUNCTIONS), "function"))
                       if a.functions else base.functions),
            depths=_ints(a.depths, "--depths") if a.depths else base.depths,
            seeds=seeds,
            variants=(tuple(parse_list(a.variants, list(PAPER_VARIANTS), "variant"))
                      if a.variants else base.variants),
            lambdas=lambdas,
            n_train=base.n_train if a.n_train is None else a.n_train,
            n_val=base.n_val if a.n_val is None else a.n_val,
            n_test=base.n_test if a.n_test is None else a.n_test,
            epochs=base.epochs if a.epochs is None else a.epochs,
            time_limit=base.time_limit if a.time_limit is None else a.time_limit,
            solvers=tuple(parse_list(a.solvers, ["highs", "gurobi"], "solver")),
            formulations=tuple(parse_list(a.formulations, list(FORMULATIONS), "formulation")),
        )
    except ValueError as e:
        raise CliError(str(e)) from None
    if a.report_only:
        path = write_report(a.out, cfg)
        print(path.read_text())
        return 0
    log = None if a.quiet else (lambda s: print(s, flush=True))
    t0 = time.perf_counter()
    from omlt_relax.cli_tune import dask_for

    if a.train_only:
        if a.jobs != 1 or getattr(a, "scheduler", None):
            raise CliError("--train-only trains in this process: drop --jobs and --scheduler "
                           "(several processes may share --out instead)")
        run_paper(cfg, a.out, log=log, progress=not a.quiet, train_only=True)
        stored = stored_networks(cfg, a.out)
        print(f"{len(stored)} of {len(jobs_of(cfg))} networks stored in "
              f"{Path(a.out) / 'models'}, no MILP "
              f"solved; the same command without --train-only measures them "
              f"({time.perf_counter() - t0:.0f} s)")
        return 0
    with dask_for(a) as client:  # None (one process; several may share --out) for --jobs 1
        recs = run_paper(cfg, a.out, log=log, progress=not a.quiet, client=client)
    out = Path(a.out)
    if not a.quiet:
        print((out / REPORT_FILE).read_text())
    refused = load_refused(out, cfg)
    note = (f"; {len(refused)} refused by the guards (why: {out / REFUSED_DIR})"
            if refused else "")
    print(f"{len(recs)} networks finished{note}; wrote {out / REPORT_FILE} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


def _bench_scale(a: argparse.Namespace) -> int:
    """``omlt-relax bench --suite scale``: 2x100/3x100 networks, two baselines, equal-accuracy
    speed-ups (:mod:`omlt_relax.bench.scale`)."""
    from omlt_relax.bench.functions import FUNCTIONS
    from omlt_relax.bench.results import RESULTS_FILE
    from omlt_relax.bench.scale import (
        REPORT_FILE,
        REPORT_JSON,
        SCALE_EPOCHS,
        SCALE_FUNCTIONS,
        SCALE_TIME_LIMIT,
        SCALE_VARIANTS,
        ScaleConfig,
        parse_sizes,
        run_scale,
        write_scale_report,
    )
    from omlt_relax.bench.suite import parse_list
    from omlt_relax.train import VARIANTS, TrainConfig

    single_thread()
    time_limit = SCALE_TIME_LIMIT if a.time_limit is None else a.time_limit
    epochs = SCALE_EPOCHS if a.epochs is None else a.epochs
    _positive(time_limit, "--time-limit")
    if epochs < 1:
        msg = f"--epochs must be at least 1, got {epochs}"
        raise CliError(msg)
    if a.sizes is not None and a.hidden is not None:
        msg = "give the network sizes once: --sizes 2x100,3x100 or --hidden '100,100;100,100,100'"
        raise CliError(msg)
    base = ScaleConfig()
    try:
        sizes = parse_sizes(a.sizes or a.hidden) if (a.sizes or a.hidden) else base.sizes
        variants = parse_list(a.variants or ",".join(SCALE_VARIANTS), list(VARIANTS), "variant")
        scales = None
        if a.scales is not None:
            vals = _floats(a.scales, "--scales") or []
            scales = {v: vals for v in variants if v != "unregularized"}
        n_train = base.n_train if a.n_train is None else a.n_train
        for name, n in (("--n-train", n_train), ("--n-val", a.n_val), ("--n-test", a.n_test)):
            if n is not None and n < 1:
                msg = f"{name} must be at least 1, got {n}"
                raise CliError(msg)
        cfg = ScaleConfig(
            functions=parse_list(a.functions or ",".join(SCALE_FUNCTIONS), list(FUNCTIONS),
                                 "function"),
            variants=variants,
            train=TrainConfig(epochs=epochs, seed=a.seed),
            time_limit=time_limit,
            n_train=n_train,
            n_val=max(20, n_train // 4) if a.n_val is None else a.n_val,
            n_test=n_train if a.n_test is None else a.n_test,
            sizes=sizes,
            scales=scales or {},
            stock=not a.no_stock,
            snap_weights=a.snap_weights,
        )
    except ValueError as e:
        raise CliError(str(e)) from None
    out = Path(a.out)
    if a.report_only:
        print(write_scale_report(out).read_text())
        return 0
    log = None if a.quiet else (lambda s: print(s, flush=True))
    t0 = time.perf_counter()
    from omlt_relax.cli_tune import dask_for

    with dask_for(a) as client:
        results = run_scale(cfg, out, fresh=a.fresh, progress=not a.quiet, log=log,
                            client=client)
    if not a.quiet:
        print((out / REPORT_FILE).read_text())
    print(f"{len(results['entries'])} networks; wrote {out / RESULTS_FILE}, "
          f"{out / REPORT_FILE}, {out / REPORT_JSON} and scale_<function>.png in "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


# -- entry point --------------------------------------------------------------------------------
def hidden_default() -> str:
    """The default hidden widths of ``train``/``demo``/``bench``, e.g. ``"50,50"``."""
    from omlt_relax.train import TrainConfig

    return ",".join(str(h) for h in TrainConfig().hidden)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``omlt-relax``."""
    from omlt_relax.bounds.methods import EXPORT_METHODS
    from omlt_relax.train import VARIANTS, TrainConfig

    d = TrainConfig()
    hidden = ",".join(str(h) for h in d.hidden)
    p = _Parser(prog="omlt-relax", description=__doc__.split("\n")[0])
    p.add_argument("--debug", action="store_true",
                   help=f"show the traceback of an error (or set {DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", metavar="{demo,train,solve,tighten,bench,tune,cflp}",
                           parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("demo", help="peaks 5x25: plain vs relaxation-informed training, "
                                    "both MILPs side by side (about 5 minutes)")
    s.add_argument("--out", default="omlt_relax_demo", help="output directory (JSON, PNG)")
    s.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="training epochs")
    s.add_argument("--hidden", default=DEMO_HIDDEN, help="hidden widths, e.g. 50,50")
    s.add_argument("--time-limit", type=float, default=60.0, help="seconds per MILP")
    s.add_argument("--n-train", type=int, default=2000)
    s.add_argument("--variant", default=DEMO_VARIANT, help="relaxation-informed variant")
    s.add_argument("--scale", type=float, default=DEMO_SCALE, help="its weight scale")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("train", help="CSV -> trained network -> ONNX with per-neuron bounds")
    s.add_argument("csv", help="CSV file with a header row")
    s.add_argument("--out", required=True, help="ONNX file to write")
    s.add_argument("--inputs", help="input column names, comma-separated")
    s.add_argument("--targets", help="target column names (default: the last column)")
    s.add_argument("--n-inputs", type=int, help="the first N columns are inputs")
    s.add_argument("--lb", help="input lower bounds, comma-separated (default: data min)")
    s.add_argument("--ub", help="input upper bounds, comma-separated (default: data max)")
    s.add_argument("--hidden", default=hidden, help="hidden layer widths, comma-separated")
    s.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    s.add_argument("--lr", type=float, default=d.lr, help="Adam's learning rate")
    s.add_argument("--batch-size", type=int, default=d.batch_size, help="mini-batch size")
    regularizing = (n for n, v in VARIANTS.items() if v.regularized)
    s.add_argument("--regularize", choices=["none", *regularizing],
                   default="none", help="a training variant (see omlt_relax.train)")
    s.add_argument("--weight", type=float, default=DEMO_SCALE,
                   help="its weight scale (pruning: the pruned fraction)")
    s.add_argument("--bounds", choices=EXPORT_METHODS, default="lp",
                   help="bounds stored with the network")
    s.add_argument("--val-fraction", type=float, default=0.15,
                   help="share of the rows kept for validation (its RMSE is reported; "
                        "--budget uses it)")
    s.add_argument("--test-fraction", type=float, default=0.15,
                   help="share of the rows held out for the test RMSE")
    s.add_argument("--seed", type=int, default=0, help="seed of the split and the initial weights")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("solve", help="ONNX -> MILP min/max of an output -> report")
    s.add_argument("onnx", help="ONNX file: from export_onnx / omlt-relax train / tighten, or "
                                "any dense ReLU network (bounds computed on the fly)")
    s.add_argument("--sense", choices=("min", "max", "both"), default="both",
                   help="minimize, maximize, or both (two MILPs)")
    s.add_argument("--output", type=int, default=0, help="index of the output to optimize")
    s.add_argument("--time-limit", type=float, default=60.0, help="seconds per MILP")
    s.add_argument("--threads", type=int, default=1, help="solver threads")
    s.add_argument("--solver", choices=SOLVERS, default="highs",
                   help="MILP solver: highs (default, open source, no size limit), gurobi "
                        "(needs gurobipy and a licence; the pip licence stops at 2000 variables "
                        "or constraints) or scip (pyscipopt)")
    s.add_argument("--formulation", choices=("bigm", "partition"), default="bigm",
                   help="bigm (default): big-M with the stored bounds, no binary for a stable "
                        "neuron; partition: the same bounds and binaries, each unstable neuron's "
                        "inputs split into --partitions groups (a tighter LP, more variables)")
    s.add_argument("--partitions", type=int, default=2,
                   help="groups per unstable neuron of --formulation partition (1 is big-M)")
    s.add_argument("--compare-omlt", action="store_true",
                   help="also solve with stock OMLT: ReluBigMFormulation, or with --formulation "
                        "partition ReluPartitionFormulation into the same --partitions groups")
    s.add_argument("--mip-start", choices=("none", "probe", "local"), default="local",
                   help="local (default): hand the solver a first incumbent, the best of 8 "
                        "local searches over the network's linear regions (small LPs) from the "
                        "best of 4,096 forward passes (omlt_relax.mip_start; at a time limit "
                        "there is always an answer); probe: the best forward pass as it is; "
                        "column 'start' shows its value")
    s.add_argument("--json", help="write the report as JSON here")
    _foreign_args(s, "for a file without our bounds: how to compute them on the fly")
    s.set_defaults(func=cmd_solve)

    s = sub.add_parser("tighten", help="any dense ReLU ONNX -> copy with per-neuron bounds")
    s.add_argument("onnx", help="ONNX file (Gemm or MatMul+Add, Relu; e.g. from Keras or PyTorch)")
    s.add_argument("--out", required=True, help="ONNX file to write (and its .bounds.json)")
    s.add_argument("--time-limit", type=float, help="budget of OBBT in seconds (default: none)")
    _foreign_args(s, "bound method")
    s.set_defaults(func=cmd_tighten)

    s = sub.add_parser("bench", help="the benchmark suite: JSON, markdown table, Pareto plot")
    s.add_argument("--suite", choices=("default", "paper", "scale", "cflp"), default="default",
                   help="'default': our suite (2x50 nets, all variants); 'paper': Tsay 2026's "
                        "protocol (width 25, depths 2/3/5, 70k LHS samples, 1800 s MILPs) with "
                        "our variants beside the paper's; 'scale': the well-fitted functions at "
                        "2x100 and 3x100, 600 s MILPs, stock OMLT (a) and our pipeline (b) on "
                        "every unregularized net, speed-ups at equal accuracy (full run: "
                        "'omlt-relax bench --suite scale --out bench_scale'; see "
                        "omlt_relax.bench.scale); 'cflp': two-stage facility location "
                        "with quantile networks (omlt_relax.stochastic.bench)")
    s.add_argument("--out", default="bench_results", help="output directory (resumable)")
    s.add_argument("--functions", default=None,
                   help="comma-separated, '2d' or 'all' (default: 2d; paper: all; scale: peaks,"
                        "rosenbrock,himmelblau,styblinski_tang,rosenbrock5)")
    s.add_argument("--variants", default=None,
                   help="comma-separated or 'all' (default: all; scale: bigm+stability,"
                        "stability)")
    s.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {BENCH_EPOCHS}; paper: 200; scale: 300; "
                        "cflp: 80)")
    s.add_argument("--hidden", default=None,
                   help=f"hidden widths (default {hidden}; cflp: 100,100; scale: several sizes "
                        "separated by ';', e.g. '100,100;100,100,100')")
    s.add_argument("--scales", default=None,
                   help="scale suite: weight scales for every regularized variant, e.g. "
                        "1e-4,1e-3 (default per variant: bigm+stability 1e-5,3e-5,1e-4,3e-4,"
                        "1e-3; stability 1e-5,1e-4,1e-3)")
    s.add_argument("--no-stock", action="store_true",
                   help="scale suite: skip baseline (a), stock OMLT, on the unregularized nets")
    s.add_argument("--time-limit", type=float, default=None,
                   help=f"seconds per MILP (default {BENCH_TIME_LIMIT:g}; paper: 1800; scale: "
                        "600; cflp: 300)")
    s.add_argument("--tolerance", type=float, default=None,
                   help="weight selection: validation RMSE (cflp: pinball loss) <= tolerance x "
                        "baseline (default 1.2; cflp: 1.1)")
    s.add_argument("--n-train", type=int, default=None,
                   help="training samples (default 2000, validation a quarter, test as many; "
                        "paper: 70000/30000/10000; scale: 4000/1000/4000)")
    s.add_argument("--n-val", type=int, default=None,
                   help="paper and scale suites: validation samples")
    s.add_argument("--n-test", type=int, default=None, help="paper and scale suites: test samples")
    s.add_argument("--depths", default=None, help="paper suite: hidden layers, e.g. 3,5")
    s.add_argument("--seeds", default=None, help="paper suite: seeds, e.g. 0,1,2 (default 0-19)")
    s.add_argument("--lambdas", default=None, help="paper suite: weights (default 1e-4,1e-3,1e-2)")
    s.add_argument("--subset", choices=("minimum",), default=None,
                   help="paper suite: 'minimum' = the paper's own settings (none, width, "
                        "stable, lpgap at the three weights) at depths 3 and 5, seeds 0-2, "
                        "every function (180 networks); other options narrow or replace it")
    s.add_argument("--solvers", default="highs,gurobi",
                   help="paper suite: MILP solvers, one thread each (Gurobi where its licence "
                        "allows)")
    s.add_argument("--formulations", default="paper,ours",
                   help="paper suite: 'paper' (IBP big-M), 'ours' (LP-OBBT big-M), 'stock' "
                        "(stock OMLT ReluBigMFormulation with its own bounds)")
    s.add_argument("--report-only", action="store_true",
                   help="paper and scale suites: only rewrite the report from the finished "
                        "jobs in --out")
    s.add_argument("--train-only", action="store_true",
                   help="paper suite: train and store the networks not stored yet in --out, "
                        "solve no MILP (e.g. the unregularized networks the fine-tunings start "
                        "from, without their long baseline MILPs); a later run without it "
                        "measures them")
    s.add_argument("--seed", type=int, default=0,
                   help="training seed (cflp suite: the data split and initial weights)")
    s.add_argument("--fresh", action="store_true", help="ignore earlier results in --out")
    s.add_argument("--jobs", type=int, default=1,
                   help="jobs at once: workers of a local Dask cluster, one core each (1: here)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_bench)
    from omlt_relax.stochastic.cli import add_bench_options, add_cflp_parser

    add_bench_options(s)
    add_cflp_parser(sub)

    from omlt_relax import cli_tune

    cli_tune.add_scheduler_argument(s)
    cli_tune.add_budget_arguments(sub.choices["train"])
    cli_tune.add_tune_parser(sub, hidden, d)
    return p


def _foreign_args(s: argparse.ArgumentParser, bounds_help: str) -> None:
    from omlt_relax.bounds.methods import EXPORT_METHODS

    s.add_argument("--bounds", choices=EXPORT_METHODS, default="lp", help=bounds_help)
    s.add_argument("--lb", help="input lower bounds, comma-separated (default: the sidecar)")
    s.add_argument("--ub", help="input upper bounds, comma-separated (default: the sidecar)")
    s.add_argument("--logits", action="store_true",
                   help="drop a final Softmax/LogSoftmax and optimize a logit")


#: Environment variable that, set to 1, shows the traceback of an error (as ``--debug`` does).
DEBUG_ENV = "OMLT_RELAX_DEBUG"


def _one_line(e: BaseException) -> str:
    """The whole message of an exception on one line (never cut off after its first line)."""
    text = " ".join(part.strip() for part in str(e).strip().splitlines() if part.strip())
    if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``omlt-relax``; returns the exit status (0 success, 2 bad input, 130 interrupted).

    Every error is one line on standard error, ``omlt-relax <cmd>: error: ...``; ``--debug`` (or
    ``OMLT_RELAX_DEBUG=1``) shows the traceback instead.
    """
    try:
        parser = build_parser()  # imports torch: Ctrl-C may come here too
    except KeyboardInterrupt:
        print("omlt-relax: interrupted (nothing was changed)", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    from omlt_relax.neuron_bounds import BoundsMismatchError

    user_errors: tuple[type[BaseException], ...] = (
        CliError, ValueError, BoundsMismatchError, OSError,
    )
    try:
        from omlt_relax.solve import SolverUnavailableError

        user_errors = (*user_errors, SolverUnavailableError)
    except ImportError:  # pragma: no cover
        pass
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"omlt-relax {args.command}: interrupted (nothing that existed before was changed)",
              file=sys.stderr)
        return 130
    except user_errors as e:
        if debug:
            raise
        print(f"omlt-relax {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if debug:
            raise
        print(f"omlt-relax {args.command}: error: unexpected {type(e).__name__}: {_one_line(e)} "
              f"(run with --debug or {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
