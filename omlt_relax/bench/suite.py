"""The benchmark suite: functions × variants → results JSON, markdown table, Pareto plot.

For each function (:mod:`omlt_relax.bench.functions`) the suite samples one data set
(:func:`~omlt_relax.bench.data.sample_function`), trains the unregularized baseline, then every
other variant with the weight chosen by :func:`~omlt_relax.bench.train.select_weight` (relative to
the baseline's validation RMSE), and measures each chosen network
(:func:`~omlt_relax.bench.measure.measure_network`).

**Results file.** ``results.json`` in the output directory holds ``{"meta": ..., "entries":
{"<function>/<variant>": {...}}}`` and is rewritten atomically after every entry. A rerun with the
same configuration skips entries already there, so an interrupted run resumes where it stopped; a
different configuration in the same directory is refused (use another directory or ``fresh``).

**Speed-up** of a variant = (baseline's min + max MILP time) / (variant's min + max MILP time). A
baseline stopped by the time limit makes it a lower bound (shown as ``≥``); a variant stopped by the
limit makes it an upper bound (``≤``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omlt_relax.bench.dask_runner import n_workers
from omlt_relax.bench.data import sample_function
from omlt_relax.bench.functions import FUNCTIONS, SUITE_2D, get_function
from omlt_relax.bench.measure import measure_network
from omlt_relax.bench.train import (
    DEFAULT_TOLERANCE,
    VARIANTS,
    TrainConfig,
    build_model,
    get_variant,
    select_weight,
)

#: Accuracy limit of the targets: test RMSE at most 1.25 × the baseline's.
TARGET_RMSE_RATIO = 1.25
BASELINE = "unregularized"
RESULTS_FILE = "results.json"
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
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    train: TrainConfig = field(default_factory=TrainConfig)
    time_limit: float = 60.0
    tolerance: float = DEFAULT_TOLERANCE
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 2000
    samples_5d_factor: float = 1.5
    data_seed: int = 0
    obbt_time_limit: float | None = 60.0

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
        d.pop("functions")
        d.pop("variants")
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


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    msg = f"not JSON serializable: {type(o).__name__}"
    raise TypeError(msg)


def load_results(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The results JSON of an output directory (``ValueError`` with a sentence if unreadable)."""
    path = Path(out_dir) / RESULTS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"no results file at {path}"
        raise ValueError(msg) from None
    except json.JSONDecodeError as e:
        msg = f"{path} is not valid JSON ({e}); delete it or use another output directory"
        raise ValueError(msg) from None


def _key(function: str, variant: str) -> str:
    return f"{function}/{variant}"


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
    entry is written to ``results.json`` at once (by this process only, atomically); a job that
    fails after its retries is recorded under ``"failed"`` and retried by the next run.
    ``results.md`` and ``pareto.png`` are written at the end.

    Where the jobs run: ``client`` (a :class:`distributed.Client`) if given; else the Dask
    scheduler at ``scheduler``; else a local Dask cluster of ``jobs`` single-threaded worker
    processes if ``jobs > 1``; else in this process, one after the other.
    """
    if jobs < 1:
        msg = f"jobs must be at least 1, got {jobs}"
        raise ValueError(msg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    results: dict[str, Any]
    if path.exists() and not fresh:
        results = load_results(out)
        old = results.get("meta", {}).get("config", {})
        old_fp = {k: v for k, v in old.items() if k not in ("functions", "variants")}
        if old_fp != json.loads(json.dumps(config.fingerprint())):
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
    _write_json(path, results)
    entries: dict[str, Any] = results["entries"]
    say = log or (lambda s: None)
    n_all = len(config.functions) * len(config.variants)
    n_todo = sum(_key(f, v) not in entries for f in config.functions for v in config.variants)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_all, initial=n_all - n_todo, desc="bench", unit="net")
    t_run = time.perf_counter()

    def record(key: str, entry: dict[str, Any] | None, error: str | None) -> None:
        now = _update_entry(path, key, entry, error)
        if entry is not None:
            say(_one_line(entry, now.get(_key(entry["function"], BASELINE))))
        else:
            say(f"{key}: FAILED ({error}); rerun the same command to retry it")
        if bar is not None:
            bar.update(1)

    with contextlib.ExitStack() as stack:
        if client is None and (scheduler is not None or jobs > 1):
            from omlt_relax.bench.dask_runner import dask_client

            client = stack.enter_context(dask_client(scheduler, jobs))
        workers = n_workers(client)
        failures = run_entries(config, out, client, record)
    if bar is not None:
        bar.close()
    results = load_results(out)
    results["meta"]["last_run_seconds"] = time.perf_counter() - t_run
    results["meta"]["workers"] = workers
    results["summary"] = summarize(results)
    _write_json(path, results)
    (out / TABLE_FILE).write_text(markdown_table(results))
    pareto_plot(results, out / PLOT_FILE)
    if failures:
        say(f"{len(failures)} entr{'y' if len(failures) == 1 else 'ies'} failed (listed under "
            f"'failed' in {path}); rerun the same command to retry")
    return results


def _update_entry(
    path: Path, key: str, entry: dict[str, Any] | None, error: str | None = None
) -> dict[str, Any]:
    """Add one entry (or one failure) to the results file under an exclusive lock.

    Returns the file's entries.
    """
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            results = json.loads(path.read_text())
            failed = results.setdefault("failed", {})
            if entry is not None:
                results["entries"][key] = entry
                failed.pop(key, None)
            else:
                failed[key] = {"error": error, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
            results["meta"]["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
            _write_json(path, results)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return results["entries"]


# -- jobs ---------------------------------------------------------------------------------------
def _function_data(config: SuiteConfig, fname: str) -> tuple[Any, Any]:
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
    torch.set_num_threads(1)
    fn, data = _function_data(config, fname)
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
    std = getattr(sel.result, "std_model", None)
    return {"entry": entry, "model": sel.result.model.state_dict(),
            "base_state": std.state_dict() if vname == BASELINE and std is not None else None}


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
    """
    from omlt_relax.bench.dask_runner import Job, run_jobs

    entries = load_results(out)["entries"]
    # the larger (costlier) functions first, so that parallel workers finish together
    funcs = sorted(config.functions, key=lambda f: -get_function(f).dim)
    pending = {f: [v for v in config.variants if _key(f, v) not in entries] for f in funcs}

    def variant_jobs(f: str, base_val: float, base_state: Any) -> list[Job]:
        return [Job(_key(f, v), entry_job, (config, f, v, base_val, base_state))
                for v in pending[f] if v != BASELINE]

    initial: list[Job] = []
    for f in funcs:
        if not pending[f]:
            continue
        if BASELINE in pending[f]:
            initial.append(Job(_key(f, BASELINE), entry_job, (config, f, BASELINE)))
        else:
            initial += variant_jobs(f, entries[_key(f, BASELINE)]["val_rmse"], None)

    def on_result(key: str, value: dict[str, Any]) -> list[Job]:
        e = value["entry"]
        _save_model(out, e["function"], e["variant"], value["model"])
        record(key, e, None)
        if e["variant"] == BASELINE:
            return variant_jobs(e["function"], e["val_rmse"], value["base_state"])
        return []

    def on_failure(key: str, error: str) -> list[Any]:
        record(key, None, error)
        f, v = key.split("/", 1)
        if v == BASELINE:
            for other in pending[f]:
                if other != BASELINE:
                    record(_key(f, other), None, f"its baseline failed ({error})")
        return []

    return run_jobs(client, initial, on_result, on_failure)


def run_function(
    config: SuiteConfig,
    fname: str,
    out: Path,
    done: Callable[[str], None] | None = None,
) -> None:
    """All pending variants of one function, here; each finished entry goes to the results file."""
    path = out / RESULTS_FILE

    def record(key: str, entry: dict[str, Any] | None, error: str | None) -> None:
        entries = _update_entry(path, key, entry, error)
        if done is not None and entry is not None:
            done(_one_line(entry, entries.get(_key(fname, BASELINE))))

    sub = SuiteConfig(**{**config.__dict__, "functions": [fname]})
    run_entries(sub, out, None, record)


def _save_model(out: Path, fname: str, vname: str, state: dict[str, Any]) -> None:
    d = out / "models"
    d.mkdir(exist_ok=True)
    torch.save(state, d / f"{fname}__{vname.replace('+', '_')}.pt")


def load_model(out_dir: str | os.PathLike[str], function: str, variant: str) -> torch.nn.Module:
    """A network the suite saved (float64, original units)."""
    results = load_results(out_dir)
    cfg = results["meta"]["config"]["train"]
    fn = get_function(function)
    model = build_model(fn.dim, cfg["hidden"], 1, 0).to(torch.float64)
    state = torch.load(Path(out_dir) / "models" / f"{function}__{variant.replace('+', '_')}.pt")
    model.load_state_dict(state)
    return model


# -- derived numbers ----------------------------------------------------------------------------
def speedup(entry: dict[str, Any], base: dict[str, Any]) -> tuple[float, str]:
    """Baseline time over variant time (min + max), and ``"≥"``, ``"≤"``, ``"~"`` or ``""``.

    ``"≥"``: the baseline hit the time limit (true speed-up larger); ``"≤"``: the variant did;
    ``"~"``: both did.
    """
    t_v, t_b = entry["time_total"], base["time_total"]
    s = t_b / max(t_v, 1e-9)
    lo = not base["solved_all"]
    hi = not entry["solved_all"]
    return s, ("~" if lo and hi else "≥" if lo else "≤" if hi else "")


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per-entry ratios and speed-ups, and per-variant geometric means over the 2-D functions.

    ``geomean_speedup_2d`` of a variant is over the 2-D functions run; ``n_within_target`` counts
    those with test RMSE ≤ :data:`TARGET_RMSE_RATIO` × baseline. ``best_ours`` picks, per function,
    the fastest of our relaxation-informed variants within the target ratio.
    """
    entries = results["entries"]
    per: dict[str, Any] = {}
    funcs = sorted({e["function"] for e in entries.values()},
                   key=lambda f: (f not in SUITE_2D, f))
    variants: list[str] = []
    for e in entries.values():
        if e["variant"] not in variants:
            variants.append(e["variant"])
    for key, e in entries.items():
        base = entries.get(_key(e["function"], BASELINE))
        if base is None:
            continue
        s, flag = speedup(e, base)
        per[key] = {
            "rmse_ratio": e["test_rmse"] / base["test_rmse"],
            "speedup": s,
            "speedup_flag": flag,
            "within_target": e["test_rmse"] <= TARGET_RMSE_RATIO * base["test_rmse"],
        }
    geo: dict[str, Any] = {}
    for v in variants:
        vals = [per[_key(f, v)] for f in funcs if f in SUITE_2D and _key(f, v) in per]
        if not vals:
            continue
        geo[v] = {
            "geomean_speedup_2d": float(np.exp(np.mean([np.log(x["speedup"]) for x in vals]))),
            "n_functions": len(vals),
            "n_within_target": int(sum(x["within_target"] for x in vals)),
        }
    ours = [v for v in variants if v in _OURS]
    best: dict[str, Any] = {}
    for f in funcs:
        cands = [(per[_key(f, v)]["speedup"], v) for v in ours
                 if _key(f, v) in per and per[_key(f, v)]["within_target"]]
        if cands:
            s, v = max(cands)
            best[f] = {"variant": v, "speedup": s, **per[_key(f, v)]}
    best_2d = [b["speedup"] for f, b in best.items() if f in SUITE_2D]
    return {
        "per_entry": per,
        "per_variant": geo,
        "best_ours": best,
        "best_ours_geomean_2d": float(np.exp(np.mean(np.log(best_2d)))) if best_2d else None,
        "best_ours_2d_functions": len(best_2d),
    }


_OURS = ("bigm", "stability", "lp_direct", "lp_total", "bigm+stability", "relax")


def _fmt(x: Any, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return format(x, spec)


def _milp_cell(m: dict[str, Any]) -> str:
    t = _fmt(m["time"], ".3g")
    if m["status"] != "optimal":
        gap = m.get("gap")
        return f"{t} (limit, gap {_fmt(100 * gap, '.3g') if gap is not None else '–'}%)"
    return t


def _one_line(e: dict[str, Any], base: dict[str, Any] | None) -> str:
    ratio = e["test_rmse"] / base["test_rmse"] if base else 1.0
    s = ""
    if base is not None:
        sp, flag = speedup(e, base)
        s = f", speed-up {flag}{sp:.3g}×"
    return (f"{e['function']}/{e['variant']}: scale {e['scale']:.3g}, RMSE ratio {ratio:.3f}, "
            f"unstable {e['unstable_obbt']}, MILP {e['time_total']:.3g} s{s}")


def _header(results: dict[str, Any]) -> list[str]:
    meta = results.get("meta", {})
    env = meta.get("environment", {})
    cfg = meta.get("config", {})
    tr = cfg.get("train", {})
    lines = ["## Setup", ""]
    if env:
        lines.append(
            f"Machine: {env.get('processor')} ({env.get('cpus')} CPUs), {env.get('platform')}; "
            f"Python {env.get('python')}, torch {env.get('torch')} ({env.get('torch_threads')} "
            f"thread), HiGHS {env.get('highs')}, Pyomo {env.get('pyomo')}, OMLT {env.get('omlt')}."
        )
    if cfg:
        lines.append(
            f"Networks: hidden layers {tr.get('hidden')}, {tr.get('epochs')} epochs, Adam "
            f"(lr {tr.get('lr')}, cosine decay), batch {tr.get('batch_size')}, seed "
            f"{tr.get('seed')}. Data: {cfg.get('n_train')}/{cfg.get('n_val')}/{cfg.get('n_test')} "
            f"train/validation/test samples (5-D: ×{cfg.get('samples_5d_factor')} train and "
            f"validation), seed {cfg.get('data_seed')}. Weight rule: largest grid weight with "
            f"validation RMSE ≤ {cfg.get('tolerance')}× the baseline's. MILP: LP-OBBT bounds, "
            f"BoundedReluBigMFormulation, HiGHS one thread, time limit {cfg.get('time_limit')} s "
            "per solve (min and max)."
        )
    if "last_run_seconds" in meta:
        lines.append(f"Wall time of the last run: {meta['last_run_seconds'] / 60:.1f} min.")
    lines.append("")
    return lines


def _functions(entries: dict[str, Any]) -> list[str]:
    """The functions present, in the order of :data:`~omlt_relax.bench.functions.FUNCTIONS`."""
    present = {e["function"] for e in entries.values()}
    return [f for f in FUNCTIONS if f in present]


def markdown_table(results: dict[str, Any]) -> str:
    """The results as markdown: setup, one table per function, then the per-variant summary."""
    entries = results["entries"]
    summ = results.get("summary") or summarize(results)
    per = summ["per_entry"]
    lines: list[str] = _header(results)
    funcs = _functions(entries)
    head = (
        "| variant | scale | test RMSE | ratio | unstable IBP/CROWN/OBBT | mean big-M | "
        "root gap min/max | MILP min s | MILP max s | nodes | speed-up | f(x*)−f_min | "
        "f_max−f(x*) |"
    )
    sep = "|" + "---|" * 13
    for f in funcs:
        fn = get_function(f)
        base = entries.get(_key(f, BASELINE))
        fit = ""
        if base is not None and base.get("test_std"):
            fit = f"; baseline test RMSE / std(f) = {base['test_rmse'] / base['test_std']:.3f}"
        lines += [f"### {f} ({fn.dim}-D, box [{fn.lower[0]}, {fn.upper[0]}]^{fn.dim}, "
                  f"true min {fn.f_min:.4g}, max {fn.f_max:.4g}{fit})", "", head, sep]
        for key, e in entries.items():
            if e["function"] != f:
                continue
            p = per.get(key, {})
            mm, mx = e["milp"].get("min"), e["milp"].get("max")
            rg = e.get("root_gap", {})
            tru = e.get("true_opt") or {}
            tmin = tru.get("min") or {}
            tmax = tru.get("max") or {}
            sp = f"{p.get('speedup_flag', '')}{_fmt(p.get('speedup'), '.3g')}×" if p else "–"
            ratio = _fmt(p.get("rmse_ratio"), ".3f")
            if not e.get("within_tolerance", True):
                ratio += "†"
            lines.append(
                f"| {e['variant']} | {_fmt(e['scale'], '.3g')} | {_fmt(e['test_rmse'], '.4g')} | "
                f"{ratio} | {e['unstable_ibp']}/{e['unstable_crown']}/{e['unstable_obbt']} | "
                f"{_fmt(e['mean_bigm_obbt'], '.3g')} | "
                f"{_fmt(rg.get('min'), '.2g')}/{_fmt(rg.get('max'), '.2g')} | "
                f"{_milp_cell(mm) if mm else '–'} | {_milp_cell(mx) if mx else '–'} | "
                f"{e['nodes_total']} | {sp} | {_fmt(tmin.get('error'), '.3g')} | "
                f"{_fmt(tmax.get('error'), '.3g')} |"
            )
        lines.append("")
    lines += ["### Summary over the 2-D functions", "",
              "| variant | geometric-mean speed-up | functions within 1.25× RMSE |",
              "|---|---|---|"]
    for v, g in summ["per_variant"].items():
        lines.append(f"| {v} | {_fmt(g['geomean_speedup_2d'], '.3g')}× | "
                     f"{g['n_within_target']}/{g['n_functions']} |")
    if summ.get("best_ours"):
        lines += ["", "Fastest of our variants within 1.25× baseline test RMSE, per function:", "",
                  "| function | variant | speed-up | RMSE ratio |", "|---|---|---|---|"]
        for f, b in summ["best_ours"].items():
            sp = f"{b['speedup_flag']}{_fmt(b['speedup'], '.3g')}×"
            lines.append(f"| {f} | {b['variant']} | {sp} "
                         f"| {b['rmse_ratio']:.3f} |")
        g = summ.get("best_ours_geomean_2d")
        lines.append("")
        lines.append(f"Geometric mean over {summ['best_ours_2d_functions']} 2-D functions: "
                     f"{_fmt(g, '.3g')}×")
    lines += ["",
              "Times are HiGHS solve times in seconds (one thread). `(limit, gap g%)`: stopped by "
              "the time limit with relative gap g. Speed-up = baseline (min + max) time / variant "
              "time; `≥`: the baseline hit the limit, `≤`: the variant did. Root gap: |root LP − "
              "MILP optimum| / network range. f(x*): true function at the MILP's solution. "
              "†: no weight on the grid met the validation tolerance (smallest kept).", ""]
    return "\n".join(lines)


def pareto_plot(results: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """RMSE ratio vs MILP time (min + max), one panel per function, one point per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = results["entries"]
    funcs = _functions(entries)
    n = max(1, len(funcs))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    markers = "osD^v<>pP*Xh"
    all_variants: list[str] = []
    for e in entries.values():
        if e["variant"] not in all_variants:
            all_variants.append(e["variant"])
    cmap = plt.get_cmap("tab10")
    for i, f in enumerate(funcs):
        ax = axes[i // cols][i % cols]
        base = entries.get(_key(f, BASELINE))
        pts = []
        for j, v in enumerate(all_variants):
            e = entries.get(_key(f, v))
            if e is None or base is None:
                continue
            r = e["test_rmse"] / base["test_rmse"]
            t = max(e["time_total"], 1e-3)
            pts.append((r, t))
            ax.scatter([r], [t], marker=markers[j % len(markers)], color=cmap(j % 10), s=45,
                       label=v, facecolors="none" if not e["solved_all"] else None)
        pts.sort()
        front = []
        best = math.inf
        for r, t in pts:
            if t < best:
                front.append((r, t))
                best = t
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.6",
                    lw=1, zorder=0)
        ax.axvline(TARGET_RMSE_RATIO, color="0.4", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(f)
        ax.set_xlabel("test RMSE / baseline")
        ax.set_ylabel("MILP time min+max [s]")
        ax.grid(alpha=0.3, which="both")
    for k in range(len(funcs), rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(5, max(1, len(labels))),
               fontsize=8, frameon=False)
    fig.suptitle("Accuracy vs MILP solve time (HiGHS, 1 thread; hollow: hit the time limit)")
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(labels) / 5), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_list(text: str | Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    """Comma-separated names (or ``"all"``/``"2d"``) checked against ``known``."""
    if text is None:
        return list(known)
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [s.strip() for s in items if s.strip()]
    out: list[str] = []
    for s in items:
        if s == "all":
            out += [k for k in known if k not in out]
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
    "TARGET_RMSE_RATIO",
    "SuiteConfig",
    "entry_job",
    "environment",
    "load_model",
    "load_results",
    "markdown_table",
    "pareto_plot",
    "parse_list",
    "run_entries",
    "run_function",
    "run_suite",
    "speedup",
    "summarize",
]
