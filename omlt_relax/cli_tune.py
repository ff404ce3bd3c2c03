"""The ``omlt-relax`` parts that choose weights and run on Dask: ``train --budget``, ``tune``, and
``--scheduler`` (``bench``, ``tune``). :mod:`omlt_relax.cli` registers them.

.. code-block:: text

    omlt-relax train data.csv --out net.onnx --budget 1.2       # strongest weight within budget
    omlt-relax tune data.csv --budget 1.25 --trials 40 --out tune_results [--jobs 2]
    omlt-relax tune --function peaks --trials 40 --storage postgresql://... --scheduler tcp://...
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omlt_relax.cli_input import CliError, check_positive, csv_dataset, floats_arg, ints_arg
from omlt_relax.files import write_text_atomic
from omlt_relax.tables import format_table
from omlt_relax.threads import single_thread


@contextlib.contextmanager
def dask_for(a: argparse.Namespace) -> Iterator[Any]:
    """The Dask client of ``--scheduler`` or of a local cluster of ``--jobs`` workers (``None``,
    i.e. this process, for ``--jobs 1`` without a scheduler)."""
    from omlt_relax.bench.dask_runner import dask_client, require_distributed

    if a.jobs < 1:
        msg = f"--jobs must be at least 1, got {a.jobs}"
        raise CliError(msg)
    if a.scheduler is None and a.jobs == 1:
        yield None  # one job at a time in this process: same jobs and callbacks, no cluster
        return
    try:
        require_distributed()
    except ImportError as err:
        raise CliError(str(err)) from None
    with dask_client(a.scheduler, a.jobs) as client:
        yield client


def add_scheduler_argument(s: argparse.ArgumentParser) -> None:
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler (e.g. tcp://host:8786) to run the jobs on; default: a "
                        "local cluster of --jobs single-threaded workers")


# -- train --budget ---------------------------------------------------------------------------
def add_budget_arguments(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("accuracy budget (instead of --weight)")
    g.add_argument("--budget", type=float,
                   help="find the strongest weight whose validation RMSE stays within BUDGET x "
                        "the unregularized network's (>= 1; --regularize defaults to "
                        "bigm+stability)")
    g.add_argument("--stage-epochs", type=int, help="epochs per weight (default: epochs / 5)")
    g.add_argument("--ramp-factor", type=float, default=2.0, help="weight growth per stage")


def cmd_train_budget(a: argparse.Namespace, hidden: tuple[int, ...]) -> int:
    """``omlt-relax train --budget``: :func:`omlt_relax.budget.train_within_budget`, then export."""
    from omlt_relax.budget import DEFAULT_VARIANT, check_budget, train_within_budget
    from omlt_relax.data import predict, rmse
    from omlt_relax.export import export_onnx
    from omlt_relax.train import TrainConfig

    single_thread()
    try:
        check_budget(a.budget)
    except ValueError as err:
        raise CliError(f"--{err}") from None
    if a.stage_epochs is not None and a.stage_epochs < 1:
        msg = f"--stage-epochs must be at least 1, got {a.stage_epochs}"
        raise CliError(msg)
    data, lo, hi, in_names, out_names = csv_dataset(a)
    variant = DEFAULT_VARIANT if a.regularize == "none" else a.regularize
    cfg = TrainConfig(hidden=hidden, epochs=a.epochs, lr=a.lr, batch_size=a.batch_size,
                      seed=a.seed)
    log = None if a.quiet else (lambda s: print(s, flush=True))
    res = train_within_budget(data, a.budget, variant, cfg, factor=a.ramp_factor,
                              stage_epochs=a.stage_epochs, log=log)
    out = Path(a.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    nb = export_onnx(res.model, out, (lo, hi), bounds=a.bounds)
    test = rmse(predict(res.model, data.x_test), data.y_test)
    ref_test = rmse(predict(res.reference.model, data.x_test), data.y_test)
    report = Path(f"{out}.budget.json")
    import json

    write_text_atomic(report, json.dumps({**res.to_dict(), "test_rmse": test,
                                          "reference_test_rmse": ref_test}, indent=1))
    print(f"trade-off found ({res.variant}, budget {a.budget:g}x the unregularized validation "
          "RMSE; bounds: sound CROWN):")
    print(res.table())
    print(f"chose weight {res.weight:.3g}: validation RMSE {res.val_rmse:.4g} "
          f"({res.ratio:.3f}x), test RMSE {test:.4g} ({test / ref_test:.3f}x) in "
          f"{res.train_time:.1f} s")
    print(f"bounds ({nb.method}): {nb.unstable_count()} of {sum(nb.widths)} hidden neurons "
          f"unstable, mean big-M {nb.mean_bigm():.3g}")
    print(f"wrote {out}, {out}.bounds.json and {report} (inputs {', '.join(in_names)}; "
          f"outputs {', '.join(out_names)})")
    return 0


# -- tune -------------------------------------------------------------------------------------
def add_tune_parser(sub: Any, hidden: str, d: Any) -> None:
    from omlt_relax.bench.functions import FUNCTIONS
    from omlt_relax.tune import PICKS

    s = sub.add_parser("tune", help="Optuna study of penalty weights, bounds and schedule: "
                                    "validation RMSE vs MILP time (on Dask)")
    s.add_argument("csv", nargs="?", help="CSV file with a header row (or use --function)")
    s.add_argument("--function", choices=list(FUNCTIONS),
                   help="a benchmark function instead of a CSV (sampled like `bench`)")
    s.add_argument("--out", default="tune_results",
                   help="output folder (study.db, pareto.md/png, chosen.onnx)")
    s.add_argument("--budget", type=float, default=1.25,
                   help="validation RMSE ratio allowed for the picked network (>= 1)")
    s.add_argument("--trials", type=int, default=40, help="total trials wanted in the study")
    s.add_argument("--time-limit", type=float, default=20.0, help="seconds per MILP")
    s.add_argument("--skip-factor", type=float, default=1.5,
                   help="trials with ratio > budget x this skip the MILP (pruned)")
    s.add_argument("--bigm-range", metavar="LO,HI",
                   help="log-uniform range of the big-M weight (default: the suite's grid, "
                        "1e-4,3e-2)")
    s.add_argument("--stability-range", metavar="LO,HI",
                   help="log-uniform range of the stability weight (default 3e-5,9e-3)")
    s.add_argument("--seed-scales", metavar="S1,S2,...",
                   help="scales of the suite candidates the study starts with (default "
                        "3e-3,1e-3,3e-4; 'none': no seeds)")
    s.add_argument("--pick", default="fastest-within-budget",
                   help=f"which trial to export: {', '.join(PICKS)} or a trial number")
    s.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db); "
                                     "e.g. postgresql://user:pw@host/db for many machines")
    s.add_argument("--study", default="omlt_relax_tune", help="study name in the storage")
    s.add_argument("--jobs", type=int, default=1,
                   help="trials at once: workers of a local Dask cluster, one core each (1: here)")
    add_scheduler_argument(s)
    s.add_argument("--bounds", choices=("lp", "crown", "ibp", "milp"), default="lp",
                   help="bounds stored with the exported network")
    s.add_argument("--hidden", default=hidden)
    s.add_argument("--epochs", type=int, default=200)
    s.add_argument("--lr", type=float, default=d.lr)
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--seed", type=int, default=0, help="training (and sampler) seed")
    s.add_argument("--n-train", type=int, default=2000,
                   help="--function: training samples (validation: a quarter; test: as many)")
    s.add_argument("--inputs", help="input column names, comma-separated")
    s.add_argument("--targets", help="target column names (default: the last column)")
    s.add_argument("--n-inputs", type=int, help="the first N columns are inputs")
    s.add_argument("--lb", help="input lower bounds, comma-separated (default: data min)")
    s.add_argument("--ub", help="input upper bounds, comma-separated (default: data max)")
    s.add_argument("--val-fraction", type=float, default=0.15)
    s.add_argument("--test-fraction", type=float, default=0.15)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_tune)


def cmd_tune(a: argparse.Namespace) -> int:
    """``omlt-relax tune``: :func:`omlt_relax.tune.run_tune` from the command line."""
    from omlt_relax.budget import check_budget

    single_thread()
    try:
        check_budget(a.budget)
    except ValueError as err:
        raise CliError(f"--{err}") from None
    try:
        from omlt_relax.tune import require_optuna, run_tune

        require_optuna()
    except ImportError as err:
        raise CliError(str(err)) from None
    check_positive(a.time_limit, "--time-limit")
    for name, value in (("--trials", a.trials), ("--epochs", a.epochs), ("--jobs", a.jobs)):
        if value < 1:
            msg = f"{name} must be at least 1, got {value}"
            raise CliError(msg)
    if (a.csv is None) == (a.function is None):
        msg = "give a CSV file or --function NAME (one of them)"
        raise CliError(msg)
    if a.function is not None:
        from omlt_relax.bench.data import sample_function
        from omlt_relax.bench.functions import get_function

        data = sample_function(get_function(a.function), a.n_train, max(20, a.n_train // 4),
                               a.n_train, seed=0)
    else:
        data = csv_dataset(a)[0]
    if a.storage is not None:
        from omlt_relax.tune import open_storage

        open_storage(a.storage)  # a bad URL fails here, before any cluster starts
    space: dict[str, Any] = {}
    for opt, name in (("--bigm-range", "bigm_range"), ("--stability-range", "stability_range")):
        r = floats_arg(getattr(a, name), opt)
        if r is not None:
            if len(r) != 2:
                msg = f"{opt} takes two numbers LO,HI, got {getattr(a, name)!r}"
                raise CliError(msg)
            space[name] = (r[0], r[1])
    if a.seed_scales is not None:
        space["seed_scales"] = (() if a.seed_scales.strip() == "none"
                                else tuple(floats_arg(a.seed_scales, "--seed-scales") or ()))
    try:
        cfg = _tune_config(a, space)
    except ValueError as err:
        raise CliError(str(err)) from None
    t0 = time.perf_counter()
    log = None if a.quiet else (lambda s: print(s, flush=True))
    out = Path(a.out)
    with dask_for(a) as client:
        res = run_tune(data, cfg, out, storage=a.storage, study_name=a.study, pick=a.pick,
                       client=client, bounds=a.bounds, progress=not a.quiet, log=log)
    return _report(a, res, out, t0)


def _tune_config(a: argparse.Namespace, space: dict[str, Any]) -> Any:
    """The :class:`~omlt_relax.tune.TuneConfig` of the command line (``ValueError`` if bad)."""
    from omlt_relax.train import TrainConfig
    from omlt_relax.tune import TuneConfig

    return TuneConfig(budget=a.budget, trials=a.trials, time_limit=a.time_limit,
                      skip_factor=a.skip_factor, sampler_seed=a.seed, **space,
                      train=TrainConfig(hidden=ints_arg(a.hidden, "--hidden"), epochs=a.epochs,
                                        lr=a.lr, batch_size=a.batch_size, seed=a.seed))


def _report(a: argparse.Namespace, res: Any, out: Path, t0: float) -> int:
    """Print the Pareto table and the picked trial against the reference."""
    if not a.quiet:
        print((out / "pareto.md").read_text())
    if res.picked is None:
        print(f"nothing exported (see above); the study is in {a.storage or out / 'study.db'}")
        return 0
    p = res.picked
    a_ = p.user_attrs
    ref = res.reference
    rows = [["unregularized", f"{1:.3f}", f"{ref['milp_seconds']:.3g}",
             f"{ref['milp_effective_seconds']:.3g}", str(ref["unstable_obbt"])],
            [f"trial {p.number}", f"{p.values[0]:.3f}", f"{a_['milp_seconds']:.3g}",
             f"{p.values[1]:.3g}", str(a_["unstable_obbt"])]]
    print(format_table(["network", "val RMSE ratio", "MILP s (min+max)", "effective s",
                        "unstable"], rows))
    print(f"picked trial {p.number} ({res.pick_rule}); wrote {res.onnx}, {res.onnx}.bounds.json, "
          f"{out / 'pareto.md'}, {out / 'pareto.png'} in {time.perf_counter() - t0:.0f} s"
          + (f"; {res.failed} trial(s) failed" if res.failed else ""))
    return 0


__all__ = ["add_budget_arguments", "add_scheduler_argument", "add_tune_parser", "cmd_train_budget",
           "cmd_tune", "dask_for"]
