"""The paper-protocol suite: data, networks, regularizers as the paper defines them, a tiny run."""

from __future__ import annotations

import json
import math
import os
import sys
from itertools import pairwise

import numpy as np
import pytest
import torch
from conftest import load_script
from torch import nn

from omlt_relax import interval_bounds
from omlt_relax.bench.paper import (
    PAPER_FUNCTIONS,
    PAPER_VARIANTS,
    Job,
    PaperConfig,
    PaperRegularizer,
    checkpoint_from,
    jobs_of,
    latin_hypercube,
    paper_data,
    paper_network,
    run_paper,
    schedule_factor,
)
from omlt_relax.bench.paper.report import (
    coverage,
    coverage_table,
    dominance,
    dominance_table,
    markdown_report,
    summarize,
)
from omlt_relax.bench.paper.training import epochs_of
from omlt_relax.cli import main

TOL = 1e-6


def test_latin_hypercube_has_one_point_per_stratum() -> None:
    x = latin_hypercube(50, [-2.0, -5.0], [2.0, 5.0], seed=3)
    assert x.shape == (50, 2)
    for j, (lo, hi) in enumerate(((-2.0, 2.0), (-5.0, 5.0))):
        strata = np.floor((x[:, j] - lo) / (hi - lo) * 50).astype(int)
        assert sorted(strata.tolist()) == list(range(50))
    assert np.array_equal(x, latin_hypercube(50, [-2.0, -5.0], [2.0, 5.0], seed=3))


def test_paper_data_scales_targets_with_the_training_split() -> None:
    d = paper_data("peaks", 0, 400, 100, 100)
    assert d.y_train.min() == 0.0 and d.y_train.max() == 1.0
    fn = PAPER_FUNCTIONS["peaks"]
    back = d.y_min + (d.y_max - d.y_min) * d.y_test
    np.testing.assert_allclose(back, fn(d.x_test)[:, None], rtol=1e-12, atol=1e-12)
    assert np.all(d.x_train >= -2.0) and np.all(d.x_train <= 2.0)
    # three different seeds for the three splits
    assert not np.allclose(d.x_train[:100], d.x_val)


def test_paper_functions_minima_on_their_domains() -> None:
    for name, fn in PAPER_FUNCTIONS.items():
        lo, hi = fn.box
        g = np.linspace(0, 1, 801)
        xx, yy = np.meshgrid(lo[0] + (hi[0] - lo[0]) * g, lo[1] + (hi[1] - lo[1]) * g)
        vals = fn(np.column_stack([xx.ravel(), yy.ravel()]))
        assert vals.min() >= fn.f_min - 1e-9, name
        assert vals.min() <= fn.f_min + 1e-2 * fn.f_range, name
        assert float(fn(np.asarray(fn.x_min))[0]) == pytest.approx(fn.f_min, abs=1e-5)


def test_network_has_the_paper_initialization() -> None:
    net = paper_network(2, 3, 25, seed=1)
    lins = [m for m in net if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in lins] == [25, 25, 25, 1]
    assert all(float(lin.bias.detach().abs().max()) == 0.0 for lin in lins)
    torch.manual_seed(0)
    big = paper_network(2, 1, 4000, seed=2).requires_grad_(False)
    # Kaiming normal (fan-in 2, ReLU gain): std sqrt(2/2) = 1; Xavier normal output: sqrt(2/4001)
    assert float(big[0].weight.std()) == pytest.approx(1.0, rel=0.05)
    assert float(big[2].weight.std()) == pytest.approx(math.sqrt(2 / 4001), rel=0.1)


@pytest.mark.parametrize(
    "variant",
    ["width", "stable", "stable_crown", "l1", "l2", "width_d", "stable_d", "width_stable_d",
     "width_stable_ftd"],
)
def test_regularizers_equal_the_papers_definitions(variant: str) -> None:
    """R(θ) against the paper's formulas, written out here with torch bounds, value and gradient."""
    torch.manual_seed(0)
    net = paper_network(2, 3, 25, seed=4)
    box = (np.array([-2.0, -2.0]), np.array([2.0, 2.0]))
    v = PAPER_VARIANTS[variant]
    reg = PaperRegularizer(net, v, box, seed=0)
    x = torch.zeros(4, 2)
    got = reg(x)
    if v.bounds == "crown":
        from omlt_relax import crown_bounds

        nb = crown_bounds(net, *box)
    else:
        nb = interval_bounds(net, *box)
    l, u = torch.cat(list(nb.lower)), torch.cat(list(nb.upper))
    params = [p for m in net if isinstance(m, nn.Linear) for p in (m.weight, m.bias)]
    ref = {
        "width": lambda: (u - l).mean(),
        "stable": lambda: torch.minimum(torch.relu(-l), torch.relu(u)).mean(),
        "stable_crown": lambda: torch.minimum(torch.relu(-l), torch.relu(u)).mean(),
        "l1": lambda: sum(p.abs().sum() for p in params),
        "l2": lambda: sum((p * p).sum() for p in params),
        "width_d": lambda: (u - l).mean(),
        "stable_d": lambda: torch.minimum(torch.relu(-l), torch.relu(u)).mean(),
        "width_stable_d": lambda: (u - l).mean()
        + torch.minimum(torch.relu(-l), torch.relu(u)).mean(),
        "width_stable_ftd": lambda: (u - l).mean()
        + torch.minimum(torch.relu(-l), torch.relu(u)).mean(),
    }[variant]()
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    g1 = torch.autograd.grad(got, params, allow_unused=True)
    g2 = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(g1, g2, strict=True):
        if b is None:
            assert a is None or float(a.abs().max()) == 0.0
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_lp_gap_regularizer_is_nonnegative_and_has_gradient() -> None:
    net = paper_network(2, 2, 25, seed=5)
    box = (np.array([-2.0, -2.0]), np.array([2.0, 2.0]))
    reg = PaperRegularizer(net, PAPER_VARIANTS["width+lpgap"], box, seed=0)
    x = torch.as_tensor(latin_hypercube(64, *box, seed=0), dtype=torch.float32)
    val = reg(x)
    assert float(val.detach()) >= 0.0
    val.backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in net.parameters())


@pytest.mark.parametrize("variant", ["lpgap_total_ftd", "stable_lpgap_ftd", "stable_lpgap_ftb"])
def test_lp_gap_recipes_sum_their_terms(variant: str) -> None:
    """The LP-gap recipes: total derivative, fine-tuning with decay, R = sum of their terms."""
    v = PAPER_VARIANTS[variant]
    assert v.lp_derivative == "total" and v.finetunes and v.lr_decay
    net = paper_network(2, 2, 25, seed=5)
    box = (np.array([-2.0, -2.0]), np.array([2.0, 2.0]))
    x = torch.as_tensor(latin_hypercube(64, *box, seed=0), dtype=torch.float32)
    got = float(PaperRegularizer(net, v, box, seed=0)(x).detach())
    gap = float(PaperRegularizer(net, PAPER_VARIANTS["lpgap_total"], box, seed=0)(x).detach())
    stable = float(PaperRegularizer(net, PAPER_VARIANTS["stable"], box, seed=0)(x).detach())
    assert gap > 0.0
    want = gap + stable if "stable" in v.terms else gap
    assert got == pytest.approx(want, rel=1e-6)


def test_continuation_schedule() -> None:
    v = PAPER_VARIANTS["stable_cont"]
    assert [schedule_factor(v, e, 8) for e in range(8)] == [0, 0, 0, 0, 0.5, 1.0, 1.0, 1.0]
    assert checkpoint_from(v, 8) == 6
    assert schedule_factor(PAPER_VARIANTS["stable"], 0, 8) == 1.0
    assert checkpoint_from(PAPER_VARIANTS["stable"], 8) == 0
    ft = PAPER_VARIANTS["stable_ft"]
    assert [schedule_factor(ft, e, 4) for e in range(4)] == [0.5, 1.0, 1.0, 1.0]
    assert checkpoint_from(ft, 4) == 1
    d = PAPER_VARIANTS["width_d"]  # the paper's constant λ and checkpoint rule, decayed rate
    assert not d.finetunes and d.lr_decay and epochs_of(d, 8) == 8
    assert schedule_factor(d, 0, 8) == 1.0 and checkpoint_from(d, 8) == 0


def test_jobs_order_and_bad_config() -> None:
    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,), variants=("none", "stable"),
                      lambdas=(1e-3, 1e-2))
    assert [j.key for j in jobs_of(cfg)] == [
        "peaks-d2-s0-none-0", "peaks-d2-s0-stable-0.001", "peaks-d2-s0-stable-0.01"]
    with pytest.raises(ValueError, match="unknown paper function 'rastrigin'"):
        PaperConfig(functions=("rastrigin",))
    with pytest.raises(ValueError, match="unknown paper-suite variant 'bigm'"):
        PaperConfig(variants=("bigm",))
    with pytest.raises(ValueError, match="lambdas must be positive"):
        PaperConfig(lambdas=(0.0,))


def test_tiny_run_end_to_end_is_verified_and_resumable(tmp_path) -> None:
    """Train 2 tiny nets, solve their MILPs (HiGHS), check them against the forward pass."""
    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,),
                      variants=("stable_ft", "none", "stable"), lambdas=(1e-2,), width=6,
                      n_train=300, n_val=100, n_test=100, epochs=4, time_limit=30,
                      solvers=("highs",))
    recs = run_paper(cfg, tmp_path, log=None, progress=False)
    assert len(recs) == 3
    ft = next(r for r in recs if r["job"]["variant"] == "stable_ft")
    assert ft["best_epoch"] >= 1  # kept after its ramp (2 of the 4 epochs fine-tune)
    fn = PAPER_FUNCTIONS["peaks"]
    for r in recs:
        assert set(r["milp"]) == {"paper", "ours"}
        for form in ("paper", "ours"):
            m = r["milp"][form]["highs"]
            assert m["status"] == "optimal"
            # the MILP optimum is the network's value at the MILP's input
            assert m["verify_err"] <= 1e-5 * (1 + abs(m["objective"]))
            assert m["f_error"] == pytest.approx(m["f_at_x"] - fn.f_min)
            # and it is a minimum: no sampled input gives a lower network value
            model = paper_network(2, 2, 6, 0)
            saved = torch.load(tmp_path / "models" / f"{r['key']}.pt", weights_only=False)
            model.load_state_dict(saved["state"])
            xs = torch.as_tensor(latin_hypercube(2000, *fn.box, seed=9))
            with torch.no_grad():
                vals = model.double()(xs)
            assert float(vals.min()) >= m["objective"] - 1e-6
            assert r["milp"][form]["root_lp"] <= m["objective"] + 1e-7
        assert r["unstable_obbt"] <= r["unstable_ibp"]
    text = (tmp_path / "paper.md").read_text()
    assert "| peaks | 2 | stable | 0.01 |" in text
    # "better than the paper" is tested on each MILP both sides were measured with, no other
    assert "## Better than the paper on its own ground? (paper MILP, HiGHS)" in text
    assert "## Better than the paper on its own ground? (ours MILP, HiGHS)" in text
    assert "Gurobi)" not in text
    assert text.count("Paper points dominated: depth 2 (seed 0): ") == 2
    assert (tmp_path / "pareto_peaks.png").stat().st_size > 1000
    # resumable: nothing left to do, records unchanged
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.json")}
    assert len(run_paper(cfg, tmp_path, log=None, progress=False)) == 3
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").glob("*.json")}
    assert before == after


def test_a_refused_network_is_noted_and_the_run_goes_on(tmp_path, monkeypatch,
                                                          capsys) -> None:
    """The numeric guard's refusal of one network does not stop a long run: the job is noted in
    ``refused/`` and the report, the next jobs run, and a rerun measures it once it is allowed."""
    import omlt_relax.guards as guards

    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,), variants=("none", "stable"),
                      lambdas=(1e-2,), width=6, n_train=300, n_val=100, n_test=100, epochs=2,
                      time_limit=30, solvers=("highs",), formulations=("paper",))
    monkeypatch.setattr(guards, "MAX_COEFFICIENT_RATIO", 1.0)  # the real guard refuses all
    lines: list[str] = []
    assert run_paper(cfg, tmp_path, log=lines.append, progress=False) == []
    refused = sorted(p.name for p in (tmp_path / "refused").iterdir())
    assert refused == ["peaks-d2-s0-none-0.txt", "peaks-d2-s0-stable-0.01.txt"]  # both ran
    assert "NumericalRangeError: the MILP's coefficients span" in \
        (tmp_path / "refused" / refused[0]).read_text()
    assert sum("refused: the MILP's coefficients span" in s for s in lines) == 2
    text = (tmp_path / "paper.md").read_text()
    assert "## Refused networks" in text and "* `peaks-d2-s0-stable-0.01`: Numerical" in text
    # the command says so at its end (its own folder: the CLI trains at the protocol's width)
    assert main(["bench", "--suite", "paper", "--out", str(tmp_path / "cli"), "--functions",
                 "peaks", "--depths", "2", "--seeds", "0", "--variants", "none,stable", "--lambdas",
                 "1e-2", "--n-train", "300", "--n-val", "100", "--n-test", "100", "--epochs", "2",
                 "--time-limit", "30", "--solvers", "highs", "--formulations", "paper",
                 "--quiet"]) == 0
    assert "0 networks finished; 2 refused by the guards (why: " in capsys.readouterr().out
    assert len(list((tmp_path / "cli" / "refused").iterdir())) == 2
    stored = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "models").glob("*.pt")}
    assert len(stored) == 2  # the trained networks are kept
    monkeypatch.setattr(guards, "MAX_COEFFICIENT_RATIO", 1e10)
    recs = run_paper(cfg, tmp_path, log=None, progress=False)
    assert [r["milp"]["paper"]["highs"]["status"] for r in recs] == ["optimal", "optimal"]
    assert not list((tmp_path / "refused").iterdir())
    assert "Refused" not in (tmp_path / "paper.md").read_text()
    # measured without training again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "models").glob("*.pt")} == stored


def test_finetune_starts_from_the_unregularized_network(tmp_path) -> None:
    """Without its base network a fine-tuning is skipped (no error); with it, it starts there."""
    from omlt_relax.bench.paper import paper_data, train_paper

    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,), variants=("stable_ft",),
                      lambdas=(1e-2,), width=6, n_train=300, n_val=100, n_test=100, epochs=4,
                      time_limit=30, solvers=("highs",))
    assert run_paper(cfg, tmp_path, log=None, progress=False) == []
    data = paper_data("peaks", 0, 300, 100, 100)
    job = Job("peaks", 2, 0, "stable_ft", 1e-2)
    with pytest.raises(ValueError, match="not trained yet"):
        train_paper(job, cfg, data)
    base = paper_network(2, 2, 6, seed=7)
    net = train_paper(job, cfg, data, init=base.state_dict())
    assert len(net.history) == 2  # half the epochs
    # two fine-tuning epochs: the ramp is one epoch long, so λ is full from the start
    assert [h["lam"] for h in net.history] == [1e-2, 1e-2]


def test_stale_lock_is_taken_over_and_live_lock_respected(tmp_path) -> None:
    from omlt_relax.bench.paper.run import _claim

    lock = tmp_path / ".x.lock"
    lock.write_text("999999999\n")  # no such process
    assert _claim(lock)
    assert lock.read_text().strip() == str(os.getpid())
    assert not _claim(lock)  # held by a live process (this one)


def test_cli_paper_suite_report_and_errors(tmp_path, capsys) -> None:
    job = Job("peaks", 2, 0, "none", 0.0)
    rec = {"job": {"function": "peaks", "depth": 2, "seed": 0, "variant": "none", "lam": 0.0},
           "key": job.key, "train_time": 1.0, "test_mse": 1e-3, "unstable_ibp": 40,
           "unstable_obbt": 30, "mean_width_ibp": 3.0, "time_limit": 10.0, "mip_gap": 1e-4,
           "milp": {"paper": {"highs": {"status": "feasible", "time": 10.0, "gap": 0.5}},
                    "ours": {"highs": {"status": "optimal", "time": 2.0}}}}
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / f"{job.key}.json").write_text(json.dumps(rec))
    assert main(["bench", "--suite", "paper", "--out", str(tmp_path), "--report-only",
                 "--functions", "peaks", "--depths", "2", "--seeds", "0",
                 "--variants", "none"]) == 0
    out = capsys.readouterr().out
    assert "| peaks | 2 | none | - | 1 | 0.001 |" in out
    assert "≥10" in out
    assert main(["bench", "--suite", "paper", "--out", str(tmp_path), "--functions",
                 "rastrigin"]) == 2
    assert "unknown function 'rastrigin'" in capsys.readouterr().err
    assert main(["bench", "--suite", "paper", "--out", str(tmp_path), "--lambdas", "-1"]) == 2
    capsys.readouterr()
    # 0 is refused, not silently replaced by the protocol's default
    assert main(["bench", "--suite", "paper", "--out", str(tmp_path), "--n-train", "0"]) == 2
    assert "n_train must be at least 1, got 0" in capsys.readouterr().err


def test_train_only_stores_networks_and_a_later_run_measures_them(tmp_path, capsys) -> None:
    """``--train-only`` trains and stores (the plain network, then the fine-tuning from it),
    solves nothing and writes no record; a rerun trains nothing; a run without it measures the
    stored networks without training them again, each MILP checked by a forward pass."""
    args = ["bench", "--suite", "paper", "--out", str(tmp_path), "--functions", "peaks",
            "--depths", "1", "--seeds", "0", "--variants", "stable_ft,none", "--lambdas", "1e-2",
            "--n-train", "200", "--n-val", "50", "--n-test", "50", "--epochs", "2",
            "--time-limit", "30", "--solvers", "highs", "--formulations", "paper", "--quiet"]
    assert main([*args, "--train-only"]) == 0
    assert "2 of 2 networks stored in" in capsys.readouterr().out
    models = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "models").glob("*.pt")}
    assert sorted(models) == ["peaks-d1-s0-none-0.pt", "peaks-d1-s0-stable_ft-0.01.pt"]
    assert not list((tmp_path / "jobs").glob("*.json"))  # no MILP solved, no record
    assert main([*args, "--train-only"]) == 0  # nothing left to train
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "models").glob("*.pt")} == models
    assert main(args) == 0
    assert "2 networks finished" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "models").glob("*.pt")} == models
    for key in ("peaks-d1-s0-none-0", "peaks-d1-s0-stable_ft-0.01"):
        rec = json.loads((tmp_path / "jobs" / f"{key}.json").read_text())
        m = rec["milp"]["paper"]["highs"]
        assert m["status"] == "optimal"
        assert m["verify_err"] <= 1e-5 * (1 + abs(m["objective"]))  # the forward pass at x*
        saved = torch.load(tmp_path / "models" / f"{key}.pt", weights_only=False)
        assert rec["train_time"] == saved["train_time"]  # the stored network, not a new one
    # clear errors: another suite, or a Dask run
    assert main(["bench", "--suite", "scale", "--out", str(tmp_path / "s"), "--train-only"]) == 2
    assert "--train-only belongs to the paper suite" in capsys.readouterr().err
    assert main([*args, "--train-only", "--jobs", "2"]) == 2
    assert "--train-only trains in this process" in capsys.readouterr().err
    with pytest.raises(ValueError, match="train_only runs in this process"):
        run_paper(PaperConfig(functions=("peaks",)), tmp_path, client=object(), train_only=True)


def test_job_finished_by_another_process_meanwhile_is_not_run_again(tmp_path, monkeypatch) -> None:
    import omlt_relax.bench.paper.run as run

    cfg = PaperConfig(functions=("peaks",), depths=(1,), seeds=(0,), variants=("none",),
                      width=4, n_train=200, n_val=50, n_test=50, epochs=1, time_limit=30,
                      solvers=("highs",), formulations=("paper",))
    run_paper(cfg, tmp_path, log=None, progress=False)
    rec = tmp_path / "jobs" / "peaks-d1-s0-none-0.json"
    before = rec.stat().st_mtime_ns
    checks: list[object] = []

    def done_after_the_todo_list(path, c) -> bool:  # as if another process finished it later
        checks.append(path)
        return len(checks) > 1

    monkeypatch.setattr(run, "_done", done_after_the_todo_list)
    run_paper(cfg, tmp_path, log=None, progress=False)
    assert rec.stat().st_mtime_ns == before
    assert not (tmp_path / "jobs" / ".peaks-d1-s0-none-0.lock").exists()


def test_lr_decay_schedule_and_unregularized_control() -> None:
    """``*_ftd`` variants hold the learning rate for half the epochs, then cosine-decay it to
    LR_FLOOR; ``none_ft`` is one job (no λ grid) and is not counted as regularized."""
    from omlt_relax.bench.paper import lr_factor
    from omlt_relax.bench.paper.protocol import LR_FLOOR

    v = PAPER_VARIANTS["stable_crown_ftd"]
    f = [lr_factor(v, e, 10) for e in range(10)]
    assert f[:5] == [1.0] * 5
    assert all(a > b for a, b in pairwise(f[4:]))  # strictly decreasing after the half
    assert f[-1] == pytest.approx(LR_FLOOR)
    assert lr_factor(PAPER_VARIANTS["stable_ft"], 9, 10) == 1.0  # the paper's constant rate
    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,),
                      variants=("none", "none_ft", "stable_ftd"), lambdas=(1e-3, 1e-2))
    keys = [j.key for j in jobs_of(cfg)]
    assert keys == ["peaks-d2-s0-none-0", "peaks-d2-s0-none_ft-0", "peaks-d2-s0-stable_ftd-0.001",
                    "peaks-d2-s0-stable_ftd-0.01"]


def test_none_ft_trains_with_decaying_rate_and_counts_as_unregularized() -> None:
    from omlt_relax.bench.paper import paper_data, summarize, train_paper

    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,), variants=("none_ft",),
                      width=6, n_train=300, n_val=100, n_test=100, epochs=8, lr=1e-3)
    data = paper_data("peaks", 0, 300, 100, 100)
    base = paper_network(2, 2, 6, seed=3)
    net = train_paper(Job("peaks", 2, 0, "none_ft", 0.0), cfg, data, init=base.state_dict())
    lrs = [h["lr"] for h in net.history]
    assert len(lrs) == 4 and lrs[:2] == [1e-3, 1e-3] and lrs[-1] == pytest.approx(1e-5)
    assert all(h["lam"] == 0.0 for h in net.history)

    def rec(variant: str, mse: float) -> dict:
        return {"job": {"function": "peaks", "depth": 2, "seed": 0, "variant": variant,
                        "lam": 0.0 if variant.startswith("none") else 1e-3},
                "test_mse": mse, "milp": {}}

    rows = summarize([rec("none", 2.0), rec("none_ft", 1.0), rec("stable_ftd", 3.0)])
    by = {r["variant"]: r for r in rows}
    assert by["stable_ftd"]["mse_ratio"] == pytest.approx(1.5)       # against `none`
    assert by["stable_ftd"]["mse_ratio_best"] == pytest.approx(3.0)  # against the best control


def test_stock_omlt_formulation_agrees_with_ours_and_is_reported(tmp_path) -> None:
    """``stock`` solves plain OMLT's ReluBigMFormulation (a binary per neuron, its own bounds):
    the same optimum as ours, checked by a forward pass; the report prints ours vs stock."""
    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,), variants=("none", "stable"),
                      lambdas=(1e-2,), width=6, n_train=300, n_val=100, n_test=100, epochs=3,
                      time_limit=30, solvers=("highs",), formulations=("ours", "stock"))
    recs = run_paper(cfg, tmp_path, log=None, progress=False)
    assert len(recs) == 2
    for r in recs:
        ours, stock = r["milp"]["ours"]["highs"], r["milp"]["stock"]["highs"]
        assert ours["status"] == stock["status"] == "optimal"
        assert stock["verify_err"] <= 1e-5 * (1 + abs(stock["objective"]))
        assert stock["objective"] == pytest.approx(ours["objective"], abs=1e-4)
        assert stock["n_binaries"] == 12  # every hidden neuron, stable or not
        assert r["milp"]["stock"]["root_lp"] is None
    text = (tmp_path / "paper.md").read_text()
    assert "speed-up ours vs stock H/G" in text
    row = next(line for line in text.splitlines() if line.startswith("| peaks | 2 | stable |"))
    assert row.rstrip(" |").split("|")[-1].strip().endswith("× / -")
    with pytest.raises(ValueError, match="unknown formulation 'omlt'"):
        PaperConfig(formulations=("omlt",))


def test_adding_a_formulation_keeps_the_milps_already_measured(tmp_path) -> None:
    """A finished job asked for another formulation (or solver) solves only what is missing and
    keeps the earlier results of the same network; a new time limit solves everything again."""
    from dataclasses import replace

    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,), variants=("none",),
                      width=6, n_train=300, n_val=100, n_test=100, epochs=3, time_limit=30,
                      solvers=("highs",), formulations=("ours",))
    (first,) = run_paper(cfg, tmp_path, log=None, progress=False)
    logged: list[str] = []
    (both,) = run_paper(replace(cfg, formulations=("ours", "paper")), tmp_path,
                        log=logged.append, progress=False)
    assert both["milp"]["ours"] == first["milp"]["ours"]  # not solved again: same time, same x
    assert any("(measured before)" in line for line in logged)
    paper = both["milp"]["paper"]["highs"]
    assert paper["status"] == "optimal" and paper["verify_err"] <= 1e-6
    assert paper["objective"] == pytest.approx(first["milp"]["ours"]["highs"]["objective"],
                                               abs=1e-4)
    (only_paper,) = run_paper(replace(cfg, formulations=("paper",)), tmp_path, log=None,
                              progress=False)
    assert only_paper["milp"] == both["milp"]  # done: nothing run, "ours" still on record
    (again,) = run_paper(replace(cfg, time_limit=31), tmp_path, log=None, progress=False)
    assert set(again["milp"]) == {"ours"}  # another limit: measured afresh, nothing carried
    assert again["milp"]["ours"]["highs"]["time"] != first["milp"]["ours"]["highs"]["time"]
    (gap,) = run_paper(replace(cfg, time_limit=31, mip_gap=1e-3), tmp_path, log=None,
                       progress=False)  # another MIP gap: solved again as well
    assert gap["mip_gap"] == 1e-3
    assert gap["milp"]["ours"]["highs"]["time"] != again["milp"]["ours"]["highs"]["time"]
    assert gap["milp"]["ours"]["highs"]["verify_err"] <= 1e-6


def test_budgeted_finetune_backs_off_and_keeps_the_most_stable_network_within_budget() -> None:
    """``stable_crown_ftb``: after the ramp λ shrinks by BUDGET_BACKOFF on every epoch over
    budget; the kept epoch is within β × the start's validation MSE with the fewest unstable
    neurons among those that are (or the best validation MSE if none is)."""
    from omlt_relax.bench.paper import BUDGET, BUDGET_BACKOFF, paper_data, train_paper
    from omlt_relax.bench.paper.protocol import Job

    cfg = PaperConfig(width=8, n_train=400, n_val=200, n_test=50, epochs=40, lr=1e-2)
    data = paper_data("peaks", 0, cfg.n_train, cfg.n_val, cfg.n_test)
    base = train_paper(Job("peaks", 2, 0, "none", 0.0), cfg, data)
    init = base.model.state_dict()
    val0 = base.best_val_mse  # the start of the fine-tuning is the base's kept epoch
    seen = set()
    for lam in (1e2, 1e-2):  # far over budget (falls back), then within it
        net = train_paper(Job("peaks", 2, 0, "stable_crown_ftb", lam), cfg, data, init=init)
        post = [r for r in net.history if "budget_unstable" in r]
        assert [int(r["epoch"]) for r in post] == list(range(9, 20))  # after the 10-epoch ramp
        for a, b in pairwise(post):
            over = a["val_mse"] > BUDGET * val0
            assert b["lam"] == pytest.approx(a["lam"] * (BUDGET_BACKOFF if over else 1.0))
        within = [r for r in post if r["val_mse"] <= BUDGET * val0]
        if within:
            best = min(within, key=lambda r: (r["budget_unstable"], r["val_mse"]))
            assert net.best_epoch == int(best["epoch"])
            assert net.best_val_mse <= BUDGET * val0
            seen.add("within")
        else:
            assert net.best_val_mse == min(r["val_mse"] for r in post)
            assert post[-1]["lam"] < lam * BUDGET_BACKOFF**10 * 1.0001  # backed off each epoch
            seen.add("fallback")
    assert seen == {"within", "fallback"}


def test_budgeted_lp_gap_recipe_keeps_the_epoch_with_fewest_ibp_unstable_neurons() -> None:
    """``stable_lpgap_ftb``: the budget of ``stable_crown_ftb`` on the LP-gap recipe; its
    count is the IBP one (the bounds of its stable-neuron term), recorded for the kept epoch."""
    from omlt_relax.bench.paper import BUDGET, paper_data, train_paper
    from omlt_relax.bench.paper.protocol import Job
    from omlt_relax.bounds import sound_bounds

    v = PAPER_VARIANTS["stable_lpgap_ftb"]
    assert v.budget == BUDGET and v.bounds == "ibp" and v.terms == ("stable", "lpgap")
    cfg = PaperConfig(width=8, n_train=300, n_val=200, n_test=50, epochs=12, lr=1e-2)
    data = paper_data("peaks", 0, cfg.n_train, cfg.n_val, cfg.n_test)
    base = train_paper(Job("peaks", 2, 0, "none", 0.0), cfg, data)
    net = train_paper(Job("peaks", 2, 0, "stable_lpgap_ftb", 1e-2), cfg, data,
                      init=base.model.state_dict())
    kept = next(r for r in net.history if int(r["epoch"]) == net.best_epoch)
    box = (data.lower, data.upper)
    ibp = sound_bounds(net.model.double(), *box, "ibp").unstable_count()
    assert kept["budget_unstable"] == ibp


def test_late_budget_backs_off_only_over_the_last_quarter() -> None:
    """``stable_crown_ftbl``: λ stays at its start until 3/4 of the fine-tuning, then backs off
    on every epoch over budget."""
    from omlt_relax.bench.paper import BUDGET_BACKOFF, paper_data, train_paper
    from omlt_relax.bench.paper.protocol import Job

    cfg = PaperConfig(width=8, n_train=400, n_val=200, n_test=50, epochs=40, lr=1e-2)
    data = paper_data("peaks", 0, cfg.n_train, cfg.n_val, cfg.n_test)
    base = train_paper(Job("peaks", 2, 0, "none", 0.0), cfg, data)
    net = train_paper(Job("peaks", 2, 0, "stable_crown_ftbl", 1e2), cfg, data,
                      init=base.model.state_dict())
    lams = {int(r["epoch"]): r["lam"] for r in net.history}
    assert all(lams[e] == 1e2 for e in range(9, 15))  # ramp done; 14 = 0.75 × 20 - 1 decides
    assert lams[19] == pytest.approx(1e2 * BUDGET_BACKOFF**5)  # epochs 14..18 over budget


def _held(job: Job, train_time: float = 100.0) -> dict:
    """A finished job's record as the report reads it (one MILP solved)."""
    return {"job": {"function": job.function, "depth": job.depth, "seed": job.seed,
                    "variant": job.variant, "lam": job.lam},
            "key": job.key, "train_time": train_time, "test_mse": 1e-4, "unstable_ibp": 40,
            "unstable_obbt": 30, "mean_width_ibp": 3.0, "time_limit": 600.0, "mip_gap": 1e-4,
            "milp": {"paper": {"highs": {"status": "optimal", "time": 0.5}}}}


def test_coverage_counts_the_minimum_subset_and_the_cli_runs_it(tmp_path, capsys) -> None:
    """The report says which of the minimum subset's 180 networks a folder holds; jobs outside
    it (depth 2, our variants, other λ) are not counted; ``--subset minimum`` selects exactly it."""
    from omlt_relax.bench.paper import MINIMUM_SUBSET

    assert len(jobs_of(MINIMUM_SUBSET)) == 180
    recs = [_held(Job("ackley", 5, s, "width", 1e-3), 300.0) for s in (0, 1, 2)]
    recs += [_held(Job("ackley", 5, 0, "lpgap", 1e-2), 2700.0),
             _held(Job("peaks", 3, 1, "none", 0.0)),
             _held(Job("peaks", 2, 0, "width", 1e-3)),          # depth 2: not in the subset
             _held(Job("peaks", 3, 0, "width_d", 1e-3)),        # ours: not counted
             _held(Job("peaks", 3, 0, "width", 2e-2))]          # another λ: not counted
    cov = coverage(recs)
    assert (cov["done"], cov["total"], len(cov["missing"])) == (5, 180, 175)
    assert cov["train_time"] == pytest.approx(3 * 300.0 + 2700.0 + 100.0)
    assert "ackley-d5-s1-width-0.001" not in cov["missing"]
    assert "ackley-d5-s1-lpgap-0.01" in cov["missing"]
    table = coverage_table(cov)
    assert table.splitlines()[0] == (
        "| function | depth | none | width 0.0001 | width 0.001 | width 0.01 | stable 0.0001 | "
        "stable 0.001 | stable 0.01 | lpgap 0.0001 | lpgap 0.001 | lpgap 0.01 |")
    assert "| ackley | 5 | - | - | 0,1,2 | - | - | - | - | - | - | 0 |" in table
    assert "| peaks | 3 | 1 | - | - | - | - | - | - | - | - | - |" in table
    assert table.endswith("5 of 180 networks held (1.03 h of training), 175 missing.")
    assert "## The minimum subset of the paper's grid" in markdown_report(recs)
    assert "minimum subset" not in markdown_report(recs[5:])  # nothing of it: no section

    (tmp_path / "jobs").mkdir()
    for r in recs:
        (tmp_path / "jobs" / f"{r['key']}.json").write_text(json.dumps(r))
    assert main(["bench", "--suite", "paper", "--subset", "minimum", "--out", str(tmp_path),
                 "--report-only"]) == 0
    out = capsys.readouterr().out
    assert "5 networks finished" in out and "5 of 180 networks held" in out
    # other options narrow the subset
    assert main(["bench", "--suite", "paper", "--subset", "minimum", "--functions", "ackley",
                 "--seeds", "0", "--out", str(tmp_path), "--report-only"]) == 0
    assert "2 networks finished" in capsys.readouterr().out
    assert main(["bench", "--subset", "minimum", "--out", str(tmp_path)]) == 2
    assert "--subset minimum belongs to the paper suite" in capsys.readouterr().err


def test_report_rounds_lower_bounds_down() -> None:
    """A speed-up that is a lower bound is never printed above its value (827.97 is not ≥ 828)."""
    from omlt_relax.bench.paper.report import _ratio_cell

    def cell(ratio: float, lower: bool) -> str:
        return _ratio_cell({"ratio": ratio, "lower_bound": lower, "undetermined": False})

    assert cell(827.97, True) == "≥827×"
    assert cell(10_896.4, True) == "≥10,800×"  # three significant digits, down
    assert cell(827.97, False) == "828×"  # a measured ratio keeps three digits, to the nearest


def _row(variant: str, origin: str, mse: float, t: float, *, hit: bool = False,
         seeds: tuple[int, ...] = (0,), lam: float = 1e-2) -> dict:
    return {"function": "peaks", "depth": 2, "variant": variant, "lam": lam, "origin": origin,
            "seeds": list(seeds), "test_mse": mse,
            "times": {"paper/highs": {"time": t, "hit": hit}}}


def test_dominance_needs_as_accurate_and_as_fast_on_the_same_seeds() -> None:
    rows = [
        _row("stable", "paper", 1e-4, 0.10),
        _row("width", "paper", 1e-5, 1.0, lam=1e-3),
        _row("stable_d", "ours", 0.9e-4, 0.09),            # dominates stable 1e-2 only
        _row("width_d", "ours", 0.8e-4, 0.20),             # as accurate, slower
        _row("stable_ftd", "ours", 2e-4, 0.01),            # faster, less accurate
        _row("stable_crown_ftd", "ours", 1e-6, 0.01, seeds=(1,)),   # other seeds
        _row("width_ftd", "ours", 1e-6, 0.5, hit=True),    # stopped at the limit
    ]
    dom = {d["variant"]: d for d in dominance(rows)}
    assert dom["stable"]["dominated_by"] == ["stable_d 0.01"]
    assert dom["width"]["dominated_by"] == []
    assert dom["width"]["compared"] == 4  # the other seed's network is not compared
    table = dominance_table(list(dom.values()))
    assert "| peaks | 2 | width | 0.001 | 0 | 1e-05 | 1 | **none** |" in table
    assert table.endswith("Paper points dominated: depth 2 (seed 0): 1 of 2.")


def test_dominance_counts_each_set_of_seeds_apart() -> None:
    """Points over three seeds (means) and points of one seed are counted apart, never mixed."""
    rows = [_row("stable", "paper", 1e-4, 0.10, seeds=(0, 1, 2)),
            _row("stable_d", "ours", 0.9e-4, 0.09, seeds=(0, 1, 2)),
            _row("width", "paper", 1e-4, 0.10, lam=1e-3),
            _row("width_d", "ours", 0.9e-4, 0.09, seeds=(0, 1, 2), lam=1e-3)]  # other seeds
    table = dominance_table(dominance(rows))
    assert "| peaks | 2 | stable | 0.01 | 0,1,2 | 0.0001 | 0.1 | stable_d 0.01, width_d 0.001 |" \
        in table
    assert table.endswith("Paper points dominated: depth 2 (seed 0): 0 of 1; "
                          "depth 2 (seeds 0,1,2): 1 of 1.")


def test_dominance_needs_no_unregularized_network() -> None:
    """A folder without the plain network (its MILP is the expensive one) still gets the
    "better than the paper" test: it compares the regularized networks' own times."""
    def rec(variant: str, lam: float, mse: float, t: float, status: str = "optimal") -> dict:
        return {"job": {"function": "ackley", "depth": 3, "variant": variant, "lam": lam,
                        "seed": 0},
                "test_mse": mse, "milp": {"paper": {"highs": {"time": t, "status": status}}}}
    rows = summarize([rec("width", 1e-2, 2.1e-3, 0.072), rec("width_d", 1e-2, 2.06e-3, 0.010),
                      rec("stable", 1e-2, 1.4e-3, 0.058), rec("stable_d", 5e-3, 1.3e-3, 0.5),
                      rec("width_d", 5e-3, 1.0e-3, 0.03, status="time_limit")])
    assert all(not r["speedup"] for r in rows)  # no plain network: no speed-up ...
    dom = {d["variant"]: d for d in dominance(rows)}  # ... but the dominance test
    assert dom["width"]["dominated_by"] == ["width_d 0.01"]
    assert dom["stable"]["dominated_by"] == []  # slower, or stopped at the limit
    assert dom["stable"]["compared"] == 3
    assert dominance(rows, "paper/gurobi") == []  # not measured with Gurobi


def test_repeats_report_only_reads_every_seed_apart(tmp_path, monkeypatch) -> None:
    """``bench_repeats.py --dominance --report-only --per-seed`` rewrites the .md of a finished
    repeats run from its JSON (nothing solved) and adds the test seed by seed: here ours wins
    at seed 0, loses (slower) at seed 1, and wins on the means over both seeds."""
    (tmp_path / "jobs").mkdir()
    medians = {}
    for variant, seed, mse, median in (("stable", 0, 2e-5, 0.30), ("stable", 1, 2e-5, 0.10),
                                       ("stable_d", 0, 1e-5, 0.10), ("stable_d", 1, 1e-5, 0.20)):
        key = f"peaks-d3-s{seed}-{variant}-0.001"
        (tmp_path / "jobs" / f"{key}.json").write_text(json.dumps({
            "key": key, "test_mse": mse, "milp": {},
            "job": {"function": "peaks", "depth": 3, "variant": variant, "lam": 1e-3,
                    "seed": seed}}))
        medians[key] = median
    rows = [{"key": k, "error_ratio": None, "suite_time": None, "min": m, "median": m, "max": m,
             "statuses": ["optimal"], "nodes": [[1]], "speedup_median": "–"}
            for k, m in medians.items()]
    (tmp_path / "repeats_paper_highs_t.json").write_text(json.dumps({
        "env": {}, "args": {"out": str(tmp_path), "repeats": 3, "dominance": True, "tag": "t"},
        "rows": rows, "wall_time": 12.0, "load_end": [1.0, 1.0, 1.0]}))
    repeats = load_script("benchmarks/bench_repeats.py")
    monkeypatch.setattr(sys, "argv", [
        "bench_repeats.py", "--out", str(tmp_path), "--formulation", "paper", "--solver", "highs",
        "--dominance", "--per-seed", "--report-only", "--tag", "t"])
    repeats.main()
    text = (tmp_path / "repeats_paper_highs_t.md").read_text()
    assert "--repeats 3 --dominance --tag t`; wall 12 s" in text  # the run that solved them
    means, per_seed = text.split("## The same test seed by seed")
    assert means.rstrip().endswith("Paper points dominated: depth 3 (seeds 0,1): 1 of 1.")
    assert per_seed.rstrip().endswith(
        "Paper points dominated: depth 3 (seed 0): 1 of 1; depth 3 (seed 1): 0 of 1.")
    monkeypatch.setattr(sys, "argv", ["bench_repeats.py", "--out", str(tmp_path), "--solver",
                                      "highs", "--formulation", "paper", "--report-only"])
    with pytest.raises(SystemExit, match="cannot read .*repeats_paper_highs.json"):
        repeats.main()  # no untagged run in the folder
    monkeypatch.setattr(sys, "argv", ["bench_repeats.py", "--out", str(tmp_path), "--per-seed"])
    with pytest.raises(SystemExit, match="add --dominance"):
        repeats.main()


def test_repeats_singles_fill_in_the_networks_not_re_solved(tmp_path, monkeypatch) -> None:
    """``--singles``: a network not re-solved (here ours at seed 1, its MILP slow) counts with
    the suite's single solve, marked †, instead of dropping its setting from the test; a
    network solved by neither (not measured with this solver) still drops it."""
    (tmp_path / "jobs").mkdir()
    medians = {}
    for variant, seed, mse, median, single in (
            ("stable", 0, 2e-5, 30.0, None), ("stable", 1, 2e-5, None, ("time_limit", 600.0)),
            ("stable_d", 0, 1e-5, 10.0, None), ("stable_d", 1, 1e-5, None, ("optimal", 90.0)),
            ("width_d", 0, 1e-6, 1.0, None), ("width_d", 1, 1e-6, None, None)):
        key = f"ackley-d5-s{seed}-{variant}-0.001"
        milp = {"paper": {"highs": {"status": single[0], "time": single[1]}}} if single else {}
        (tmp_path / "jobs" / f"{key}.json").write_text(json.dumps({
            "key": key, "test_mse": mse, "milp": milp,
            "job": {"function": "ackley", "depth": 5, "variant": variant, "lam": 1e-3,
                    "seed": seed}}))
        if median is not None:
            medians[key] = median
    rows = [{"key": k, "error_ratio": None, "suite_time": None, "min": m, "median": m, "max": m,
             "statuses": ["optimal"], "nodes": [[1]], "speedup_median": "–"}
            for k, m in medians.items()]
    repeats = load_script("benchmarks/bench_repeats.py")
    assert repeats.dominance_by_median(tmp_path, rows, "paper", "highs") == []  # left out
    (d,) = repeats.dominance_by_median(tmp_path, rows, "paper", "highs", singles=True)
    assert d["time"] == pytest.approx((30.0 + 600.0) / 2) and d["singles"] == 1
    assert d["dominated_by"] == ["stable_d 0.001 †"]  # (10 + 90) / 2 s; width_d: no solve
    assert d["compared"] == 1
    (tmp_path / "repeats_paper_highs_t.json").write_text(json.dumps({
        "env": {}, "args": {"out": str(tmp_path), "repeats": 3, "dominance": True, "tag": "t"},
        "rows": rows, "wall_time": 12.0, "load_end": [1.0, 1.0, 1.0]}))
    monkeypatch.setattr(sys, "argv", [
        "bench_repeats.py", "--out", str(tmp_path), "--formulation", "paper", "--solver", "highs",
        "--dominance", "--singles", "--report-only", "--tag", "t"])
    repeats.main()
    text = (tmp_path / "repeats_paper_highs_t.md").read_text()
    assert "| ackley | 5 | stable | 0.001 | 0,1 | 2e-05 | 315 | stable_d 0.001 † |" in text
    assert "single solve: ackley d5 stable 0.001 (seeds 0,1: 1 of 2)." in text
    monkeypatch.setattr(sys, "argv", ["bench_repeats.py", "--out", str(tmp_path), "--singles"])
    with pytest.raises(SystemExit, match="add --dominance"):
        repeats.main()


def test_repeats_read_the_dominance_test_by_the_medians(tmp_path, monkeypatch) -> None:
    """benchmarks/bench_repeats.py --dominance re-solves every regularized network of a paper
    folder and decides "better than the paper" by the medians of the repeats."""
    cfg = PaperConfig(functions=("peaks",), depths=(2,), seeds=(0,),
                      variants=("none", "stable", "stable_d"), lambdas=(1e-2,), width=6,
                      n_train=300, n_val=100, n_test=100, epochs=4, time_limit=30,
                      solvers=("highs",), formulations=("paper",))
    recs = {r["job"]["variant"]: r for r in run_paper(cfg, tmp_path, log=None, progress=False)}
    repeats = load_script("benchmarks/bench_repeats.py")
    monkeypatch.setattr(sys, "argv", [
        "bench_repeats.py", "--out", str(tmp_path), "--formulation", "paper", "--solver",
        "highs", "--repeats", "2", "--time-limit", "30", "--dominance"])
    repeats.main()
    rows = {r["key"]: r for r in json.loads(
        (tmp_path / "repeats_paper_highs.json").read_text())["rows"]}
    assert set(rows) == {recs["stable"]["key"], recs["stable_d"]["key"]}  # not the plain one
    paper, ours = rows[recs["stable"]["key"]], rows[recs["stable_d"]["key"]]
    assert paper["statuses"] == ours["statuses"] == ["optimal"]
    (d,) = repeats.dominance_by_median(tmp_path, list(rows.values()), "paper", "highs")
    assert d["time"] == pytest.approx(paper["median"])
    wins = (recs["stable_d"]["test_mse"] <= recs["stable"]["test_mse"]
            and ours["median"] <= paper["median"])
    assert d["dominated_by"] == (["stable_d 0.01"] if wins else [])
    text = (tmp_path / "repeats_paper_highs.md").read_text()
    assert "Better than the paper on its own ground, by the medians" in text
    assert f"Paper points dominated: depth 2 (seed 0): {int(wins)} of 1." in text
    assert "--repeats 2 --dominance --time-limit 30.0`" in text  # the command, as it ran
    assert [r["order"] for r in rows.values()] == [[0, 1], [2, 3]]  # one network, then the next
    # --interleave: two rounds, each solving both networks once; same answers
    monkeypatch.setattr(sys, "argv", [
        "bench_repeats.py", "--out", str(tmp_path), "--formulation", "paper", "--solver",
        "highs", "--repeats", "2", "--time-limit", "30", "--dominance", "--interleave",
        "--tag", "i"])
    repeats.main()
    inter = json.loads((tmp_path / "repeats_paper_highs_i.json").read_text())["rows"]
    assert [r["key"] for r in inter] == list(rows)
    assert [r["order"] for r in inter] == [[0, 2], [1, 3]]
    for r in inter:
        assert r["statuses"] == ["optimal"]
        assert [p["min"][2] for p in r["per_sense"]] == pytest.approx(
            [p["min"][2] for p in rows[r["key"]]["per_sense"]], rel=2e-4, abs=1e-5)
    text = (tmp_path / "repeats_paper_highs_i.md").read_text()
    assert "--dominance --interleave --time-limit 30.0 --tag i`" in text
    # --start local: the library's MIP start in every solve, its own time counted; same optimum
    monkeypatch.setattr(sys, "argv", [
        "bench_repeats.py", "--out", str(tmp_path), "--formulation", "paper", "--solver",
        "highs", "--repeats", "1", "--time-limit", "30", "--keys", recs["stable"]["key"],
        "--start", "local", "--tag", "s"])
    repeats.main()
    (row,) = json.loads((tmp_path / "repeats_paper_highs_start-local_s.json").read_text())["rows"]
    (sense,) = row["per_sense"]
    assert row["statuses"] == ["optimal"]
    assert sense["min"][2] == pytest.approx(rows[row["key"]]["per_sense"][0]["min"][2],
                                            rel=2e-4, abs=1e-5)
    assert row["times"][0] > sense["min"][0] > 0  # the start's own time is in the total
    text = (tmp_path / "repeats_paper_highs_start-local_s.md").read_text()
    assert "the library's MIP start (local) in every solve, its time counted" in text
    # --under: only the networks whose suite solves all took under S seconds (the paper's
    # network made slow here by hand: 50 s), the rest by their single solve with --singles
    slow = tmp_path / "jobs" / f"{recs['stable']['key']}.json"
    job = json.loads(slow.read_text())
    job["milp"]["paper"]["highs"]["time"] = 50.0
    slow.write_text(json.dumps(job))
    monkeypatch.setattr(sys, "argv", [
        "bench_repeats.py", "--out", str(tmp_path), "--formulation", "paper", "--solver",
        "highs", "--repeats", "1", "--time-limit", "30", "--dominance", "--singles",
        "--under", "10", "--tag", "u"])
    repeats.main()
    (row,) = json.loads((tmp_path / "repeats_paper_highs_u.json").read_text())["rows"]
    assert row["key"] == recs["stable_d"]["key"]
    text = (tmp_path / "repeats_paper_highs_u.md").read_text()
    assert "Paper points timed (in part) by the suite's single solve: peaks d2 stable 0.01" in text
    for extra, msg in ((["--under", "1e-9"], "matches"), (["--under", "10", "--keys", row["key"]],
                                                          "give one of them")):
        monkeypatch.setattr(sys, "argv", ["bench_repeats.py", "--out", str(tmp_path),
                                          "--dominance", *extra])
        with pytest.raises(SystemExit, match=msg):
            repeats.main()
    monkeypatch.setattr(sys, "argv", ["bench_repeats.py", "--out", str(tmp_path / "jobs"),
                                      "--dominance"])
    with pytest.raises(SystemExit, match="neither jobs"):
        repeats.main()
    # benchmarks/bench_mip_start.py on the same folder: each start gives the same optimum, and
    # a start is a feasible point, never below it
    starts = load_script("benchmarks/bench_mip_start.py")
    monkeypatch.setattr(sys, "argv", [
        "bench_mip_start.py", "--out", str(tmp_path), "--formulation", "paper", "--time-limit",
        "30", "--starts", "probe,local", "--keys", recs["none"]["key"]])
    starts.main()
    (row,) = json.loads((tmp_path / "mip_start_paper_highs.json").read_text())["rows"]
    for mode in ("none", "probe", "local"):
        assert row[mode]["status"] == "optimal"
        assert row[mode]["objective"] == pytest.approx(row["none"]["objective"], abs=1e-6)
    assert row["probe"]["start_objective"] >= row["local"]["start_objective"] - 1e-9
    assert row["local"]["start_objective"] >= row["none"]["objective"] - 1e-6
    text = (tmp_path / "mip_start_paper_highs.md").read_text()
    assert "## Start `probe`" in text and "## Start `local`" in text
    # --starts-only: no MILP, each start's value beside the minimum the suite proved
    monkeypatch.setattr(sys, "argv", [
        "bench_mip_start.py", "--out", str(tmp_path), "--starts", "probe,local", "--starts-only"])
    starts.main()
    q = {r["key"]: r for r in json.loads(
        (tmp_path / "mip_start_quality.json").read_text())["rows"]}
    assert set(q) == {r["key"] for r in recs.values()}
    for r in q.values():
        assert r["optimum"] == pytest.approx(
            recs[r["key"].split("-")[3]]["milp"]["paper"]["highs"]["objective"])
        assert r["optimum"] - 1e-6 <= r["local"]["value"] <= r["probe"]["value"] + 1e-12
    assert "proven minimum (by)" in (tmp_path / "mip_start_quality.md").read_text()
    monkeypatch.setattr(sys, "argv", ["bench_mip_start.py", "--out", str(tmp_path),
                                      "--starts", "random"])
    with pytest.raises(SystemExit, match="--starts takes probe and/or local"):
        starts.main()
