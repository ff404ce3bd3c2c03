"""Budgeted training, Optuna tuning and the Dask runner, end to end on tiny settings (no mocks).

A real ``distributed.LocalCluster`` of 2 single-threaded worker processes runs a tiny benchmark
suite (one worker is killed mid-run) and a tiny study; the budget rule is checked on validation
data; a study resumes from its SQLite file; bad budgets, storage URLs and schedulers give one-line
errors.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from omlt_relax.bench.dask_runner import (
    Job,
    SchedulerUnreachableError,
    dask_client,
    run_jobs,
)
from omlt_relax.bench.data import sample_function
from omlt_relax.bench.functions import get_function
from omlt_relax.bench.suite import SuiteConfig, load_results, run_suite
from omlt_relax.budget import train_within_budget
from omlt_relax.cli import main
from omlt_relax.data import predict, rmse
from omlt_relax.export import load_onnx
from omlt_relax.train import TrainConfig, fit
from omlt_relax.tune import (
    TuneConfig,
    effective_seconds,
    hardness_key,
    open_study,
    pick_trial,
    remaining_gap,
    run_tune,
    seed_params,
    write_report,
)

TINY = TrainConfig(hidden=(8, 8), epochs=20, batch_size=64)
TINY_SUITE = dict(train=TrainConfig(hidden=(6, 6), epochs=3), time_limit=5, n_train=150, n_val=40,
                  n_test=100)
TINY_TUNE = dict(train=TrainConfig(hidden=(6, 6), epochs=4, batch_size=64), time_limit=5)


@pytest.fixture(scope="module")
def data():
    return sample_function(get_function("peaks"), 300, 80, 100, seed=1)


def _warm() -> int:
    """Import what the jobs import, once per worker (a cold worker spends seconds on imports)."""
    import omlt_relax.bench.paper
    import omlt_relax.bench.suite
    import omlt_relax.tune  # noqa: F401

    return os.getpid()


@pytest.fixture(scope="module")
def cluster():
    """One local Dask cluster of 2 single-threaded worker processes for the module, warmed up."""
    with dask_client(None, jobs=2) as client:
        client.wait_for_workers(2)
        client.run(_warm)
        yield client


# -- budget -----------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [1.0, 1.05, 1.3])
def test_budget_rule_never_returns_a_network_outside_the_budget(data, budget) -> None:
    ref = fit(data, "unregularized", 0.0, TINY)
    res = train_within_budget(data, budget, "bigm+stability", TINY, weight_min=1e-3,
                              weight_max=1e3, factor=8.0, stage_epochs=10, stage_lr=1e-2,
                              reference=ref)
    # recomputed independently on the returned float64 network
    val = rmse(predict(res.model, data.x_val), data.y_val)
    assert val <= budget * ref.val_rmse
    assert val == pytest.approx(res.val_rmse, rel=1e-12)
    assert res.model[0].weight.dtype == torch.float64
    # the ramp went past the budget somewhere, so the rule had something to refuse
    assert any(not s.within_budget for s in res.stages)
    chosen = [s for s in res.stages if s.chosen]
    assert len(chosen) == 1 and chosen[0].weight == res.weight
    assert all(s.within_budget == (s.ratio <= budget) for s in res.stages)
    assert "| weight | val RMSE |" in res.table()


def test_budget_below_one_is_refused(data, tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="budget must be a number >= 1"):
        train_within_budget(data, 0.9)
    with pytest.raises(ValueError, match="budget must be a number >= 1"):
        TuneConfig(budget=0.99)
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.column_stack([data.x_train, data.y_train]), delimiter=",",
               header="a,b,y", comments="")
    assert main(["train", str(csv), "--out", str(tmp_path / "n.onnx"), "--budget", "0.8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["omlt-relax train: error: --budget must be a number >= 1 (the validation "
                   "RMSE may grow to budget x the unregularized network's), got 0.8"]


def test_cli_train_budget_exports_the_chosen_network(data, tmp_path, capsys) -> None:
    csv = tmp_path / "d.csv"
    x = np.vstack([data.x_train, data.x_val])
    y = np.vstack([data.y_train, data.y_val])
    np.savetxt(csv, np.column_stack([x, y]), delimiter=",", header="a,b,y", comments="")
    out = tmp_path / "net.onnx"
    assert main(["train", str(csv), "--out", str(out), "--budget", "1.1", "--epochs", "15",
                 "--hidden", "6,6", "--stage-epochs", "3", "--ramp-factor", "10", "--bounds",
                 "crown", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "| weight | val RMSE | ratio | unstable | mean big-M |" in text
    rep = json.loads((tmp_path / "net.onnx.budget.json").read_text())
    assert rep["ratio"] <= 1.1
    net, nb = load_onnx(out)
    assert nb.method == "crown"


# -- Dask runner ------------------------------------------------------------------------------
def _half(x: float) -> float:
    if x < 0:
        msg = f"negative input {x}"
        raise ValueError(msg)
    return x / 2


def test_runner_streams_results_follow_ups_and_failures_inline() -> None:
    got: dict[str, float] = {}
    failed: list[str] = []

    def on_result(key: str, value: float) -> list[Job]:
        got[key] = value
        return [Job(f"{key}+", _half, (value,))] if not key.endswith("+") else []

    out = run_jobs(None, [Job("a", _half, (4.0,)), Job("b", _half, (-1.0,))], on_result,
                   lambda k, e: failed.append(k))
    assert got == {"a": 2.0, "a+": 1.0}
    assert failed == ["b"] and out[0].key == "b" and "negative input -1.0" in out[0].error


def _stamp(x: float) -> tuple[float, float]:
    time.sleep(x)
    return time.time() - x, time.time()


def test_runner_hands_out_the_highest_priority_first_here_and_on_the_cluster(cluster) -> None:
    order: list[str] = []

    def on_result(key: str, value: object) -> list[Job]:
        order.append(key)
        return [Job("urgent", _half, (1.0,), priority=100)] if key == "b" else []

    jobs = [Job("a", _half, (1.0,), priority=1), Job("b", _half, (1.0,), priority=5),
            Job("c", _half, (1.0,), priority=5), Job("d", _half, (1.0,))]
    run_jobs(None, jobs, on_result)
    assert order == ["b", "urgent", "c", "a", "d"]
    # on 2 workers, one job per free worker: longest first, the short ones fill in at the end
    starts: dict[str, float] = {}
    lengths = {"s1": 0.05, "l1": 0.6, "s2": 0.05, "m1": 0.3, "l2": 0.6, "m2": 0.3}
    run_jobs(cluster, [Job(k, _stamp, (v,), priority=v) for k, v in lengths.items()],
             lambda k, v: starts.__setitem__(k, v[0]), max_in_flight="workers")
    by_start = sorted(starts, key=starts.get)
    assert set(by_start[:2]) == {"l1", "l2"} and set(by_start[4:]) == {"s1", "s2"}
    with pytest.raises(ValueError, match="max_in_flight must be"):
        run_jobs(None, jobs, on_result, max_in_flight="all")


def test_suite_runs_the_baselines_first_then_the_longest_entries(tmp_path) -> None:
    from omlt_relax.bench.suite import estimated_seconds

    cfg = SuiteConfig(functions=["peaks", "himmelblau"], variants=["l1", "bigm"], **TINY_SUITE)
    assert estimated_seconds(cfg, "peaks", "stability") > estimated_seconds(cfg, "peaks", "l1")
    base = {"train_time": 2.0, "obbt_time": 1.0, "time_total": 3.0}
    assert estimated_seconds(cfg, "peaks", "stability", base) == pytest.approx(
        2.0 * 3.2 * 3 + 4.0)
    lines: list[str] = []
    run_suite(cfg, tmp_path, progress=False, log=lines.append)
    keys = [s.split(":")[0] for s in lines]
    assert set(keys[:2]) == {"peaks/unregularized", "himmelblau/unregularized"}
    # then longest first, by the estimate from each function's measured baseline
    entries = load_results(tmp_path)["entries"]
    est = [estimated_seconds(cfg, *k.split("/"), entries[k.split("/")[0] + "/unregularized"])
           for k in keys[2:]]
    assert len(est) == 4 and est == sorted(est, reverse=True)
    assert all(e["job_seconds"] >= e["train_time"] for e in entries.values())


def test_unreachable_scheduler_is_a_clear_error_within_seconds(capsys) -> None:
    t0 = time.perf_counter()
    with pytest.raises(SchedulerUnreachableError, match="cannot reach a Dask scheduler"):
        with dask_client("tcp://127.0.0.1:9", connect_timeout=1.0):
            pass
    assert main(["bench", "--functions", "peaks", "--variants", "unregularized", "--out",
                 "/nonexistent-never-written", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in err[0]


def test_bench_on_local_cluster_survives_a_killed_worker_and_resumes(cluster, tmp_path) -> None:
    cfg = SuiteConfig(functions=["peaks"], variants=["unregularized", "l1"], **TINY_SUITE)
    pids = cluster.run(os.getpid)
    result: dict[str, object] = {}
    lines: list[str] = []

    def go() -> None:
        result["res"] = run_suite(cfg, tmp_path, progress=False, log=lines.append,
                                  client=cluster)

    th = threading.Thread(target=go)
    th.start()
    killed = None
    t0 = time.perf_counter()
    while killed is None and time.perf_counter() - t0 < 60 and th.is_alive():
        busy = [w for w, tasks in cluster.processing().items() if tasks]
        if busy and busy[0] in pids:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed = busy[0]
        time.sleep(0.02)
    th.join(timeout=240)
    assert killed is not None, "no job was running to kill"
    res = result["res"]
    # the killed worker's job was retried elsewhere: every entry is there, none failed
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["entries"]) == {f"peaks/{v}" for v in cfg.variants}
    assert data["failed"] == {}
    assert res["entries"] == data["entries"]
    assert len(lines) == 2
    # a rerun resumes: nothing left to do
    lines.clear()
    again = run_suite(cfg, tmp_path, progress=False, log=lines.append, client=cluster)
    assert lines == [] and again["entries"] == data["entries"]
    cluster.wait_for_workers(2)  # the nanny restarted the killed worker: warm it for the next tests
    cluster.run(_warm)


def test_suite_records_a_failed_entry_and_the_rerun_retries_it(tmp_path) -> None:
    cfg = SuiteConfig(functions=["peaks"], variants=["unregularized", "bigm"], **TINY_SUITE)
    # a results file where the bigm entry failed earlier (as run_entries records it)
    run_suite(SuiteConfig(functions=["peaks"], variants=["unregularized"], **TINY_SUITE),
              tmp_path, progress=False)
    from omlt_relax.bench.results import update_entry

    update_entry(tmp_path / "results.json", "peaks/bigm", None, "KilledWorker: gone")
    assert "peaks/bigm" in load_results(tmp_path)["failed"]
    lines: list[str] = []
    res = run_suite(cfg, tmp_path, progress=False, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("peaks/bigm")
    assert set(res["entries"]) == {"peaks/unregularized", "peaks/bigm"}
    assert res["failed"] == {}


# -- tuning -----------------------------------------------------------------------------------
def test_tune_on_local_cluster_end_to_end(cluster, data, tmp_path) -> None:
    cfg = TuneConfig(budget=1.5, trials=3, **TINY_TUNE)
    res = run_tune(data, cfg, tmp_path, client=cluster, progress=False)
    study = res.study
    assert len(study.trials) == 3
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert "| trial | w big-M |" in (tmp_path / "pareto.md").read_text()
    assert res.picked is not None and res.picked.values[0] <= 1.5
    net, nb = load_onnx(res.onnx)
    assert nb.method == "lp"
    # the exported network is the picked trial's: same validation RMSE
    ref = study.user_attrs["reference"]["val_rmse"]
    assert res.picked.user_attrs["val_rmse"] / ref == pytest.approx(res.picked.values[0])
    # the MILP objective is the effective time: the raw time when solved, more when capped
    for t in study.trials:
        if t.state.name == "COMPLETE":
            a = t.user_attrs
            assert t.values[1] == a["milp_effective_seconds"]
            if a["solved_all"]:
                assert a["milp_effective_seconds"] == pytest.approx(a["milp_seconds"])
            else:
                assert a["milp_effective_seconds"] >= cfg.time_limit
    # the first trials were the suite's seeds
    assert [t.params for t in study.trials] == seed_params(cfg)[:3]


def test_study_resumes_from_sqlite_with_the_trials_already_done(data, tmp_path) -> None:
    lines: list[str] = []
    first = run_tune(data, TuneConfig(budget=2.0, trials=2, **TINY_TUNE), tmp_path,
                     progress=False, log=lines.append)
    done = [(t.number, t.params, t.values) for t in first.study.trials]
    assert (tmp_path / "study.db").is_file() and len(done) == 2
    lines.clear()
    second = run_tune(data, TuneConfig(budget=2.0, trials=3, **TINY_TUNE), tmp_path,
                      progress=False, log=lines.append)
    again = [(t.number, t.params, t.values) for t in second.study.trials]
    assert again[:2] == done and len(again) == 3
    # one new trial, no second reference; the seeds were queued once, not again on resume
    assert [s.split(":")[0] for s in lines] == ["trial 2"]
    assert second.study.trials[2].params == seed_params(second_cfg := TuneConfig(
        budget=2.0, trials=3, **TINY_TUNE))[2]
    assert len(second.study.trials) == 3 and len(seed_params(second_cfg)) > 3
    # other settings in the same study are refused
    with pytest.raises(ValueError, match="was run with other settings"):
        run_tune(data, TuneConfig(budget=2.0, trials=3, time_limit=9,
                                  train=TINY_TUNE["train"]), tmp_path, progress=False)


@pytest.mark.parametrize(
    ("url", "needle"),
    [("not-a-url", "is not a database URL"),
     ("nosuchdb://x/y", "cannot open the Optuna storage 'nosuchdb://x/y'"),
     ("sqlite:////nonexistent-dir/sub/study.db", "cannot open the Optuna storage")],
)
def test_bad_storage_url_is_a_clear_error(data, tmp_path, capsys, url, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        run_tune(data, TuneConfig(trials=1, **TINY_TUNE), tmp_path, storage=url,
                 progress=False)
    assert main(["tune", "--function", "peaks", "--out", str(tmp_path), "--storage", url,
                 "--trials", "1", "--epochs", "1", "--n-train", "50"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("omlt-relax tune: error: ") and needle in err[0]


def test_paper_suite_runs_on_the_dask_cluster_and_resumes(cluster, tmp_path) -> None:
    from omlt_relax.bench.paper import PaperConfig, run_paper

    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,),
                      variants=("none", "stable"), lambdas=(1e-2,), width=6, n_train=300,
                      n_val=100, n_test=100, epochs=2, time_limit=30, solvers=("highs",))
    lines: list[str] = []
    recs = run_paper(cfg, tmp_path, log=lines.append, progress=False, client=cluster)
    assert len(recs) == 2 and sum(s.endswith(": done") for s in lines) == 2
    assert json.loads((tmp_path / "failed.json").read_text()) == {}
    for r in recs:  # written here, from the workers' results
        assert (tmp_path / "models" / f"{r['key']}.pt").is_file()
        assert r["milp"]["ours"]["highs"]["status"] == "optimal"
    lines.clear()
    assert len(run_paper(cfg, tmp_path, log=lines.append, progress=False, client=cluster)) == 2
    assert not any(s.endswith(": done") for s in lines)
    # another formulation: the workers solve only it and keep the MILPs on record
    more = run_paper(replace(cfg, formulations=(*cfg.formulations, "stock")), tmp_path,
                     log=None, progress=False, client=cluster)
    before = {r["key"]: r["milp"] for r in recs}
    for r in more:
        assert {f: r["milp"][f] for f in before[r["key"]]} == before[r["key"]]
        stock = r["milp"]["stock"]["highs"]
        assert stock["status"] == "optimal" and stock["verify_err"] <= 1e-6  # forward pass


def test_paper_suite_fine_tunes_on_the_dask_cluster(cluster, tmp_path) -> None:
    """A fine-tuning waits for its unregularized network when both are in one run, starts from
    the stored one in a later run, and is skipped (not failed) when that network is missing."""
    from omlt_relax.bench.paper import PaperConfig, run_paper

    small = dict(functions=("peaks",), depths=(2,), width=6, n_train=300, n_val=100, n_test=100,
                 epochs=2, time_limit=30, solvers=("highs",), formulations=("ours",),
                 lambdas=(1e-2,))
    cfg = PaperConfig(seeds=(0,), variants=("none", "stable_ft"), **small)
    lines: list[str] = []
    recs = run_paper(cfg, tmp_path, log=lines.append, progress=False, client=cluster)
    assert sorted(r["job"]["variant"] for r in recs) == ["none", "stable_ft"]
    assert json.loads((tmp_path / "failed.json").read_text()) == {}
    for r in recs:  # optimal, and the optimum is the network's forward pass at the minimizer
        m = r["milp"]["ours"]["highs"]
        assert m["status"] == "optimal" and m["verify_err"] <= 1e-6
    later = run_paper(replace(cfg, lambdas=(2e-2,)), tmp_path, log=None, progress=False,
                      client=cluster)  # the stored unregularized network is sent along
    assert {r["job"]["lam"] for r in later if r["job"]["variant"] == "stable_ft"} == {2e-2}
    lines.clear()
    alone = run_paper(PaperConfig(seeds=(1,), variants=("stable_ft",), **small), tmp_path,
                      log=lines.append, progress=False, client=cluster)
    assert alone == [] and any("skipped: the unregularized network" in s for s in lines)
    assert json.loads((tmp_path / "failed.json").read_text()) == {}



def test_paper_suite_notes_a_refused_network_on_the_dask_cluster(cluster, tmp_path) -> None:
    """A network the real guard refuses on a worker is noted in ``refused/`` and kept, not
    listed as failed (nor retried); once it is allowed, a rerun measures it and drops the note."""
    import torch

    from omlt_relax.bench.paper import PaperConfig, run_paper

    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,), variants=("none",),
                      lambdas=(1e-2,), width=6, n_train=300, n_val=100, n_test=100, epochs=2,
                      time_limit=30, solvers=("highs",), formulations=("paper",))
    assert len(run_paper(cfg, tmp_path, log=None, progress=False, client=cluster)) == 1
    key = "peaks-d2-s0-none-0"
    mpath, jpath = tmp_path / "models" / f"{key}.pt", tmp_path / "jobs" / f"{key}.json"
    saved = torch.load(mpath, weights_only=False)
    out_w = [k for k in saved["state"] if k.endswith("weight")][-1]
    good = saved["state"][out_w].clone()
    saved["state"][out_w][0, 0] = 2.0**40  # a coefficient span above 1e12: the guard refuses
    torch.save(saved, mpath)
    jpath.unlink()  # measure the stored network again
    lines: list[str] = []
    assert run_paper(cfg, tmp_path, log=lines.append, progress=False, client=cluster) == []
    note = (tmp_path / "refused" / f"{key}.txt").read_text()
    assert note.startswith("NumericalRangeError: the MILP's coefficients span")
    assert json.loads((tmp_path / "failed.json").read_text()) == {}
    assert sum(": refused: NumericalRangeError" in s for s in lines) == 1
    assert not jpath.exists() and "## Refused networks" in (tmp_path / "paper.md").read_text()
    kept = torch.load(mpath, weights_only=False)["state"][out_w]
    assert float(kept[0, 0]) == 2.0**40  # the stored network was kept, not trained again
    saved["state"][out_w] = good
    torch.save(saved, mpath)
    recs = run_paper(cfg, tmp_path, log=None, progress=False, client=cluster)
    m = recs[0]["milp"]["paper"]["highs"]
    assert m["status"] == "optimal" and m["verify_err"] <= 1e-6  # forward pass at the minimizer
    assert not (tmp_path / "refused" / f"{key}.txt").exists()


# -- MILP hardness at the cap and the pick ------------------------------------------------------
def _solve(status: str, time_: float, objective: float | None = None,
           bound: float | None = None) -> dict[str, object]:
    return {"status": status, "time": time_, "objective": objective, "bound": bound}


def test_remaining_gap_is_the_open_fraction_of_the_root_gap() -> None:
    # min: incumbent 0, root LP bound -10; branch and bound proved -2: 20 % left open
    assert remaining_gap(_solve("feasible", 20, 0.0, -2.0), -10.0) == pytest.approx(0.2)
    # max: incumbent 5, root 9, bound 8: 75 % left open
    assert remaining_gap(_solve("feasible", 20, 5.0, 8.0), 9.0) == pytest.approx(0.75)
    assert remaining_gap(_solve("optimal", 3, 5.0, 5.0), 9.0) == 0.0
    assert remaining_gap(_solve("no_solution", 20, None, -2.0), -10.0) == 1.0
    assert remaining_gap(_solve("feasible", 20, 0.0, None), -10.0) == 1.0
    assert remaining_gap(_solve("feasible", 20, 0.0, -12.0), -10.0) == 1.0  # clipped
    assert remaining_gap(_solve("feasible", 20, 0.0, -1.0), float("-inf")) == 1.0


def test_capped_solves_are_ranked_by_the_gap_they_left_open() -> None:
    root_lp, cap = {"min": -10.0, "max": 10.0}, 20.0

    def eff(mn: dict[str, object], mx: dict[str, object]) -> float:
        return effective_seconds({"min": mn, "max": mx}, root_lp, cap)

    solved = eff(_solve("optimal", 19.9, 0.0, 0.0), _solve("optimal", 1.0, 5.0, 5.0))
    assert solved == pytest.approx(20.9)
    # min capped at 20 s with 10 % / 50 % of its root gap open; max solved in 1 s
    near = eff(_solve("feasible", 20.01, 0.0, -1.0), _solve("optimal", 1.0, 5.0, 5.0))
    far = eff(_solve("feasible", 20.01, 0.0, -5.0), _solve("optimal", 1.0, 5.0, 5.0))
    no_inc = eff(_solve("no_solution", 20.0), _solve("optimal", 1.0, 5.0, 5.0))
    both = eff(_solve("feasible", 20.0, 0.0, -1.0), _solve("feasible", 20.0, 5.0, 5.5))
    assert near == pytest.approx(20 * 1.1 + 1) and far == pytest.approx(20 * 1.5 + 1)
    assert no_inc == pytest.approx(41.0)
    assert solved < near < far < no_inc < both
    # remaining ties: fewer unstable neurons, then smaller root gap, then fewer nodes
    base = {"milp_effective_seconds": 40.0, "unstable_obbt": 50,
            "root_gap": {"min": 0.5, "max": 0.5}, "nodes": 100}
    order = [
        {**base, "milp_effective_seconds": 39.0, "unstable_obbt": 90},
        {**base, "unstable_obbt": 40, "nodes": 900},
        {**base, "root_gap": {"min": 0.1, "max": 0.2}},
        {**base, "nodes": 10},
        base,
        {**base, "root_gap": {"min": None, "max": 0.1}},
    ]
    assert sorted(order, key=hardness_key) == order


def _add(study, ratio: float, attrs: dict[str, object]) -> None:
    import optuna

    full = {"val_rmse_ratio": ratio, "val_rmse": ratio, "milp_seconds": 40.0,
            "solved_all": False, "unstable_obbt": 50, "unstable_crown": 55,
            "root_gap": {"min": 0.5, "max": 0.5}, "nodes": 100, "mean_bigm_obbt": 2.0,
            "test_rmse": 1.0, **attrs}
    dist = optuna.distributions
    study.add_trial(optuna.trial.create_trial(
        params={"bigm": 1e-3, "stability": 1e-4, "bounds": "ibp", "warmup": 0.0, "ramp": 0.0},
        distributions={"bigm": dist.FloatDistribution(1e-4, 3e-2, log=True),
                       "stability": dist.FloatDistribution(3e-5, 1e-2, log=True),
                       "bounds": dist.CategoricalDistribution(["ibp", "crown"]),
                       "warmup": dist.FloatDistribution(0, 0.5),
                       "ramp": dist.FloatDistribution(0, 0.5)},
        values=[ratio, full["milp_effective_seconds"]], user_attrs=full))


def test_pick_uses_the_hardness_key_and_never_leaves_the_budget(data, tmp_path) -> None:
    cfg = TuneConfig(budget=1.2, trials=8, seed_scales=(), **TINY_TUNE)
    study = open_study(cfg, data, f"sqlite:///{tmp_path / 'study.db'}", "pick")
    # every trial hit the cap: the raw time is 40 s for all of them
    _add(study, 1.05, {"milp_effective_seconds": 52.0})                        # 0
    _add(study, 1.30, {"milp_effective_seconds": 41.0})                        # 1: over budget
    _add(study, 1.15, {"milp_effective_seconds": 47.0, "unstable_obbt": 60})   # 2
    _add(study, 1.19, {"milp_effective_seconds": 47.0, "unstable_obbt": 45})   # 3: tie, fewer
    _add(study, 1.2000001, {"milp_effective_seconds": 40.5})                   # 4: just over
    t = pick_trial(study, "fastest-within-budget", cfg.budget)
    assert t.number == 3 and t.values[0] <= cfg.budget
    assert pick_trial(study, "most-accurate", cfg.budget).number == 0
    # the pick is in budget for every budget that admits a trial, and refused otherwise
    for budget in (1.0, 1.05, 1.1, 1.16, 1.2, 1.25, 1.3, 2.0):
        try:
            t = pick_trial(study, "fastest-within-budget", budget)
        except ValueError as err:
            assert budget < 1.05 and "no completed trial is within the budget" in str(err)
            continue
        assert t.values[0] <= budget
        within = [s for s in study.trials if s.values[0] <= budget]
        assert t.values[1] == min(s.values[1] for s in within)
    # the Pareto table shows the effective time and marks the pick
    text = write_report(study, cfg, tmp_path, "fastest-within-budget")
    assert "| effective s |" in text and "| 3 (picked) |" in text
    assert "T × (1 + g)" in text


def test_seeds_are_the_suite_candidates_inside_the_ranges() -> None:
    cfg = TuneConfig(seed_scales=(1e-2, 3e-3, 1e-1), **TINY_TUNE)
    seeds = seed_params(cfg)
    assert seeds[0]["bigm"] == cfg.bigm_range[1]  # 1e-1 clipped to the range
    assert {"bigm": 3e-3, "stability": pytest.approx(9e-4), "bounds": "ibp", "warmup": 0.0,
            "ramp": 0.0} in seeds
    for p in seeds:
        assert cfg.bigm_range[0] <= p["bigm"] <= cfg.bigm_range[1]
        assert cfg.stability_range[0] <= p["stability"] <= cfg.stability_range[1]
    with pytest.raises(ValueError, match="bigm range must satisfy"):
        TuneConfig(bigm_range=(1e-2, 1e-3))


@pytest.mark.parametrize(("args", "needle"), [
    (["--bigm-range", "1e-2,1e-3"], "bigm range must satisfy 0 < low <= high"),
    (["--stability-range", "1e-3"], "--stability-range takes two numbers LO,HI"),
    (["--seed-scales", "x"], "--seed-scales must be comma-separated numbers"),
])
def test_cli_tune_refuses_a_bad_search_space(tmp_path, capsys, args, needle) -> None:
    assert main(["tune", "--function", "peaks", "--out", str(tmp_path), "--trials", "1",
                 "--epochs", "1", "--n-train", "50", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "study.db").exists()
