"""The paper suite's report: means over seeds, speed-ups, the headline, dominance, equal accuracy,
Pareto plots (see :mod:`omlt_relax.bench.paper`)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from omlt_relax.bench.paper.protocol import (
    MINIMUM_SUBSET,
    MSE_RATIO,
    PAPER_VARIANTS,
    PaperConfig,
    jobs_of,
)
from omlt_relax.bench.report import fmt_bound, format_table
from omlt_relax.files import write_text_atomic
from omlt_relax.solve import SOLVER_NAMES

REPORT_FILE = "paper.md"
#: Folder of the jobs whose network the guards refused (``<key>.txt``: the error), one file each
#: so that processes sharing the output folder never overwrite each other's notes.
REFUSED_DIR = "refused"


def load_records(out_dir: str | os.PathLike[str], cfg: PaperConfig | None = None) -> list[dict]:
    """Every finished job record in ``out_dir`` (of ``cfg``'s jobs only, if given)."""
    recs = []
    keys = {j.key for j in jobs_of(cfg)} if cfg is not None else None
    for p in sorted(Path(out_dir, "jobs").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if keys is None or rec.get("key") in keys:
            recs.append(rec)
    return recs


#: (baseline MILP, row's MILP) pairs of the speed-ups: each MILP against itself on ``none``, and
#: ours against stock OMLT on ``none`` (what a user of plain OMLT would otherwise solve).
SPEEDUPS = (("paper", "paper"), ("ours", "ours"), ("stock", "stock"), ("stock", "ours"))


def solve_time(r: dict[str, Any] | None) -> tuple[float | None, bool]:
    """(time, hit-the-limit) of one MILP record; ``None`` time if unavailable."""
    if not r or r.get("status") in (None, "unavailable"):
        return None, False
    return float(r["time"]), r["status"] != "optimal"


def _stat(vals: Iterable[float | None], spec: str = ".3g") -> str:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    if not v:
        return "-"
    if len(v) == 1:
        return format(v[0], spec)
    return f"{format(float(np.mean(v)), spec)} ± {format(float(np.std(v)), spec)}"


def _time_cell(recs: list[dict], form: str, solver: str) -> tuple[str, float | None, bool]:
    ts, hit = [], False
    for r in recs:
        t, h = solve_time(r["milp"].get(form, {}).get(solver))
        if t is None:
            return "-", None, False
        ts.append(t)
        hit |= h
    mean = float(np.mean(ts))
    return (("≥" if hit else "") + f"{mean:.3g}"), mean, hit


def unregularized(variant: str) -> bool:
    """``none`` and our unregularized controls (``none_ft``)."""
    return variant in PAPER_VARIANTS and not PAPER_VARIANTS[variant].regularized


def summarize(records: list[dict]) -> list[dict[str, Any]]:
    """One row per (function, depth, variant, λ): means over the seeds present, speed-ups.

    Speed-up = mean MILP time of ``none`` / mean MILP time of the row, per formulation and
    solver, over the seeds both have; ``≥`` when ``none`` hit the limit on any of them.
    """
    groups: dict[tuple[str, int, str, float], list[dict]] = {}
    for r in records:
        j = r["job"]
        groups.setdefault((j["function"], j["depth"], j["variant"], j["lam"]), []).append(r)
    rows = []
    for (f, d, v, lam), recs in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], list(PAPER_VARIANTS).index(kv[0][2]), kv[0][3])):
        base = groups.get((f, d, "none", 0.0))
        seeds = {r["job"]["seed"] for r in recs}
        base_same = [b for b in (base or []) if b["job"]["seed"] in seeds]
        mine = [r for r in recs if base is None or r["job"]["seed"] in
                {b["job"]["seed"] for b in base}]
        row: dict[str, Any] = {
            "function": f, "depth": d, "variant": v, "lam": lam,
            "origin": PAPER_VARIANTS[v].origin if v in PAPER_VARIANTS else "?",
            "seeds": sorted(seeds), "records": recs,
            "test_mse": float(np.mean([r["test_mse"] for r in recs])),
        }
        if base_same:
            row["mse_ratio"] = row["test_mse"] / float(np.mean([b["test_mse"]
                                                                 for b in base_same]))
        # each MILP's mean time over all of the row's seeds (the dominance test needs no
        # unregularized network; the speed-ups below use the seeds it shares with one)
        row["times"] = {}
        for form in dict.fromkeys(f for _, f in SPEEDUPS):
            for solver in ("highs", "gurobi"):
                _, t, hit = _time_cell(recs, form, solver)
                if t is not None:
                    row["times"][f"{form}/{solver}"] = {"time": t, "hit": hit}
        row["speedup"] = {}
        for base_form, form in SPEEDUPS if mine and base_same else ():
            for solver in ("highs", "gurobi"):
                _, t, hit = _time_cell(mine, form, solver)
                _, tb, hitb = _time_cell(base_same, base_form, solver)
                if t is None or tb is None:
                    continue
                key = form if form == base_form else f"{form} vs {base_form}"
                row["speedup"][f"{key}/{solver}"] = {
                    "time": t, "hit": hit, "base_time": tb, "base_hit": hitb,
                    "ratio": tb / max(t, 1e-3), "lower_bound": bool(hitb and not hit),
                    "undetermined": bool(hit),
                }
        rows.append(row)
    for row in rows:  # the accuracy ratio against the most accurate unregularized network
        refs = [o["test_mse"] for o in rows if unregularized(o["variant"])
                and o["function"] == row["function"] and o["depth"] == row["depth"]
                and set(row["seeds"]) <= set(o["seeds"])]
        if refs:
            row["mse_ratio_best"] = row["test_mse"] / min(refs)
    return rows


def _ratio_cell(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    if s["undetermined"]:
        return "limit"
    return fmt_bound(s["ratio"], "≥" if s["lower_bound"] else "")


def headline(rows: list[dict[str, Any]], ratio: float = MSE_RATIO) -> list[dict[str, Any]]:
    """Per (function, depth, formulation/solver): the best speed-up at test MSE ≤ ratio × none."""
    best: dict[tuple[str, int, str], dict[str, Any]] = {}
    for row in rows:
        if unregularized(row["variant"]) or row.get("mse_ratio") is None:
            continue
        if row["mse_ratio"] > ratio:
            continue
        for fs, s in row["speedup"].items():
            if s["undetermined"]:
                continue
            k = (row["function"], row["depth"], fs)
            if k not in best or s["ratio"] > best[k]["ratio"]:
                best[k] = {**s, "variant": row["variant"], "lam": row["lam"],
                           "mse_ratio": row["mse_ratio"],
                           "mse_ratio_best": row.get("mse_ratio_best"), "function": row["function"],
                           "depth": row["depth"], "solver": fs}
    return [best[k] for k in sorted(best)]


#: The MILPs (formulation/solver) on which the report tests "better than the paper": the paper's
#: own first, then ours (LP-OBBT bounds), each with HiGHS and Gurobi.
DOMINANCE_MILPS = ("paper/highs", "paper/gurobi", "ours/highs", "ours/gurobi")


def dominance(rows: list[dict[str, Any]], fs: str = "paper/highs") -> list[dict[str, Any]]:
    """For every paper-regularizer row: is there one of ours at least as accurate and fast?

    Compared per function and depth on the same seeds, test MSE and mean MILP time
    (``row["times"]``, formulation/solver ``fs``; a row that hit the limit counts at the limit).
    No unregularized network is needed.
    """
    out = []
    for r in rows:
        if r["origin"] != "paper" or unregularized(r["variant"]) or fs not in r["times"]:
            continue
        t = r["times"][fs]["time"]
        mates = [o for o in rows if o["origin"] == "ours" and o["function"] == r["function"]
                 and o["depth"] == r["depth"] and fs in o["times"]
                 and o["seeds"] == r["seeds"]]
        win = [o for o in mates if o["test_mse"] <= r["test_mse"]
               and o["times"][fs]["time"] <= t and not o["times"][fs]["hit"]]
        out.append({"function": r["function"], "depth": r["depth"], "variant": r["variant"],
                    "lam": r["lam"], "seeds": list(r["seeds"]), "test_mse": r["test_mse"],
                    "time": t,
                    "dominated_by": [f"{o['variant']} {o['lam']:g}" for o in win],
                    "compared": len(mates)})
    return out


def equal_accuracy(rows: list[dict[str, Any]], fs: str = "ours/highs") -> list[dict[str, Any]]:
    """Speed-up at equal accuracy (DESIGN.md): per regularized row, the fastest unregularized
    network of *any* depth of the same function that is at least as accurate (test MSE), over
    this row's time. ``base`` is ``None`` when no unregularized network is as accurate.
    """
    out = []
    for r in rows:
        if unregularized(r["variant"]) or fs not in r["speedup"]:
            continue
        s = r["speedup"][fs]
        cands = [o for o in rows if unregularized(o["variant"]) and o["function"] == r["function"]
                 and o["test_mse"] <= r["test_mse"] and fs in o["speedup"]]
        rec = {"function": r["function"], "depth": r["depth"], "variant": r["variant"],
               "lam": r["lam"], "test_mse": r["test_mse"], "time": s["time"], "hit": s["hit"],
               "base": None}
        if cands:
            b = min(cands, key=lambda o: o["speedup"][fs]["time"])
            bt = b["speedup"][fs]
            rec.update(base={"depth": b["depth"], "test_mse": b["test_mse"], "time": bt["time"],
                             "hit": bt["hit"]},
                       ratio=bt["time"] / max(s["time"], 1e-3),
                       lower_bound=bool(bt["hit"] and not s["hit"]))
        out.append(rec)
    return out


def pareto_plots(records: list[dict], out_dir: str | os.PathLike[str]) -> list[Path]:
    """One plot per function: test MSE against MILP time (HiGHS), every network of the run.

    Filled markers solved, hollow ones hit the time limit (drawn at the limit); one colour per
    variant, one marker per depth; left panel the paper's MILP (IBP bounds), right ours.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    by_fn: dict[str, list[dict]] = {}
    for r in records:
        by_fn.setdefault(r["job"]["function"], []).append(r)
    variants = list(PAPER_VARIANTS)
    colours = plt.get_cmap("tab20")
    markers = {2: "o", 3: "s", 5: "D"}
    for f, recs in sorted(by_fn.items()):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
        for ax, form in zip(axes, ("paper", "ours")):
            seen = set()
            for r in recs:
                m = r["milp"].get(form, {}).get("highs")
                t, hit = solve_time(m)
                if t is None:
                    continue
                v, d = r["job"]["variant"], r["job"]["depth"]
                c = colours(variants.index(v) % 20)
                label = v if v not in seen else None
                seen.add(v)
                ax.scatter(r["test_mse"], max(t, 1e-2), marker=markers.get(d, "^"), s=40,
                           facecolors="none" if hit else c, edgecolors=c, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("test MSE ([0, 1] scale)")
            kind = "IBP big-M (paper)" if form == "paper" else "LP-OBBT big-M (ours)"
            ax.set_title(f"{f}: {kind}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("HiGHS time [s], 1 thread (hollow: time limit)")
        # the legend of whichever panel drew more variants (a run may solve one formulation)
        handles, labels = max((ax.get_legend_handles_labels() for ax in axes),
                              key=lambda hl: len(hl[1]))
        if labels:
            axes[1].legend(handles, labels, fontsize=7,
                           title="variant (marker: depth 2 o, 3 □, 5 ◇)", title_fontsize=7)
        path = Path(out_dir) / f"pareto_{f}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def _lam(row: dict[str, Any]) -> str:
    return "-" if unregularized(row["variant"]) else format(row["lam"], "g")


def _network_table(rows: list[dict[str, Any]]) -> str:
    head = ["function", "depth", "variant", "λ", "seeds", "test MSE", "ratio",
            "unstable IBP/OBBT", "mean width", "root gap", "paper HiGHS s", "paper Gurobi s",
            "ours HiGHS s", "ours Gurobi s", "speed-up paper H/G", "speed-up ours H/G",
            "f(x*) − f*"]
    stock = any("stock" in r["milp"] for row in rows for r in row["records"])
    if stock:
        head += ["stock HiGHS s", "stock Gurobi s", "speed-up ours vs stock H/G"]
    body = []
    for row in rows:
        recs = row["records"]
        sp = row["speedup"]
        paper = [r["milp"].get("paper", {}).get("highs", {}) for r in recs]
        body.append([
            row["function"], row["depth"], row["variant"], _lam(row), len(row["seeds"]),
            _stat([r["test_mse"] for r in recs]),
            format(row["mse_ratio"], ".3g") if row.get("mse_ratio") else "-",
            f"{_stat([r['unstable_ibp'] for r in recs], '.4g')}/"
            f"{_stat([r.get('unstable_obbt') for r in recs], '.4g')}",
            _stat([r["mean_width_ibp"] for r in recs]),
            _stat([m.get("root_gap") for m in paper]),
            *(_time_cell(recs, f, s)[0] for f in ("paper", "ours") for s in ("highs", "gurobi")),
            f"{_ratio_cell(sp.get('paper/highs'))} / {_ratio_cell(sp.get('paper/gurobi'))}",
            f"{_ratio_cell(sp.get('ours/highs'))} / {_ratio_cell(sp.get('ours/gurobi'))}",
            _stat([m.get("f_error") for m in paper]),
        ])
        if stock:
            body[-1] += [*(_time_cell(recs, "stock", s)[0] for s in ("highs", "gurobi")),
                         f"{_ratio_cell(sp.get('ours vs stock/highs'))} / "
                         f"{_ratio_cell(sp.get('ours vs stock/gurobi'))}"]
    return format_table(head, body, markdown=True)


def _headline_table(rows: list[dict[str, Any]]) -> str:
    head = ["function", "depth", "MILP/solver", "variant", "λ", "MSE ratio",
            "MSE ratio to best unreg.", "time s", "baseline s", "speed-up"]
    body = [[h["function"], h["depth"], h["solver"], h["variant"], f"{h['lam']:g}",
             f"{h['mse_ratio']:.3g}",
             f"{h['mse_ratio_best']:.3g}" if h.get("mse_ratio_best") else "-",
             f"{h['time']:.3g}",
             f"{'≥' if h['base_hit'] else ''}{h['base_time']:.4g}",
             fmt_bound(h["ratio"], "≥" if h["lower_bound"] else "")] for h in headline(rows)]
    return format_table(head, body, markdown=True)


def _seeds_cell(seeds: Sequence[int]) -> str:
    """``[0, 1, 2]`` -> ``0,1,2``."""
    return ",".join(map(str, seeds))


def dominance_table(dom: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`dominance`'s answer, one line per paper point with ours beside
    it (test MSE and time: means over the point's seeds), and under it the count: how many of
    the paper's points are dominated, per depth and set of seeds."""
    head = ["function", "depth", "paper variant", "λ", "seeds", "test MSE", "time s",
            "ours that dominate"]
    body = []
    for d in dom:
        who = ", ".join(d["dominated_by"]) or (
            "**none**" if d["compared"] else "(no variant of ours measured yet)")
        body.append([d["function"], d["depth"], d["variant"], f"{d['lam']:g}",
                     _seeds_cell(d["seeds"]), f"{d['test_mse']:.3g}",
                     f"{d['time']:.3g}", who])
    counts = []
    for depth, seeds in sorted({(d["depth"], tuple(d["seeds"])) for d in dom}):
        at = [d for d in dom if d["depth"] == depth and tuple(d["seeds"]) == seeds]
        counts.append(f"depth {depth} (seed{'s' if len(seeds) > 1 else ''} {_seeds_cell(seeds)}): "
                      f"{sum(bool(d['dominated_by']) for d in at)} of {len(at)}")
    return (format_table(head, body, markdown=True)
            + f"\n\nPaper points dominated: {'; '.join(counts)}.")


def _equal_accuracy_table(eq: list[dict[str, Any]]) -> str:
    head = ["function", "depth", "variant", "λ", "test MSE", "time s",
            "unregularized: depth, MSE, time s", "speed-up"]
    body = []
    for e in eq:
        b = e["base"]
        ratio = "limit" if e["hit"] else fmt_bound(e["ratio"], "≥" if e["lower_bound"] else "")
        body.append([e["function"], e["depth"], e["variant"], f"{e['lam']:g}",
                     f"{e['test_mse']:.3g}", f"{'≥' if e['hit'] else ''}{e['time']:.3g}",
                     f"{b['depth']}, {b['test_mse']:.3g}, "
                     f"{'≥' if b['hit'] else ''}{b['time']:.4g}", ratio])
    return format_table(head, body, markdown=True)


def _training_table(records: list[dict]) -> str | None:
    times = [(r["job"]["variant"], r["train_time"]) for r in records]
    plain = [t for v, t in times if v == "none"]
    if not plain:
        return None
    p = float(np.mean(plain))
    body = []
    for v in PAPER_VARIANTS:
        ts = [t for vv, t in times if vv == v]
        if ts:
            body.append([v, len(ts), f"{np.mean(ts):.0f}", f"{np.mean(ts) / p:.2f}"])
    return format_table(["variant", "networks", "train s", "× plain"], body, markdown=True)


def _setting(variant: str, lam: float) -> str:
    """``width 0.001``; ``none`` for an unregularized job."""
    return f"{variant} {lam:g}" if PAPER_VARIANTS[variant].regularized else variant


def coverage(records: list[dict], subset: PaperConfig = MINIMUM_SUBSET) -> dict[str, Any]:
    """What of ``subset``'s jobs the records hold (default: the minimum subset).

    Returns ``{"settings": [...], "rows": [{"function", "depth", "seeds": {setting: [seeds]}}],
    "done": n, "total": N, "missing": [job keys], "train_time": seconds}``: per function and
    depth, the seeds measured of every setting (variant and λ), and the training seconds of the
    jobs held. A job counts once its record exists, i.e. it was trained and its MILPs solved
    (or stopped at the limit).
    """
    jobs = jobs_of(subset)
    held = {r.get("key"): r for r in records}
    settings = list(dict.fromkeys(_setting(j.variant, j.lam) for j in jobs))
    rows: dict[tuple[str, int], dict[str, list[int]]] = {}
    missing, train = [], 0.0
    for j in jobs:
        cell = rows.setdefault((j.function, j.depth), {s: [] for s in settings})
        if j.key in held:
            cell[_setting(j.variant, j.lam)].append(j.seed)
            train += float(held[j.key].get("train_time") or 0.0)
        else:
            missing.append(j.key)
    return {"settings": settings,
            "rows": [{"function": f, "depth": d, "seeds": c} for (f, d), c in rows.items()],
            "done": len(jobs) - len(missing), "total": len(jobs), "missing": missing,
            "train_time": train}


def coverage_table(cov: dict[str, Any]) -> str:
    """Markdown table of :func:`coverage`: one line per function and depth, the seeds held of
    every setting (``-`` for none), and a line counting what is held and missing."""
    head = ["function", "depth", *cov["settings"]]
    body = [[r["function"], r["depth"],
             *(_seeds_cell(r["seeds"][s]) or "-" for s in cov["settings"])]
            for r in cov["rows"]]
    return (format_table(head, body, markdown=True)
            + f"\n\n{cov['done']} of {cov['total']} networks held "
              f"({cov['train_time'] / 3600:.2f} h of training), {len(cov['missing'])} missing.")


def note_refused(out_dir: str | os.PathLike[str], key: str, error: str | None) -> Path:
    """Write the refusal note of job ``key`` (``error``), or remove it (``None``: the job was
    measured); returns its path, ``OUT/refused/<key>.txt``."""
    path = Path(out_dir, REFUSED_DIR, f"{key}.txt")
    if error is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(exist_ok=True)
        write_text_atomic(path, error + "\n")
    return path


def load_refused(out_dir: str | os.PathLike[str], cfg: PaperConfig | None = None
                 ) -> dict[str, str]:
    """``{job key: error}`` of the jobs whose network the guards refused (of ``cfg``'s jobs only,
    if given), from ``OUT/refused/``."""
    keys = {j.key for j in jobs_of(cfg)} if cfg is not None else None
    out = {}
    for p in sorted(Path(out_dir, REFUSED_DIR).glob("*.txt")):
        if keys is None or p.stem in keys:
            try:
                out[p.stem] = p.read_text().strip()
            except OSError:
                continue
    return out


def markdown_report(records: list[dict], cfg: PaperConfig | None = None,
                    refused: dict[str, str] | None = None) -> str:
    """The paper-suite report: per-network means, speed-ups, the headline and the dominance test;
    ``refused`` (job key -> error) lists the networks the guards refused to formulate."""
    rows = summarize(records)
    lines = ["# Paper protocol (Tsay 2026) — results", ""]
    if records:
        env = records[-1].get("environment", {})
        lines.append(f"Machine: {env.get('machine')}, {env.get('cpus')} CPUs, Python "
                     f"{env.get('python')}, torch {env.get('torch')}, HiGHS {env.get('highs')}, "
                     f"Gurobi {env.get('gurobi')}; one solver thread; MIP gap "
                     f"{records[-1].get('mip_gap')}; time limit "
                     f"{records[-1].get('time_limit'):g} s per MILP.")
    lines += [
        f"{len(records)} networks finished. Times are solver seconds for minimizing the network "
        "(mean over seeds); `≥` marks a baseline that hit the time limit (so the speed-up is a "
        "lower bound), `limit` a row that hit it itself. `paper` = big-M with IBP bounds "
        "(binaries for IBP-unstable neurons), `ours` = big-M with LP-OBBT bounds, `stock` = stock "
        "OMLT (`ReluBigMFormulation`, its own bounds, a binary per neuron; `ours vs stock` = "
        "stock OMLT on `none` over ours on the row). MSE on the "
        "[0, 1] target scale; ratio = test MSE / that of `none` (same function, depth, seeds); "
        "\"to best unreg.\" divides by the most accurate unregularized network of the same "
        "function and depth (`none` or the fine-tuned control `none_ft`).",
        "", _network_table(rows),
        "", f"## Best speed-up at test MSE ≤ {MSE_RATIO}× the unregularized network", "",
        _headline_table(rows)]
    for fs in DOMINANCE_MILPS:
        dom = dominance(rows, fs)
        # the paper's own MILP with HiGHS always (when the paper's points ran); the others
        # where some network of ours was measured with that MILP too
        if dom and (fs == DOMINANCE_MILPS[0] or any(d["compared"] for d in dom)):
            form, solver = fs.split("/")
            lines += ["", f"## Better than the paper on its own ground? ({form} MILP, "
                      f"{SOLVER_NAMES[solver]})", "",
                      "For each point the paper's regularizers reach: our variants (same seeds) at "
                      "least as accurate and at least as fast, both measured with this MILP "
                      "(test MSE and time: means over the seeds).", "",
                      dominance_table(dom)]
    eq = [e for e in equal_accuracy(rows) if e["base"] is not None]
    if eq:
        lines += ["", "## Speed-up at equal accuracy (ours MILP, HiGHS)", "",
                  "Fastest unregularized network of any depth at least as accurate, over the row's"
                  " time.", "", _equal_accuracy_table(eq)]
    if refused:
        lines += ["", "## Refused networks", "",
                  "The guards refused to formulate these networks (no MILP was solved; the "
                  "error says why and what to do). They are not in the tables above.", "",
                  *(f"* `{k}`: {v}" for k, v in sorted(refused.items()))]
    cov = coverage(records)
    if cov["done"]:
        lines += ["", "## The minimum subset of the paper's grid", "",
                  "The paper's own settings at depths 3 and 5, seeds 0-2 (`--subset minimum`; "
                  "our variants beside them are not counted): the seeds this folder holds.", "",
                  coverage_table(cov)]
    train = _training_table(records)
    if train is not None:
        lines += ["", "## Training time (mean seconds per network; all depths)", "", train]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | os.PathLike[str], cfg: PaperConfig | None = None) -> Path:
    """Write ``OUT/paper.md`` from every finished job in ``out_dir``; returns its path."""
    path = Path(out_dir) / REPORT_FILE
    records = load_records(out_dir, cfg)
    text = markdown_report(records, cfg, load_refused(out_dir, cfg))
    pareto_plots(records, out_dir)
    write_text_atomic(path, text)
    return path
