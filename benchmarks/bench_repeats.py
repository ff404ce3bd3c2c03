"""Benchmark: how much a suite's MILP time varies when the same MILP is solved again.

The paper suite (``omlt-relax bench --suite paper``) and the scale suite (``--suite scale``) solve
each network's MILPs once. Times of 0.1-10 s vary between runs of the same MILP (machine load,
a solver's non-determinism in wall time), so a headline ratio close to a target may be noise.
This script re-solves the MILPs of a finished suite folder ``--repeats`` times per network and
reports, per network, the suite's recorded time beside the minimum, median and maximum of the
repeats (and the branch-and-bound nodes, to tell solver variation from machine load), and the
speed-up over the unregularized network of the same function and size (paper: depth and seed)
*by the median*: the baseline's recorded time over the network's median (``≥`` when the
baseline hit the time limit; a bound is rounded down).

* paper folder (``jobs/*.json``): the minimization MILP, ``--formulation`` ``ours`` (LP-OBBT
  bounds) or ``paper`` (IBP), ``--solver`` HiGHS or Gurobi, bounds computed again as the suite
  does (:func:`~omlt_relax.bench.paper.measure.formulation_bounds`);
* scale folder (``results.json``): the suite's baseline (b), min + max with LP-OBBT bounds and
  HiGHS (the suite's OBBT budget), the time being the sum as in the suite.

Which networks: every relaxation-informed network within ``--within`` times its baseline's test
error (paper: MSE, default 1.5; scale: RMSE, default 1.25), or the ones named by ``--keys``.
Every solve is checked by a forward pass (:func:`~omlt_relax.optimize.solve_milp`).

Run on an otherwise idle core (the load average is printed and recorded)::

    . .venv/bin/activate
    python benchmarks/bench_repeats.py --out runs/paper1800 --solver gurobi --repeats 7
    python benchmarks/bench_repeats.py --out runs/scale70k_3600 --repeats 5

``--dominance`` (paper folders) re-solves every regularized network, the paper's and ours, and
adds the report's "better than the paper" test read by the medians (:func:`dominance_by_median`)::

    python benchmarks/bench_repeats.py --out runs/paper_dom --formulation paper --solver highs \
        --repeats 7 --dominance

Over several seeds a point is the mean of the seeds' test MSEs and of their medians (the paper's
reading); ``--per-seed`` adds the same test seed by seed. ``--report-only`` solves nothing: it
rewrites the ``.md`` of an earlier run (same ``--formulation``, ``--solver``, ``--tag``) from its
JSON, e.g. to add ``--per-seed``::

    python benchmarks/bench_repeats.py --out runs/paper_dom --formulation paper --solver highs \
        --dominance --per-seed --report-only --tag d3s3

``--singles`` keeps the networks not re-solved in that test with the suite's single solve
(marked), e.g. to re-solve only the networks whose MILPs take seconds and judge the ones that
take minutes, or stop at the limit, by the suite's solve::

    python benchmarks/bench_repeats.py --out runs/paper_d5s12 --formulation paper --solver highs \
        --repeats 5 --dominance --singles --keys K

A scale folder's unregularized network named in ``--keys`` is solved again too, and then the
networks of its function and size take their speed-up from that solve, not the suite's: this
measures a baseline at a longer cap than the suite's, side by side with the networks it is set
against (one repeat suffices for a baseline that hits the cap)::

    python benchmarks/bench_repeats.py --out runs/scale600snap --repeats 1 --time-limit 3600 \
        --keys himmelblau/3x100/stability_lpgap4_ftd@5e-06,himmelblau/3x100/unregularized \
        --tag himmelblau3600

``--start probe|local`` hands every solve the library's MIP start
(:func:`~omlt_relax.optimize.solve_milp`, :mod:`omlt_relax.mip_start`): an incumbent from
forward passes, with ``local`` a local search over linear regions from the best probes. A
time is then the solver's plus the start's own (``start_time``): what a user of
``solve_milp(..., start=...)`` waits for. The paper's protocol solves without one, so a folder's
suite times stay the reference, e.g. for the paper's LP-gap networks, whose root relaxation is
exact but whose optimum HiGHS may not find in minutes::

    python benchmarks/bench_repeats.py --out runs/paper_h5l --formulation paper --solver highs \
        --repeats 5 --interleave --start local --keys himmelblau-d5-s0-lpgap-0.001 --tag start

``--under S`` chooses those networks by the suite's own solves: every regularized network
whose suite solves of ``--formulation`` (each solver the suite ran) were optimal in under S
seconds; with ``--singles`` the rest count with their single solve::

    python benchmarks/bench_repeats.py --out runs/paper_d5s12 --formulation paper --solver highs \
        --repeats 5 --dominance --singles --under 4

``--interleave`` solves in rounds, every network once per round, instead of all repeats of
one network before the next: the machine's speed can drift by tens of percent over a run of
minutes, and interleaved it drifts under every network alike (each record's ``order`` gives
the position of its solves in the run)::

    python benchmarks/bench_repeats.py --out runs/paper_d5s12 --formulation paper --solver highs \
        --repeats 5 --dominance --singles --interleave --keys K

Writes ``repeats_<formulation>_<solver>[_<tag>].json`` and ``.md`` into ``--out`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omlt_relax.bench.functions import get_function
from omlt_relax.bench.paper.measure import formulation_bounds
from omlt_relax.bench.paper.protocol import PAPER_FUNCTIONS, paper_network
from omlt_relax.bench.paper.report import (
    dominance,
    dominance_table,
    load_records,
    solve_time,
    summarize,
    unregularized,
)
from omlt_relax.bench.paper.run import environment
from omlt_relax.bench.report import machine_line, ratio
from omlt_relax.bench.resolves import stopped_early
from omlt_relax.bench.results import model_file, write_json, write_text_atomic
from omlt_relax.bench.scale import fmt_bound, model_names, per_network, records
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.optimize import solve_milp
from omlt_relax.solve import SOLVERS
from omlt_relax.threads import single_thread
from omlt_relax.train import build_model


def log(msg: str) -> None:
    print(msg, flush=True)


def speedup(base_time: float | None, base_hit: bool, t: float, hit: bool = False) -> str:
    """The baseline's time over the network's, flagged as every report flags it
    (:func:`~omlt_relax.bench.report.ratio`): ``≥`` the baseline stopped at the cap, ``≤`` the
    network did, ``~`` both; ``"–"`` without a baseline."""
    if base_time is None:
        return "–"
    return fmt_bound(*ratio(base_time, base_hit, t, hit))


def _solve_once(net: Any, stored: Any, senses: tuple[str, ...], solver: str,
                time_limit: float, mip_gap: float | None, start: str | None = None) -> list[Any]:
    return [solve_milp(net, stored, s, time_limit, solver=solver, threads=1, mip_gap=mip_gap,
                       start=start)
            for s in senses]


def _summary(rounds: list[list[Any]], senses: tuple[str, ...],
             order: list[int]) -> dict[str, Any]:
    """One network's record from its repeats (each a list of per-sense solver results); a
    repeat's time is ``total_time`` (the solver's, plus a MIP start's) summed over the senses."""
    totals = [sum(r.total_time for r in rs) for rs in rounds]
    return {"times": totals, "statuses": sorted({r.status for rs in rounds for r in rs}),
            "nodes": [[r.nodes for r in rs] for rs in rounds],
            "per_sense": [{s: [float(r.time), r.status, r.objective, r.bound]
                           for s, r in zip(senses, rs)} for rs in rounds],
            "order": order, "min": min(totals), "median": statistics.median(totals),
            "max": max(totals)}


def solve_all(items: list[tuple[torch.nn.Sequential, Any, np.ndarray, np.ndarray,
                                float | None]],
              senses: tuple[str, ...], solver: str, repeats: int, time_limit: float,
              interleave: bool = False, names: list[str] | None = None,
              start: str | None = None) -> list[dict[str, Any]]:
    """``repeats`` solves of every sense of each network ``(model, bounds, lo, hi, mip_gap)``
    (``mip_gap``: the suite's, ``None`` for the solver's default; ``start``: the MIP start of
    :func:`~omlt_relax.optimize.solve_milp`, its time counted). A network's record has per
    repeat the time (solver plus start) summed over the senses (``times``; their ``min``,
    ``median``, ``max``), the nodes, and each sense's
    ``{sense: [time, status, objective, best bound]}`` (``per_sense``). The networks are solved
    one after another (all repeats of one, then the next) or, with ``interleave``, in
    ``repeats`` rounds that each solve every network once, so that a drift of the machine's
    speed during the run falls on every network alike (progress is logged per network, or per
    round). ``order`` in each record gives the run-wide position of each of its repeats:
    network k of n, repeat r is ``k * repeats + r`` one after another, ``r * n + k``
    interleaved."""
    n = len(items)
    rounds: list[list[list[Any]]] = [[] for _ in items]
    order: list[list[int]] = [[] for _ in items]
    with tempfile.TemporaryDirectory() as tmp:
        nets = []
        for k, (model, bounds, lo, hi, _) in enumerate(items):
            path = os.path.join(tmp, f"net{k}.onnx")
            export_onnx(model, path, (lo, hi), bounds=bounds)
            nets.append(load_onnx(path))
        plan = ([(r, k) for r in range(repeats) for k in range(n)] if interleave
                else [(r, k) for k in range(n) for r in range(repeats)])
        t0 = time.perf_counter()
        for i, (r, k) in enumerate(plan):
            net, stored = nets[k]
            rounds[k].append(_solve_once(net, stored, senses, solver, time_limit,
                                         items[k][4], start))
            order[k].append(i)
            if interleave and k == n - 1:
                log(f"round {r + 1}/{repeats} done: {n} networks, "
                    f"{time.perf_counter() - t0:.0f} s so far")
            elif not interleave and r == repeats - 1:
                log(f"[{k + 1}/{n}] {names[k] if names else ''}: median "
                    f"{statistics.median(sum(x.total_time for x in rs) for rs in rounds[k]):.3f} s")
    return [_summary(rounds[k], senses, order[k]) for k in range(n)]


# -- paper folders ------------------------------------------------------------------------------
def _paper_base(key: str) -> str:
    """``peaks-d5-s0-stable-0.001`` -> ``peaks-d5-s0-none-0``."""
    f, d, s = key.split("-")[:3]
    return f"{f}-{d}-{s}-none-0"


def paper_job_network(out: Path, key: str) -> tuple[torch.nn.Sequential, np.ndarray, np.ndarray]:
    """The network a paper-suite folder saved for job ``key`` (float64, eval mode) and the box of
    its function."""
    f = key.split("-")[0]
    lo, hi = (np.asarray(b, np.float64) for b in PAPER_FUNCTIONS[f].box)
    state = torch.load(out / "models" / f"{key}.pt", weights_only=False)["state"]
    weights = [v for k, v in state.items() if k.endswith("weight")]
    model = paper_network(weights[0].shape[1], len(weights) - 1, weights[0].shape[0], 0)
    model.load_state_dict(state)
    return model.double().eval(), lo, hi


def quick_in_suite(job: dict[str, Any], formulation: str, under: float) -> bool:
    """Whether every solve the suite recorded for this job's ``formulation`` MILP (each solver
    it ran) was optimal in under ``under`` seconds: the networks worth re-solving, where a
    single solve's noise can decide a comparison; the slower ones (minutes, or the cap) keep
    their single solve (``--singles``)."""
    rec = job.get("milp", {}).get(formulation, {})
    times = [(t, hit) for t, hit in (solve_time(rec.get(s)) for s in SOLVERS) if t is not None]
    return bool(times) and all(not hit and t < under for t, hit in times)


def paper_rows(out: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = {p.stem: json.loads(p.read_text()) for p in sorted((out / "jobs").glob("*.json"))}
    within = 1.5 if args.within is None else args.within
    if args.dominance:  # every regularized network: the paper's points and ours
        keys = _chosen(args, jobs, lambda k, j: not unregularized(j["job"]["variant"]) and (
            args.under is None or quick_in_suite(j, args.formulation, args.under)))
    else:
        keys = _chosen(args, jobs, lambda k, j: (
            not k.endswith("-none-0") and _paper_base(k) in jobs
            and j["test_mse"] <= within * jobs[_paper_base(k)]["test_mse"]))
    items = []
    for key in keys:
        model, lo, hi = paper_job_network(out, key)
        bounds = formulation_bounds(model, lo, hi, (args.formulation,))[args.formulation]
        items.append((model, bounds, lo, hi, jobs[key].get("mip_gap")))
    recs = solve_all(items, ("min",), args.solver, args.repeats, args.time_limit,
                     args.interleave, keys, args.start)
    rows = []
    for key, rec in zip(keys, recs):
        job, base = jobs[key], jobs.get(_paper_base(key))
        suite = job.get("milp", {}).get(args.formulation, {}).get(args.solver) or {}
        bm = (base or {}).get("milp", {}).get(args.formulation, {}).get(args.solver) or {}
        rows.append({"key": key, "error_ratio": job["test_mse"] / base["test_mse"] if base
                     else None, "suite_time": suite.get("time"), **rec,
                     "speedup_median": speedup(bm.get("time"), bm.get("status") != "optimal",
                                               rec["median"], stopped_early(rec))})
        log(_line(rows[-1]))
    return rows


def dominance_by_median(out: Path, rows: list[dict[str, Any]], formulation: str,
                        solver: str, per_seed: bool = False,
                        singles: bool = False) -> list[dict[str, Any]]:
    """The paper report's test "better than the paper on its own ground"
    (:func:`~omlt_relax.bench.paper.report.dominance`: for each point a paper regularizer
    reaches, ours at least as accurate *and* at least as fast, same function, depth and seeds)
    with each network's MILP time taken as the median of its repeats instead of the suite's
    single solve. Networks not re-solved here are left out, or, with ``singles``, counted with
    the suite's single solve (their answers are marked: ``singles`` on a point, a ``†`` after
    a network of ours); a network counts as stopped at the limit if any solve did. Times of
    0.01-0.3 s at the fast end vary 2-10x between single solves, so the medians are the reading
    to trust there; a single solve serves for a network whose MILP takes minutes, or stops at
    the limit, where repeating it would cost hours and move no verdict.

    A point over several seeds s ∈ S is (mean_S MSE_s, mean_S median_s), the paper's reading.
    ``per_seed`` tests each seed on its own instead (one point per seed, S = {s})."""
    fs = f"{formulation}/{solver}"
    med = {r["key"]: r for r in rows}
    records = load_records(out)
    groups = ([[r for r in records if r["job"]["seed"] == s]
               for s in sorted({r["job"]["seed"] for r in records})] if per_seed else [records])
    here = []
    for group in groups:
        for row in summarize(group):
            if unregularized(row["variant"]):
                continue
            times, hits, n_single = [], [], 0
            for rec in row["records"]:
                if rec["key"] in med:
                    times.append(med[rec["key"]]["median"])
                    hits.append(stopped_early(med[rec["key"]]))
                    continue
                t, hit = solve_time(rec["milp"].get(formulation, {}).get(solver))
                if not singles or t is None:
                    break
                times.append(t)
                hits.append(hit)
                n_single += 1
            else:
                s = {"time": float(np.mean(times)), "hit": any(hits)}
                here.append({**row, "times": {fs: s}, "singles": n_single})
    dom = dominance(here, fs)
    if singles:
        def at(r: dict[str, Any]) -> tuple[Any, ...]:
            return r["function"], r["depth"], tuple(r["seeds"])

        n_of = {(*at(r), f"{r['variant']} {r['lam']:g}"): r["singles"] for r in here}
        for d in dom:
            d["singles"] = n_of[(*at(d), f"{d['variant']} {d['lam']:g}")]
            d["dominated_by"] = [n + (" †" if n_of[(*at(d), n)] else "")
                                 for n in d["dominated_by"]]
    return dom


def _singles_lines(dom: list[dict[str, Any]]) -> list[str]:
    """The line naming the paper points whose time includes the suite's single solves."""
    pts = [f"{d['function']} d{d['depth']} {d['variant']} {d['lam']:g} (seed"
           f"{'s' if len(d['seeds']) > 1 else ''} {','.join(map(str, d['seeds']))}: "
           f"{d['singles']} of {len(d['seeds'])})" for d in dom if d.get("singles")]
    return ["", "Paper points timed (in part) by the suite's single solve: "
            + "; ".join(pts) + "."] if pts else []


# -- scale folders ------------------------------------------------------------------------------
def scale_rows(out: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = json.loads((out / "results.json").read_text())
    cfg = results["meta"]["config"]
    entries = results["entries"]
    nets = {r["key"]: r for r in per_network(records(entries))}
    within = 1.25 if args.within is None else args.within
    keys = _chosen(args, nets, lambda k, r: (
        not r["plain"] and r["rmse_ratio"] is not None and r["rmse_ratio"] <= within))
    items = []
    for key in keys:
        e = entries[key]
        fn = get_function(e["function"])
        lo, hi = np.asarray(fn.lower, np.float64), np.asarray(fn.upper, np.float64)
        model = build_model(fn.dim, e["hidden"], 1, 0).double()
        model.load_state_dict(torch.load(model_file(out, *model_names(e))))
        model.eval()
        bounds = obbt_bounds(model, lo, hi, method="lp", time_limit=cfg.get("obbt_time_limit"))
        items.append((model, bounds, lo, hi, None))
    recs = solve_all(items, ("min", "max"), "highs", args.repeats, args.time_limit,
                     args.interleave, keys, args.start)
    rows = []
    for key, rec in zip(keys, recs):
        r = nets[key]
        base = [o for o in nets.values() if o["function"] == r["function"]
                and o["size"] == r["size"] and o["variant"] == "unregularized"]
        b = base[0] if base and not r["plain"] else None  # a baseline: no ratio to itself
        rows.append({"key": key, "error_ratio": r["rmse_ratio"], "suite_time": r["time"], **rec,
                     "baseline": b["key"] if b else None, "baseline_from": "suite",
                     "speedup_median": speedup(b["time"] if b else None,
                                               bool(b and b["hit"]), rec["median"],
                                               stopped_early(rec))})
        log(_line(rows[-1]))
    return rebase_on_this_run(rows)


def rebase_on_this_run(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where a row's baseline was re-solved in this run too (its key among ``--keys``, e.g. at a
    longer ``--time-limit`` than the suite's), its speed-up is taken against that solve instead:
    the baseline's median over the network's median, ``≥`` when any baseline solve stopped
    before optimality (the time limit: a lower bound), ``≤`` when the network's did. A
    baseline's own row has no baseline."""
    here = {r["key"]: r for r in rows}
    for r in rows:
        b = here.get(r["baseline"] or "")
        if b is None:
            continue
        r["speedup_median"] = speedup(b["median"], stopped_early(b), r["median"],
                                      stopped_early(r))
        r["baseline_from"] = "this run"
    return rows


# -- shared -------------------------------------------------------------------------------------
def _chosen(args: argparse.Namespace, items: dict[str, Any], default: Any) -> list[str]:
    if args.keys:
        keys = [k.strip() for k in args.keys.split(",") if k.strip()]
        missing = [k for k in keys if k not in items]
        if missing:
            raise SystemExit(f"no such networks in {args.out}: {', '.join(missing)}")
        return keys
    keys = [k for k, v in items.items() if default(k, v)]
    if not keys:
        raise SystemExit(f"no network of {args.out} matches (--within, --under): nothing to "
                         "re-solve")
    return keys


def _nodes(per_repeat: list[list[int | None]]) -> str:
    """``"137+566"`` when every repeat explored the same nodes, else each repeat's."""
    cells = ["+".join("?" if n is None else str(n) for n in rep) for rep in per_repeat]
    return cells[0] if len(set(cells)) == 1 else ", ".join(cells)


def _statuses(r: dict[str, Any]) -> str:
    """``"optimal"`` when every solve was; else each sense's status and time, per repeat."""
    if r["statuses"] == ["optimal"] or not r.get("per_sense"):
        return ", ".join(r["statuses"])
    return "; ".join(", ".join(f"{s} {st} {t:.0f} s" for s, (t, st, *_) in rep.items())
                     for rep in r["per_sense"])


def _line(r: dict[str, Any]) -> str:
    return (f"{r['key']}: suite {r['suite_time']}, repeats min {r['min']:.3f} median "
            f"{r['median']:.3f} max {r['max']:.3f} s ({_statuses(r)}) -> "
            f"{r['speedup_median']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder of a paper- or scale-suite run")
    ap.add_argument("--solver", default=None, choices=("highs", "gurobi", "scip"),
                    help="paper folders (default gurobi); scale folders use HiGHS as the suite")
    ap.add_argument("--formulation", default="ours", choices=("paper", "ours"),
                    help="paper folders only")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--within", type=float, default=None,
                    help="networks within this error ratio (paper: MSE, default 1.5; scale: "
                         "RMSE, default 1.25) to their baseline")
    ap.add_argument("--keys", default=None, help="comma-separated networks instead of --within")
    ap.add_argument("--under", type=float, default=None, metavar="S",
                    help="with --dominance, instead of --keys: re-solve only the regularized "
                         "networks whose every suite solve of --formulation (each solver the "
                         "suite ran) was optimal in under S seconds (add --singles to count the "
                         "others with their single solve)")
    ap.add_argument("--dominance", action="store_true",
                    help="paper folders: re-solve every regularized network (the paper's and "
                         "ours, or those of --keys) and test 'better than the paper' by the "
                         "medians")
    ap.add_argument("--per-seed", action="store_true",
                    help="with --dominance: also test every seed on its own")
    ap.add_argument("--singles", action="store_true",
                    help="with --dominance: a network of the folder not re-solved here (e.g. "
                         "one whose MILP takes minutes) counts with the suite's single solve, "
                         "marked, instead of being left out")
    ap.add_argument("--interleave", action="store_true",
                    help="solve in --repeats rounds, each network once per round, instead of "
                         "all repeats of one network before the next: a drift of the machine's "
                         "speed during the run then falls on every network alike")
    ap.add_argument("--report-only", action="store_true",
                    help="solve nothing: rewrite the .md from this --tag's existing .json "
                         "(e.g. to add --per-seed)")
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per solve")
    ap.add_argument("--start", default=None, choices=("probe", "local"),
                    help="hand every solve the library's MIP start (solve_milp's start=); a "
                         "time is then the solver's plus the start's own")
    ap.add_argument("--tag", default=None,
                    help="suffix of the output files (two runs on one folder at once)")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    single_thread()
    out = Path(args.out)
    if (out / "jobs").is_dir():
        suite, solver = "paper", args.solver or "gurobi"
        args.solver = solver
        what = f"{args.formulation} MILP (min), {solver} one thread"
    elif (out / "results.json").is_file():
        if args.solver not in (None, "highs"):
            raise SystemExit("a scale folder is measured with HiGHS, as the suite does")
        suite, solver, args.formulation = "scale", "highs", "ours"
        what = "ours, min + max, highs one thread"
    else:
        raise SystemExit(f"{out}: neither jobs/ (paper suite) nor results.json (scale suite)")
    if args.dominance and suite != "paper":
        raise SystemExit("--dominance compares the paper's regularizers with ours: a paper-suite "
                         "folder (jobs/) is needed")
    if args.per_seed and not args.dominance:
        raise SystemExit("--per-seed reads the dominance test seed by seed: add --dominance")
    if args.under is not None and not args.dominance:
        raise SystemExit("--under chooses among the networks of the dominance test: add "
                         "--dominance")
    if args.under is not None and args.keys:
        raise SystemExit("--under chooses the networks and --keys names them: give one of them")
    if args.singles and not args.dominance:
        raise SystemExit("--singles fills in the dominance test's times: add --dominance")
    if args.start:
        what += f", the library's MIP start ({args.start}) in every solve, its time counted"
    stem = (f"repeats_{args.formulation}_{solver}" + (f"_start-{args.start}" if args.start else "")
            + (f"_{args.tag}" if args.tag else ""))
    if args.report_only:  # the rows, machine and load of the run that solved them
        try:
            done = json.loads((out / f"{stem}.json").read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"--report-only: cannot read {out / (stem + '.json')} ({e}); "
                             "run without --report-only first, with the same --formulation, "
                             "--solver and --tag") from None
        env, rows, wall, load_end, ran = (done["env"], done["rows"], done["wall_time"],
                                          done["load_end"], done["args"])
    else:
        env = environment()
        log(machine_line(env) + f" Load average at start: {os.getloadavg()}.")
        log(f"{suite} folder {out}: {args.repeats} solves per network, {what}")
        t0 = time.perf_counter()
        rows = paper_rows(out, args) if suite == "paper" else scale_rows(out, args)
        wall, load_end = time.perf_counter() - t0, os.getloadavg()
        ran = vars(args)
        write_json(out / f"{stem}.json", {"env": env, "args": ran, "rows": rows,
                                          "wall_time": wall, "load_end": load_end})
    err = "MSE ratio" if suite == "paper" else "RMSE ratio"
    cmd = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                   for k, v in ran.items() if v is not None and v is not False)
    lines = [f"# Repeated solves: {what}", "", machine_line(env),
             f"Command: `python benchmarks/bench_repeats.py {cmd}`; wall {wall:.0f} s; load "
             f"average at the end {', '.join(f'{x:.2f}' for x in load_end)}.", "",
             f"| network | {err} | suite s | min s | median s | max s | statuses | "
             "B&B nodes per repeat | speed-up by the median (baseline solved) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "–" if r["error_ratio"] is None else f"{r['error_ratio']:.3f}"
        suite_t = "–" if r["suite_time"] is None else f"{r['suite_time']:.3f}"
        against = "" if r["speedup_median"] == "–" else f" ({r.get('baseline_from', 'suite')})"
        lines.append(f"| {r['key']} | {ratio} | {suite_t} | {r['min']:.3f} | {r['median']:.3f} "
                     f"| {r['max']:.3f} | {_statuses(r)} | {_nodes(r['nodes'])} | "
                     f"{r['speedup_median']}{against} |")
    if args.dominance:
        dom = dominance_by_median(out, rows, args.formulation, solver, singles=args.singles)
        lines += ["", f"## Better than the paper on its own ground, by the medians ({what})", "",
                  "For each point the paper's regularizers reach: ours (same seeds) at least as "
                  "accurate and with a median time at least as short (over several seeds: the mean "
                  "of the seeds' test MSEs and of their medians)."
                  + (" With `--singles`, a network not re-solved here counts with the suite's "
                     "single solve: † after a network of ours, and the paper's points in the "
                     "line under the table." if args.singles else ""), "",
                  dominance_table(dom) if dom else "(no paper regularizer among these networks)",
                  *_singles_lines(dom)]
        if args.per_seed:
            per = dominance_by_median(out, rows, args.formulation, solver, per_seed=True,
                                      singles=args.singles)
            lines += ["", f"## The same test seed by seed ({what})", "",
                      "Each seed's networks on their own: the seed's test MSE and median.", "",
                      dominance_table(per) if per else "(no paper regularizer among these "
                                                       "networks)", *_singles_lines(per)]
    write_text_atomic(out / f"{stem}.md", "\n".join(lines) + "\n")
    log(f"wrote {out / (stem + '.md')}")


if __name__ == "__main__":
    main()
