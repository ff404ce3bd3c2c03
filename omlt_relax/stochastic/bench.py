"""The ``cflp`` benchmark suite: unregularized vs relaxation-informed quantile networks.

For each instance size: generate (or load) the data, train an unregularized quantile network and,
per regularized variant, the largest weight on its grid whose validation pinball loss is within
``tolerance`` × the unregularized one (searched from the largest weight down; if none qualifies the
smallest is kept and flagged), solve the first-stage MILP of each selected network (HiGHS, one
thread, time limit), score its decision on held-out scenarios by exact second-stage solves and, for
instances with at most :data:`~omlt_relax.stochastic.evaluate.MAX_ENUMERATION` facilities, against
the exact SAA optimum over all :math:`2^n` decisions.

A first-stage MILP the numeric guard (:func:`~omlt_relax.guards.check_model_numerics`) refuses
is recorded as ``refused`` with the guard's message (the network's own optimum by enumeration is
still reported), not raised.

Everything is cached under ``out_dir`` (data chunks, trained networks, SAA table) and the results
JSON is rewritten after every step, so an interrupted run resumes where it stopped.
``omlt-relax bench --suite cflp`` runs it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omlt_relax.bench.results import write_json
from omlt_relax.files import save_torch_atomic, write_text_atomic
from omlt_relax.guards import NumericalRangeError
from omlt_relax.stochastic.data import Sampling, generate_data
from omlt_relax.stochastic.evaluate import (
    EVAL_SEED,
    MAX_ENUMERATION,
    all_decisions,
    evaluate_decision,
    saa_optimum,
)
from omlt_relax.stochastic.first_stage import (
    RiskObjective,
    search_decision,
    solve_first_stage,
    surrogate_objective,
)
from omlt_relax.stochastic.instance import check_whole, make_instance
from omlt_relax.stochastic.quantile_net import (
    Penalties,
    TrainSettings,
    build_quantile_net,
    fit_quantile_net,
    snap_change_bound,
    snap_negligible_weights,
)
from omlt_relax.threads import single_thread


@dataclass(frozen=True)
class BenchVariant:
    """A way of training: the penalties at scale ``s`` are ``Penalties(bigm=b·s, stability=st·s,
    lp_gap=g·s)``."""

    name: str
    description: str
    bigm: float = 0.0
    stability: float = 0.0
    lp_gap: float = 0.0
    grid: tuple[float, ...] = (0.0,)

    def penalties(self, scale: float) -> Penalties:
        return Penalties(bigm=self.bigm * scale, stability=self.stability * scale,
                         lp_gap=self.lp_gap * scale)


VARIANTS: tuple[BenchVariant, ...] = (
    BenchVariant("unregularized", "pinball loss only"),
    BenchVariant("bounds", "big-M (IBP) + stability (CROWN triangle)", bigm=1.0, stability=1.0,
                 grid=(1e-1, 3e-2, 1e-2, 3e-3)),
    BenchVariant("lp_gap", "LP-gap penalty (total derivative)", lp_gap=1.0,
                 grid=(1e-3, 3e-4, 1e-4, 3e-5)),
    BenchVariant("combined", "big-M + stability + LP gap", bigm=1.0, stability=1.0, lp_gap=1e-2,
                 grid=(1e-1, 3e-2, 1e-2, 3e-3)),
)


@dataclass(frozen=True)
class CFLPBenchConfig:
    """Settings of one run of the suite (all go into the results file).

    ``n_decisions`` sampled decisions with ``scenarios_per_decision`` demand scenarios each
    (:class:`~omlt_relax.stochastic.data.Sampling`): ``n_decisions · scenarios_per_decision``
    labelled rows, every one an exact second-stage solve. ``snap_weights`` > 0: before the
    first stage, weights below this fraction of their layer's largest are zeroed
    (:func:`~omlt_relax.stochastic.quantile_net.snap_negligible_weights`; the largest change of
    the surrogate objective is recorded) and the MILP and the network's own optimum use the
    snapped network; 0 (default) keeps the network as trained. ``train_seed``: the seed of the
    train/validation/test split and of the initial weights (``TrainSettings.seed``).
    """

    sizes: tuple[tuple[int, int], ...] = ((10, 10),)
    instance_seed: int = 7
    hidden: tuple[int, ...] = (100, 100)
    n_decisions: int = 8000
    scenarios_per_decision: int = 1
    epochs: int = 80
    train_seed: int = 0
    snap_weights: float = 0.0
    tolerance: float = 1.1
    time_limit: float = 300.0
    lam: float = 0.5
    tail: int = 15
    eval_scenarios: int = 100
    eval_seed: int = EVAL_SEED
    workers: int | None = None
    variants: tuple[str, ...] = tuple(v.name for v in VARIANTS)

    def __post_init__(self) -> None:
        for name in ("n_decisions", "scenarios_per_decision", "epochs", "eval_scenarios"):
            check_whole(name, getattr(self, name))
        check_whole("train_seed", self.train_seed, 0)
        if not (math.isfinite(self.snap_weights) and 0 <= self.snap_weights < 1):
            msg = f"snap_weights must be in [0, 1), got {self.snap_weights!r}"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sizes"] = [list(s) for s in self.sizes]
        d["hidden"] = list(self.hidden)
        d["variants"] = list(self.variants)
        return d

    def same_as(self, stored: dict[str, Any]) -> bool:
        """Whether a stored ``config`` dict describes this configuration.

        A setting missing from ``stored`` (written before the setting existed) counts as its
        default, so results of older runs still resume.
        """
        now = json.loads(json.dumps(self.to_dict()))
        defaults = json.loads(json.dumps(CFLPBenchConfig().to_dict()))
        return set(stored) <= set(now) and all(
            stored.get(k, defaults[k]) == v for k, v in now.items()
        )


@dataclass
class _Results:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        write_json(self.path, self.data)


def _train_cached(
    path: Path, x: np.ndarray, y: np.ndarray, settings: TrainSettings, pen: Penalties, log: Any
) -> dict[str, Any]:
    """Train (or load from ``path``) one network; returns its record (and keeps the model)."""
    meta_path = path.with_suffix(".json")
    key = {"settings": settings.to_dict(), "penalties": asdict(pen)}
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == json.loads(json.dumps(key)):
            model = build_quantile_net(x.shape[1], settings.hidden, settings.n_quantiles).double()
            model.load_state_dict(torch.load(path, weights_only=True))
            return {**meta["record"], "model": model.eval()}
    fit = fit_quantile_net(x, y, settings, pen)
    rec = {
        "penalties": asdict(pen),
        "val_pinball": fit.val_pinball,
        "test_pinball": fit.test_pinball,
        "train_time": fit.train_time,
        "final": fit.history[-1],
    }
    save_torch_atomic(fit.model.state_dict(), path)  # the network first: its record names it
    write_json(meta_path, {"key": key, "record": rec})
    log(f"  trained {path.stem}: val pinball {fit.val_pinball:.2f}, test {fit.test_pinball:.2f}, "
        f"{fit.train_time:.0f} s")
    return {**rec, "model": fit.model}


def run_cflp_bench(
    out_dir: str | os.PathLike[str], config: CFLPBenchConfig | None = None, log: Any = print
) -> dict[str, Any]:
    """Run (or resume) the suite; writes ``results.json`` and ``results.md`` in ``out_dir``."""
    cfg = config or CFLPBenchConfig()
    single_thread()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = _Results(out / "results.json")
    if res.path.is_file():
        res.data = json.loads(res.path.read_text())
        if not cfg.same_as(res.data.get("config", {})):
            msg = (
                f"{res.path} holds results of another configuration; use another output "
                "directory or delete it"
            )
            raise ValueError(msg)
    res.data["config"] = cfg.to_dict()
    res.data.setdefault("machine", machine())
    res.data.setdefault("instances", {})
    risk = RiskObjective(cfg.lam, cfg.tail)
    variants = {v.name: v for v in VARIANTS}
    unknown = [v for v in cfg.variants if v not in variants]
    if unknown:
        msg = f"unknown cflp variants {unknown}; known: {', '.join(variants)}"
        raise ValueError(msg)
    for n, m in cfg.sizes:
        inst = make_instance(n, m, cfg.instance_seed)
        rec = res.data["instances"].setdefault(inst.name, {"networks": {}})
        log(f"[{inst.name}] data")
        t0 = time.perf_counter()
        sampling = Sampling(n_decisions=cfg.n_decisions,
                            scenarios_per_decision=cfg.scenarios_per_decision)
        data = generate_data(inst, sampling, out / "data" / inst.name, workers=cfg.workers)
        rec.setdefault("data_time", time.perf_counter() - t0)
        rec["n_rows"] = len(data.q)
        res.save()
        settings = TrainSettings(hidden=cfg.hidden, epochs=cfg.epochs, seed=cfg.train_seed)
        models_dir = out / "models" / inst.name
        models_dir.mkdir(parents=True, exist_ok=True)
        scenarios = inst.scenarios(cfg.eval_scenarios, cfg.eval_seed)
        base = _train_cached(models_dir / "unregularized.pt", data.x, data.q, settings,
                             Penalties(), log)
        for name in cfg.variants:
            v = variants[name]
            net = rec["networks"].get(name, {})
            if "milp" in net and "evaluation" in net:
                continue
            if name == "unregularized":
                chosen, tried = base, []
                net.update({"scale": 0.0, "within_tolerance": True})
            else:
                tried, chosen = [], None
                for s in sorted(v.grid, reverse=True):
                    r = _train_cached(models_dir / f"{name}_{s:g}.pt", data.x, data.q, settings,
                                      v.penalties(s), log)
                    ok = r["val_pinball"] <= cfg.tolerance * base["val_pinball"]
                    tried.append({"scale": s, "val_pinball": r["val_pinball"],
                                  "test_pinball": r["test_pinball"], "within": ok})
                    chosen = r
                    if ok:
                        break
                net.update({"scale": tried[-1]["scale"], "within_tolerance": tried[-1]["within"]})
            net.update({
                "description": v.description,
                "tried": tried,
                "val_pinball": chosen["val_pinball"],
                "test_pinball": chosen["test_pinball"],
                "train_time": chosen["train_time"],
            })
            rec["networks"][name] = net
            res.save()
            model = _snapped(chosen["model"], cfg, inst, risk, net)
            log(f"[{inst.name}] {name}: first-stage MILP (time limit {cfg.time_limit:g} s)")
            try:
                fs = solve_first_stage(model, inst, risk, time_limit=cfg.time_limit)
            except NumericalRangeError as e:
                # the guard refuses a MILP a solver cannot handle reliably: a result, not a crash
                net["milp"] = {"status": "refused", "reason": str(e), "x": None}
                net["evaluation"] = None
                res.save()
                log(f"  refused: {e}")
                continue
            net["milp"] = fs.to_dict()
            res.save()
            log(f"  {fs.status}, {fs.time:.1f} s, {fs.nodes} nodes, gap {fs.gap}, "
                f"{fs.binaries} binaries, x={fs.x}")
            if fs.x is not None:
                ev = evaluate_decision(inst, np.array(fs.x, float), scenarios, risk,
                                       workers=cfg.workers)
                net["evaluation"] = ev.to_dict()
            else:
                net["evaluation"] = None
            res.save()
            write_markdown(res.data, out / "results.md")
        _enumerated_decisions(rec, inst, risk, scenarios, models_dir, data, settings, cfg,
                              base, log)
        res.save()
        if n > MAX_ENUMERATION:
            _best_known(rec)
            res.save()
        else:
            log(f"[{inst.name}] exact SAA optimum over all {2 ** n} decisions")
            opt = saa_optimum(inst, scenarios, risk, out / "saa_optimum" / inst.name,
                              workers=cfg.workers)
            rec["saa_optimum"] = opt.to_dict()
            _set_gaps(rec, opt.gap)
            res.save()
        write_markdown(res.data, out / "results.md")
    return res.data


def _snapped(model: Any, cfg: CFLPBenchConfig, inst: Any, risk: RiskObjective,
             net: dict[str, Any] | None = None) -> Any:
    """``model`` with negligible weights zeroed if ``cfg.snap_weights``; the count and the
    objective's change (sampled and certified) are recorded in ``net`` if given."""
    if not cfg.snap_weights:
        return model
    snapped, count = snap_negligible_weights(model, cfg.snap_weights)
    if net is None:
        return snapped
    if inst.n_facilities <= MAX_ENUMERATION:
        xs = all_decisions(inst.n_facilities)
    else:
        xs = (np.random.default_rng(0).random((1024, inst.n_facilities)) < 0.5).astype(float)
    change = np.abs(surrogate_objective(snapped, inst, xs, risk)
                    - surrogate_objective(model, inst, xs, risk)).max()
    # certified over the whole box [0, 1]^n: the objective is linear in q with weights >= 0
    e = snap_change_bound(model, snapped, np.zeros(inst.n_facilities), np.ones(inst.n_facilities))
    bound = risk.of_quantiles(np.zeros(1), e)[0]
    net["snapped"] = {"weights_zeroed": count, "max_objective_change": float(change),
                      "objective_change_bound": float(np.nextafter(bound * (1 + 1e-9), np.inf))}
    return snapped


def _enumerated_decisions(
    rec: dict[str, Any], inst: Any, risk: RiskObjective, scenarios: np.ndarray, models_dir: Path,
    data: Any, settings: TrainSettings, cfg: CFLPBenchConfig, base: dict[str, Any], log: Any,
) -> None:
    r"""Each network's own optimum by forward passes, scored on the held-out scenarios.

    Over all :math:`2^n` decisions when :math:`n \le` ``MAX_ENUMERATION``; above that, the best
    local optimum of :func:`~omlt_relax.stochastic.first_stage.search_decision` (256 starts,
    single flips; a heuristic, recorded as ``own_optimum_method``). What the first-stage MILP
    returns given enough time; it tells a network's accuracy apart from its MILP's speed when the
    MILP stops at its limit.
    """
    enumerate_all = inst.n_facilities <= MAX_ENUMERATION
    xs = all_decisions(inst.n_facilities) if enumerate_all else None
    variants = {v.name: v for v in VARIANTS}
    for name, net in rec["networks"].items():
        if "enumerated_x" in net:
            continue
        if name == "unregularized":
            model = base["model"]
        else:
            s = net["scale"]
            model = _train_cached(models_dir / f"{name}_{s:g}.pt", data.x, data.q, settings,
                                  variants[name].penalties(s), log)["model"]
        model = _snapped(model, cfg, inst, risk)
        if enumerate_all:
            obj = surrogate_objective(model, inst, xs, risk)
            x, best = xs[int(np.argmin(obj))], float(obj.min())
            net["own_optimum_method"] = f"enumeration of all {2 ** inst.n_facilities}"
        else:
            x, best = search_decision(model, inst, risk)
            net["own_optimum_method"] = "local search (256 starts, single flips)"
        net["enumerated_x"] = [int(v) for v in x]
        net["enumerated_objective"] = best
        milp_x = (net.get("milp") or {}).get("x")
        if milp_x is not None and list(milp_x) == net["enumerated_x"] and net.get("evaluation"):
            net["enumerated_evaluation"] = net["evaluation"]
        else:
            net["enumerated_evaluation"] = evaluate_decision(
                inst, x, scenarios, risk, workers=cfg.workers
            ).to_dict()


def _best_known(rec: dict[str, Any]) -> None:
    """Without an exact SAA optimum (too many decisions to enumerate): each decision's relative
    gap to the best held-out risk objective among all decisions evaluated for the instance."""
    evs = [ev for net in rec["networks"].values()
           for ev in (net.get("evaluation"), net.get("enumerated_evaluation")) if ev]
    if not evs:
        return
    best = min(ev["risk_objective"] for ev in evs)
    rec["best_known"] = best
    _set_gaps(rec, lambda v: (v - best) / abs(best))


def _set_gaps(rec: dict[str, Any], gap: Callable[[float], float]) -> None:
    """Each evaluated decision's gap (``saa_gap``, ``enumerated_saa_gap``) from its held-out
    risk objective."""
    for net in rec["networks"].values():
        for what, key in (("evaluation", "saa_gap"), ("enumerated_evaluation",
                                                     "enumerated_saa_gap")):
            if net.get(what) is not None:
                net[key] = gap(net[what]["risk_objective"])


def machine() -> dict[str, Any]:
    """Where the numbers come from."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        highs = version("highspy")
    except PackageNotFoundError:  # pragma: no cover - highspy is a dependency
        highs = "?"
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "highspy": highs,
        "solver": "HiGHS via Pyomo (first stage, 1 thread); highspy direct (second stage, "
        "1 thread)",
    }


def _fmt(v: Any, spec: str = ".1f", none: str = "-") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def write_markdown(data: dict[str, Any], path: str | os.PathLike[str]) -> str:
    """The results as a markdown table (also written to ``path``).

    Speed-up: the unregularized network's first-stage MILP time over this network's (``≥`` when
    the unregularized MILP stopped at its time limit). SAA gap: relative gap of the decision's
    held-out risk objective to the exact SAA optimum on the same scenarios (on instances too
    large to enumerate: to the best held-out risk objective among the decisions evaluated).
    "Net optimum": the network's own best decision by forward passes over all :math:`2^n` (what
    its MILP would return with unlimited time; by multi-start local search above
    ``MAX_ENUMERATION`` facilities), and its SAA gap.
    """
    cfg = data["config"]
    lines = [
        f"CFLP suite: hidden {cfg['hidden']}, {cfg['n_decisions']} training decisions × "
        f"{cfg.get('scenarios_per_decision', 1)} scenarios, {cfg['epochs']} epochs, "
        f"lambda={cfg['lam']}, tail {cfg['tail']} of 50, MILP limit {cfg['time_limit']:g} s, "
        f"{cfg['eval_scenarios']} held-out scenarios, training seed {cfg.get('train_seed', 0)}"
        + (f", weights < {cfg['snap_weights']:g} × layer max zeroed before the first stage"
           if cfg.get("snap_weights") else ""),
        "",
        "| instance | network | scale | test pinball (×unreg) | MILP time [s] | speed-up | nodes "
        "| gap at limit | binaries | MILP x | held-out risk obj. | expected cost | SAA gap "
        "| net optimum x | its SAA gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for iname, rec in data["instances"].items():
        nets = rec["networks"]
        base = nets.get("unregularized", {})
        base_milp = base.get("milp") or {}
        for name, net in nets.items():
            milp = net.get("milp") or {}
            ev = net.get("evaluation") or {}
            t = milp.get("time")
            tt = ("≥" if milp.get("status") != "optimal" else "") + _fmt(t) if t else "-"
            if milp.get("status") == "refused":
                tt = "refused (coefficient range)"
            speed = "-"
            if name != "unregularized" and t and base_milp.get("time"):
                if milp.get("status") == "optimal":
                    lower = base_milp.get("status") != "optimal"
                    speed = ("≥" if lower else "") + f"{base_milp['time'] / t:.0f}×"
            ratio = ""
            if base.get("test_pinball"):
                ratio = f" ({net['test_pinball'] / base['test_pinball']:.2f})"
            flag = "" if net.get("within_tolerance", True) else " (outside tolerance)"
            x, ex = milp.get("x"), net.get("enumerated_x")
            lines.append(
                f"| {iname} | {name}{flag} | {net.get('scale', 0):g} | "
                f"{_fmt(net.get('test_pinball'))}{ratio} | {tt} | {speed} | "
                f"{_fmt(milp.get('nodes'), 'd')} | {_fmt(milp.get('gap'), '.3f')} | "
                f"{_fmt(milp.get('binaries'), 'd')} | {''.join(map(str, x)) if x else 'none'} | "
                f"{_fmt(ev.get('risk_objective'))} | {_fmt(ev.get('expected_cost'))} | "
                f"{_fmt(net.get('saa_gap'), '.2%')} | {''.join(map(str, ex)) if ex else '-'} | "
                f"{_fmt(net.get('enumerated_saa_gap'), '.2%')} |"
            )
        if "best_known" in rec:
            lines.append(
                f"| {iname} | best held-out risk objective of the decisions above (SAA gaps of "
                f"this instance are to it: too many decisions to enumerate) | | | | | | | | | "
                f"{rec['best_known']:.1f} | | 0 | | |"
            )
        if "saa_optimum" in rec:
            o = rec["saa_optimum"]
            lines.append(
                f"| {iname} | exact SAA optimum ({o['solved']} of {o['total']} decisions solved) "
                f"| | | | | | | | {''.join(map(str, o['x']))} | {o['objective']:.1f} | "
                f"{o['evaluation']['expected_cost']:.1f} | 0 | | |"
            )
    snaps = [(iname, name, net["snapped"]) for iname, rec in data["instances"].items()
             for name, net in rec["networks"].items() if net.get("snapped")]
    if snaps:
        lines += ["", "Snapped weights (the MILP is exact for the snapped network; the change of "
                  "the surrogate objective is certified over the whole box [0, 1]^n):", ""]
        for iname, name, sn in snaps:
            bound = sn.get("objective_change_bound")
            lines.append(
                f"* {iname} {name}: {sn['weights_zeroed']} weights zeroed, objective change "
                + (f"≤ {bound:.3g} (certified), " if bound is not None else "")
                + f"{sn['max_objective_change']:.3g} at most over the decisions sampled"
            )
    text = "\n".join(lines) + "\n"
    write_text_atomic(path, text)
    return text


__all__ = ["VARIANTS", "BenchVariant", "CFLPBenchConfig", "run_cflp_bench", "write_markdown"]
