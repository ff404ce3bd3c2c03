"""Benchmark: how much a paper-suite MILP time varies when the same MILP is solved again.

The paper suite (``omlt-relax bench --suite paper``) solves each network's MILP once. Times of
0.1-10 s vary between runs of the same MILP (machine load, timer resolution, a solver's
non-determinism in wall time), so a headline ratio close to a target is noise-level. This script
re-solves the MILPs of a finished suite folder ``--repeats`` times each and reports, per network,
the suite's recorded time beside the minimum, median and maximum of the repeats, and the speed-up
over the unregularized network of the same function, depth and seed *by the median*: the
baseline's recorded time over the network's median (``≥`` when the baseline hit the time limit).

Which networks: every regularized network within ``--within`` times its baseline's test MSE
(default 1.5, the issue's "competitive accuracy"), or the jobs named by ``--keys``. Bounds are
computed again as the suite does
(:func:`~omlt_relax.bench.paper.measure.formulation_bounds`)
and every solve is checked by a forward pass (:func:`~omlt_relax.optimize.solve_milp`).

Run on an idle core (the load average is printed and recorded)::

    . .venv/bin/activate
    python benchmarks/bench_paper_repeats.py --out runs/paper1800 --solver gurobi --repeats 7

Writes ``repeats_<formulation>_<solver>.json`` and ``.md`` into ``--out`` (atomically).
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

from omlt_relax.bench.paper.measure import formulation_bounds
from omlt_relax.bench.paper.protocol import PAPER_FUNCTIONS, paper_network
from omlt_relax.bench.paper.run import environment
from omlt_relax.bench.report import machine_line
from omlt_relax.bench.results import write_json, write_text_atomic
from omlt_relax.bench.scale import fmt_bound
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.optimize import solve_milp


def log(msg: str) -> None:
    print(msg, flush=True)


def load_jobs(out: Path) -> dict[str, dict[str, Any]]:
    """The suite's per-network records, ``jobs/<key>.json``, by key."""
    jobs = {}
    for p in sorted((out / "jobs").glob("*.json")):
        jobs[p.stem] = json.loads(p.read_text())
    if not jobs:
        msg = f"{out}: no jobs/*.json; give the --out folder of a paper-suite run"
        raise SystemExit(msg)
    return jobs


def base_key(key: str) -> str:
    """``peaks-d5-s0-stable-0.001`` -> ``peaks-d5-s0-none-0``."""
    f, d, s = key.split("-")[:3]
    return f"{f}-{d}-{s}-none-0"


def load_model(out: Path, key: str) -> torch.nn.Sequential:
    """The saved float64 network of job ``key`` (architecture from the state dict's shapes)."""
    saved = torch.load(out / "models" / f"{key}.pt", weights_only=False)
    state = saved["state"]
    weights = [v for k, v in state.items() if k.endswith("weight")]
    depth, width, n_in = len(weights) - 1, weights[0].shape[0], weights[0].shape[1]
    model = paper_network(n_in, depth, width, 0)
    model.load_state_dict(state)
    return model.double().eval()


def milp_record(job: dict[str, Any], form: str, solver: str) -> dict[str, Any] | None:
    return job.get("milp", {}).get(form, {}).get(solver)


def repeat_one(out: Path, key: str, form: str, solver: str, repeats: int,
               time_limit: float) -> dict[str, Any]:
    """Solve one network's minimization MILP ``repeats`` times; solver times and statuses."""
    function = key.split("-")[0]
    lo, hi = (np.asarray(b, np.float64) for b in PAPER_FUNCTIONS[function].box)
    m64 = load_model(out, key)
    bounds = formulation_bounds(m64, lo, hi, (form,))[form]
    times, statuses, objs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.onnx")
        export_onnx(m64, path, (lo, hi), bounds=bounds)
        net, stored = load_onnx(path)
        for _ in range(repeats):
            r = solve_milp(net, stored, "min", time_limit, solver=solver, threads=1)
            times.append(float(r.time))
            statuses.append(r.status)
            objs.append(r.objective)
    return {"times": times, "statuses": statuses, "objectives": objs,
            "min": min(times), "median": statistics.median(times), "max": max(times)}


def speedup(base: dict[str, Any] | None, t: float) -> str:
    if base is None or base.get("time") is None:
        return "–"
    hit = base.get("status") != "optimal"
    return fmt_bound(base["time"] / max(t, 1e-6), "≥" if hit else "")  # a bound rounded down


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder of a paper-suite run")
    ap.add_argument("--solver", default="gurobi", choices=("highs", "gurobi", "scip"))
    ap.add_argument("--formulation", default="ours", choices=("paper", "ours"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--within", type=float, default=1.5,
                    help="networks within this test-MSE ratio to their baseline")
    ap.add_argument("--keys", default=None, help="comma-separated job keys instead of --within")
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per solve")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    torch.set_num_threads(1)
    out = Path(args.out)
    jobs = load_jobs(out)
    if args.keys:
        keys = [k.strip() for k in args.keys.split(",") if k.strip()]
        missing = [k for k in keys if k not in jobs]
        if missing:
            raise SystemExit(f"no such jobs in {out}/jobs: {', '.join(missing)}")
    else:
        keys = [k for k, j in jobs.items() if not k.endswith("-none-0")
                and base_key(k) in jobs
                and j["test_mse"] <= args.within * jobs[base_key(k)]["test_mse"]]
    env = environment()
    log(machine_line(env) + f" Load average at start: {os.getloadavg()}.")
    log(f"{len(keys)} networks, {args.repeats} solves each, {args.formulation} MILP, "
        f"{args.solver} one thread")
    t0 = time.perf_counter()
    rows = []
    for key in keys:
        job = jobs[key]
        base = jobs.get(base_key(key))
        rec = repeat_one(out, key, args.formulation, args.solver, args.repeats, args.time_limit)
        suite = milp_record(job, args.formulation, args.solver)
        row = {"key": key, "mse_ratio": job["test_mse"] / base["test_mse"] if base else None,
               "suite_time": suite.get("time") if suite else None, **rec,
               "speedup_median": speedup(milp_record(base, args.formulation, args.solver)
                                         if base else None, rec["median"])}
        rows.append(row)
        log(f"{key}: suite {row['suite_time']}, repeats min {rec['min']:.3f} median "
            f"{rec['median']:.3f} max {rec['max']:.3f} s ({', '.join(set(rec['statuses']))})"
            f" -> {row['speedup_median']}")
    wall = time.perf_counter() - t0
    stem = f"repeats_{args.formulation}_{args.solver}"
    write_json(out / f"{stem}.json", {"env": env, "args": vars(args), "rows": rows,
                                      "wall_time": wall, "load_end": os.getloadavg()})
    lines = [f"# Repeated solves: {args.formulation} MILP, {args.solver} one thread", "",
             machine_line(env), f"Command: `python benchmarks/bench_paper_repeats.py --out "
             f"{args.out} --solver {args.solver} --formulation {args.formulation} --repeats "
             f"{args.repeats}`; wall {wall:.0f} s; load average at the end "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
             "| network | MSE ratio | suite s | min s | median s | max s | statuses | "
             "speed-up by the median |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "–" if r["mse_ratio"] is None else f"{r['mse_ratio']:.2f}"
        suite = "–" if r["suite_time"] is None else f"{r['suite_time']:.3f}"
        lines.append(f"| {r['key']} | {ratio} | {suite} | {r['min']:.3f} | {r['median']:.3f} | "
                     f"{r['max']:.3f} | {', '.join(sorted(set(r['statuses'])))} | "
                     f"{r['speedup_median']} |")
    write_text_atomic(out / f"{stem}.md", "\n".join(lines) + "\n")
    log(f"wrote {out / (stem + '.md')}")


if __name__ == "__main__":
    main()
