"""Benchmark: the MIP starts (``solve_milp(start="probe")``, ``"local"``), side by side.

For every network of a paper-suite folder (``omlt-relax bench --suite paper``; or the ones named
by ``--keys``) the minimization MILP (``--formulation``: ``ours`` LP-OBBT big-M or ``paper`` IBP
big-M, bounds computed again as the suite does) is solved in a row with the same solver, one
thread and the same cap: without a start, and with each start of ``--starts`` from
:mod:`omlt_relax.mip_start` (``probe``: the best of 4,096 forward passes; ``local``: the 8 best
of them improved by the local search over linear regions of :mod:`omlt_relax.linear_regions`;
both completed with the inputs fixed). Reported per network and start: status,
time, final gap and nodes both ways, the start's objective and cost, and the effect
``time without / (time with + start cost)``; per regularized network, its speed-up over the
unregularized network of the same function, depth and seed *both ways* (no start on either side;
the start on both sides, its cost counted), so a headline ratio can be read against a baseline
that is handed the same help. ``≥`` where the baseline stopped at the cap, ``≤`` where the
network did, ``~`` where both did. Every answer is checked by a forward pass.

Run::

    . .venv/bin/activate
    python benchmarks/bench_mip_start.py --out runs/paper_d3_3s --solver highs --time-limit 600
    python benchmarks/bench_mip_start.py --out runs/paper_d3_3s --starts probe,local \
        --keys peaks-d3-s0-none-0 --tag local

``--starts-only`` solves no MILP: it builds each start (forward passes, local search; no
completion) and sets its value beside the best proven optimum the suite recorded for the network
(any MILP, any solver), which shows how good a start is in a fraction of a second::

    python benchmarks/bench_mip_start.py --out runs/paper_d3_3s --starts probe,local --starts-only

Writes ``mip_start_<formulation>_<solver>[_<tag>].json`` and ``.md`` into ``--out`` (atomically;
``mip_start_quality[_<tag>]`` with ``--starts-only``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_repeats import _paper_base, paper_job_network

from omlt_relax.bench.paper.measure import formulation_bounds
from omlt_relax.bench.paper.run import environment
from omlt_relax.bench.report import fmt_bound, machine_line, ratio
from omlt_relax.bench.results import write_json, write_text_atomic
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.mip_start import best_local_input, best_probe_input
from omlt_relax.optimize import solve_milp
from omlt_relax.threads import single_thread


def log(msg: str) -> None:
    print(msg, flush=True)


def solve_both(out: Path, key: str, formulation: str, solver: str, time_limit: float,
               mip_gap: float | None, starts: tuple[str, ...] = ("probe",)) -> dict[str, Any]:
    """The network's minimization MILP without a start, then with each of ``starts``."""
    model, lo, hi = paper_job_network(out, key)
    bounds = formulation_bounds(model, lo, hi, (formulation,))[formulation]
    row: dict[str, Any] = {"key": key}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.onnx")
        export_onnx(model, path, (lo, hi), bounds=bounds)
        net, stored = load_onnx(path)
        for start in (None, *starts):
            r = solve_milp(net, stored, "min", time_limit, solver=solver, threads=1,
                           mip_gap=mip_gap, start=start)
            row[start or "none"] = {
                "status": r.status, "time": r.time, "objective": r.objective, "bound": r.bound,
                "gap": r.gap, "nodes": r.nodes, "start_objective": r.start_objective,
                "start_time": r.start_time or 0.0, "discrepancy": r.discrepancy,
            }
    return row


def proven_optimum(job: dict[str, Any]) -> tuple[float, str] | None:
    """The minimum a suite record proved (``(objective, "formulation/solver")``), or ``None``."""
    for form, by_solver in sorted(job.get("milp", {}).items()):
        for solver, m in sorted(by_solver.items()):
            if isinstance(m, dict) and m.get("status") == "optimal":
                return float(m["objective"]), f"{form}/{solver}"
    return None


def start_quality(out: Path, key: str, job: dict[str, Any],
                  starts: tuple[str, ...]) -> dict[str, Any]:
    """Each start's value (no MILP: probes and local search on the network, float64) and cost,
    beside the suite's proven minimum of the network."""
    model, lo, hi = paper_job_network(out, key)
    row: dict[str, Any] = {"key": key, "optimum": None, "proved_by": None}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.onnx")
        export_onnx(model, path, (lo, hi), bounds="ibp")
        net, _ = load_onnx(path)
        for start in starts:
            pick = best_local_input if start == "local" else best_probe_input
            t0 = time.perf_counter()
            x, value = pick(net, "min")
            row[start] = {"value": value, "x": x.tolist(), "time": time.perf_counter() - t0}
    opt = proven_optimum(job)
    if opt is not None:
        row["optimum"], row["proved_by"] = opt
    return row


def quality_markdown(rows: list[dict[str, Any]], starts: tuple[str, ...], env: dict[str, Any],
                     cmd: str) -> str:
    head = "| network | proven minimum (by) | " + " | ".join(
        f"{s}: value, above the minimum, cost" for s in starts) + " |"
    lines = ["# MIP starts against the proven minima (no MILP solved here)", "",
             machine_line(env), f"Command: `python benchmarks/bench_mip_start.py {cmd}`.", "",
             head, "|---|---|" + "---|" * len(starts)]
    for r in rows:
        opt = r["optimum"]
        cells = [f"{r['key']}",
                 "–" if opt is None else f"{opt:.6g} ({r['proved_by']})"]
        for s in starts:
            v = r[s]["value"]
            above = "–" if opt is None else f"{v - opt:.2e}"
            cells.append(f"{v:.6g}, {above}, {r[s]['time']:.3f} s")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _total(s: dict[str, Any]) -> float:
    return float(s["time"]) + float(s.get("start_time") or 0.0)


def _ratio(base: dict[str, Any], net: dict[str, Any], with_start: bool) -> str:
    tb = _total(base) if with_start else float(base["time"])
    tn = _total(net) if with_start else float(net["time"])
    return fmt_bound(*ratio(tb, base["status"] != "optimal", tn, net["status"] != "optimal"))


def _cell(s: dict[str, Any], with_start: bool) -> str:
    t = _total(s) if with_start else float(s["time"])
    txt = f"{t:.3g} s" if s["status"] == "optimal" else f"≥ {t:.0f} s ({s['status']}"
    if s["status"] != "optimal":
        gap = s.get("gap")
        txt += f", gap {gap:.3g})" if gap is not None else ", no incumbent)"
    return txt


def markdown(rows: list[dict[str, Any]], jobs: dict[str, Any], what: str, env: dict[str, Any],
             cmd: str, wall: float, starts: tuple[str, ...] = ("probe",)) -> str:
    lines = [f"# MIP starts: {what}", "", machine_line(env),
             f"Command: `python benchmarks/bench_mip_start.py {cmd}`; wall {wall:.0f} s; load "
             f"average at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())}."]
    for start in starts:
        lines += ["", f"## Start `{start}`", "", *_start_table(rows, jobs, start)]
    return "\n".join(lines) + "\n"


def _start_table(rows: list[dict[str, Any]], jobs: dict[str, Any], start: str) -> list[str]:
    lines = ["| network | MSE ratio | no start | start (+ its cost) | start objective | "
             "final objective | effect of the start | speed-up, no start | speed-up, start "
             "on both sides |", "|---|---|---|---|---|---|---|---|---|"]
    here = {r["key"]: r for r in rows}
    for r in rows:
        base_key = _paper_base(r["key"])
        base = here.get(base_key) if base_key != r["key"] else None
        mse = jobs.get(r["key"], {}).get("test_mse")
        bmse = jobs.get(base_key, {}).get("test_mse")
        mr = "–" if base is None or not mse or not bmse else f"{mse / bmse:.3f}"
        n, p = r["none"], r[start]
        so = "–" if p["start_objective"] is None else f"{p['start_objective']:.5g}"
        fo = "–" if p["objective"] is None else f"{p['objective']:.5g}"
        effect = fmt_bound(*ratio(float(n["time"]), n["status"] != "optimal", _total(p),
                                  p["status"] != "optimal"))
        s0 = "–" if base is None else _ratio(base["none"], n, False)
        s1 = "–" if base is None else _ratio(base[start], p, True)
        lines.append(f"| {r['key']} | {mr} | {_cell(n, False)} | {_cell(p, True)} | {so} | "
                     f"{fo} | {effect} | {s0} | {s1} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder of a paper-suite run")
    ap.add_argument("--solver", default="highs", choices=("highs", "gurobi", "scip"))
    ap.add_argument("--formulation", default="ours", choices=("paper", "ours"))
    ap.add_argument("--keys", default=None, help="comma-separated networks (default: all)")
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per solve")
    ap.add_argument("--tag", default=None, help="suffix of the output files")
    ap.add_argument("--starts", default="probe",
                    help="comma-separated start modes to compare with no start: probe, local")
    ap.add_argument("--starts-only", action="store_true",
                    help="solve no MILP: each start's value beside the suite's proven minimum")
    args = ap.parse_args()
    starts = tuple(s.strip() for s in args.starts.split(",") if s.strip())
    bad = [s for s in starts if s not in ("probe", "local")]
    if bad or not starts:
        raise SystemExit(f"--starts takes probe and/or local, got {args.starts!r}")
    single_thread()
    out = Path(args.out)
    if not (out / "jobs").is_dir():
        raise SystemExit(f"{out}: no jobs/ folder; give the folder of a paper-suite run")
    jobs = {p.stem: json.loads(p.read_text()) for p in sorted((out / "jobs").glob("*.json"))}
    keys = [k.strip() for k in args.keys.split(",")] if args.keys else sorted(
        jobs, key=lambda k: (_paper_base(k), not k.endswith("-none-0"), k))
    missing = [k for k in keys if k not in jobs]
    if missing:
        raise SystemExit(f"no such networks in {out}: {', '.join(missing)}")
    env = environment()
    cmd = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                   for k, v in vars(args).items() if v is not None and v is not False)
    if args.starts_only:
        rows = []
        for key in keys:
            rows.append(start_quality(out, key, jobs[key], starts))
            log(f"{key}: minimum {rows[-1]['optimum']}; " + "; ".join(
                f"{s} {rows[-1][s]['value']:.6g} ({rows[-1][s]['time']:.3f} s)" for s in starts))
        stem = "mip_start_quality" + (f"_{args.tag}" if args.tag else "")
        write_json(out / f"{stem}.json", {"env": env, "args": vars(args), "rows": rows})
        write_text_atomic(out / f"{stem}.md", quality_markdown(rows, starts, env, cmd))
        log(f"wrote {out / (stem + '.md')}")
        return
    what = f"{args.formulation} MILP (min), {args.solver} one thread, {args.time_limit:g} s cap"
    log(machine_line(env) + f" Load average at start: {os.getloadavg()}.")
    log(f"{len(keys)} networks of {out}: {what}, without and with the start")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, key in enumerate(keys, 1):
        row = solve_both(out, key, args.formulation, args.solver, args.time_limit,
                         jobs[key].get("mip_gap"), starts)
        rows.append(row)
        log(f"[{i}/{len(keys)}] {key}: no start {_cell(row['none'], False)}; " + "; ".join(
            f"{s} {_cell(row[s], True)} (start {row[s]['start_objective']}, cost "
            f"{row[s]['start_time']:.2f} s)" for s in starts))
    wall = time.perf_counter() - t0
    stem = f"mip_start_{args.formulation}_{args.solver}" + (f"_{args.tag}" if args.tag else "")
    write_json(out / f"{stem}.json", {"env": env, "args": vars(args), "rows": rows,
                                      "wall_time": wall, "load_end": os.getloadavg()})
    write_text_atomic(out / f"{stem}.md", markdown(rows, jobs, what, env, cmd, wall, starts))
    log(f"wrote {out / (stem + '.md')}")


if __name__ == "__main__":
    main()
