"""Numbers derived from the suite's results: speed-ups and their summaries.

**Speed-up** of a variant = (baseline's min + max MILP time) / (variant's min + max MILP time). A
baseline stopped by the time limit makes it a lower bound (shown as ``≥``); a variant stopped by the
limit makes it an upper bound (``≤``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omlt_relax.bench.functions import SUITE_2D
from omlt_relax.bench.results import BASELINE, entry_key

#: Accuracy limit of the targets: test RMSE at most 1.25 × the baseline's.
TARGET_RMSE_RATIO = 1.25
#: Our relaxation-informed variants (the others are baselines from the literature).
OURS = ("bigm", "stability", "lp_direct", "lp_total", "bigm+stability", "relax")


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
        base = entries.get(entry_key(e["function"], BASELINE))
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
        vals = [per[entry_key(f, v)] for f in funcs if f in SUITE_2D and entry_key(f, v) in per]
        if not vals:
            continue
        geo[v] = {
            "geomean_speedup_2d": float(np.exp(np.mean([np.log(x["speedup"]) for x in vals]))),
            "n_functions": len(vals),
            "n_within_target": int(sum(x["within_target"] for x in vals)),
        }
    ours = [v for v in variants if v in OURS]
    best: dict[str, Any] = {}
    for f in funcs:
        cands = [(per[entry_key(f, v)]["speedup"], v) for v in ours
                 if entry_key(f, v) in per and per[entry_key(f, v)]["within_target"]]
        if cands:
            s, v = max(cands)
            best[f] = {"variant": v, "speedup": s, **per[entry_key(f, v)]}
    best_2d = [b["speedup"] for f, b in best.items() if f in SUITE_2D]
    return {
        "per_entry": per,
        "per_variant": geo,
        "best_ours": best,
        "best_ours_geomean_2d": float(np.exp(np.mean(np.log(best_2d)))) if best_2d else None,
        "best_ours_2d_functions": len(best_2d),
    }


__all__ = ["OURS", "TARGET_RMSE_RATIO", "speedup", "summarize"]
