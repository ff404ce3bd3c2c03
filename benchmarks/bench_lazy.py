"""Benchmark: lazy regularization (the penalty on every k-th step only, times k) on the paper's
protocol: does it train networks as accurate and as easy to solve, at what training cost?

The bound penalties of the paper suite do not depend on the batch, so
``RelaxationRegularizer(..., every=k)`` computes them on every k-th step with k times the weight
(Karras et al. 2020 do this for StyleGAN2's R1 term). ``benchmarks/bench_training.py`` shows the
cost per step; this script checks the networks. For each λ of ``--lambdas`` and each k of
``--every`` it trains one paper-suite variant (default ``stable_ftd``: the stable-neuron term on
IBP bounds, fine-tuning the suite's stored unregularized network of ``--out``) with
:func:`omlt_relax.bench.paper.train_paper` (``PaperConfig.penalty_every = k``), measures it as the
suite does (:func:`omlt_relax.bench.paper.measure_paper`: test MSE on the [0, 1] scale, unstable
neurons, MILPs verified by a forward pass) and prints, side by side, the training seconds, the
test MSE over the unregularized network's, unstable neurons and MILP times.

Run (after the paper suite trained ``none`` in ``--out``)::

    . .venv/bin/activate
    python benchmarks/bench_lazy.py --out runs/paper1800 --function peaks --depth 5 --seed 0 \\
        --variant stable_ftd --lambdas 3e-4,1e-3 --every 1,2 --time-limit 600

Results go to ``<out>/lazy/<variant>.json`` (one entry per λ and k, written as each finishes;
a re-run skips finished entries) and ``<out>/lazy/<variant>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from omlt_relax.bench.paper import (
    Job,
    PaperConfig,
    get_paper_variant,
    measure_paper,
    paper_data,
    train_paper,
    with_overrides,
)
from omlt_relax.bench.paper.run import environment
from omlt_relax.bench.report import machine_line
from omlt_relax.bench.results import write_json, write_text_atomic
from omlt_relax.threads import single_thread


def log(msg: str) -> None:
    print(msg, flush=True)


def _time(r: dict[str, Any] | None) -> str:
    if not r or r.get("status") == "unavailable":
        return "–"
    t = r.get("time")
    return f"{t:.3g}" if r.get("status") == "optimal" else f"≥{t:.4g}"


def table(entries: dict[str, dict[str, Any]], none_mse: float, solvers: list[str]) -> str:
    """Markdown rows: λ, k, training s, test MSE and its ratio, unstable, MILP times."""
    head = ("| λ | every k | train s | test MSE | × none | unstable IBP/OBBT | "
            + " | ".join(f"ours {s} s" for s in solvers) + " |")
    lines = [head, "|" + "---|" * (6 + len(solvers))]
    for e in sorted(entries.values(), key=lambda e: (e["lam"], e["every"])):
        milp = e["milp"].get("ours", {})
        lines.append(
            f"| {e['lam']:g} | {e['every']} | {e['train_time']:.0f} | {e['test_mse']:.3g} | "
            f"{e['test_mse'] / none_mse:.2f} | {e['unstable_ibp']}/{e.get('unstable_obbt', '–')} | "
            + " | ".join(_time(milp.get(s)) for s in solvers) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="paper-suite folder with the trained 'none'")
    ap.add_argument("--function", default="peaks")
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="stable_ftd")
    ap.add_argument("--lambdas", default="3e-4,1e-3")
    ap.add_argument("--every", default="1,2")
    ap.add_argument("--solvers", default="highs,gurobi")
    ap.add_argument("--time-limit", type=float, default=600.0)
    a = ap.parse_args(argv)
    single_thread()
    v = get_paper_variant(a.variant)
    if not v.regularized:
        raise SystemExit(f"{a.variant} has no penalty: nothing to make lazy")
    out = Path(a.out)
    solvers = a.solvers.split(",")
    cfg = PaperConfig(functions=(a.function,), depths=(a.depth,), seeds=(a.seed,),
                      variants=(a.variant,), time_limit=a.time_limit, solvers=tuple(solvers),
                      formulations=("ours",))
    base = Job(a.function, a.depth, a.seed, "none", 0.0)
    rec_path = out / "jobs" / f"{base.key}.json"
    model_path = out / "models" / f"{base.key}.pt"
    if not (rec_path.is_file() and model_path.is_file()):
        raise SystemExit(f"{out} has no trained {base.key} (run the paper suite's 'none' first)")
    saved = torch.load(model_path, weights_only=False)
    if saved.get("train_key") != cfg.train_key():
        raise SystemExit(f"{model_path} was trained with other settings: {saved.get('train_key')}")
    none_mse = float(json.loads(rec_path.read_text())["test_mse"])
    data = paper_data(a.function, a.seed, cfg.n_train, cfg.n_val, cfg.n_test)
    res_path = out / "lazy" / f"{a.variant}.json"
    res_path.parent.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, Any]] = (
        json.loads(res_path.read_text()) if res_path.is_file() else {}
    )
    for lam in (float(s) for s in a.lambdas.split(",")):
        for k in (int(s) for s in a.every.split(",")):
            key = f"{lam:g}/every{k}"
            if key in entries and entries[key].get("time_limit") == a.time_limit:
                log(f"{key}: done")
                continue
            log(f"{key}: training {a.variant} (penalty on every {k}. step, ×{k})")
            job = Job(a.function, a.depth, a.seed, a.variant, lam)
            trained = train_paper(job, with_overrides(cfg, penalty_every=k), data,
                                  init=saved["state"] if v.finetunes else None)
            meas = measure_paper(trained.model, data, cfg, lambda s: log(f"  {s}"))
            entries[key] = {"lam": lam, "every": k, "train_time": trained.train_time,
                            "best_epoch": trained.best_epoch, "time_limit": a.time_limit,
                            "load_avg": os.getloadavg()[0], "environment": environment(),
                            **meas}
            log(f"  trained in {trained.train_time:.0f} s, test MSE {meas['test_mse']:.3g} "
                f"({meas['test_mse'] / none_mse:.2f}× none)")
            write_json(res_path, entries)
    env = environment()
    md = (f"# Lazy regularization: {a.variant}, {a.function} depth {a.depth} seed {a.seed}\n\n"
          f"{machine_line(env)} Gurobi {env.get('gurobi')}.\n\n"
          f"Unregularized network ({base.key}): test MSE {none_mse:.3g}. "
          f"MILPs: our LP-OBBT big-M, minimization, one thread, {a.time_limit:g} s limit.\n\n"
          + table(entries, none_mse, solvers) + "\n\nCommand: `python benchmarks/bench_lazy.py "
          + " ".join(argv if argv is not None else sys.argv[1:]) + "`\n")
    write_text_atomic(res_path.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
