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
from omlt_relax.tune import TuneConfig, run_tune

torch.set_num_threads(1)

TINY = TrainConfig(hidden=(8, 8), epochs=20, batch_size=64)
TINY_SUITE = dict(train=TrainConfig(hidden=(6, 6), epochs=3), time_limit=5, n_train=150, n_val=40,
                  n_test=100)
TINY_TUNE = dict(train=TrainConfig(hidden=(6, 6), epochs=4, batch_size=64), time_limit=5)


@pytest.fixture(scope="module")
def data():
    return sample_function(get_function("peaks"), 300, 80, 100, seed=1)


@pytest.fixture(scope="module")
def cluster():
    """One local Dask cluster of 2 single-threaded worker processes for the module."""
    with dask_client(None, jobs=2) as client:
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
    # one new trial, no second reference
    assert [s.split(":")[0] for s in lines] == ["trial 2"]
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
