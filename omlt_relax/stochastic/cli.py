"""``omlt-relax cflp ...`` and ``omlt-relax bench --suite cflp``: the two-stage workflow from a
shell.

.. code-block:: text

    omlt-relax cflp data     --size 10x10 --seed 7 --n-decisions 5000 --out data/   # (x, xi, Q)
    omlt-relax cflp train    data/ --out net.onnx [--bigm W] [--stability W] [--lp-gap W]
    omlt-relax cflp solve    net.onnx [--lam 0.5] [--tail 15] [--json sol.json]   # first stage
    omlt-relax cflp evaluate net.onnx --x 0,0,0,1,1,1,0,1,0,1 [--saa]             # exact scoring
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from omlt_relax.files import write_text_atomic
from omlt_relax.threads import single_thread

OBJECTIVE_HELP = """\
Two-stage capacitated facility location: open facilities x in {0,1}^n now (fixed costs f),
serve random customer demand xi later (recourse cost Q(x, xi): assignment within capacity,
or a penalty per unserved customer). A quantile network q(x) learns K = 50 quantiles
(tau = 0.01..0.99) of Q(x, xi); the first stage minimizes

    (1 + lam) f'x + (1/K) sum_k q_k(x) + (lam/T) sum_{k > K-T} q_k(x)

i.e. f'x + E[Q] + lam * CVaR_{1-T/K}(f'x + Q), with the risk weight lam (--lam) and the tail
of T upper quantiles (--tail). Decisions are scored on held-out scenarios by exact
second-stage solves (HiGHS)."""

SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
SIDECAR = ".cflp.json"


def parse_size(text: str) -> tuple[int, int]:
    """``"25x25"`` → ``(25, 25)`` (facilities × customers)."""
    m = SIZE_RE.match(text)
    if not m:
        msg = f"--size must look like 10x10 (facilities x customers), got {text!r}"
        raise ValueError(msg)
    return int(m.group(1)), int(m.group(2))


def _hidden(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        vals = ()
    if not vals or any(v < 1 for v in vals):
        msg = f"--hidden must be comma-separated positive whole numbers, got {text!r}"
        raise ValueError(msg)
    return vals


def _decision(text: str, n: int) -> np.ndarray:
    try:
        vals = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        vals = []
    if len(vals) != n or any(v not in (0, 1) for v in vals):
        msg = f"--x must be {n} comma-separated 0/1 values (one per facility), got {text!r}"
        raise ValueError(msg)
    return np.array(vals, dtype=np.float64)


def _read_sidecar(onnx: str) -> dict[str, Any]:
    path = Path(onnx + SIDECAR)
    if not Path(onnx).is_file():
        msg = f"no ONNX file at {onnx}"
        raise FileNotFoundError(msg)
    if not path.is_file():
        msg = f"{path} not found: train the network with 'omlt-relax cflp train'"
        raise FileNotFoundError(msg)
    return json.loads(path.read_text())


def _instance_of(meta: dict[str, Any]) -> Any:
    from omlt_relax.stochastic import make_instance

    i = meta["instance"]
    return make_instance(i["n_facilities"], i["n_customers"], i["seed"])


def cmd_data(a: argparse.Namespace) -> int:
    from omlt_relax.stochastic import Sampling, generate_data, make_instance

    n, m = parse_size(a.size)
    inst = make_instance(n, m, a.seed)
    sampling = Sampling(n_decisions=a.n_decisions, scenarios_per_decision=a.scenarios_per_decision,
                        seed=a.sampling_seed, open_low=a.open_low, open_high=a.open_high)
    t0 = time.perf_counter()
    data = generate_data(inst, sampling, a.out, workers=a.workers, progress=not a.quiet)
    print(f"{inst.name}: {len(data.q)} rows (x, xi, Q) in {a.out} "
          f"(mean Q {data.q.mean():.1f}; {time.perf_counter() - t0:.0f} s)")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from omlt_relax import export_onnx
    from omlt_relax.stochastic import Penalties, TrainSettings, fit_quantile_net
    from omlt_relax.stochastic.data import load_data

    single_thread()
    data = load_data(a.data, workers=a.workers, progress=not a.quiet)
    settings = TrainSettings(hidden=_hidden(a.hidden), epochs=a.epochs, lr=a.lr, seed=a.seed)
    pen = Penalties(bigm=a.bigm, stability=a.stability, lp_gap=a.lp_gap)
    fit = fit_quantile_net(data.x, data.q, settings, pen, progress=not a.quiet)
    n = data.instance.n_facilities
    nb = export_onnx(fit.model, a.out, (np.zeros(n), np.ones(n)), bounds=a.bounds)
    meta = {
        "instance": data.instance.key(),
        "data": str(a.data),
        "settings": settings.to_dict(),
        "penalties": pen.__dict__,
        "val_pinball": fit.val_pinball,
        "test_pinball": fit.test_pinball,
        "train_time": fit.train_time,
        "unstable": nb.unstable_count(),
    }
    write_text_atomic(a.out + SIDECAR, json.dumps(meta, indent=1))
    print(f"wrote {a.out} ({a.bounds} bounds, {nb.unstable_count()} unstable neurons): test "
          f"pinball loss {fit.test_pinball:.2f}, {fit.train_time:.0f} s of training")
    return 0


def cmd_solve(a: argparse.Namespace) -> int:
    from omlt_relax.stochastic import RiskObjective, solve_first_stage

    inst = _instance_of(_read_sidecar(a.onnx))
    res = solve_first_stage(None, inst, RiskObjective(a.lam, a.tail), onnx_path=a.onnx,
                            formulation=a.formulation, time_limit=a.time_limit,
                            threads=a.threads)
    print(f"{inst.name}: {res.status} in {res.time:.2f} s, {res.nodes} nodes, "
          f"{res.binaries} network binaries")
    if res.x is None:
        print("no decision found (raise --time-limit)")
    else:
        print(f"x = {','.join(str(v) for v in res.x)}  objective {res.objective:.2f} "
              f"(forward pass {res.forward:.2f}), bound {res.bound:.2f}")
    if a.json:
        write_text_atomic(a.json, json.dumps({"instance": inst.key(), "lam": a.lam,
                                              "tail": a.tail, **res.to_dict()}, indent=1))
    return 0 if res.x is not None else 1


def cmd_evaluate(a: argparse.Namespace) -> int:
    from omlt_relax.stochastic import RiskObjective, evaluate_decision
    from omlt_relax.stochastic.evaluate import saa_optimum

    inst = _instance_of(_read_sidecar(a.onnx))
    if (a.x is None) == (a.solution is None):
        msg = "give the decision with exactly one of --x or --solution (a 'cflp solve --json' file)"
        raise ValueError(msg)
    if a.solution is not None:
        sol = json.loads(Path(a.solution).read_text())
        if sol.get("x") is None:
            msg = f"{a.solution} holds no decision"
            raise ValueError(msg)
        x = np.array(sol["x"], dtype=np.float64)
    else:
        x = _decision(a.x, inst.n_facilities)
    risk = RiskObjective(a.lam, a.tail)
    scen = inst.scenarios(a.scenarios, a.eval_seed)
    ev = evaluate_decision(inst, x, scen, risk, workers=a.workers, progress=not a.quiet)
    print(f"{inst.name}, x = {','.join(str(v) for v in ev.x)}, {ev.n_scenarios} held-out "
          f"scenarios (seed {a.eval_seed}):")
    print(f"  expected cost f'x + E[Q]     {ev.expected_cost:12.2f}")
    print(f"  CVaR_{ev.alpha:.2f}(Q)              {ev.cvar:12.2f}")
    print(f"  risk objective (lam={a.lam:g})     {ev.risk_objective:12.2f}")
    if a.saa:
        opt = saa_optimum(inst, scen, risk, a.cache, workers=a.workers, progress=not a.quiet)
        print(f"  exact SAA optimum {opt.objective:.2f} at x = {','.join(map(str, opt.x))} "
              f"(expected cost {opt.evaluation.expected_cost:.2f}; {opt.solved} of {opt.total} "
              f"decisions solved, the others bounded); gap {opt.gap(ev.risk_objective):.3%}")
    return 0


def cmd_bench_cflp(a: argparse.Namespace) -> int:
    """``omlt-relax bench --suite cflp`` (see :mod:`omlt_relax.stochastic.bench`)."""
    from omlt_relax.stochastic.bench import VARIANTS, CFLPBenchConfig, run_cflp_bench

    d = CFLPBenchConfig()
    names = [v.name for v in VARIANTS]
    variants = d.variants
    if a.variants not in (None, "all"):
        variants = tuple(s.strip() for s in a.variants.split(",") if s.strip())
        bad = [v for v in variants if v not in names]
        if bad:
            msg = f"unknown cflp variants {bad}; choose from {', '.join(names)}"
            raise ValueError(msg)
    sizes = tuple(parse_size(s) for s in a.sizes.split(",")) if a.sizes else d.sizes
    cfg = CFLPBenchConfig(
        sizes=sizes,
        instance_seed=d.instance_seed,
        hidden=_hidden(a.hidden) if a.hidden else d.hidden,
        n_decisions=a.n_decisions or d.n_decisions,
        scenarios_per_decision=(d.scenarios_per_decision if a.scenarios_per_decision is None
                                else a.scenarios_per_decision),
        epochs=a.epochs or d.epochs,
        train_seed=a.seed,
        snap_weights=a.snap_weights or d.snap_weights,
        tolerance=a.tolerance or d.tolerance,
        time_limit=a.time_limit or d.time_limit,
        eval_scenarios=a.eval_scenarios or d.eval_scenarios,
        workers=a.workers,
        variants=variants,
    )
    log = (lambda s: None) if a.quiet else (lambda s: print(s, flush=True))
    run_cflp_bench(a.out, cfg, log=log)
    print((Path(a.out) / "results.md").read_text())
    return 0


def add_bench_options(s: argparse.ArgumentParser) -> None:
    """The ``bench`` options only the ``cflp`` suite reads."""
    s.add_argument("--sizes", default=None,
                   help="cflp suite: instance sizes, e.g. 10x10,25x25 (default 10x10); scale "
                        "suite: network sizes DEPTHxWIDTH (default 2x100,3x100)%(default).0s")
    s.add_argument("--n-decisions", type=int, default=None,
                   help="cflp suite: training decisions per instance (default 8000)%(default).0s")
    s.add_argument("--scenarios-per-decision", type=int, default=None,
                   help="cflp suite: demand scenarios (labelled rows) per sampled decision "
                   "(default 1)%(default).0s")
    s.add_argument("--snap-weights", type=float, default=None,
                   help="cflp and scale suites: zero weights below this fraction of their "
                   "layer's largest before formulating (e.g. 1e-5; default: off)%(default).0s")
    s.add_argument("--eval-scenarios", type=int, default=None,
                   help="cflp suite: held-out scenarios (default 100)%(default).0s")
    s.add_argument("--workers", type=int, default=None,
                   help="cflp suite: second-stage worker processes "
                   "(default: all cores)%(default).0s")


def add_cflp_parser(sub: Any) -> None:
    """The ``cflp`` command group of ``omlt-relax``."""
    p = sub.add_parser("cflp", help="two-stage stochastic facility location with quantile networks",
                       description=OBJECTIVE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    cs = p.add_subparsers(dest="cflp_command", metavar="{data,train,solve,evaluate}",
                          parser_class=type(p))
    cs.required = True

    s = cs.add_parser("data", help="sample decisions and scenarios, label them by exact solves",
                      description=OBJECTIVE_HELP,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--size", default="10x10", help="facilities x customers")
    s.add_argument("--seed", type=int, default=7, help="instance seed (default 7)")
    s.add_argument("--n-decisions", type=int, default=5000, help="sampled decisions")
    s.add_argument("--scenarios-per-decision", type=int, default=1)
    s.add_argument("--sampling-seed", type=int, default=0)
    s.add_argument("--open-low", type=float, default=0.2, help="min opening probability")
    s.add_argument("--open-high", type=float, default=0.8, help="max opening probability")
    s.add_argument("--out", required=True, help="dataset directory (cached, resumable)")
    s.add_argument("--workers", type=int, default=None,
                   help="processes (default: all cores)%(default).0s")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_data)

    s = cs.add_parser("train", help="train a quantile network (pinball loss + penalties), export",
                      description=OBJECTIVE_HELP,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("data", help="dataset directory from 'cflp data'")
    s.add_argument("--out", required=True, help="ONNX file to write (and <out>.cflp.json)")
    s.add_argument("--hidden", default="100,100", help="hidden widths (default 100,100)")
    s.add_argument("--epochs", type=int, default=80)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--bigm", type=float, default=0.0, help="BigMPenalty weight")
    s.add_argument("--stability", type=float, default=0.0, help="StabilityPenalty weight")
    s.add_argument("--lp-gap", type=float, default=0.0, help="LPGapPenalty weight")
    s.add_argument("--bounds", choices=("lp", "crown", "ibp"), default="lp",
                   help="per-neuron bounds stored with the network (default lp)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    for name, func, helptext in (
        ("solve", cmd_solve, "first-stage MILP over the network (HiGHS)"),
        ("evaluate", cmd_evaluate, "score a decision by exact second-stage solves"),
    ):
        s = cs.add_parser(name, help=helptext, description=OBJECTIVE_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("onnx", help="network from 'cflp train' (its .cflp.json names the instance)")
        s.add_argument("--lam", type=float, default=0.5, help="risk weight lambda (default 0.5)")
        s.add_argument("--tail", type=int, default=15,
                       help="upper quantiles in the CVaR estimate (default 15 of 50)")
        s.set_defaults(func=func)
        if name == "solve":
            s.add_argument("--time-limit", type=float, default=300.0)
            s.add_argument("--threads", type=int, default=1)
            s.add_argument("--formulation", choices=("bigm", "partition", "omlt"), default="bigm")
            s.add_argument("--json", help="write the solution here")
        else:
            s.add_argument("--x", help="the decision, e.g. 0,0,0,1,1,1,0,1,0,1")
            s.add_argument("--solution", help="a 'cflp solve --json' file")
            s.add_argument("--scenarios", type=int, default=100, help="held-out scenarios")
            s.add_argument("--eval-seed", type=int, default=1_000_003)
            s.add_argument("--saa", action="store_true",
                           help="also the exact SAA optimum over all 2^n decisions (n <= 16)")
            s.add_argument("--cache", default="cflp_saa_cache", help="SAA table directory")
            s.add_argument("--workers", type=int, default=None)
            s.add_argument("--quiet", action="store_true")


__all__ = ["OBJECTIVE_HELP", "add_bench_options", "add_cflp_parser", "cmd_bench_cflp",
           "parse_size"]
