r"""Baselines solved again, at a longer cap: the scale report's view of ``bench_repeats`` runs.

The scale suite (:mod:`omlt_relax.bench.scale`) solves each MILP once at its ``--time-limit``
(600 s by default). Where the unregularized network stops at that cap, every speed-up over it is a
lower bound set by the cap rather than by the network. ``benchmarks/bench_repeats.py`` solves such
a baseline again, e.g. at the 3600 s cap of issue 9's targets, *in the same run* as the networks
set against it, and writes ``repeats_<formulation>_<solver>[_<tag>].json`` into the suite's
folder::

    python benchmarks/bench_repeats.py --out bench_scale --repeats 1 --time-limit 3600 \
        --keys himmelblau/3x100/stability_lpgap4_ftd@5e-06,himmelblau/3x100/unregularized

This module reads those files back (:func:`load_resolves`) so that the suite's report shows the
ratios they measured, each one taken between two solves of one run (never a network's time from
one run over a baseline's from another):

* per network of a run that re-solved its baseline, the speed-up by the medians of the run's
  repeats,

  .. math:: s = \frac{\tilde t_\text{base}}{\tilde t_\text{net}},
     \qquad t = t_\text{min} + t_\text{max},

  flagged ``≥`` where a baseline solve stopped before optimality (the cap: a lower bound),
  ``≤`` where the network's did, ``~`` both (:func:`~omlt_relax.bench.report.ratio`);
* per unregularized network solved again (an accuracy level), the fastest network solved beside
  it that is at least as accurate (:func:`accuracy_levels_resolved`);
* the same-architecture comparison (fastest network within ``TARGET_RMSE_RATIO`` × the baseline's
  test RMSE) with these ratios in place of the suite's for every (function, size) whose baseline
  was solved again (:func:`same_architecture_resolved`), and the geometric mean over functions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omlt_relax.bench.report import fmt_bound, format_table, geomean_flag, ratio, time_cell
from omlt_relax.bench.stats import TARGET_RMSE_RATIO
from omlt_relax.train import get_variant

#: The files ``benchmarks/bench_repeats.py`` writes into a suite folder.
REPEATS_GLOB = "repeats_*.json"


def stopped_early(row: dict[str, Any]) -> bool:
    """Whether any solve of a ``bench_repeats`` row (its ``statuses``) ended before optimality
    (a time-limit stop: its time is a lower bound)."""
    return any(s != "optimal" for s in row.get("statuses", []))


def resolves_of_run(run: dict[str, Any], entries: dict[str, Any],
                    source: str = "") -> list[dict[str, Any]]:
    """The ratios one ``bench_repeats`` run measured against the baselines it solved itself.

    ``run``: the repeats JSON (``args``, ``rows``); ``entries``: the suite's ``results.json``
    entries (each network's function, size, test RMSE, and whether it is regularized). Returns one
    record per (regularized network, unregularized network of the same function) pair that were
    both solved in the run: ``file, cap, net, function, size, base, base_size, rmse_ratio`` (the
    network's test RMSE over the baseline's), ``time, hit, base_time, base_hit, speedup``
    (``(ratio, flag)``), ``repeats``. Rows of networks no longer in ``entries`` are left out.
    """
    rows = {r["key"]: r for r in run.get("rows", [])
            if isinstance(r, dict) and "key" in r and "median" in r and r["key"] in entries}
    cap = float(run.get("args", {}).get("time_limit") or 0.0)
    plain = {k for k in rows if not get_variant(entries[k]["variant"]).regularized}
    out = []
    for key, r in rows.items():
        if key in plain:
            continue
        e = entries[key]
        for bkey in plain:
            b, be = rows[bkey], entries[bkey]
            if be["function"] != e["function"]:
                continue
            hit, base_hit = stopped_early(r), stopped_early(b)
            out.append({
                "file": source, "cap": cap, "net": key, "function": e["function"],
                "size": e["size"], "base": bkey, "base_size": be["size"],
                "rmse_ratio": float(e["test_rmse"]) / float(be["test_rmse"]),
                "time": float(r["median"]), "hit": hit,
                "base_time": float(b["median"]), "base_hit": base_hit,
                "speedup": ratio(float(b["median"]), base_hit, float(r["median"]), hit),
                "repeats": len(r.get("times", [])),
            })
    return out


def load_resolves(out_dir: str | os.PathLike[str],
                  entries: dict[str, Any]) -> list[dict[str, Any]]:
    """Every re-solved ratio in the ``repeats_*.json`` files of a scale folder
    (:func:`resolves_of_run`), in file-name order. A file that cannot be read as JSON raises a
    ``ValueError`` naming it (a report must not silently drop a measurement)."""
    out: list[dict[str, Any]] = []
    for p in sorted(Path(out_dir).glob(REPEATS_GLOB)):
        try:
            run = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{p}: not a readable bench_repeats result ({exc}); remove or "
                             "re-run it, then write the report again") from exc
        if isinstance(run, dict):
            out += resolves_of_run(run, entries, p.name)
    return out


def same_architecture_resolved(same: list[dict[str, Any]], resolved: list[dict[str, Any]],
                               max_ratio: float = TARGET_RMSE_RATIO) -> list[dict[str, Any]]:
    """The same-architecture comparison, a re-solved baseline's ratios replacing the suite's.

    Per (function, size) item of ``same`` (the suite's comparison,
    :func:`~omlt_relax.bench.scale.same_architecture`, with the same ``max_ratio``): if some run
    re-solved that size's baseline, the best speed-up among the run's networks within
    ``max_ratio`` × the baseline's test RMSE (``from`` = the run's file and cap); otherwise the
    suite's row (``from`` = ``"suite"``). Each item: ``function, size, net, rmse_ratio, vs_b,
    from``; ``net`` and ``vs_b`` are ``None`` where no network is accurate enough.
    """
    out = []
    for s in same:
        cands = [r for r in resolved if r["base"] == s["base"]["key"]
                 and r["size"] == s["size"] and r["rmse_ratio"] <= max_ratio]
        if cands:
            best = max(cands, key=lambda r: r["speedup"][0])
            out.append({"function": s["function"], "size": s["size"], "net": best["net"],
                        "rmse_ratio": best["rmse_ratio"], "vs_b": best["speedup"],
                        "from": f"{best['file']} ({best['cap']:g} s cap)"})
            continue
        b = s["best"]
        out.append({"function": s["function"], "size": s["size"],
                    "net": b["key"] if b else None,
                    "rmse_ratio": b["test_rmse"] / s["base"]["test_rmse"] if b else None,
                    "vs_b": s["vs_b"], "from": "suite"})
    return out


def accuracy_levels_resolved(resolved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per unregularized network solved again (an accuracy level): the fastest regularized
    network *at least as accurate* (test RMSE ratio ≤ 1) among those solved in the same run, by
    its speed-up over that solve. Each item: ``function, level, base_time, base_hit, net,
    rmse_ratio, speedup, from``; ``net`` and ``speedup`` ``None`` when no network solved beside
    it is as accurate."""
    out = []
    for bkey in dict.fromkeys(r["base"] for r in resolved):
        pairs = [r for r in resolved if r["base"] == bkey]
        cands = [r for r in pairs if r["rmse_ratio"] <= 1.0]
        best = max(cands, key=lambda r: r["speedup"][0]) if cands else None
        ref = best or max(pairs, key=lambda r: r["cap"])
        out.append({"function": ref["function"], "level": bkey, "base_time": ref["base_time"],
                    "base_hit": ref["base_hit"], "net": best["net"] if best else None,
                    "rmse_ratio": best["rmse_ratio"] if best else None,
                    "speedup": best["speedup"] if best else None,
                    "from": f"{ref['file']} ({ref['cap']:g} s cap)"})
    return out


def geomeans_resolved(same: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometric mean over functions of :func:`same_architecture_resolved`'s ``vs_b``, per size:
    ``{size: {"geomean", "flag", "functions"}}``."""
    geo: dict[str, Any] = {}
    for size in dict.fromkeys(s["size"] for s in same):
        items = [s["vs_b"] for s in same if s["size"] == size and s["vs_b"]]
        g, flag = geomean_flag(items)
        geo[size] = {"geomean": g, "flag": flag, "functions": len(items)}
    return geo


def resolves_summary(same: list[dict[str, Any]],
                     resolved: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON form: every re-solved ratio, the same-architecture rows with them (``same``: the
    suite's comparison), geomeans, accuracy levels."""
    same = same_architecture_resolved(same, resolved)

    def pair(x: tuple[float, str] | None) -> dict[str, Any] | None:
        return None if x is None else {"ratio": x[0], "flag": x[1]}

    return {
        "resolved": [{**r, "speedup": pair(r["speedup"])} for r in resolved],
        "same_architecture_resolved": [{**s, "vs_b": pair(s["vs_b"])} for s in same],
        "geomean_same_architecture_resolved": geomeans_resolved(same),
        "accuracy_levels_resolved": [{**a, "speedup": pair(a["speedup"])}
                                     for a in accuracy_levels_resolved(resolved)],
    }


def resolves_markdown(same: list[dict[str, Any]], resolved: list[dict[str, Any]]) -> list[str]:
    """The report's section on re-solved baselines (no lines when there are none); ``same``: the
    suite's same-architecture comparison."""
    if not resolved:
        return []
    lines = ["## Baselines solved again (`benchmarks/bench_repeats.py`)", "",
             "Each row: a network and its unregularized baseline, both solved in one run of "
             "`bench_repeats` (file and cap per row), times the medians of that run's repeats "
             "(min + max); `≥`: a baseline solve stopped at the cap (a lower bound).", ""]
    body = [[r["function"], _short(r["net"]), _short(r["base"]), f"{r['rmse_ratio']:.3f}",
             time_cell(r["time"], r["hit"]), time_cell(r["base_time"], r["base_hit"]),
             fmt_bound(*r["speedup"]), f"{r['file']}, {r['cap']:g} s"] for r in resolved]
    lines += [format_table(["function", "network", "baseline", "RMSE ratio", "its s",
                            "baseline s", "speed-up", "run (file, cap)"], body, markdown=True),
              ""]
    same = same_architecture_resolved(same, resolved)
    body = [[s["function"], s["size"], _short(s["net"]) if s["net"] else "none",
             "–" if s["rmse_ratio"] is None else f"{s['rmse_ratio']:.3f}",
             "–" if s["vs_b"] is None else fmt_bound(*s["vs_b"]), s["from"]] for s in same]
    lines += [f"Same architecture within {TARGET_RMSE_RATIO}× the unregularized test RMSE, a "
              "re-solved baseline's ratio in place of the suite's:", "",
              format_table(["function", "size", "network", "RMSE ratio", "speed-up vs (b)",
                            "from"], body, markdown=True), ""]
    geo = geomeans_resolved(same)
    lines += ["Geometric means over functions with these ratios: " + "; ".join(
        f"{size} {fmt_bound(v['geomean'], v['flag'])} ({v['functions']} "
        f"function{'' if v['functions'] == 1 else 's'})"
        for size, v in geo.items() if v["geomean"] is not None), ""]
    body = [[a["function"], _short(a["level"]), time_cell(a["base_time"], a["base_hit"]),
             _short(a["net"]) if a["net"] else "none as accurate",
             "–" if a["rmse_ratio"] is None else f"{a['rmse_ratio']:.3f}",
             "–" if a["speedup"] is None else fmt_bound(*a["speedup"]), a["from"]]
            for a in accuracy_levels_resolved(resolved)]
    lines += ["Per accuracy level of a re-solved unregularized network: the fastest network solved "
              "beside it that is at least as accurate (test RMSE ratio ≤ 1):", "",
              format_table(["function", "unregularized", "its s", "fastest as accurate",
                            "RMSE ratio", "speed-up", "from"], body, markdown=True), ""]
    return lines


def _short(key: str) -> str:
    """``"peaks/3x100/stability@1e-05"`` → ``"3x100/stability@1e-05"``."""
    return key.split("/", 1)[-1]


__all__ = [
    "REPEATS_GLOB",
    "accuracy_levels_resolved",
    "geomeans_resolved",
    "load_resolves",
    "resolves_markdown",
    "resolves_of_run",
    "resolves_summary",
    "same_architecture_resolved",
    "stopped_early",
]
