"""The benchmark suite: functions × variants → results JSON, markdown table, Pareto plot.

For each function (:mod:`omlt_relax.bench.functions`) the suite samples one data set
(:func:`~omlt_relax.bench.data.sample_function`), trains the unregularized baseline, then every
other variant with the weight chosen by :func:`~omlt_relax.train.select_weight` (relative to
the baseline's validation RMSE), and measures each chosen network
(:func:`~omlt_relax.bench.measure.measure_network`).

This module is the orchestration (configuration, resuming, one job per entry on
:mod:`~omlt_relax.bench.dask_runner`); the pieces are in
:mod:`~omlt_relax.bench.results` (the results file, locking, saved models),
:mod:`~omlt_relax.bench.stats` (speed-ups, summaries), :mod:`~omlt_relax.bench.report` (tables)
and :mod:`~omlt_relax.bench.plot` (the Pareto plot); their names are re-exported here.

**Results file.** ``results.json`` is rewritten atomically after every entry. A rerun with the
same configuration skips entries already there, so an interrupted run resumes where it stopped; a
different configuration in the same directory is refused (use another directory or ``fresh``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from omlt_relax.bench.dask_runner import n_workers, suite_client
from omlt_relax.bench.data import sample_function
from omlt_relax.bench.functions import SUITE_2D, get_function
from omlt_relax.bench.measure import measure_network
from omlt_relax.bench.plot import pareto_plot
from omlt_relax.bench.report import markdown_table, one_line
from omlt_relax.bench.results import (
    BASELINE,
    RESULTS_FILE,
    entry_key,
    load_model,
    load_results,
    save_model,
    update_entry,
    write_json,
    write_text_atomic,
)
from omlt_relax.bench.stats import TARGET_RMSE_RATIO, speedup, summarize
from omlt_relax.threads import single_thread
from omlt_relax.train import (
    DEFAULT_TOLERANCE,
    SUITE_VARIANTS,
    TrainConfig,
    build_model,
    get_variant,
    select_weight,
)

TABLE_FILE = "results.md"
PLOT_FILE = "pareto.png"


@dataclass
class SuiteConfig:
    """What a suite run does.

    Attributes:
        functions: names in :data:`~omlt_relax.bench.functions.FUNCTIONS`.
        variants: names in :data:`~omlt_relax.bench.train.VARIANTS` (the baseline is always run).
        train: the shared :class:`~omlt_relax.bench.train.TrainConfig`.
        time_limit: seconds per MILP solve (HiGHS, one thread).
        tolerance: of the weight-selection rule (validation RMSE ratio).
        n_train, n_val, n_test: samples per split (5-D functions get ``samples_5d_factor`` times
            more training and validation samples).
        data_seed: seed of the samples.
        obbt_time_limit: budget of LP-based bound tightening per network.
    """

    functions: list[str] = field(default_factory=lambda: list(SUITE_2D))
    variants: list[str] = field(default_factory=lambda: list(SUITE_VARIANTS))
    train: TrainConfig = field(default_factory=TrainConfig)
    time_limit: float = 60.0
    tolerance: float = DEFAULT_TOLERANCE
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 2000
    samples_5d_factor: float = 1.5
    data_seed: int = 0
    obbt_time_limit: float | None = 60.0

    #: List settings that a resumed run may change (they only add or drop entries).
    EXTENSIBLE: ClassVar[tuple[str, ...]] = ("functions", "variants")

    def __post_init__(self) -> None:
        for f in self.functions:
            get_function(f)
        for v in self.variants:
            get_variant(v)
        if BASELINE not in self.variants:
            self.variants = [BASELINE, *self.variants]
        else:
            self.variants = [BASELINE] + [v for v in self.variants if v != BASELINE]
        if self.time_limit <= 0:
            msg = f"time limit must be positive, got {self.time_limit}"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d

    def fingerprint(self) -> dict[str, Any]:
        """The settings that must match for a results file to be resumed (not the lists)."""
        d = self.to_dict()
        for k in self.EXTENSIBLE:
            d.pop(k, None)
        return d


def environment() -> dict[str, Any]:
    """Machine and library versions for the record."""
    import highspy
    import omlt
    import pyomo

    try:
        h = highspy.Highs()
        hv = f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
    except Exception:  # pragma: no cover - depends on the highspy build
        hv = getattr(highspy, "__version__", "unknown")
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "highs": hv,
        "omlt": getattr(omlt, "__version__", "unknown"),
        "pyomo": pyomo.version.version,
        "torch_threads": torch.get_num_threads(),
    }


def run_suite(
    config: SuiteConfig,
    out_dir: str | os.PathLike[str],
    fresh: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Run (or resume) the suite; returns the results dict, also written to ``out_dir``.

    Every (function, variant) entry is one job (:mod:`omlt_relax.bench.dask_runner`): a function's
    baseline first, then its variants, which need the baseline's validation RMSE. Each finished
    entry is written to ``results.json`` at once (by this process only, under a file lock); a job
    that fails after its retries is recorded under ``"failed"`` and retried by the next run.
    ``results.md`` and ``pareto.png`` are written at the end.

    Where the jobs run: ``client`` (a :class:`distributed.Client`) if given; else the Dask
    scheduler at ``scheduler``; else a local Dask cluster of ``jobs`` single-threaded worker
    processes if ``jobs > 1``; else in this process, one after the other.
    """
    if jobs < 1:  # before any file is touched (suite_client checks it again)
        msg = f"jobs must be at least 1, got {jobs}"
        raise ValueError(msg)
    out = Path(out_dir)
    path = out / RESULTS_FILE
    results = open_results(config, out, fresh)
    entries: dict[str, Any] = results["entries"]
    say = log or (lambda s: None)
    n_all = len(config.functions) * len(config.variants)
    n_todo = sum(entry_key(f, v) not in entries for f in config.functions for v in config.variants)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_all, initial=n_all - n_todo, desc="bench", unit="net")
    t_run = time.perf_counter()

    def record(key: str, entry: dict[str, Any] | None, error: str | None) -> None:
        now = update_entry(path, key, entry, error)
        if entry is not None:
            say(one_line(entry, now.get(entry_key(entry["function"], BASELINE))))
        else:
            say(f"{key}: FAILED ({error}); rerun the same command to retry it")
        if bar is not None:
            bar.update(1)

    with suite_client(client, scheduler, jobs) as client:
        workers = n_workers(client)
        failures = run_entries(config, out, client, record)
    if bar is not None:
        bar.close()
    results = load_results(out)
    results["meta"]["last_run_seconds"] = time.perf_counter() - t_run
    results["meta"]["workers"] = workers
    results["summary"] = summarize(results)
    write_json(path, results)
    write_text_atomic(out / TABLE_FILE, markdown_table(results))
    pareto_plot(results, out / PLOT_FILE)
    if failures:
        say(failure_note(len(failures), path))
    return results


def failure_note(n: int, path: Path) -> str:
    """The closing line of a run in which ``n`` entries failed."""
    return (f"{n} entr{'y' if n == 1 else 'ies'} failed (listed under 'failed' in {path}); "
            "rerun the same command to retry")


def open_results(config: SuiteConfig, out: Path, fresh: bool = False) -> dict[str, Any]:
    """Start ``out/results.json`` for ``config``, or reopen it to resume; returns its contents.

    A file written with other settings (:meth:`SuiteConfig.fingerprint`; the lists in
    ``EXTENSIBLE`` may differ) is refused with a ``ValueError``; ``fresh`` starts over.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    results: dict[str, Any]
    if path.exists() and not fresh:
        results = load_results(out)
        old = results.get("meta", {}).get("config", {})
        # a setting added after the file was written is absent there: equal to its None default
        old_fp = {k: v for k, v in old.items() if k not in config.EXTENSIBLE and v is not None}
        new_fp = {k: v for k, v in json.loads(json.dumps(config.fingerprint())).items()
                  if v is not None}
        if old_fp != new_fp:
            msg = (
                f"{path} was written with a different configuration; resume with the same "
                "settings, or use another --out directory or --fresh"
            )
            raise ValueError(msg)
        results["meta"]["config"] = config.to_dict()
        results.pop("summary", None)
    else:
        results = {"meta": {"config": config.to_dict(), "environment": environment(),
                            "started": time.strftime("%Y-%m-%d %H:%M:%S")},
                   "entries": {}}
    results.setdefault("failed", {})
    write_json(path, results)
    return results


# -- jobs ---------------------------------------------------------------------------------------
def function_data(config: SuiteConfig, fname: str) -> tuple[Any, Any]:
    """The benchmark function called ``fname`` and its seeded data set under ``config``."""
    fn = get_function(fname)
    factor = config.samples_5d_factor if fn.dim > 2 else 1.0
    data = sample_function(
        fn, int(config.n_train * factor), int(config.n_val * factor), config.n_test,
        seed=config.data_seed,
    )
    return fn, data


def entry_job(
    config: SuiteConfig,
    fname: str,
    vname: str,
    base_val: float | None = None,
    base_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (weight rule) and measure one (function, variant); runs on a worker.

    ``base_val`` is the baseline's validation RMSE (``None`` for the baseline itself);
    ``base_state`` its standardized float32 network's ``state_dict`` (pruning starts from it).
    Returns ``{"entry": ..., "model": float64 state_dict, "base_state": ...}``.
    """
    single_thread()
    t_job = time.perf_counter()
    fn, data = function_data(config, fname)
    t0 = time.perf_counter()
    if vname == BASELINE:
        sel = select_weight(data, BASELINE, math.inf, config.train)
    else:
        if base_val is None:
            msg = f"{fname}/{vname} needs the baseline's validation RMSE"
            raise ValueError(msg)
        base_net = None
        if base_state is not None:
            base_net = build_model(data.n_inputs, config.train.hidden, data.n_outputs, 0)
            base_net.load_state_dict(base_state)
        sel = select_weight(data, vname, base_val, config.train, config.tolerance,
                            baseline=base_net)
    train_time = time.perf_counter() - t0
    meas = measure_network(sel.result.model, data, fn, config.time_limit, config.obbt_time_limit)
    entry = {
        "function": fname,
        "variant": vname,
        "description": get_variant(vname).description,
        "scale": sel.result.scale,
        "within_tolerance": sel.within_tolerance,
        "tried": sel.tried,
        "train_time": train_time,
        "train_time_selected": sel.result.train_time,
        **meas,
    }
    entry["val_rmse"] = sel.result.val_rmse
    entry["job_seconds"] = time.perf_counter() - t_job
    std = getattr(sel.result, "std_model", None)
    return {"entry": entry, "model": sel.result.model.state_dict(),
            "base_state": std.state_dict() if vname == BASELINE and std is not None else None}


#: Relative cost of one training of a variant against one unregularized training (same epochs),
#: measured on peaks 2×50 (10 epochs, one thread): the penalties' bounds and LPs per batch.
TRAIN_COST: dict[str, float] = {
    BASELINE: 1.0, "l1": 1.35, "pruning": 0.4, "rs_xiao": 1.9, "bigm": 1.9, "stability": 3.2,
    "lp_direct": 8.0, "lp_total": 8.2, "bigm+stability": 3.9, "relax": 9.7,
}
#: Priority of a baseline job over every variant job (they unblock their function's variants).
BASELINE_PRIORITY = 1e9


def estimated_seconds(config: SuiteConfig, fname: str, vname: str,
                      baseline: dict[str, Any] | None = None) -> float:
    """Rough run time of one entry job, for longest-processing-time-first scheduling.

    With the function's finished ``baseline`` entry: its training time × the variant's
    :data:`TRAIN_COST` × the trainings the weight rule's bisection needs (about
    :math:`\\lceil\\log_2(n + 1)\\rceil` for a grid of :math:`n` scales), plus the baseline's
    measurement time (bounds and MILPs). Without it: the same in units of one epoch over the
    function's training samples. Only the order of the estimates matters.
    """
    v = get_variant(vname)
    fits = math.ceil(math.log2(len(v.grid) + 1)) if v.regularized else 1
    train = TRAIN_COST.get(vname, 2.0) * fits
    if baseline is not None:
        per_fit = float(baseline.get("train_time", 1.0))
        measure = float(baseline.get("obbt_time", 0.0)) + float(baseline.get("time_total", 0.0))
        return train * per_fit + measure
    fn = get_function(fname)
    factor = config.samples_5d_factor if fn.dim > 2 else 1.0
    return train * config.train.epochs * config.n_train * factor * 1e-5 + 2 * config.time_limit


def run_entries(
    config: SuiteConfig,
    out: Path,
    client: Any,
    record: Callable[[str, dict[str, Any] | None, str | None], None],
) -> list[Any]:
    """Run every pending entry as a job on ``client`` (``None``: here); ``record`` stores each.

    A function's variants are submitted when its baseline finishes (they need its validation
    RMSE); if the baseline is already in the results file they are submitted at once, and
    pruning retrains the baseline itself. A failed baseline fails its pending variants too.

    Scheduling: jobs are handed out one per free worker (``max_in_flight="workers"``), every
    pending baseline before any variant (each unblocks its function's variants, so all the
    functions' baselines run first, side by side), and the variants longest first by
    :func:`estimated_seconds` (longest-processing-time order: the short jobs fill the gaps at the
    end, so no worker idles long while another finishes a long job).
    """
    from omlt_relax.bench.dask_runner import Job, run_jobs

    entries = load_results(out)["entries"]
    # the larger (costlier) functions first, so that parallel workers finish together
    funcs = sorted(config.functions, key=lambda f: -get_function(f).dim)
    pending = {f: [v for v in config.variants if entry_key(f, v) not in entries] for f in funcs}

    def variant_jobs(f: str, base: dict[str, Any], base_state: Any) -> list[Job]:
        return [Job(entry_key(f, v), entry_job, (config, f, v, base["val_rmse"], base_state),
                    priority=estimated_seconds(config, f, v, base))
                for v in pending[f] if v != BASELINE]

    initial: list[Job] = []
    for f in funcs:
        if not pending[f]:
            continue
        if BASELINE in pending[f]:
            initial.append(Job(entry_key(f, BASELINE), entry_job, (config, f, BASELINE),
                               priority=BASELINE_PRIORITY
                               + estimated_seconds(config, f, BASELINE)))
        else:
            initial += variant_jobs(f, entries[entry_key(f, BASELINE)], None)

    def on_result(key: str, value: dict[str, Any]) -> list[Job]:
        e = value["entry"]
        save_model(out, e["function"], e["variant"], value["model"])
        record(key, e, None)
        if e["variant"] == BASELINE:
            return variant_jobs(e["function"], e, value["base_state"])
        return []

    def on_failure(key: str, error: str) -> list[Any]:
        record(key, None, error)
        f, v = key.split("/", 1)
        if v == BASELINE:
            for other in pending[f]:
                if other != BASELINE:
                    record(entry_key(f, other), None, f"its baseline failed ({error})")
        return []

    return run_jobs(client, initial, on_result, on_failure, max_in_flight="workers")


def run_function(
    config: SuiteConfig,
    fname: str,
    out: Path,
    done: Callable[[str], None] | None = None,
) -> None:
    """All pending variants of one function, here; each finished entry goes to the results file."""
    path = out / RESULTS_FILE

    def record(key: str, entry: dict[str, Any] | None, error: str | None) -> None:
        entries = update_entry(path, key, entry, error)
        if done is not None and entry is not None:
            done(one_line(entry, entries.get(entry_key(fname, BASELINE))))

    sub = SuiteConfig(**{**config.__dict__, "functions": [fname]})
    run_entries(sub, out, None, record)


def parse_list(text: str | Sequence[str] | None, known: Sequence[str], what: str,
               everything: Sequence[str] | None = None) -> list[str]:
    """Comma-separated names (or ``"all"``/``"2d"``) checked against ``known``; ``"all"`` (and
    ``None``) mean ``everything`` (default: every known name)."""
    every = list(known if everything is None else everything)
    if text is None:
        return every
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [s.strip() for s in items if s.strip()]
    out: list[str] = []
    for s in items:
        if s == "all":
            out += [k for k in every if k not in out]
        elif s == "2d" and what == "function":
            out += [k for k in SUITE_2D if k not in out]
        elif s in known:
            if s not in out:
                out.append(s)
        else:
            msg = f"unknown {what} {s!r}; known: {', '.join(known)}"
            raise ValueError(msg)
    if not out:
        msg = f"no {what} given"
        raise ValueError(msg)
    return out


__all__ = [
    "BASELINE",
    "PLOT_FILE",
    "RESULTS_FILE",
    "TABLE_FILE",
    "TARGET_RMSE_RATIO",
    "SuiteConfig",
    "entry_job",
    "environment",
    "estimated_seconds",
    "failure_note",
    "function_data",
    "load_model",
    "load_results",
    "markdown_table",
    "open_results",
    "pareto_plot",
    "parse_list",
    "run_entries",
    "run_function",
    "run_suite",
    "speedup",
    "summarize",
]
