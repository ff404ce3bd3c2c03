r"""The paper-scale suite (``omlt-relax bench --suite scale``): wide networks, long MILP limits,
two baselines, accuracy-matched speed-ups.

The default suite (:mod:`omlt_relax.bench.suite`) measures 2×50 networks with a 20 s limit, where
the unregularized MILP already solves in seconds. This suite measures the regime the library is
for: the well-fitted functions at 2×100 and 3×100, MILPs with a long limit, and it compares every
relaxation-informed network with **two** baselines, solved side by side in the same job:

* **(a) stock OMLT**, what a user gets today: the unregularized network exported to ONNX, loaded
  with ``omlt.io.load_onnx_neural_network_with_bounds`` and formulated with OMLT's
  ``ReluBigMFormulation`` (OMLT's own interval bounds, a binary for every neuron)
  (:func:`~omlt_relax.bench.measure.measure_stock_omlt`);
* **(b) our pipeline on the same unregularized network**, the honest one: LP-OBBT bounds and
  :class:`~omlt_relax.BoundedReluBigMFormulation` (no binary for a stable neuron)
  (:func:`~omlt_relax.bench.measure.measure_network`).

Regularized networks are measured with (b) only. Every MILP (minimum and maximum of the network
over the box) is solved with HiGHS, one thread, the same time limit; every incumbent is checked by
a float64 forward pass.

Entries are (function, size, variant, weight): the variants are trained at a fixed list of weight
scales each (no selection rule), so that the report can draw the Pareto front of (test RMSE, MILP
time) over *every* network trained, and find the **speed-up at equal accuracy**: for each
regularized network, the fastest unregularized network of *any* size that is at least as accurate
(:func:`equal_accuracy`), and for each accuracy level an unregularized network reaches, the
fastest relaxation-informed network at least as accurate (:func:`accuracy_levels`). A control
named in ``--variants`` (``unregularized_ftd``: the recipe's extra epochs without a penalty) is an
unregularized network there: an accuracy level to match, never a candidate. Speed-ups are
(min + max) solver times; ``≥`` where the baseline hit the limit (a lower bound), ``≤`` where the
network itself did, ``~`` where both did. A bound is never rounded the wrong way
(:func:`fmt_bound`).

The machinery is the default suite's: :class:`ScaleConfig` extends
:class:`~omlt_relax.bench.suite.SuiteConfig`, ``results.json`` is opened and resumed by
:func:`~omlt_relax.bench.suite.open_results` and written after each entry
(:func:`~omlt_relax.bench.results.update_entry`), and the jobs run on
:mod:`~omlt_relax.bench.dask_runner` (``--jobs``/``--scheduler``). Outputs in ``--out``:
``results.json`` (every entry), ``scale.md`` and ``scale_report.json`` (the report),
``scale_<function>.png`` (one plot per function), ``models/`` (the networks).

``--snap-weights REL`` zeroes every weight below ``REL`` × its layer's largest before measuring
(:mod:`omlt_relax.snapping`): training with a stability penalty can leave weights of 1e-9 beside
output weights of 1e2-1e3 (Rosenbrock), a coefficient span the numeric guard refuses. The suite
then measures the zeroed network (test RMSE and MILPs alike; its model is the one saved) and records
the count and the certified bound on the change of the output anywhere in the box.

How to run
----------

The full run (5 functions × {2×100, 3×100} × (1 unregularized + 8 regularized) = 90 networks,
300 epochs, 600 s per MILP; resumable: rerun the same command after an interruption)::

    omlt-relax bench --suite scale --out bench_scale

Training is cheap (under 30 s per network); the MILPs are the cost: each unregularized network
takes up to 4 × 600 s (stock OMLT and ours, min and max), each regularized one up to 2 × 600 s.
Expect about a day on one core if the unregularized and the weakly regularized networks hit the
limit (at most 36 h if every MILP did); ``--jobs 2`` halves that on an idle 2-core machine.

The documented long run (3600 s per MILP, 3×100, the big-M + stability weights; up to 4 × 3600 s
per unregularized network, up to 2 × 3600 s per regularized one: plan for about two days on one
core, at most 70 h; or use ``--jobs``/``--scheduler``)::

    omlt-relax bench --suite scale --sizes 3x100 --variants bigm+stability --time-limit 3600 \
        --out bench_scale_3600

A quick look (one function, one size, 100 epochs, 30 s limit; about 4 minutes)::

    omlt-relax bench --suite scale --functions peaks --sizes 2x100 --epochs 100 \
        --variants bigm+stability --scales 1e-4,1e-3 --time-limit 30 --out bench_scale_smoke

``--report-only`` rewrites ``scale.md``, the JSON report and the plots from ``results.json``
(and from the ``repeats_*.json`` files of ``benchmarks/bench_repeats.py`` in the folder: baselines
solved again at a longer cap, :mod:`omlt_relax.bench.resolves`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from omlt_relax.bench.dask_runner import Job, n_workers, run_jobs, suite_client
from omlt_relax.bench.functions import get_function
from omlt_relax.bench.measure import measure_network, measure_stock_omlt
from omlt_relax.bench.report import (
    MIN_TIME,
    ceil_sig,
    floor_sig,
    fmt,
    fmt_bound,
    format_table,
    geomean_flag,
    machine_line,
    ratio,
    time_cell,
)
from omlt_relax.bench.resolves import load_resolves, resolves_markdown, resolves_summary
from omlt_relax.bench.results import (
    BASELINE,
    RESULTS_FILE,
    load_results,
    save_model,
    update_entry,
    write_json,
    write_text_atomic,
)
from omlt_relax.bench.stats import TARGET_RMSE_RATIO
from omlt_relax.bench.suite import SuiteConfig, failure_note, function_data, open_results
from omlt_relax.data import predict, rmse
from omlt_relax.snapping import snap_change_bound, snap_negligible_weights
from omlt_relax.threads import single_thread
from omlt_relax.train import TrainConfig, fit, get_variant, total_epochs

#: The well-fitted functions of the 2×50 suite (test RMSE / std ≤ 0.07; the better-fitted 5-D one).
SCALE_FUNCTIONS: tuple[str, ...] = (
    "peaks", "rosenbrock", "himmelblau", "styblinski_tang", "rosenbrock5",
)
#: Network sizes (hidden widths).
SCALE_SIZES: tuple[tuple[int, ...], ...] = ((100, 100), (100, 100, 100))
#: Relaxation-informed variants run by default, and their weight scales.
SCALE_VARIANTS: tuple[str, ...] = ("bigm+stability", "stability")
SCALE_WEIGHTS: dict[str, tuple[float, ...]] = {
    "bigm+stability": (1e-5, 3e-5, 1e-4, 3e-4, 1e-3),
    "stability": (1e-5, 1e-4, 1e-3),
}
#: Seconds per MILP solve by default.
SCALE_TIME_LIMIT = 600.0
SCALE_EPOCHS = 300

REPORT_FILE = "scale.md"
REPORT_JSON = "scale_report.json"


def size_name(hidden: Sequence[int]) -> str:
    """``(100, 100)`` → ``"2x100"``; unequal widths → ``"100-50"``."""
    hidden = [int(h) for h in hidden]
    if len(set(hidden)) == 1:
        return f"{len(hidden)}x{hidden[0]}"
    return "-".join(str(h) for h in hidden)


def parse_sizes(text: str) -> list[list[int]]:
    """``"2x100,3x100"`` or ``"100,100;100,100,100"`` → ``[[100, 100], [100, 100, 100]]``."""
    parts = [p.strip() for p in (text.split(";") if ";" in text or "x" not in text
                                 else text.split(",")) if p.strip()]
    sizes: list[list[int]] = []
    for p in parts:
        try:
            if "x" in p:
                depth, width = p.split("x")
                size = [int(width)] * int(depth)
            else:
                size = [int(w) for w in p.split(",") if w.strip()]
        except ValueError:
            msg = (f"cannot read the network size {p!r}; write e.g. 2x100,3x100 or "
                   "100,100;100,100,100")
            raise ValueError(msg) from None
        if not size or min(size) < 1:
            msg = f"a network size needs at least one hidden layer of width >= 1, got {p!r}"
            raise ValueError(msg)
        sizes.append(size)
    if not sizes:
        msg = f"no network size in {text!r}"
        raise ValueError(msg)
    return sizes


@dataclass
class ScaleConfig(SuiteConfig):
    """What a scale-suite run does (:class:`~omlt_relax.bench.suite.SuiteConfig` plus sizes,
    weights and the stock-OMLT baseline).

    Attributes (besides the base class's; ``train.hidden`` is ignored, ``tolerance`` unused):
        sizes: hidden widths of each network size.
        scales: weight scales per regularized variant (missing variants: :data:`SCALE_WEIGHTS`,
            else the variant's grid).
        stock: also solve baseline (a), stock OMLT, for every unregularized network.
    """

    functions: list[str] = field(default_factory=lambda: list(SCALE_FUNCTIONS))
    variants: list[str] = field(default_factory=lambda: list(SCALE_VARIANTS))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=SCALE_EPOCHS))
    time_limit: float = SCALE_TIME_LIMIT
    n_train: int = 4000
    n_val: int = 1000
    n_test: int = 4000
    obbt_time_limit: float | None = 120.0
    sizes: list[list[int]] = field(default_factory=lambda: [list(s) for s in SCALE_SIZES])
    scales: dict[str, list[float]] = field(default_factory=dict)
    stock: bool = True
    snap_weights: float | None = None

    EXTENSIBLE: ClassVar[tuple[str, ...]] = ("functions", "variants", "sizes", "scales")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sizes:
            msg = "give at least one network size"
            raise ValueError(msg)
        if self.snap_weights == 0:
            self.snap_weights = None  # 0: off, as in the cflp suite
        if self.snap_weights is not None and not (
                math.isfinite(self.snap_weights) and 0 < self.snap_weights < 1):
            msg = f"snap_weights must be in (0, 1) (or None: off), got {self.snap_weights}"
            raise ValueError(msg)
        self.sizes = [[int(w) for w in s] for s in self.sizes]
        for s in self.sizes:
            if not s or min(s) < 1:
                msg = f"a network size needs hidden layers of width >= 1, got {s}"
                raise ValueError(msg)
        scales: dict[str, list[float]] = {}
        for v in self.variants:
            if v == BASELINE:
                continue
            if not get_variant(v).regularized:  # a control (e.g. unregularized_ftd): one network
                scales[v] = [0.0]
                continue
            given = self.scales.get(v)
            if given is None:
                given = SCALE_WEIGHTS.get(v, get_variant(v).grid)
            vals = sorted({float(x) for x in given})
            if not vals or any(not math.isfinite(x) or x <= 0 for x in vals):
                msg = f"weight scales of {v} must be positive numbers, got {list(given)}"
                raise ValueError(msg)
            scales[v] = vals
        self.scales = scales

    def jobs(self) -> list[tuple[str, str, list[int], str, float]]:
        """``(key, function, hidden, variant, scale)`` of every entry, in running order."""
        out = []
        for f in self.functions:
            for h in self.sizes:
                out.append((entry_key(f, h, BASELINE, 0.0), f, h, BASELINE, 0.0))
                for v in self.variants:
                    if v != BASELINE:
                        out += [(entry_key(f, h, v, s), f, h, v, s) for s in self.scales[v]]
        return out


def model_names(entry: dict[str, Any]) -> tuple[str, str]:
    """``(fname, vname)`` of an entry's saved network
    (:func:`~omlt_relax.bench.results.model_file`)."""
    return entry["function"], f"{entry['size']}__{entry['variant']}_{entry['scale']:g}"


def entry_key(function: str, hidden: Sequence[int], variant: str, scale: float) -> str:
    """``"peaks/2x100/unregularized"``, ``"peaks/3x100/bigm+stability@0.0003"``."""
    base = f"{function}/{size_name(hidden)}/{variant}"
    return base if not get_variant(variant).regularized else f"{base}@{scale:g}"


# -- one job ------------------------------------------------------------------------------------
#: The unregularized network a fine-tuning variant starts from, kept by a worker between its
#: jobs (trained again with the same seed and settings: the baseline entry's network).
_BASELINES: dict[tuple[Any, ...], Any] = {}


def scale_job(config: ScaleConfig, fname: str, hidden: list[int], vname: str,
              scale: float, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train one network at one weight and measure it; runs on a worker.

    The unregularized network also gets baseline (a), stock OMLT, under ``"stock"``.
    ``progress(n)`` is called after every training epoch (the starting network's included; see
    :func:`job_epochs`). Returns ``{"entry": ..., "model": float64 state_dict}``.
    """
    single_thread()
    fn, data = function_data(config, fname)
    cfg = replace(config.train, hidden=tuple(hidden))
    t0 = time.perf_counter()
    base = None
    if get_variant(vname).finetune:  # starts from the unregularized network of this size
        key = _baseline_key(fname, cfg)
        if key not in _BASELINES:
            _BASELINES.clear()
            _BASELINES[key] = fit(data, BASELINE, 0.0, cfg, progress=progress).std_model
        base = _BASELINES[key]
    res = fit(data, vname, scale, cfg, baseline=base, progress=progress)
    train_time = time.perf_counter() - t0
    model, snap = res.model, None
    if config.snap_weights is not None:  # measure (and save) the network the MILP is exact for
        model, count = snap_negligible_weights(res.model, config.snap_weights)
        bound = snap_change_bound(res.model, model, data.lower, data.upper)
        snap = {"rel": config.snap_weights, "zeroed": count, "change_bound": float(bound.max()),
                "test_rmse_unsnapped": rmse(predict(res.model, data.x_test), data.y_test)}
    meas = measure_network(model, data, fn, config.time_limit, config.obbt_time_limit)
    entry: dict[str, Any] = {
        "function": fname, "size": size_name(hidden), "hidden": list(hidden),
        "variant": vname, "description": get_variant(vname).description,
        "scale": res.scale, "train_time": train_time, **meas,
    }
    if snap is not None:
        entry["snap"] = snap  # val_rmse from ``meas``: the zeroed network's
    else:
        entry["val_rmse"] = res.val_rmse
    if vname == BASELINE and config.stock:
        entry["stock"] = measure_stock_omlt(model, data, config.time_limit)
    return {"entry": entry, "model": model.state_dict()}


def _baseline_key(fname: str, cfg: TrainConfig) -> tuple[Any, ...]:
    return (fname, tuple(cfg.hidden), repr(cfg))


def job_epochs(config: ScaleConfig, fname: str, hidden: list[int], vname: str) -> int:
    """Training epochs :func:`scale_job` reports in this process (a fine-tuning variant's
    starting network counts unless this process has it already)."""
    cfg = replace(config.train, hidden=tuple(hidden))
    return total_epochs(get_variant(vname), cfg,
                        baseline_given=_baseline_key(fname, cfg) in _BASELINES)


def scale_job_with_bar(config: ScaleConfig, fname: str, hidden: list[int], vname: str,
                       scale: float) -> dict[str, Any]:
    """:func:`scale_job` with a progress bar of its training epochs (jobs run here, one by one:
    a network at these sizes trains for minutes to tens of minutes)."""
    from tqdm.auto import tqdm

    desc = f"{fname} {size_name(hidden)} {vname}" + (f" {scale:g}" if vname != BASELINE else "")
    with tqdm(total=job_epochs(config, fname, hidden, vname), desc=desc, unit="epoch",
              leave=False) as bar:
        return scale_job(config, fname, hidden, vname, scale, progress=bar.update)


# -- the run ------------------------------------------------------------------------------------
def run_scale(
    config: ScaleConfig,
    out_dir: str | os.PathLike[str],
    fresh: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Run (or resume) the scale suite; returns the results dict, also in ``out_dir``.

    Each entry is one job (here or on Dask, as :func:`~omlt_relax.bench.suite.run_suite`);
    finished entries are skipped, failed ones recorded under ``"failed"`` and retried by the next
    run. The report (:func:`write_scale_report`) is written at the end.
    """
    if jobs < 1:
        msg = f"jobs must be at least 1, got {jobs}"
        raise ValueError(msg)
    out = Path(out_dir)
    path = out / RESULTS_FILE
    results = open_results(config, out, fresh)
    entries = results["entries"]
    todo = [j for j in config.jobs() if j[0] not in entries]
    say = log or (lambda s: None)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        n_all = len(config.jobs())
        bar = tqdm(total=n_all, initial=n_all - len(todo), desc="bench scale", unit="net")
    t_run = time.perf_counter()

    def on_result(key: str, value: dict[str, Any]) -> None:
        e = value["entry"]
        save_model(out, *model_names(e), value["model"])
        update_entry(path, key, e, None)
        say(progress_line(e))
        if bar is not None:
            bar.update(1)

    def on_failure(key: str, error: str) -> None:
        update_entry(path, key, None, error)
        say(f"{key}: FAILED ({error}); rerun the same command to retry it")
        if bar is not None:
            bar.update(1)

    with suite_client(client, scheduler, jobs) as client:
        workers = n_workers(client)
        fn = scale_job_with_bar if client is None and bar is not None else scale_job
        failures = run_jobs(client, [Job(k, fn, (config, f, h, v, s)) for k, f, h, v, s in todo],
                            on_result, on_failure)
    if bar is not None:
        bar.close()
    results = load_results(out)
    results["meta"]["last_run_seconds"] = time.perf_counter() - t_run
    results["meta"]["workers"] = workers
    results["meta"]["load_average"] = list(os.getloadavg())
    write_json(path, results)
    write_scale_report(out, results)
    if failures:
        say(failure_note(len(failures), path))
    return load_results(out)


def progress_line(e: dict[str, Any]) -> str:
    """One line for a finished entry."""
    s = (f"{e['function']}/{e['size']}/{e['variant']} scale {e['scale']:g}: test RMSE "
         f"{e['test_rmse']:.4g}, unstable {e['unstable_obbt']}, MILP (b) "
         f"{time_cell(e['time_total'], not e['solved_all'])} s")
    st = e.get("stock")
    if st:
        s += f", stock OMLT (a) {time_cell(st['time_total'], not st['solved_all'])} s"
    return s


# -- numbers ------------------------------------------------------------------------------------


def records(entries: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat record per entry: what the report needs (also what tests build by hand).

    Keys: ``key, function, size, depth, variant, scale, test_rmse, unstable, time, hit`` (our
    pipeline, min + max) and, for unregularized networks measured with stock OMLT,
    ``stock_time, stock_hit``; ``obbt_time``.
    """
    out = []
    for key, e in entries.items():
        r = {
            "key": key, "function": e["function"], "size": e["size"],
            "depth": len(e.get("hidden", [])), "variant": e["variant"],
            "scale": float(e.get("scale", 0.0)), "test_rmse": float(e["test_rmse"]),
            "unstable": e.get("unstable_obbt"), "neurons": e.get("neurons"),
            "time": float(e["time_total"]), "hit": not e["solved_all"],
            "obbt_time": e.get("obbt_time"), "train_time": e.get("train_time"),
            "plain": not get_variant(e["variant"]).regularized,
        }
        st = e.get("stock")
        if st:
            r["stock_time"] = float(st["time_total"])
            r["stock_hit"] = not st["solved_all"]
        out.append(r)
    return out


def _unreg(recs: list[dict[str, Any]], function: str, size: str) -> list[dict]:
    """The baseline network of ``function`` at ``size`` (a one-item list, or empty)."""
    return [r for r in recs if r["function"] == function and r["variant"] == BASELINE
            and r["size"] == size]


def _plain(recs: list[dict[str, Any]], function: str) -> list[dict]:
    """Every network of ``function`` trained without a penalty: the baselines of every size and
    the controls (``unregularized_ftd``: trained longer the way the recipe is)."""
    return [r for r in recs if r["function"] == function and r["plain"]]


def per_network(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each record with its RMSE ratio and speed-ups vs (a) and (b) of the same function and
    size (``None`` where that baseline is missing)."""
    out = []
    for r in recs:
        row = dict(r)
        base = _unreg(recs, r["function"], r["size"])
        b = base[0] if base else None
        row["rmse_ratio"] = r["test_rmse"] / b["test_rmse"] if b else None
        row["vs_b"] = ratio(b["time"], b["hit"], r["time"], r["hit"]) if b else None
        row["vs_a"] = (ratio(b["stock_time"], b["stock_hit"], r["time"], r["hit"])
                       if b and "stock_time" in b else None)
        out.append(row)
    return out


def same_architecture(recs: list[dict[str, Any]],
                      max_ratio: float = TARGET_RMSE_RATIO) -> list[dict[str, Any]]:
    """Per (function, size): the fastest regularized network with test RMSE ≤ ``max_ratio`` ×
    the unregularized network's of that size, and its speed-ups ``vs_b`` and ``vs_a`` (the
    unregularized network's (b) and stock-OMLT (a) times over its own, :func:`ratio`); ``best``
    (and the speed-ups) ``None`` if no regularized network is accurate enough."""
    rows = per_network(recs)
    out = []
    seen = []
    for r in rows:
        k = (r["function"], r["size"])
        if k in seen or r["variant"] != BASELINE:
            continue
        seen.append(k)
        cands = [o for o in rows if (o["function"], o["size"]) == k and not o["plain"]
                 and o["rmse_ratio"] is not None and o["rmse_ratio"] <= max_ratio]
        best = min(cands, key=lambda o: o["time"]) if cands else None
        vs_b = ratio(r["time"], r["hit"], best["time"], best["hit"]) if best else None
        vs_a = (ratio(r["stock_time"], r["stock_hit"], best["time"], best["hit"])
                if best and "stock_time" in r else None)
        out.append({"function": k[0], "size": k[1], "base": r, "best": best,
                    "vs_b": vs_b, "vs_a": vs_a})
    return out


def equal_accuracy(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed-up at equal accuracy: for each regularized network, the fastest unregularized
    network of *any* size of the same function with test RMSE ≤ its own.

    ``vs_b``: that network's (b) time over this one's (fastest by (b) time); ``vs_a``: the
    fastest stock-OMLT time among the same candidates over this one's. ``base_b``/``base_a``
    are the chosen networks (``None`` when no unregularized network is as accurate: this one is
    more accurate than all of them).
    """
    out = []
    for r in recs:
        if r["plain"]:
            continue
        cands = [o for o in _plain(recs, r["function"]) if o["test_rmse"] <= r["test_rmse"]]
        row: dict[str, Any] = {"net": r, "base_b": None, "base_a": None, "vs_b": None,
                               "vs_a": None}
        if cands:
            b = min(cands, key=lambda o: (o["time"], o["test_rmse"]))
            row["base_b"] = b
            row["vs_b"] = ratio(b["time"], b["hit"], r["time"], r["hit"])
            stock = [o for o in cands if "stock_time" in o]
            if stock:
                a = min(stock, key=lambda o: (o["stock_time"], o["test_rmse"]))
                row["base_a"] = a
                row["vs_a"] = ratio(a["stock_time"], a["stock_hit"], r["time"], r["hit"])
        out.append(row)
    return out


def accuracy_levels(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The other way round: for each unregularized network (an accuracy level), the fastest
    relaxation-informed network of any size at least as accurate, and the speed-up over that
    unregularized network's (b) and (a) times (``best`` ``None``: none is as accurate)."""
    out = []
    for u in recs:
        if not u["plain"]:
            continue
        cands = [o for o in recs if o["function"] == u["function"] and not o["plain"]
                 and o["test_rmse"] <= u["test_rmse"]]
        best = min(cands, key=lambda o: (o["time"], o["test_rmse"])) if cands else None
        row: dict[str, Any] = {"level": u, "best": best, "vs_b": None, "vs_a": None}
        if best is not None:
            row["vs_b"] = ratio(u["time"], u["hit"], best["time"], best["hit"])
            if "stock_time" in u:
                row["vs_a"] = ratio(u["stock_time"], u["stock_hit"], best["time"], best["hit"])
        out.append(row)
    return out


def pareto_front(recs: list[dict[str, Any]], function: str) -> list[dict[str, Any]]:
    """The networks of ``function`` not dominated in (test RMSE, MILP time (b)): sorted by
    RMSE, each faster than every more accurate one. A time that hit the limit counts as its
    lower bound (it stays on the front only if nothing more accurate was faster)."""
    pts = sorted((r for r in recs if r["function"] == function),
                 key=lambda r: (r["test_rmse"], r["time"]))
    front, best = [], math.inf
    for r in pts:
        if r["time"] < best:
            front.append(r)
            best = r["time"]
    return front


def summarize_scale(results: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers as JSON: per network, same architecture, equal accuracy, accuracy
    levels, Pareto fronts, geometric means over functions (per size)."""
    recs = records(results["entries"])
    funcs = list(dict.fromkeys(r["function"] for r in recs))
    same = same_architecture(recs)
    geo: dict[str, Any] = {}
    for size in dict.fromkeys(r["size"] for r in recs):
        for which in ("vs_b", "vs_a"):
            items = [s[which] for s in same if s["size"] == size and s[which] is not None]
            g, flag = geomean_flag(items)
            geo[f"{size}/{which}"] = {"geomean": g, "flag": flag, "functions": len(items)}

    def key(r: dict[str, Any] | None) -> str | None:
        return None if r is None else r["key"]

    def pair(x: tuple[float, str] | None) -> dict[str, Any] | None:
        return None if x is None else {"ratio": x[0], "flag": x[1]}

    return {
        "per_network": [{k: (pair(v) if k in ("vs_a", "vs_b") else v) for k, v in r.items()}
                        for r in per_network(recs)],
        "same_architecture": [
            {"function": s["function"], "size": s["size"], "best": key(s["best"]),
             "rmse_ratio": s["best"]["test_rmse"] / s["base"]["test_rmse"] if s["best"] else None,
             "vs_b": pair(s["vs_b"]), "vs_a": pair(s["vs_a"])}
            for s in same],
        "geomean_same_architecture": geo,
        "equal_accuracy": [
            {"net": e["net"]["key"], "base_b": key(e["base_b"]), "vs_b": pair(e["vs_b"]),
             "base_a": key(e["base_a"]), "vs_a": pair(e["vs_a"])} for e in equal_accuracy(recs)],
        "accuracy_levels": [
            {"level": a["level"]["key"], "best": key(a["best"]), "vs_b": pair(a["vs_b"]),
             "vs_a": pair(a["vs_a"])} for a in accuracy_levels(recs)],
        "pareto": {f: [r["key"] for r in pareto_front(recs, f)] for f in funcs},
    }


# -- report -------------------------------------------------------------------------------------
def _label(r: dict[str, Any]) -> str:
    if not get_variant(r["variant"]).regularized:
        return f"{r['size']} {r['variant']}"
    return f"{r['size']} {r['variant']} {r['scale']:g}"


def _cell(x: tuple[float, str] | None) -> str:
    return "–" if x is None else fmt_bound(*x)


def _milp_pair(e: dict[str, Any]) -> str:
    """``min + max`` solver times of one MILP record dict, each ``≥`` if it hit the limit."""
    parts = []
    for s in ("min", "max"):
        m = e["milp"].get(s)
        if m is None:
            parts.append("–")
            continue
        stopped = m["status"] in ("feasible", "no_solution")
        cell = time_cell(m["time"], stopped)
        if stopped:
            gap = m.get("gap")
            if m.get("objective") is None and "objective" in m:
                cell += " (no incumbent)"
            else:
                cell += f" (gap {fmt(100 * gap, '.3g') if gap is not None else '–'}%)"
        elif m["status"] != "optimal":  # e.g. numerically_unreliable: not a time measurement
            cell += f" ({m['status']})"
        parts.append(cell)
    return " + ".join(parts)


def markdown_report(results: dict[str, Any]) -> str:
    """The scale suite's report (markdown)."""
    entries = results["entries"]
    recs = records(entries)
    meta = results.get("meta", {})
    cfg = meta.get("config", {})
    env = meta.get("environment", {})
    tr = cfg.get("train", {})
    lines = ["# Paper-scale suite (`omlt-relax bench --suite scale`)", ""]
    if env:
        lines.append(machine_line(env))
    if cfg:
        lines.append(
            f"Networks: sizes {', '.join(size_name(s) for s in cfg.get('sizes', []))}; "
            f"{tr.get('epochs')} epochs, Adam (lr {tr.get('lr')}, cosine decay), batch "
            f"{tr.get('batch_size')}, seed {tr.get('seed')}; weights per variant "
            f"{cfg.get('scales')}. Data: {cfg.get('n_train')}/{cfg.get('n_val')}/"
            f"{cfg.get('n_test')} train/validation/test (5-D: ×{cfg.get('samples_5d_factor')} "
            f"train and validation), seed {cfg.get('data_seed')}. MILP: min and max over the "
            f"box, HiGHS one thread, {cfg.get('time_limit')} s per solve; (a) stock OMLT "
            "`ReluBigMFormulation` with OMLT's own bounds on the ONNX file loaded by "
            "`load_onnx_neural_network_with_bounds`; (b) LP-OBBT bounds (budget "
            f"{cfg.get('obbt_time_limit')} s, not in the MILP time) + "
            "`BoundedReluBigMFormulation`.")
        if cfg.get("snap_weights"):
            snaps = [e["snap"] for e in entries.values() if e.get("snap")]
            lines.append(
                f"Every network measured after zeroing its weights below {cfg['snap_weights']:g} "
                f"× its layer's largest (`--snap-weights`): {sum(x['zeroed'] for x in snaps)} "
                f"weights over {len(snaps)} networks; the certified change of a network's output "
                "anywhere in the box is at most "
                f"{max((x['change_bound'] for x in snaps), default=0.0):.3g} (per network in "
                "results.json); test RMSEs are the zeroed networks'.")
    if "last_run_seconds" in meta:
        la = meta.get("load_average")
        lines.append(f"Wall time of the last run: {meta['last_run_seconds'] / 60:.1f} min"
                     + (f"; load average at the end {la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f}"
                        if la else "") + f"; workers {meta.get('workers', 1)}.")
    lines += ["", "Times: HiGHS solver seconds, min + max. `≥`: hit the time limit (a lower "
              "bound, rounded down); speed-up `≥`: the baseline hit the limit, `≤`: this network "
              "did, `~`: both did (no measurement). Speed-ups vs (a) and (b) compare with the "
              "unregularized network of the same size.", ""]
    rows_all = per_network(recs)
    head = ["size", "variant", "scale", "test RMSE", "ratio", "unstable (b)", "OBBT s",
            "MILP (a) stock OMLT s", "MILP (b) ours s", "speed-up vs (a)", "speed-up vs (b)"]
    for f in dict.fromkeys(r["function"] for r in recs):
        fn = get_function(f)
        lines += [f"## {f} ({fn.dim}-D, box [{fn.lower[0]}, {fn.upper[0]}]^{fn.dim})", ""]
        body = []
        for r in sorted((r for r in rows_all if r["function"] == f),
                        key=lambda r: (r["depth"], r["size"], r["variant"] != BASELINE,
                                       r["variant"], r["scale"])):
            e = entries[r["key"]]
            st = e.get("stock")
            body.append([
                r["size"], r["variant"], fmt(r["scale"], ".3g") if r["scale"] else "–",
                fmt(r["test_rmse"], ".4g"), fmt(r["rmse_ratio"], ".3f"),
                f"{r['unstable']}/{r['neurons']}", fmt(r["obbt_time"], ".3g"),
                _milp_pair(st) if st else "–", _milp_pair(e),
                _cell(r["vs_a"]) if r["variant"] != BASELINE else "–",
                _cell(r["vs_b"]) if r["variant"] != BASELINE else "–",
            ])
            if r["variant"] == BASELINE and st:
                body[-1][9] = _cell(ratio(r["stock_time"], r["stock_hit"], r["time"], r["hit"]))
                body[-1][9] += " (b vs a)"
        lines += [format_table(head, body, markdown=True), ""]
        front = pareto_front(recs, f)
        lines += ["Pareto front (test RMSE, MILP time (b)), most accurate first: "
                  + "; ".join(f"{_label(r)} ({r['test_rmse']:.4g}, "
                              f"{time_cell(r['time'], r['hit'])} s)" for r in front), ""]

    lines += [f"## Same architecture: fastest regularized network within {TARGET_RMSE_RATIO}× "
              "the unregularized test RMSE", ""]
    body = []
    for s in same_architecture(recs):
        b, best = s["base"], s["best"]
        if best is None:
            body.append([s["function"], s["size"], "none within the ratio", "–", "–", "–", "–"])
            continue
        body.append([s["function"], s["size"], f"{best['variant']} {best['scale']:g}",
                     f"{best['test_rmse'] / b['test_rmse']:.3f}",
                     time_cell(best["time"], best["hit"]), _cell(s["vs_a"]), _cell(s["vs_b"])])
    lines += [format_table(["function", "size", "network", "RMSE ratio", "MILP s",
                            "speed-up vs (a)", "speed-up vs (b)"], body, markdown=True), ""]
    summ = summarize_scale(results)
    geo = summ["geomean_same_architecture"]
    if geo:
        lines += ["Geometric means over functions: " + "; ".join(
            f"{k.replace('/vs_', ' vs (')}) {fmt_bound(v['geomean'], v['flag'])} "
            f"({v['functions']} functions)" for k, v in geo.items() if v["geomean"] is not None),
            ""]

    lines += ["## Speed-up at equal accuracy", "",
              "For each regularized network: the fastest unregularized network of any size of "
              "the same function that is at least as accurate (test RMSE), its time over this "
              "network's. (b): by our pipeline's time; (a): by stock OMLT's.", ""]
    body = []
    for e in equal_accuracy(recs):
        n = e["net"]
        bb, ba = e["base_b"], e["base_a"]
        body.append([n["function"], _label(n), fmt(n["test_rmse"], ".4g"),
                     time_cell(n["time"], n["hit"]),
                     f"{_label(bb)}, {bb['test_rmse']:.4g}, {time_cell(bb['time'], bb['hit'])}"
                     if bb else "none as accurate", _cell(e["vs_b"]),
                     f"{_label(ba)}, {time_cell(ba['stock_time'], ba['stock_hit'])}"
                     if ba else "–", _cell(e["vs_a"])])
    lines += [format_table(["function", "network", "test RMSE", "MILP s",
                            "unregularized (b): net, RMSE, s", "speed-up vs (b)",
                            "unregularized (a): net, s", "speed-up vs (a)"], body,
                           markdown=True), ""]
    lines += ["Per accuracy level of an unregularized network: the fastest relaxation-informed "
              "network (any size) at least as accurate.", ""]
    body = []
    for a in accuracy_levels(recs):
        u, best = a["level"], a["best"]
        body.append([u["function"], _label(u), fmt(u["test_rmse"], ".4g"),
                     time_cell(u["time"], u["hit"]),
                     time_cell(u["stock_time"], u["stock_hit"]) if "stock_time" in u else "–",
                     f"{_label(best)}, {best['test_rmse']:.4g}, "
                     f"{time_cell(best['time'], best['hit'])}" if best else "none as accurate",
                     _cell(a["vs_b"]), _cell(a["vs_a"])])
    lines += [format_table(["function", "unregularized", "test RMSE", "(b) s", "(a) s",
                            "fastest as accurate: net, RMSE, s", "speed-up vs (b)",
                            "speed-up vs (a)"], body, markdown=True), ""]
    return "\n".join(lines)


def scale_plots(results: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """One plot per function: test RMSE against MILP time (min + max), every network.

    Colour: variant; marker: size; filled: solved, hollow: hit the limit (drawn at its lower
    bound); black crosses: stock OMLT (a) on the unregularized networks; grey steps: the Pareto
    front of our pipeline's times.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = records(results["entries"])
    limit = results.get("meta", {}).get("config", {}).get("time_limit")
    variants = list(dict.fromkeys(r["variant"] for r in recs))
    sizes = list(dict.fromkeys(r["size"] for r in sorted(recs, key=lambda r: r["depth"])))
    markers = "osD^v<>pP*h"
    cmap = plt.get_cmap("tab10")
    paths = []
    for f in dict.fromkeys(r["function"] for r in recs):
        fig, ax = plt.subplots(figsize=(7, 4.8))
        for r in (r for r in recs if r["function"] == f):
            c = cmap(variants.index(r["variant"]) % 10)
            m = markers[sizes.index(r["size"]) % len(markers)]
            ax.scatter(r["test_rmse"], max(r["time"], 1e-3), marker=m, s=42, edgecolors=c,
                       facecolors="none" if r["hit"] else c, zorder=3)
            if "stock_time" in r:
                ax.scatter(r["test_rmse"], max(r["stock_time"], 1e-3), marker="x", s=50,
                           color="k", zorder=3)
                ax.annotate(f"(a) {r['size']}", (r["test_rmse"], max(r["stock_time"], 1e-3)),
                            fontsize=7, xytext=(4, 4), textcoords="offset points")
        front = pareto_front(recs, f)
        if front:
            ax.step([r["test_rmse"] for r in front], [max(r["time"], 1e-3) for r in front],
                    where="post", color="0.6", lw=1, zorder=1)
        handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(i % 10), label=v)
                   for i, v in enumerate(variants)]
        handles += [plt.Line2D([], [], ls="", marker=markers[i % len(markers)], color="0.3",
                               markerfacecolor="none", label=s) for i, s in enumerate(sizes)]
        handles.append(plt.Line2D([], [], ls="", marker="x", color="k",
                                  label="stock OMLT (a), unregularized"))
        if limit:
            ax.axhline(2 * limit, color="0.4", ls=":", lw=1)
            handles.append(plt.Line2D([], [], ls=":", color="0.4", label="min + max at the limit"))
        ax.legend(handles=handles, fontsize=7, loc="best")
        xs = [r["test_rmse"] for r in recs if r["function"] == f]
        if min(xs) > 0 and max(xs) / min(xs) > 3:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("test RMSE")
        ax.set_ylabel("MILP time min + max [s] (HiGHS, 1 thread)")
        ax.set_title(f"{f}: accuracy vs MILP time (hollow: hit the limit)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        path = Path(out_dir) / f"scale_{f}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def write_scale_report(out_dir: str | os.PathLike[str],
                       results: dict[str, Any] | None = None) -> Path:
    """Write ``scale.md``, ``scale_report.json`` and the plots from ``results.json``; returns
    the markdown's path. Baselines solved again by ``benchmarks/bench_repeats.py`` in this folder
    (``repeats_*.json``) get a section of their own (:mod:`omlt_relax.bench.resolves`)."""
    out = Path(out_dir)
    results = results if results is not None else load_results(out)
    resolved = load_resolves(out, results["entries"])
    same = same_architecture(records(results["entries"]))
    md = out / REPORT_FILE
    write_text_atomic(md, "\n".join([markdown_report(results),
                                     *resolves_markdown(same, resolved)]))
    write_json(out / REPORT_JSON, {"meta": results.get("meta", {}),
                                   **summarize_scale(results),
                                   **resolves_summary(same, resolved)})
    scale_plots(results, out)
    return md


__all__ = [
    "MIN_TIME",
    "REPORT_FILE",
    "REPORT_JSON",
    "SCALE_EPOCHS",
    "SCALE_FUNCTIONS",
    "SCALE_SIZES",
    "SCALE_TIME_LIMIT",
    "SCALE_VARIANTS",
    "SCALE_WEIGHTS",
    "ScaleConfig",
    "accuracy_levels",
    "ceil_sig",
    "entry_key",
    "equal_accuracy",
    "floor_sig",
    "fmt_bound",
    "geomean_flag",
    "markdown_report",
    "model_names",
    "pareto_front",
    "parse_sizes",
    "per_network",
    "ratio",
    "records",
    "run_scale",
    "same_architecture",
    "scale_job",
    "scale_plots",
    "size_name",
    "summarize_scale",
    "time_cell",
    "write_scale_report",
]
