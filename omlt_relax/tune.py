r"""Multi-objective tuning of the relaxation-informed training with Optuna, on one machine or many.

Each **trial** trains one network from the seeded initialization with

* big-M weight :math:`w_B` and stability weight :math:`w_S` (log-uniform in ``bigm_range`` and
  ``stability_range``, see "Search space" below),
* the bound method of both penalties (``"ibp"`` or ``"crown"``),
* the schedule (:class:`~omlt_relax.schedule.Schedule`): warm-up fraction in
  ``[0, max_warmup]``, linear-ramp fraction in ``[0, max_ramp]``,

and minimizes two objectives: the **validation RMSE ratio** :math:`r/r_0` to the unregularized
reference network (same data, architecture, epochs, seed), and the **MILP hardness**: the effective
HiGHS solve time (one thread) of the network's minimum plus maximum over the box, each solve under
the cap :math:`T` = ``time_limit`` (LP-OBBT bounds,
:class:`~omlt_relax.formulations.BoundedReluBigMFormulation`, exactly what
:func:`~omlt_relax.bench.measure.measure_network` measures). A solve that finishes counts with its
time :math:`t`; a solve stopped at the cap counts as

.. math:: t_{\text{eff}} = T \, (1 + g), \qquad
   g = \operatorname{clip}_{[0, 1]}\frac{|z^{\text{inc}} - z^{\text{bound}}|}
   {|z^{\text{inc}} - z^{\text{root}}|},

where :math:`g` is the fraction of the root LP gap (root LP bound :math:`z^{\text{root}}` against
the incumbent :math:`z^{\text{inc}}`) that branch and bound had *not* closed when the cap hit
(:func:`effective_seconds`; :math:`g = 1` without an incumbent or a bound). So every capped solve
ranks behind every finished one, and among capped solves the one that got further ranks first:
the objective still separates networks when the machine is slow or the cap is short. Remaining
ties (e.g. two trials both without an incumbent) are broken by :func:`hardness_key`: unstable
neurons under OBBT bounds, then the root LP gap, then branch-and-bound nodes. The cheap signals --
unstable neurons and mean big-M under sound CROWN bounds, and after the MILP the OBBT counts and
the root LP gap -- are stored with each trial, as is the raw ``milp_seconds``. A trial whose ratio
exceeds ``budget × skip_factor`` skips the MILP and is recorded as *pruned* (it could never be
picked, and the MILP is most of a trial's cost).

**Search space.** The two weights are log-uniform in ``bigm_range`` and ``stability_range``,
which default to the range the benchmark suite's weight rule chooses from
(:data:`~omlt_relax.train.GRID_BOUND` times the ``bigm+stability`` variant's base weights, 1 and
0.3); wider ranges mostly produce trials far over any budget. The first trials of a study are
**seeded** (``enqueue_trial``, one by one as trials are asked for) with the suite's own candidates
(:func:`seed_params`): ``bigm+stability`` and ``bigm`` at each scale of ``seed_scales``, IBP
bounds, no warm-up or ramp -- so the sampler starts from what the fixed-grid rule would pick and
the tune does not have to rediscover it. (They are the suite's *weights*; the continuation
network of ``train --budget`` is a different network and is not among the trials.)

**Storage and resuming.** The study lives in an Optuna storage (default: SQLite file
``study.db`` in the output folder). Only the process that runs :func:`run_tune` talks to the
storage (ask/tell); the trials themselves run as jobs on Dask
(:mod:`omlt_relax.bench.dask_runner`) -- a local cluster of ``jobs`` single-threaded workers or a
remote scheduler. ``trials`` is the total wanted in the study: a rerun after an interrupt does only
the missing ones, and trials left running by a killed run are re-queued with the same parameters.
With ``storage="postgresql://..."`` several machines can run :func:`run_tune` on one study at
the same time. A trial whose job fails (after Dask's retries on dead workers) is recorded as
*failed* with the error, never dropped.

**Picking.** ``fastest-within-budget`` (default): the smallest :func:`hardness_key` (effective
MILP time, then the tie-breaks) among completed trials with ratio :math:`\le` ``budget`` (so
the pick never leaves the budget); ``most-accurate``: the smallest ratio; or a trial number. The
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
from omlt_relax.files import save_torch_atomic, write_text_atomic
from omlt_relax.schedule import Schedule, train_scheduled
from omlt_relax.threads import single_thread
from omlt_relax.train import GRID_BOUND, TrainConfig, Variant, build_model, fit

OPTUNA_PIP = "pip install optuna"
STUDY_FILE = "study.db"
TABLE_FILE = "pareto.md"
PLOT_FILE = "pareto.png"
PICKS = ("fastest-within-budget", "most-accurate")
OBJECTIVES = ("val_rmse_ratio", "milp_effective_seconds")
#: Base weights of the suite's ``bigm+stability`` variant (its scale multiplies both).
SUITE_BIGM, SUITE_STABILITY = 1.0, 0.3
#: Default weight ranges: the suite's grid of scales times those base weights.
BIGM_RANGE = (SUITE_BIGM * min(GRID_BOUND), SUITE_BIGM * max(GRID_BOUND))
STABILITY_RANGE = (SUITE_STABILITY * min(GRID_BOUND), SUITE_STABILITY * max(GRID_BOUND))


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
        bigm_range, stability_range: log-uniform ranges of the two penalty weights
            (standardized units; default: the suite's grid, module docstring).
        seed_scales: scales of the suite's candidates a new study starts with
            (:func:`seed_params`; empty: no seeds).
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
    bigm_range: tuple[float, float] = BIGM_RANGE
    stability_range: tuple[float, float] = STABILITY_RANGE
    seed_scales: tuple[float, ...] = (3e-3, 1e-3, 3e-4)
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
        for name in ("bigm_range", "stability_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                msg = f"{name.replace('_', ' ')} must satisfy 0 < low <= high, got {(lo, hi)}"
                raise ValueError(msg)
        for sc in self.seed_scales:
            if not (sc > 0 and math.isfinite(sc)):
                msg = f"seed scales must be positive numbers, got {sc}"
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
        d["bigm_range"] = list(self.bigm_range)
        d["stability_range"] = list(self.stability_range)
        d["seed_scales"] = list(self.seed_scales)
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
    return {
        "bigm": trial.suggest_float("bigm", *cfg.bigm_range, log=True),
        "stability": trial.suggest_float("stability", *cfg.stability_range, log=True),
        "bounds": trial.suggest_categorical("bounds", list(cfg.bound_methods)),
        "warmup": trial.suggest_float("warmup", 0.0, cfg.max_warmup),
        "ramp": trial.suggest_float("ramp", 0.0, cfg.max_ramp),
    }


def seed_params(cfg: TuneConfig) -> list[dict[str, Any]]:
    """The suite's candidates a new study is seeded with, strongest first.

    For each scale :math:`s` of ``cfg.seed_scales``: ``bigm+stability`` (big-M :math:`s`,
    stability :math:`0.3 s`) and ``bigm`` alone (stability at the low end of its range, the
    closest the log-uniform space gets to zero); IBP bounds (the first of ``bound_methods`` if
    IBP is not among them), no warm-up, no ramp. Weights are clipped into the ranges; duplicates
    are dropped.
    """
    def clip(x: float, r: tuple[float, float]) -> float:
        return float(min(max(x, r[0]), r[1]))

    bounds = "ibp" if "ibp" in cfg.bound_methods else cfg.bound_methods[0]
    out: list[dict[str, Any]] = []
    for sc in sorted(cfg.seed_scales, reverse=True):
        for stab in (SUITE_STABILITY * sc, cfg.stability_range[0]):
            p = {"bigm": clip(SUITE_BIGM * sc, cfg.bigm_range),
                 "stability": clip(stab, cfg.stability_range), "bounds": bounds,
                 "warmup": 0.0, "ramp": 0.0}
            if p not in out:
                out.append(p)
    return out


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


# -- MILP hardness ----------------------------------------------------------------------------
def remaining_gap(solve: dict[str, Any], root: float | None) -> float:
    r"""Fraction :math:`g \in [0, 1]` of the root LP gap a solve left open (module docstring).

    ``solve`` has the incumbent ``objective`` and the best ``bound``; ``root`` is the root LP
    bound of the same sense. 0 for a solved MILP; 1 without an incumbent, a bound or a finite root
    bound; 0 if the root LP was already tight.
    """
    if solve.get("status") == "optimal":
        return 0.0
    z, b = solve.get("objective"), solve.get("bound")
    if z is None or b is None or root is None or not all(map(math.isfinite, (z, b, root))):
        return 1.0
    root_gap = abs(z - root)
    if root_gap == 0:
        return 0.0
    return float(min(1.0, max(0.0, abs(z - b) / root_gap)))


def effective_seconds(milp: dict[str, dict[str, Any]], root_lp: dict[str, float] | None,
                      time_limit: float) -> float:
    r"""Effective MILP time :math:`\sum_s t_{\text{eff}, s}` over the senses ``milp`` holds.

    A solved sense counts with its solver time; one stopped by the cap :math:`T` (or otherwise
    unsolved) counts as :math:`T (1 + g)` with :func:`remaining_gap` :math:`g`. Monotone: a
    finished solve is never worse than a capped one, and a capped one is worse the more of its
    root gap it left open.
    """
    total = 0.0
    for sense, r in milp.items():
        if r.get("status") == "optimal":
            total += float(r["time"])
        else:
            root = (root_lp or {}).get(sense)
            total += float(time_limit) * (1.0 + remaining_gap(r, root))
    return total


def hardness_key(attrs: dict[str, Any]) -> tuple[float, ...]:
    """Sort key of MILP hardness (smaller is easier): effective time, then the tie-breaks.

    ``attrs`` are a measured trial's (or the reference's) user attributes: effective seconds
    (:func:`effective_seconds`), unstable neurons under OBBT bounds, the sum of the root LP gaps
    (min + max, relative to the network's range; missing counts as infinite) and the
    branch-and-bound nodes.
    """
    rg = attrs.get("root_gap") or {}
    gaps = [v for v in rg.values() if v is not None]
    gap_sum = float(sum(gaps)) if gaps and len(gaps) == len(rg) else math.inf
    return (float(attrs["milp_effective_seconds"]), float(attrs.get("unstable_obbt", math.inf)),
            gap_sum, float(attrs.get("nodes") or 0))


# -- jobs (run on Dask workers) ---------------------------------------------------------------
def _measure(model: torch.nn.Module, data: Dataset, cfg: TuneConfig) -> dict[str, Any]:
    from omlt_relax.bench.measure import measure_network

    m = measure_network(model, data, None, cfg.time_limit, cfg.obbt_time_limit)
    milp = {s: {k: r[k] for k in ("status", "time", "gap", "nodes", "objective", "bound")}
            for s, r in m["milp"].items()}
    for s, r in milp.items():
        r["remaining_gap"] = remaining_gap(r, m["root_lp"].get(s))
    return {
        "milp_seconds": m["time_total"],
        "milp_effective_seconds": effective_seconds(milp, m["root_lp"], cfg.time_limit),
        "solved_all": m["solved_all"],
        "nodes": m["nodes_total"], "unstable_obbt": m["unstable_obbt"],
        "mean_bigm_obbt": m["mean_bigm_obbt"], "root_gap": m["root_gap"],
        "root_lp": m["root_lp"], "milp": milp,
        "test_rmse": m["test_rmse"],
    }


def reference_job(data: Dataset, cfg: TuneConfig) -> dict[str, Any]:
    """Train and measure the unregularized reference network."""
    single_thread()
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
    single_thread()
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


def _enqueue_seed(study: Any, cfg: TuneConfig) -> None:
    """Queue the next of :func:`seed_params` unless all were queued or a trial is waiting.

    Seeds are queued one by one, just before a trial is asked for, so a study of fewer trials
    than seeds holds no waiting leftovers, and a resumed study continues with the next seed.
    """
    from optuna.trial import TrialState

    seeds = seed_params(cfg)
    k = int(study.user_attrs.get("seeded", 0))
    if k >= len(seeds) or study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        return
    study.enqueue_trial(seeds[k], skip_if_exists=False)
    study.set_user_attr("seeded", k + 1)


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


def trial_key(t: Any) -> tuple[float, ...]:
    """A completed trial's :func:`hardness_key`, then its ratio (the pick's order)."""
    return (*hardness_key(t.user_attrs), t.values[0])


def _best_within(trials: list[Any], budget: float) -> Any:
    ok = [t for t in trials if t.values is not None and t.values[0] <= budget]
    return min(ok, key=trial_key) if ok else None


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
        return min(done, key=lambda t: (t.values[0], *hardness_key(t.user_attrs)))
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
        b = (f"best in budget #{best.number}: {best.values[1]:.3g} s (effective) at "
             f"{best.values[0]:.3f}x"
             if best is not None else "none in budget yet")
        per = f", {np.mean(times):.0f} s/trial" if times else ""
        bar.set_postfix_str(b + per)

    def next_jobs(ref_val: float, k: int) -> list[Job]:
        jobs_: list[Job] = []
        for _ in range(k):
            if len(_finished(study)) + len(in_flight) >= cfg.trials:
                break
            _enqueue_seed(study, cfg)
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
            save_torch_atomic(value["model"], out / "models" / "reference.pt")
            r = value["reference"]
            say(f"reference: validation RMSE {r['val_rmse']:.4g}, MILP {r['milp_seconds']:.3g} s"
                f" ({'solved' if r['solved_all'] else 'time limit'}; effective "
                f"{r['milp_effective_seconds']:.3g} s), {r['unstable_obbt']} unstable (OBBT)")
            return next_jobs(r["val_rmse"], workers)
        trial = in_flight.pop(key)
        attrs = value["attrs"]
        for k_, v_ in attrs.items():
            trial.set_user_attr(k_, v_)
        if value["model"] is not None:
            save_torch_atomic(value["model"], _model_path(out, trial.number))
        if attrs["milp_skipped"]:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            line = (f"trial {trial.number}: ratio {attrs['val_rmse_ratio']:.3f} far over budget,"
                    " MILP skipped")
        else:
            study.tell(trial, [attrs["val_rmse_ratio"], attrs["milp_effective_seconds"]])
            line = (f"trial {trial.number}: ratio {attrs['val_rmse_ratio']:.3f}, MILP "
                    f"{attrs['milp_seconds']:.3g} s"
                    + ("" if attrs["solved_all"] else
                       f" (limit; effective {attrs['milp_effective_seconds']:.3g} s)")
                    + f", {attrs['unstable_obbt']} unstable")
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
    write_text_atomic(out / "tune.json", json.dumps(summary(result, cfg), indent=1))
    return result


# -- report -----------------------------------------------------------------------------------
def _open_gaps(a: dict[str, Any]) -> str:
    """``min/max`` remaining root-gap fractions of a measured trial (``-`` when solved)."""
    m = a.get("milp") or {}

    def one(s: str) -> str:
        r = m.get(s)
        if r is None:
            return "?"
        return "-" if r.get("status") == "optimal" else f"{r.get('remaining_gap', 1.0):.2f}"

    return f"{one('min')}/{one('max')}"


def _cells(t: Any, ref: dict[str, Any], picked: int | None = None) -> list[str]:
    """One Pareto-table row of a completed trial."""
    from omlt_relax.tables import fmt

    a, p = t.user_attrs, t.params
    rg = a.get("root_gap") or {}
    test_ratio = a["test_rmse"] / ref["test_rmse"] if ref.get("test_rmse") else None
    limit = "" if a.get("solved_all", True) else " (limit)"
    return [f"{t.number}{' (picked)' if t.number == picked else ''}", f"{p['bigm']:.2g}",
            f"{p['stability']:.2g}", p["bounds"],
            f"{p['warmup']:.2f}", f"{p['ramp']:.2f}", f"{a['val_rmse_ratio']:.3f}",
            fmt(test_ratio, ".3f"), f"{a['unstable_crown']}/{a['unstable_obbt']}",
            fmt(a["mean_bigm_obbt"]), f"{fmt(rg.get('min'), '.2g')}/{fmt(rg.get('max'), '.2g')}",
            f"{a['milp_seconds']:.3g}{limit}", _open_gaps(a),
            f"{a['milp_effective_seconds']:.3g}", str(a["nodes"])]


def pareto_front(study: Any) -> list[Any]:
    """Completed trials on the Pareto front of (ratio, effective MILP time), by ratio, then by
    :func:`trial_key`."""
    return sorted(study.best_trials, key=lambda t: (t.values[0], *trial_key(t)))


def write_report(study: Any, cfg: TuneConfig, out: Path, pick: str | int) -> str:
    """Write ``pareto.md`` and ``pareto.png``; returns the markdown."""
    from optuna.trial import TrialState

    from omlt_relax.tables import fmt, format_table

    ref = study.user_attrs.get("reference", {})
    all_t = study.get_trials(deepcopy=False)
    n = {s: sum(t.state == s for t in all_t) for s in TrialState}
    lines = [f"# Tuning: Pareto front of validation RMSE ratio vs MILP time (budget "
             f"{cfg.budget:g}×)", ""]
    if ref:
        lines.append(
            f"Reference (unregularized): validation RMSE {ref['val_rmse']:.4g}, test RMSE "
            f"{ref['test_rmse']:.4g}, MILP min + max {ref['milp_seconds']:.3g} s"
            f"{'' if ref['solved_all'] else ' (time limit hit)'}, effective "
            f"{ref['milp_effective_seconds']:.3g} s, {ref['unstable_obbt']} "
            f"unstable (OBBT), mean big-M {fmt(ref['mean_bigm_obbt'])}.")
    lines += [
        f"Trials: {n[TrialState.COMPLETE]} completed, {n[TrialState.PRUNED]} pruned (ratio > "
        f"{cfg.budget * cfg.skip_factor:.3g}, MILP skipped), {n[TrialState.FAIL]} failed, "
        f"{n[TrialState.RUNNING]} running. Networks {list(cfg.train.hidden)}, "
        f"{cfg.train.epochs} epochs; HiGHS one thread, {cfg.time_limit:g} s per MILP (T).",
        "",
        "MILP hardness = effective seconds: a solved MILP counts its time, one stopped at the cap "
        "counts T × (1 + g), g = fraction of its root LP gap left open (column 'open gap'); ties "
        "are broken by unstable neurons (OBBT), root LP gap, nodes. The pick uses the same order."]
    front = pareto_front(study) if n[TrialState.COMPLETE] else []
    t_pick = None
    with contextlib.suppress(ValueError):
        t_pick = pick_trial(study, pick, cfg.budget)
    rows = [_cells(t, ref, t_pick.number if t_pick else None) for t in front]
    if t_pick is not None and all(t.number != t_pick.number for t in front):
        rows.append(_cells(t_pick, ref, t_pick.number))  # a trial number off the front
    lines += ["", format_table(["trial", "w big-M", "w stability", "bounds", "warm-up", "ramp",
                                "val ratio", "test ratio", "unstable CROWN/OBBT", "mean big-M",
                                "root gap min/max", "MILP s", "open gap min/max",
                                "effective s", "nodes"], rows, markdown=True)]
    if t_pick is not None:
        t = t_pick
        ref_eff = ref.get("milp_effective_seconds")
        lines += ["", f"Picked ({pick}): trial {t.number}, validation RMSE ratio "
                  f"{t.values[0]:.3f}, MILP {t.user_attrs['milp_seconds']:.3g} s, effective "
                  f"{t.values[1]:.3g} s"
                  + (f" (reference's effective time / this: "
                     f"{ref_eff / max(t.values[1], 1e-9):.3g}×)" if ref_eff else "") + "."]
    text = "\n".join(lines) + "\n"
    write_text_atomic(out / TABLE_FILE, text)
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
        ax.scatter([1.0], [max(ref["milp_effective_seconds"], 1e-3)], marker="*", s=120,
                   color="C3",
                   label="unregularized")
    ax.axvline(cfg.budget, color="0.4", ls=":", lw=1, label=f"budget {cfg.budget:g}×")
    ax.set_yscale("log")
    ax.set_xlabel("validation RMSE / unregularized")
    ax.set_ylabel("effective MILP time min + max [s] (HiGHS, 1 thread)")
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
    "effective_seconds",
    "hardness_key",
    "open_storage",
    "open_study",
    "pareto_front",
    "pick_trial",
    "remaining_gap",
    "run_tune",
    "seed_params",
    "suggest",
    "train_trial",
    "trial_key",
    "write_report",
]
