"""Reporting: the suite's markdown report.

The table formatter and the number and MILP cells (:func:`format_table`, :func:`fmt`,
:func:`milp_cell`) are library code in :mod:`omlt_relax.tables` (the command line uses them too);
they are re-exported here for the suite and the benchmark scripts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from omlt_relax.bench.functions import FUNCTIONS, get_function
from omlt_relax.bench.results import BASELINE, entry_key
from omlt_relax.bench.stats import speedup, summarize
from omlt_relax.tables import fmt, format_table, milp_cell


def floor_sig(x: float, digits: int = 3) -> float:
    """``x`` rounded *down* to ``digits`` significant digits (for lower bounds)."""
    if x <= 0 or not math.isfinite(x):
        return x
    e = math.floor(math.log10(x)) - digits + 1
    return math.floor(x / 10.0**e) * 10.0**e


def ceil_sig(x: float, digits: int = 3) -> float:
    """``x`` rounded *up* to ``digits`` significant digits (for upper bounds)."""
    if x <= 0 or not math.isfinite(x):
        return x
    e = math.floor(math.log10(x)) - digits + 1
    return math.ceil(x / 10.0**e) * 10.0**e


def fmt_bound(x: float | None, flag: str = "", suffix: str = "×") -> str:
    """A ratio with its flag; ``≥`` values rounded down, ``≤`` values up, others to 3 digits."""
    if x is None or not math.isfinite(x):
        return "–"
    if flag == "≥":
        v = floor_sig(x)
    elif flag == "≤":
        v = ceil_sig(x)
    else:
        v = x
    text = f"{v:,.0f}" if v >= 1000 else format(v, ".3g")
    return f"{flag}{text}{suffix}"


#: Speed-ups below this time are not trusted further: divisions use ``max(t, MIN_TIME)``.
MIN_TIME = 1e-6


def time_cell(t: float, hit: bool) -> str:
    """A solve time; one that hit the limit is a lower bound, ``≥t`` (rounded down)."""
    return fmt_bound(t, "≥" if hit else "", "")


def ratio(base_time: float, base_hit: bool, time_: float, hit: bool) -> tuple[float, str]:
    """``base_time / time_`` and its flag: ``≥`` (base hit the limit), ``≤`` (this one did),
    ``~`` (both did: not a measurement), ``""``."""
    r = base_time / max(time_, MIN_TIME)
    return r, ("~" if base_hit and hit else "≥" if base_hit else "≤" if hit else "")


def geomean_flag(items: Sequence[tuple[float, str]]) -> tuple[float | None, str]:
    """Geometric mean of ratios and the flag it carries (``~`` if bounds point both ways)."""
    if not items:
        return None, ""
    g = float(np.exp(np.mean([np.log(max(r, MIN_TIME)) for r, _ in items])))
    flags = {f for _, f in items} - {""}
    if not flags:
        return g, ""
    if flags == {"≥"}:
        return g, "≥"
    if flags == {"≤"}:
        return g, "≤"
    return g, "~"


def one_line(e: dict[str, Any], base: dict[str, Any] | None) -> str:
    """One line of progress for a finished entry."""
    ratio = e["test_rmse"] / base["test_rmse"] if base else 1.0
    s = ""
    if base is not None:
        sp, flag = speedup(e, base)
        s = f", speed-up {flag}{sp:.3g}×"
    return (f"{e['function']}/{e['variant']}: scale {e['scale']:.3g}, RMSE ratio {ratio:.3f}, "
            f"unstable {e['unstable_obbt']}, MILP {e['time_total']:.3g} s{s}")


def machine_line(env: dict[str, Any]) -> str:
    """The machine and versions of a run (:func:`~omlt_relax.bench.suite.environment`)."""
    return (f"Machine: {env.get('processor')} ({env.get('cpus')} CPUs), {env.get('platform')}; "
            f"Python {env.get('python')}, torch {env.get('torch')} ({env.get('torch_threads')} "
            f"thread), HiGHS {env.get('highs')}, Pyomo {env.get('pyomo')}, "
            f"OMLT {env.get('omlt')}.")


def header(results: dict[str, Any]) -> list[str]:
    """The setup section of the markdown report."""
    meta = results.get("meta", {})
    env = meta.get("environment", {})
    cfg = meta.get("config", {})
    tr = cfg.get("train", {})
    lines = ["## Setup", ""]
    if env:
        lines.append(machine_line(env))
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


def functions_present(entries: dict[str, Any]) -> list[str]:
    """The functions present, in the order of :data:`~omlt_relax.bench.functions.FUNCTIONS`."""
    present = {e["function"] for e in entries.values()}
    return [f for f in FUNCTIONS if f in present]


def markdown_table(results: dict[str, Any]) -> str:
    """The results as markdown: setup, one table per function, then the per-variant summary."""
    entries = results["entries"]
    summ = results.get("summary") or summarize(results)
    per = summ["per_entry"]
    lines: list[str] = header(results)
    funcs = functions_present(entries)
    head = [
        "variant", "scale", "test RMSE", "ratio", "unstable IBP/CROWN/OBBT", "mean big-M",
        "root gap min/max", "MILP min s", "MILP max s", "nodes", "speed-up", "f(x*)−f_min",
        "f_max−f(x*)",
    ]
    for f in funcs:
        fn = get_function(f)
        base = entries.get(entry_key(f, BASELINE))
        fit = ""
        if base is not None and base.get("test_std"):
            fit = f"; baseline test RMSE / std(f) = {base['test_rmse'] / base['test_std']:.3f}"
        lines += [f"### {f} ({fn.dim}-D, box [{fn.lower[0]}, {fn.upper[0]}]^{fn.dim}, "
                  f"true min {fn.f_min:.4g}, max {fn.f_max:.4g}{fit})", ""]
        rows = []
        for key, e in entries.items():
            if e["function"] != f:
                continue
            p = per.get(key, {})
            mm, mx = e["milp"].get("min"), e["milp"].get("max")
            rg = e.get("root_gap", {})
            tru = e.get("true_opt") or {}
            tmin = tru.get("min") or {}
            tmax = tru.get("max") or {}
            sp = f"{p.get('speedup_flag', '')}{fmt(p.get('speedup'), '.3g')}×" if p else "–"
            ratio = fmt(p.get("rmse_ratio"), ".3f")
            if not e.get("within_tolerance", True):
                ratio += "†"
            rows.append([
                e["variant"], fmt(e["scale"], ".3g"), fmt(e["test_rmse"], ".4g"), ratio,
                f"{e['unstable_ibp']}/{e['unstable_crown']}/{e['unstable_obbt']}",
                fmt(e["mean_bigm_obbt"], ".3g"),
                f"{fmt(rg.get('min'), '.2g')}/{fmt(rg.get('max'), '.2g')}",
                milp_cell(mm) if mm else "–", milp_cell(mx) if mx else "–",
                e["nodes_total"], sp, fmt(tmin.get("error"), ".3g"), fmt(tmax.get("error"), ".3g"),
            ])
        lines += [format_table(head, rows, markdown=True), ""]
    lines += ["### Summary over the 2-D functions", ""]
    rows = [
        [v, f"{fmt(g['geomean_speedup_2d'], '.3g')}×", f"{g['n_within_target']}/{g['n_functions']}"]
        for v, g in summ["per_variant"].items()
    ]
    lines.append(format_table(
        ["variant", "geometric-mean speed-up", "functions within 1.25× RMSE"], rows, markdown=True
    ))
    if summ.get("best_ours"):
        lines += ["", "Fastest of our variants within 1.25× baseline test RMSE, per function:", ""]
        rows = [
            [f, b["variant"], f"{b['speedup_flag']}{fmt(b['speedup'], '.3g')}×",
             f"{b['rmse_ratio']:.3f}"]
            for f, b in summ["best_ours"].items()
        ]
        lines.append(format_table(
            ["function", "variant", "speed-up", "RMSE ratio"], rows, markdown=True
        ))
        g = summ.get("best_ours_geomean_2d")
        lines.append("")
        lines.append(f"Geometric mean over {summ['best_ours_2d_functions']} 2-D functions: "
                     f"{fmt(g, '.3g')}×")
    lines += ["",
              "Times are HiGHS solve times in seconds (one thread). `(limit, gap g%)`: stopped by "
              "the time limit with relative gap g. Speed-up = baseline (min + max) time / variant "
              "time; `≥`: the baseline hit the limit, `≤`: the variant did. Root gap: |root LP − "
              "MILP optimum| / network range. f(x*): true function at the MILP's solution. "
              "†: no weight on the grid met the validation tolerance (smallest kept).", ""]
    return "\n".join(lines)


__all__ = [
    "MIN_TIME",
    "fmt",
    "format_table",
    "functions_present",
    "geomean_flag",
    "header",
    "machine_line",
    "markdown_table",
    "milp_cell",
    "one_line",
    "ratio",
    "time_cell",
]
