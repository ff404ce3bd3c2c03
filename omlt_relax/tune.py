r"""Multi-objective tuning of the relaxation-informed training with Optuna, on one machine or many.

Each **trial** trains one network from the seeded initialization with

* big-M weight :math:`w_B` and stability weight :math:`w_S` (log-uniform in ``weight_range``),
* the bound method of both penalties (``"ibp"`` or ``"crown"``),
* the schedule (:class:`~omlt_relax.schedule.Schedule`): warm-up fraction in
  ``[0, max_warmup]``, linear-ramp fraction in ``[0, max_ramp]``,

and minimizes two objectives: the **validation RMSE ratio** :math:`r/r_0` to the unregularized
reference network (same data, architecture, epochs, seed), and the **MILP hardness**: HiGHS solve
time (one thread) of the network's minimum plus maximum over the box, each under ``time_limit``
(LP-OBBT bounds, :class:`~omlt_relax.formulations.BoundedReluBigMFormulation`, exactly what
:func:`~omlt_relax.bench.measure.measure_network` measures; a solve that hits the limit counts as
the limit). The cheap signals -- unstable neurons and mean big-M under sound CROWN bounds, and after
the MILP the OBBT counts and the root LP gap -- are stored with each trial. A trial whose ratio
exceeds ``budget × skip_factor`` skips the MILP and is recorded as *pruned* (it could never be
picked, and the MILP is most of a trial's cost).

**Storage and resuming.** The study lives in an Optuna storage (default: SQLite file
``study.db`` in the output folder). Only the process that runs :func:`run_tune` talks to the
storage (ask/tell); the trials themselves run as jobs on Dask
(:mod:`omlt_relax.bench.dask_runner`) -- a local cluster of ``jobs`` single-threaded workers or a
remote scheduler. ``trials`` is the total wanted in the study: a rerun after an interrupt does only
the missing ones, and trials left running by a killed run are re-queued with the same parameters.
With ``storage="postgresql://..."`` several machines can run :func:`run_tune` on one study at
the same time. A trial whose job fails (after Dask's retries on dead workers) is recorded as
*failed* with the error, never dropped.

**Picking.** ``fastest-within-budget`` (default): the smallest MILP time among completed trials
with ratio :math:`\le` ``budget``; ``most-accurate``: the smallest ratio; or a trial number. The
picked network is exported with :func:`~omlt_relax.export.export_onnx` (bounds and sidecar). Its
weights are saved per trial in ``models/``; a trial run elsewhere is retrained from its
parameters (training is deterministic) and its validation RMSE checked against the stored one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omlt_relax.budget import check_budget, unstable_and_bigm
from omlt_relax.data import Dataset, predict, rmse
from omlt_relax.schedule import Schedule, train_scheduled
from omlt_relax.train import TrainConfig, Variant, build_model, fit

OPTUNA_PIP = "pip install optuna"
STUDY_FILE = "study.db"
TABLE_FILE = "pareto.md"
PLOT_FILE = "pareto.png"
PICKS = ("fastest-within-budget", "most-accurate")
OBJECTIVES = ("val_rmse_ratio", "milp_seconds")


def require_optuna() -> Any:
    """The ``optuna`` module, or an ``ImportError`` that says what to install."""
    from omlt_relax.bench.dask_runner import require

    return require("optuna", "tuning", OPTUNA_PIP)


@dataclass
class TuneConfig:
    """What a tuning run does (everything but ``trials`` must match to resume a study).

    Attributes:
        budget: validation RMSE ratio allowed for the picked network (>= 1).
        trials: total trials wanted in the study.
        train: the shared training settings (architecture, epochs, seed, ...).
        time_limit: seconds per MILP solve (min and max, HiGHS one thread).
        obbt_time_limit: budget of LP-based bound tightening per network.
        skip_factor: trials with ratio > ``budget * skip_factor`` skip the MILP (pruned).
        weight_range: log-uniform range of both penalty weights (standardized units).
        bound_methods: bound methods the penalties may use.
        max_warmup, max_ramp: ranges of the schedule fractions.
        sampler_seed: seed of the TPE sampler.
    """

    budget: float = 1.25
    trials: int = 40
    train: TrainConfig = field(default_factory=TrainConfig)
    time_limit: float = 20.0
    obbt_time_limit: float | None = 60.0
    skip_factor: float = 1.5
    weight_range: tuple[float, float] = (1e-5, 1e-1)
    bound_methods: tuple[str, ...] = ("ibp", "crown")
    max_warmup: float = 0.5
    max_ramp: float = 0.5
    sampler_seed: int = 0

    def __post_init__(self) -> None:
        check_budget(self.budget)
        if int(self.trials) != self.trials or self.trials < 1:
            msg = f"trials must be a whole number >= 1, got {self.trials}"
            raise ValueError(msg)
        if not (self.time_limit > 0 and math.isfinite(self.time_limit)):
            msg = f"time limit must be a positive number, got {self.time_limit}"
            raise ValueError(msg)
        lo, hi = self.weight_range
        if not 0 < lo <= hi:
            msg = f"weight range must satisfy 0 < low <= high, got {self.weight_range}"
            raise ValueError(msg)
        if not self.skip_factor >= 1:
            msg = f"skip factor must be >= 1, got {self.skip_factor}"
            raise ValueError(msg)
        for m in self.bound_methods:
            if m not in ("ibp", "crown"):
                msg = f"unknown bound method {m!r}; use 'ibp' or 'crown'"
                raise ValueError(msg)

    def fingerprint(self, data: Dataset) -> dict[str, Any]:
        """Settings and a hash of the data that must match to resume or join a study."""
        d = asdict(self)
        d.pop("trials")
        d["train"] = self.train.to_dict()
        d["weight_range"] = list(self.weight_range)
        d["bound_methods"] = list(self.bound_methods)
        d["data"] = data_hash(data)
        return json.loads(json.dumps(d))


def data_hash(data: Dataset) -> str:
    """A short hash of the splits and the box (a study must stay on one data set)."""
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_val, data.y_val, data.lower, data.upper):
        h.update(np.ascontiguousarray(a, np.float64).tobytes())
    return h.hexdigest()[:16]


# -- search space -----------------------------------------------------------------------------
def suggest(trial: Any, cfg: TuneConfig) -> dict[str, Any]:
    """Sample one point of the search space (module docstring) on an Optuna trial."""
    lo, hi = cfg.weight_range
    return {
        "bigm": trial.suggest_float("bigm", lo, hi, log=True),
        "stability": trial.suggest_float("stability", lo, hi, log=True),
        "bounds": trial.suggest_categorical("bounds", list(cfg.bound_methods)),
        "warmup": trial.suggest_float("warmup", 0.0, cfg.max_warmup),
        "ramp": trial.suggest_float("ramp", 0.0, cfg.max_ramp),
    }


def variant_of(params: dict[str, Any]) -> tuple[Variant, Schedule]:
    """The training variant (weights at scale 1) and schedule of a trial's parameters."""
    v = Variant("tuned", "tuned big-M + stability", bigm=float(params["bigm"]),
                bigm_bounds=params["bounds"], stability=float(params["stability"]),
                stability_bounds=params["bounds"])
    return v, Schedule(float(params["warmup"]), float(params["ramp"]))


def train_trial(data: Dataset, cfg: TuneConfig, params: dict[str, Any]) -> torch.nn.Sequential:
    """The float64 network (original units) a trial's parameters train."""
    v, sched = variant_of(params)
    return train_scheduled(data, v, sched, cfg.train)[0]


# -- jobs (run on Dask workers) ---------------------------------------------------------------
def _measure(model: torch.nn.Module, data: Dataset, cfg: TuneConfig) -> dict[str, Any]:
    from omlt_relax.bench.measure import measure_network

    m = measure_network(model, data, None, cfg.time_limit, cfg.obbt_time_limit)
    return {
        "milp_seconds": m["time_total"], "solved_all": m["solved_all"],
        "nodes": m["nodes_total"], "unstable_obbt": m["unstable_obbt"],
        "mean_bigm_obbt": m["mean_bigm_obbt"], "root_gap": m["root_gap"],
        "milp": {s: {k: r[k] for k in ("status", "time", "gap", "nodes", "objective")}
                 for s, r in m["milp"].items()},
        "test_rmse": m["test_rmse"],
    }


def reference_job(data: Dataset, cfg: TuneConfig) -> dict[str, Any]:
    """Train and measure the unregularized reference network."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res = fit(data, "unregularized", 0.0, cfg.train)
    train_time = time.perf_counter() - t0
    unstable, bigm = unstable_and_bigm(res.model, data.lower, data.upper)
    out = {"val_rmse": res.val_rmse, "train_seconds": train_time, "unstable_crown": unstable,
           "mean_bigm_crown": bigm, **_measure(res.model, data, cfg)}
    return {"reference": out, "model": res.model.state_dict()}


def trial_job(data: Dataset, cfg: TuneConfig, params: dict[str, Any],
              ref_val: float) -> dict[str, Any]:
    """Train one trial, compute the cheap signals, and measure the MILP unless far off budget."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = train_trial(data, cfg, params)
    val = rmse(predict(model, data.x_val), data.y_val)
    unstable, bigm = unstable_and_bigm(model, data.lower, data.upper)
    ratio = val / ref_val if ref_val > 0 else math.inf
    attrs: dict[str, Any] = {"val_rmse": val, "val_rmse_ratio": ratio,
                             "train_seconds": time.perf_counter() - t0,
                             "unstable_crown": unstable, "mean_bigm_crown": bigm}
    if ratio > cfg.budget * cfg.skip_factor:
        attrs["milp_skipped"] = True
        attrs["test_rmse"] = rmse(predict(model, data.x_test), data.y_test)
        return {"attrs": attrs, "model": None}
    attrs.update(_measure(model, data, cfg))
    attrs["milp_skipped"] = False
    return {"attrs": attrs, "model": model.state_dict()}


# -- the study --------------------------------------------------------------------------------
def open_storage(url: str) -> Any:
    """An Optuna storage for ``url`` (``ValueError`` with a sentence if it cannot be opened)."""
    optuna = require_optuna()
    if "://" not in url:
        msg = (f"storage {url!r} is not a database URL; use e.g. sqlite:///path/study.db or "
               "postgresql://user:password@host/dbname")
        raise ValueError(msg)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except Exception as err:
        line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        msg = (f"cannot open the Optuna storage {url!r} ({type(err).__name__}: {line}); check "
               "the URL, the database server and its driver (e.g. pip install psycopg2-binary "
               "for PostgreSQL)")
        raise ValueError(msg) from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}} \
        if url.startswith("postgres") else {"pool_pre_ping": True}


def open_study(cfg: TuneConfig, data: Dataset, storage: str, study_name: str) -> Any:
    """Create or load the study; refuse one written with other settings or data."""
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = open_storage(storage)
    sampler = optuna.samplers.TPESampler(seed=cfg.sampler_seed, multivariate=True,
                                         constant_liar=True,
                                         n_startup_trials=min(10, max(2, cfg.trials // 4)))
    study = optuna.create_study(storage=st, study_name=study_name, directions=["minimize"] * 2,
                                sampler=sampler, load_if_exists=True)
    fp = cfg.fingerprint(data)
    old = study.user_attrs.get("config")
    if old is None:
        study.set_user_attr("config", fp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # set_metric_names is "experimental"
            study.set_metric_names(list(OBJECTIVES))
    elif old != fp:
        diff = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
        msg = (f"study {study_name!r} in {storage} was run with other settings ({', '.join(diff)}"
               "); use the same settings, another --study name or another --out folder")
        raise ValueError(msg)
    return study


def _finished(study: Any) -> list[Any]:
    """Trials that count towards ``trials``: completed, pruned, failed (not interrupted)."""
    from optuna.trial import TrialState

    skip = set(study.user_attrs.get("interrupted", []))
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and t.number not in skip)]


def _interrupt(study: Any, trials: list[tuple[int, dict[str, Any]]]) -> None:
    """Mark trials ``(number, params)`` failed as interrupted and queue their parameters again."""
    from optuna.trial import TrialState

    if not trials:
        return
    for number, params in trials:
        if params:
            study.enqueue_trial(params, skip_if_exists=False)
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    done = set(study.user_attrs.get("interrupted", []))
    study.set_user_attr("interrupted", sorted(done | {n for n, _ in trials}))


def requeue_interrupted(study: Any) -> int:
    """Trials left RUNNING by a killed run: failed as interrupted, parameters queued again.

    Only for a storage this process owns (the default SQLite file): with a shared storage a
    running trial may belong to another live machine.
    """
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    _interrupt(study, [(t.number, t.params) for t in stale])
    return len(stale)


@dataclass
class TuneResult:
    """What :func:`run_tune` did: the study and the trial it picked (if any)."""

    study: Any
    reference: dict[str, Any]
    picked: Any
    pick_rule: str
    onnx: Path | None
    failed: int
    seconds: float


def _best_within(trials: list[Any], budget: float) -> Any:
    ok = [t for t in trials if t.values is not None and t.values[0] <= budget]
    return min(ok, key=lambda t: (t.values[1], t.values[0])) if ok else None


def pick_trial(study: Any, rule: str | int, budget: float) -> Any:
    """The completed trial ``rule`` selects (``ValueError`` with a sentence if none)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        msg = "the study has no completed trial yet; run more trials"
        raise ValueError(msg)
    if isinstance(rule, int) or (isinstance(rule, str) and rule.isdigit()):
        num = int(rule)
        for t in done:
            if t.number == num:
                return t
        msg = (f"trial {num} is not a completed trial of this study (completed: "
               f"{', '.join(str(t.number) for t in done[:20])}{' ...' if len(done) > 20 else ''})")
        raise ValueError(msg)
    if rule == "fastest-within-budget":
        t = _best_within(done, budget)
        if t is None:
            best = min(t.values[0] for t in done)
            msg = (f"no completed trial is within the budget {budget:g} (best validation RMSE "
                   f"ratio {best:.3f}); run more trials, raise --budget or use --pick "
                   "most-accurate")
            raise ValueError(msg)
        return t
    if rule == "most-accurate":
        return min(done, key=lambda t: (t.values[0], t.values[1]))
    msg = f"unknown pick {rule!r}; use {', '.join(PICKS)} or a trial number"
    raise ValueError(msg)


def _model_path(out: Path, number: int) -> Path:
    return out / "models" / f"trial_{number}.pt"


def picked_model(study: Any, trial: Any, data: Dataset, cfg: TuneConfig,
                 out: Path) -> torch.nn.Sequential:
    """The trained network of a trial: saved weights, else retrained and checked."""
    p = _model_path(out, trial.number)
    if p.is_file():
        model = build_model(data.n_inputs, cfg.train.hidden, data.n_outputs, 0).to(torch.float64)
        model.load_state_dict(torch.load(p))
    else:
        model = train_trial(data, cfg, trial.params)
    val = rmse(predict(model, data.x_val), data.y_val)
    stored = trial.user_attrs["val_rmse"]
    if not math.isclose(val, stored, rel_tol=1e-6, abs_tol=1e-12):
        msg = (f"trial {trial.number}'s network has validation RMSE {val:.6g} here but "
               f"{stored:.6g} in the study (different machine or library versions?)")
        raise ValueError(msg)
    return model


def run_tune(
    data: Dataset,
    cfg: TuneConfig,
    out_dir: str | os.PathLike[str],
    storage: str | None = None,
    study_name: str = "omlt_relax_tune",
    pick: str | int = "fastest-within-budget",
    jobs: int = 1,
    scheduler: str | None = None,
    client: Any = None,
    bounds: str = "lp",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Run (or resume, or join) the study, write the Pareto table and plot, export the pick.

    Writes in ``out_dir``: ``study.db`` (default storage), ``models/trial_N.pt``, ``pareto.md``,
    ``pareto.png``, ``tune.json`` and ``chosen.onnx`` (+ ``chosen.onnx.bounds.json``) with
    ``bounds`` (see :func:`~omlt_relax.export.export_onnx`). Where the trials run: ``client``, else
    the scheduler at ``scheduler``, else a local Dask cluster of ``jobs`` workers if ``jobs > 1``,
    else here.
    """
    from omlt_relax.bench.dask_runner import Job, dask_client, n_workers, run_jobs

    optuna = require_optuna()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    default_storage = storage is None
    url = storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"
    if isinstance(pick, str) and not pick.isdigit() and pick not in PICKS:
        msg = f"unknown pick {pick!r}; use {', '.join(PICKS)} or a trial number"
        raise ValueError(msg)
    study = open_study(cfg, data, url, study_name)
    say = log or (lambda s: None)
    if default_storage:
        n = requeue_interrupted(study)
        if n:
            say(f"re-queued {n} trial(s) interrupted in an earlier run")
    t_run = time.perf_counter()
    (out / "models").mkdir(exist_ok=True)
    in_flight: dict[str, Any] = {}
    failed = [0]
    times: list[float] = []
    started: dict[str, float] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.trials, initial=min(cfg.trials, len(_finished(study))),
                   desc="tune", unit="trial")

    def status() -> None:
        if bar is None:
            return
        best = _best_within(study.get_trials(deepcopy=False, states=(
            optuna.trial.TrialState.COMPLETE,)), cfg.budget)
        b = (f"best in budget #{best.number}: {best.values[1]:.3g} s at {best.values[0]:.3f}x"
             if best is not None else "none in budget yet")
        per = f", {np.mean(times):.0f} s/trial" if times else ""
        bar.set_postfix_str(b + per)

    def next_jobs(ref_val: float, k: int) -> list[Job]:
        jobs_: list[Job] = []
        for _ in range(k):
            if len(_finished(study)) + len(in_flight) >= cfg.trials:
                break
            trial = study.ask()
            params = suggest(trial, cfg)
            key = f"trial-{trial.number}"
            in_flight[key] = trial
            started[key] = time.perf_counter()
            jobs_.append(Job(key, trial_job, (data, cfg, params, ref_val)))
        return jobs_

    def on_result(key: str, value: dict[str, Any]) -> list[Job]:
        if key == "reference":
            study.set_user_attr("reference", value["reference"])
            torch.save(value["model"], out / "models" / "reference.pt")
            r = value["reference"]
            say(f"reference: validation RMSE {r['val_rmse']:.4g}, MILP {r['milp_seconds']:.3g} s"
                f" ({'solved' if r['solved_all'] else 'time limit'}), {r['unstable_obbt']} "
                "unstable (OBBT)")
            return next_jobs(r["val_rmse"], workers)
        trial = in_flight.pop(key)
        attrs = value["attrs"]
        for k_, v_ in attrs.items():
            trial.set_user_attr(k_, v_)
        if value["model"] is not None:
            torch.save(value["model"], _model_path(out, trial.number))
        if attrs["milp_skipped"]:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            line = (f"trial {trial.number}: ratio {attrs['val_rmse_ratio']:.3f} far over budget,"
                    " MILP skipped")
        else:
            study.tell(trial, [attrs["val_rmse_ratio"], attrs["milp_seconds"]])
            line = (f"trial {trial.number}: ratio {attrs['val_rmse_ratio']:.3f}, MILP "
                    f"{attrs['milp_seconds']:.3g} s{'' if attrs['solved_all'] else ' (limit)'}, "
                    f"{attrs['unstable_obbt']} unstable")
        times.append(time.perf_counter() - started.pop(key))
        if bar is not None:
            bar.update(1)
        else:
            say(line)
        status()
        return next_jobs(ref_val_of(), 1)

    def on_failure(key: str, error: str) -> list[Job]:
        if key == "reference":
            msg = f"the reference network failed: {error}"
            raise RuntimeError(msg)
        trial = in_flight.pop(key)
        started.pop(key, None)
        trial.set_user_attr("error", error)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        failed[0] += 1
        say(f"trial {trial.number}: FAILED ({error})")
        if bar is not None:
            bar.update(1)
        return next_jobs(ref_val_of(), 1)

    def ref_val_of() -> float:
        return float(study.user_attrs["reference"]["val_rmse"])

    with contextlib.ExitStack() as stack:
        if client is None and (scheduler is not None or jobs > 1):
            client = stack.enter_context(dask_client(scheduler, jobs))
        workers = n_workers(client)
        if "reference" in study.user_attrs:
            initial = next_jobs(ref_val_of(), workers)
        else:
            initial = [Job("reference", reference_job, (data, cfg))]
        try:
            run_jobs(client, initial, on_result, on_failure, retries=0)
        finally:
            if bar is not None:
                bar.close()
            with contextlib.suppress(Exception):  # interrupted: leave nothing RUNNING
                _interrupt(study, [(t.number, t.params) for t in in_flight.values()])
    ref = study.user_attrs.get("reference", {})
    write_report(study, cfg, out, pick)
    picked = onnx = None
    try:
        picked = pick_trial(study, pick, cfg.budget)
    except ValueError as err:
        say(f"nothing exported: {err}")
    if picked is not None:
        from omlt_relax.export import export_onnx

        model = picked_model(study, picked, data, cfg, out)
        onnx = out / "chosen.onnx"
        export_onnx(model, onnx, (data.lower, data.upper), bounds=bounds)
    result = TuneResult(study, ref, picked, str(pick), onnx, failed[0],
                        time.perf_counter() - t_run)
    (out / "tune.json").write_text(json.dumps(summary(result, cfg), indent=1))
    return result


# -- report -----------------------------------------------------------------------------------
def _cells(t: Any, ref: dict[str, Any]) -> list[str]:
    """One Pareto-table row of a completed trial."""
    from omlt_relax.bench.report import fmt

    a, p = t.user_attrs, t.params
    rg = a.get("root_gap") or {}
    test_ratio = a["test_rmse"] / ref["test_rmse"] if ref.get("test_rmse") else None
    limit = "" if a.get("solved_all", True) else " (limit)"
    return [str(t.number), f"{p['bigm']:.2g}", f"{p['stability']:.2g}", p["bounds"],
            f"{p['warmup']:.2f}", f"{p['ramp']:.2f}", f"{a['val_rmse_ratio']:.3f}",
            fmt(test_ratio, ".3f"), f"{a['unstable_crown']}/{a['unstable_obbt']}",
            fmt(a["mean_bigm_obbt"]), f"{fmt(rg.get('min'), '.2g')}/{fmt(rg.get('max'), '.2g')}",
            f"{a['milp_seconds']:.3g}{limit}", str(a["nodes"])]


def pareto_front(study: Any) -> list[Any]:
    """Completed trials on the Pareto front of (ratio, MILP time), by ratio."""
    return sorted(study.best_trials, key=lambda t: (t.values[0], t.values[1]))


def write_report(study: Any, cfg: TuneConfig, out: Path, pick: str | int) -> str:
    """Write ``pareto.md`` and ``pareto.png``; returns the markdown."""
    from optuna.trial import TrialState

    from omlt_relax.bench.report import fmt, format_table

    ref = study.user_attrs.get("reference", {})
    all_t = study.get_trials(deepcopy=False)
    n = {s: sum(t.state == s for t in all_t) for s in TrialState}
    lines = [f"# Tuning: Pareto front of validation RMSE ratio vs MILP time (budget "
             f"{cfg.budget:g}×)", ""]
    if ref:
        lines.append(
            f"Reference (unregularized): validation RMSE {ref['val_rmse']:.4g}, test RMSE "
            f"{ref['test_rmse']:.4g}, MILP min + max {ref['milp_seconds']:.3g} s"
            f"{'' if ref['solved_all'] else ' (time limit hit)'}, {ref['unstable_obbt']} "
            f"unstable (OBBT), mean big-M {fmt(ref['mean_bigm_obbt'])}.")
    lines.append(
        f"Trials: {n[TrialState.COMPLETE]} completed, {n[TrialState.PRUNED]} pruned (ratio > "
        f"{cfg.budget * cfg.skip_factor:.3g}, MILP skipped), {n[TrialState.FAIL]} failed, "
        f"{n[TrialState.RUNNING]} running. Networks {list(cfg.train.hidden)}, "
        f"{cfg.train.epochs} epochs; HiGHS one thread, {cfg.time_limit:g} s per MILP.")
    front = pareto_front(study) if n[TrialState.COMPLETE] else []
    lines += ["", format_table(["trial", "w big-M", "w stability", "bounds", "warm-up", "ramp",
                                "val ratio", "test ratio", "unstable CROWN/OBBT", "mean big-M",
                                "root gap min/max", "MILP s", "nodes"],
                               [_cells(t, ref) for t in front], markdown=True)]
    with contextlib.suppress(ValueError):
        t = pick_trial(study, pick, cfg.budget)
        lines += ["", f"Picked ({pick}): trial {t.number}, validation RMSE ratio "
                  f"{t.values[0]:.3f}, MILP {t.values[1]:.3g} s"
                  + (f" ({ref['milp_seconds'] / max(t.values[1], 1e-9):.3g}× faster than the "
                     "reference)" if ref else "") + "."]
    text = "\n".join(lines) + "\n"
    (out / TABLE_FILE).write_text(text)
    plot(study, cfg, out / PLOT_FILE)
    return text


def plot(study: Any, cfg: TuneConfig, path: Path) -> None:
    """Every completed trial (ratio vs MILP time), the Pareto front, the budget, the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if done:
        r = [t.values[0] for t in done]
        s = [max(t.values[1], 1e-3) for t in done]
        lim = [not t.user_attrs.get("solved_all", True) for t in done]
        ax.scatter([x for x, m in zip(r, lim) if not m], [y for y, m in zip(s, lim) if not m],
                   s=22, color="C0", label="trial")
        if any(lim):
            ax.scatter([x for x, m in zip(r, lim) if m], [y for y, m in zip(s, lim) if m], s=22,
                       facecolors="none", edgecolors="C0", label="trial (time limit)")
        front = pareto_front(study)
        ax.step([t.values[0] for t in front], [max(t.values[1], 1e-3) for t in front],
                where="post", color="C1", label="Pareto front")
    ref = study.user_attrs.get("reference")
    if ref:
        ax.scatter([1.0], [max(ref["milp_seconds"], 1e-3)], marker="*", s=120, color="C3",
                   label="unregularized")
    ax.axvline(cfg.budget, color="0.4", ls=":", lw=1, label=f"budget {cfg.budget:g}×")
    ax.set_yscale("log")
    ax.set_xlabel("validation RMSE / unregularized")
    ax.set_ylabel("MILP time min + max [s] (HiGHS, 1 thread)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(result: TuneResult, cfg: TuneConfig) -> dict[str, Any]:
    """The run as a JSON-ready dict (``tune.json``)."""
    p = result.picked
    return {
        "budget": cfg.budget, "pick_rule": result.pick_rule, "seconds": result.seconds,
        "reference": result.reference, "failed_this_run": result.failed,
        "trials": len(result.study.trials),
        "picked": None if p is None else {"number": p.number, "params": p.params,
                                          "values": list(p.values), **p.user_attrs},
        "onnx": str(result.onnx) if result.onnx else None,
    }


__all__ = [
    "OBJECTIVES",
    "PICKS",
    "TuneConfig",
    "TuneResult",
    "open_storage",
    "open_study",
    "pareto_front",
    "pick_trial",
    "run_tune",
    "suggest",
    "train_trial",
    "write_report",
]
