"""omlt_relax.stochastic: CFLP instances, exact recourse, cached data, quantile nets, first stage,
evaluation, and the ``omlt-relax cflp`` commands.

Every MILP result is checked against a forward pass at its solution; second-stage values against
brute-force enumeration of assignments.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script

from omlt_relax import export_onnx
from omlt_relax.cli import main as cli_main
from omlt_relax.stochastic import (
    CHECKSUM_10_10_SEED_7,
    CacheMismatchError,
    ChunkCache,
    Penalties,
    RecourseSolver,
    RiskObjective,
    Sampling,
    Standardization,
    TrainSettings,
    all_decisions,
    build_quantile_net,
    cvar,
    evaluate_decision,
    fit_quantile_net,
    fold_quantile_standardization,
    generate_data,
    make_instance,
    predict_quantiles,
    quantile_levels,
    saa_table,
    solve_first_stage,
    surrogate_objective,
)
from omlt_relax.stochastic.evaluate import recourse_lower_bound, saa_optimum
from omlt_relax.stochastic.first_stage import onnx_quantiles

#: Agreement between an exact HiGHS second stage and brute force (costs are in the thousands).
RECOURSE_ATOL = 1e-6
#: Agreement between the first-stage MILP objective and a forward pass at its solution.
FORWARD_RTOL = 1e-5
#: The published Quantile2SP optimum (given to two decimals) and its decision.
PUBLISHED = 10804.96
PUBLISHED_X = (0, 0, 0, 1, 1, 1, 0, 1, 0, 1)
QUANTILE2SP_DIRS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "quantile2sp",
    Path("/work/shared/data/quantile2sp"),
)


def brute_force_recourse(inst, x: np.ndarray, xi: np.ndarray) -> float:
    """Q(x, xi) by enumerating every customer's server (an open facility or the penalty)."""
    open_ = [i for i in range(inst.n_facilities) if x[i] > 0.5]
    best = math.inf
    for choice in itertools.product([*open_, -1], repeat=inst.n_customers):
        load = np.zeros(inst.n_facilities)
        cost = 0.0
        for j, i in enumerate(choice):
            if i < 0:
                cost += inst.penalty
            else:
                load[i] += xi[j]
                cost += inst.c[i, j]
        if np.all(load <= inst.u + 1e-9):
            best = min(best, cost)
    return best


# -- instances -----------------------------------------------------------------------------------
def test_instance_10x10_seed_7_checksums() -> None:
    inst = make_instance(10, 10, 7)
    assert tuple(inst.f.astype(int)) == CHECKSUM_10_10_SEED_7["f"]
    assert tuple(inst.u) == CHECKSUM_10_10_SEED_7["u"]
    assert tuple(inst.d) == CHECKSUM_10_10_SEED_7["d"]
    assert inst.penalty == 2776.0


@pytest.mark.parametrize("n", [25, 50])
def test_instances_of_other_sizes(n: int) -> None:
    inst = make_instance(n, n, 3)
    assert inst.f.shape == (n,) and inst.u.shape == (n,) and inst.c.shape == (n, n)
    # total capacity is twice the nominal demand (up to rounding down per facility)
    assert 2 * inst.d.sum() - n <= inst.u.sum() <= 2 * inst.d.sum()
    assert make_instance(n, n, 3).fingerprint() == inst.fingerprint()
    assert make_instance(n, n, 4).fingerprint() != inst.fingerprint()


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 10, 7), "n_facilities must be between 1"), ((10, 2.5, 7), "n_customers must be a whole"),
     ((10, 10, -1), "seed must be a whole number >= 0"), ((10, 1000, 7), "between 1 and 500")],
)
def test_invalid_instance_refused(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_instance(*args)


# -- second stage --------------------------------------------------------------------------------
def test_recourse_matches_brute_force_enumeration() -> None:
    inst = make_instance(3, 4, 11)
    solver = RecourseSolver(inst)
    rng = np.random.default_rng(5)
    xs = [np.array(x, float) for x in itertools.product((0, 1), repeat=3)]
    for x in xs:
        for xi in inst.scenarios(3, int(rng.integers(1000))):
            assert solver.solve(x, xi) == pytest.approx(brute_force_recourse(inst, x, xi),
                                                        abs=RECOURSE_ATOL)


def test_recourse_time_limit_is_per_solve() -> None:
    """HiGHS's ``time_limit`` counts the object's cumulative run time: a per-solve limit must
    keep solving after the earlier solves together have used more than it."""
    inst = make_instance(6, 12, 3)
    limit = 0.25  # one solve takes 3-20 ms (idle); room for a loaded machine
    solver = RecourseSolver(inst, time_limit=limit)
    x = np.array([1, 0, 1, 1, 0, 1], float)
    xis = inst.scenarios(1000, 1)
    got = []
    for xi in xis:
        got.append(solver.solve(x, xi))
        if solver._h.getRunTime() > 3 * limit:
            break
    assert solver._h.getRunTime() > 3 * limit
    assert got[-1] == pytest.approx(RecourseSolver(inst).solve(x, xis[len(got) - 1]))


def test_recourse_refuses_bad_decisions() -> None:
    inst = make_instance(3, 4, 11)
    solver = RecourseSolver(inst)
    with pytest.raises(ValueError, match="must have 3 entries"):
        solver.solve([1, 0], inst.scenarios(1, 0)[0])
    with pytest.raises(ValueError, match="must be 0/1"):
        solver.solve([1, 0.5, 0], inst.scenarios(1, 0)[0])


# -- evaluation ----------------------------------------------------------------------------------
def test_cvar_is_the_mean_of_the_worst_fraction() -> None:
    costs = np.arange(1.0, 11.0)  # 1..10
    assert cvar(costs, 0.7) == pytest.approx((10 + 9 + 8) / 3)
    assert cvar(costs, 0.75) == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)
    assert cvar(costs, 0.0) == pytest.approx(costs.mean())
    with pytest.raises(ValueError, match="alpha must be in"):
        cvar(costs, 1.0)


def test_saa_objective_of_a_fixed_decision_matches_direct_computation(tmp_path: Path) -> None:
    inst = make_instance(3, 3, 2)
    scen = inst.scenarios(7, 123)
    risk = RiskObjective(lam=0.5, tail=15)  # alpha = 0.7
    x = np.array([1.0, 0.0, 1.0])
    ev = evaluate_decision(inst, x, scen, risk, workers=1)
    q = np.array([brute_force_recourse(inst, x, xi) for xi in scen])
    top = np.sort(q)[::-1]
    cv = (top[0] + top[1] + 0.1 * top[2]) / 2.1  # (1 - 0.7) * 7 = 2.1 worst scenarios
    fx = float(inst.f @ x)
    assert ev.expected_cost == pytest.approx(fx + q.mean())
    assert ev.cvar == pytest.approx(cv)
    assert ev.risk_objective == pytest.approx(1.5 * fx + q.mean() + 0.5 * cv)
    # the enumerated SAA table agrees decision by decision, and its optimum is the minimum
    table = saa_table(inst, scen, tmp_path / "saa", workers=1, progress=False, chunk=3)
    direct = [
        evaluate_decision(inst, xx, scen, risk, workers=1).risk_objective
        for xx in all_decisions(3)
    ]
    np.testing.assert_allclose(table.objectives(risk), direct, rtol=1e-12)
    best, best_x = table.optimum(risk)
    assert best == pytest.approx(min(direct))
    assert table.gap(best_x, risk) == 0.0
    assert table.gap(x, risk) == pytest.approx((ev.risk_objective - best) / abs(best))


@pytest.mark.parametrize(("n", "m", "seed"), [(4, 4, 1), (5, 3, 2)])
def test_pruned_saa_optimum_equals_full_enumeration(tmp_path: Path, n: int, m: int,
                                                    seed: int) -> None:
    inst = make_instance(n, m, seed)
    scen = inst.scenarios(6, 5)
    table = saa_table(inst, scen, tmp_path / "t", workers=1, progress=False)
    lb = recourse_lower_bound(inst, table.decisions, scen)
    assert np.all(lb <= table.q + 1e-6)  # a valid bound on every exact Q
    for risk in (RiskObjective(0.5, 15), RiskObjective(0.0, 15), RiskObjective(2.0, 5)):
        opt = saa_optimum(inst, scen, risk, tmp_path / f"o{risk.lam}", workers=1,
                          progress=False, chunk=2)
        best, best_x = table.optimum(risk)
        assert opt.objective == pytest.approx(best, rel=1e-12)
        assert opt.x == best_x
        assert opt.evaluation.risk_objective == pytest.approx(best, rel=1e-12)
        assert opt.solved <= opt.total == 2**n


# -- quantile networks ---------------------------------------------------------------------------
def _random_folded(n_in: int = 4, seed: int = 0) -> torch.nn.Sequential:
    net = build_quantile_net(n_in, (8, 8), 50, seed=seed)
    rng = np.random.default_rng(seed)
    std = Standardization(rng.uniform(0.2, 0.8, n_in), rng.uniform(0.3, 0.6, n_in), 5000.0, 800.0)
    return fold_quantile_standardization(net, std), net, std


def test_folded_network_equals_standardized_one() -> None:
    folded, net, std = _random_folded()
    x = np.random.default_rng(1).uniform(-1, 2, (50, 4))
    with torch.no_grad():
        ref = net.double()(torch.as_tensor((x - std.x_mean) / std.x_std)).numpy()
    np.testing.assert_allclose(predict_quantiles(folded, x), std.y_mean + std.y_std * ref,
                               rtol=1e-10, atol=1e-8)


def test_exported_incremental_head_equals_torch_and_never_crosses(tmp_path: Path) -> None:
    folded, _, _ = _random_folded(seed=3)
    path = tmp_path / "q.onnx"
    export_onnx(folded, path, (np.zeros(4), np.ones(4)), bounds="ibp")
    x = np.random.default_rng(2).uniform(0, 1, (200, 4))
    torch_q = predict_quantiles(folded, x)
    onnx_q = onnx_quantiles(path, x)
    np.testing.assert_allclose(onnx_q, torch_q, rtol=1e-9, atol=1e-6)
    assert np.all(np.diff(onnx_q, axis=1) >= -1e-9)
    wide = np.random.default_rng(3).normal(0, 5, (500, 4))  # far outside the box too
    assert np.all(np.diff(predict_quantiles(folded, wide), axis=1) >= 0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: RiskObjective(lam=-1.0).check(50), "lambda must be a finite number >= 0"),
        (lambda: RiskObjective(tail=0).check(50), "tail size must be a whole number"),
        (lambda: RiskObjective(tail=51).check(50), "between 1 and 50"),
        (lambda: Sampling(n_decisions=0), "n_decisions must be a whole number >= 1"),
        (lambda: Sampling(open_low=0.9, open_high=0.1), "open_low <= open_high"),
        (lambda: quantile_levels(1), "number of quantiles must be"),
        (lambda: build_quantile_net(3, (), 50), "hidden widths must be one or more"),
        (lambda: Penalties(bigm=-1.0), "penalty weight bigm must be"),
        (lambda: TrainSettings(epochs=0), "epochs must be a whole number"),
        (lambda: make_instance(3, 3, 1).scenarios(0, 1), "number of scenarios"),
        (lambda: all_decisions(20), "at most 16 facilities"),
    ],
)
def test_invalid_parameters_refused(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# -- data cache ----------------------------------------------------------------------------------
def test_cached_dataset_for_other_settings_is_refused(tmp_path: Path) -> None:
    inst = make_instance(3, 3, 1)
    samp = Sampling(n_decisions=12, chunk_size=5)
    d = generate_data(inst, samp, tmp_path / "a", workers=1, progress=False)
    assert d.x.shape == (12, 3) and d.xi.shape == (12, 3) and d.q.shape == (12,)
    solver = RecourseSolver(inst)
    assert d.q[0] == pytest.approx(solver.solve(d.x[0], d.xi[0]), abs=RECOURSE_ATOL)
    for other_inst, other_samp, what in (
        (make_instance(3, 3, 2), samp, "seed"),
        (make_instance(4, 3, 1), samp, "n_facilities"),
        (inst, Sampling(n_decisions=12, chunk_size=5, open_high=0.9), "open_high"),
        (inst, Sampling(n_decisions=13, chunk_size=5), "n_decisions"),
        (inst, Sampling(n_decisions=12, chunk_size=5, seed=1), "seed"),
    ):
        with pytest.raises(CacheMismatchError, match=f"other settings.*{what}"):
            generate_data(other_inst, other_samp, tmp_path / "a", workers=1, progress=False)
    # a chunk copied in from another dataset is detected on load
    generate_data(make_instance(3, 3, 2), samp, tmp_path / "b", workers=1, progress=False)
    shutil.copy(tmp_path / "b" / "chunk_00001.npz", tmp_path / "a" / "chunk_00001.npz")
    with pytest.raises(CacheMismatchError, match="made with other settings"):
        generate_data(inst, samp, tmp_path / "a", workers=1, progress=False)


def test_interrupted_dataset_resumes_to_the_same_rows(tmp_path: Path) -> None:
    inst = make_instance(3, 3, 1)
    samp = Sampling(n_decisions=12, chunk_size=5)
    full = generate_data(inst, samp, tmp_path / "a", workers=1, progress=False)
    (tmp_path / "a" / "chunk_00002.npz").unlink()  # as if interrupted before the last chunk
    again = generate_data(inst, samp, tmp_path / "a", workers=1, progress=False)
    np.testing.assert_array_equal(again.x, full.x)
    np.testing.assert_array_equal(again.q, full.q)


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_chunk_write_leaves_no_chunk_and_no_temporary(tmp_path: Path, monkeypatch,
                                                                     exc) -> None:
    """A chunk whose write fails halfway (an error or Ctrl-C) is not on disk afterwards, whole
    or torn, and no temporary file is left; the chunk written before it stays loadable."""
    import omlt_relax.stochastic.cache as cache_mod

    cache = ChunkCache(tmp_path / "c", {"what": "test"}, n_chunks=2)
    cache.save(0, {"a": np.arange(4.0)})
    real = np.savez

    def torn(file, *args, **kwds):  # half of the archive reaches the disk, then the failure
        real(file, *args, **kwds)
        file.truncate(file.tell() // 2)
        raise exc

    monkeypatch.setattr(cache_mod.np, "savez", torn)
    with pytest.raises(type(exc)):
        cache.save(1, {"a": np.arange(4.0, 8.0)})
    monkeypatch.undo()
    assert cache.missing() == [1]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["chunk_00000.npz", "meta.json"]
    np.testing.assert_array_equal(cache.load(0)["a"], np.arange(4.0))
    cache.save(1, {"a": np.arange(4.0, 8.0)})  # the next run writes it
    np.testing.assert_array_equal(cache.load_all()["a"], np.arange(8.0))


# -- end to end ----------------------------------------------------------------------------------
def test_end_to_end_small_instance(tmp_path: Path) -> None:
    inst = make_instance(4, 4, 1)
    data = generate_data(inst, Sampling(n_decisions=80, chunk_size=40), tmp_path / "data",
                         workers=1, progress=False)
    fit = fit_quantile_net(data.x, data.q, TrainSettings(hidden=(8,), epochs=5),
                           Penalties(bigm=1e-2, stability=1e-2))
    risk = RiskObjective(lam=0.5, tail=15)
    res = solve_first_stage(fit.model, inst, risk, bounds="lp", time_limit=60)
    assert res.status == "optimal"
    forward = surrogate_objective(fit.model, inst, np.array(res.x, float), risk)[0]
    assert res.objective == pytest.approx(forward, rel=FORWARD_RTOL)
    # the MILP's x is the best decision by forward passes over all 16
    assert forward <= surrogate_objective(fit.model, inst, all_decisions(4), risk).min() + 1e-6
    scen = inst.scenarios(5, 99)
    ev = evaluate_decision(inst, np.array(res.x, float), scen, risk, workers=1)
    table = saa_table(inst, scen, tmp_path / "saa", workers=1, progress=False)
    assert table.evaluation(res.x, risk).risk_objective == pytest.approx(ev.risk_objective)
    assert table.gap(res.x, risk) >= 0.0


def test_quantile2sp_network_reproduces_published_optimum() -> None:
    data_dir = next((d for d in QUANTILE2SP_DIRS if (d / "CFLP_10_10_model.pt").is_file()), None)
    if data_dir is None:
        pytest.skip("Quantile2SP data (external) not present")
    mod = load_script("examples/facility_location.py")
    net = mod.folded_network(data_dir)
    res = solve_first_stage(net, make_instance(10, 10, 7), RiskObjective(0.5, 15), time_limit=60)
    assert res.status == "optimal"
    assert res.x == PUBLISHED_X
    assert abs(res.objective - PUBLISHED) <= 0.01
    assert res.forward == pytest.approx(res.objective, rel=1e-9)


# -- command line --------------------------------------------------------------------------------
def test_cli_workflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, net = tmp_path / "data", str(tmp_path / "net.onnx")
    assert cli_main(["cflp", "data", "--size", "3x3", "--seed", "1", "--n-decisions", "40",
                     "--out", str(d), "--workers", "1", "--quiet"]) == 0
    assert cli_main(["cflp", "train", str(d), "--out", net, "--hidden", "6", "--epochs", "3",
                     "--bigm", "0.01", "--bounds", "ibp", "--workers", "1", "--quiet"]) == 0
    sol = tmp_path / "sol.json"
    assert cli_main(["cflp", "solve", net, "--json", str(sol)]) == 0
    x = json.loads(sol.read_text())["x"]
    assert cli_main(["cflp", "evaluate", net, "--solution", str(sol), "--scenarios", "6",
                     "--saa", "--cache", str(tmp_path / "saa"), "--workers", "1",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"x = {','.join(map(str, x))}" in out and "exact SAA optimum" in out
    # bad input: one line, exit 2
    assert cli_main(["cflp", "data", "--size", "3y3", "--out", str(tmp_path / "e")]) == 2
    assert "--size must look like 10x10" in capsys.readouterr().err
    assert cli_main(["cflp", "data", "--size", "4x3", "--seed", "1", "--n-decisions", "40",
                     "--out", str(d), "--workers", "1", "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert cli_main(["cflp", "evaluate", net, "--x", "1,0"]) == 2
    assert "--x must be 3 comma-separated 0/1 values" in capsys.readouterr().err


def test_bench_cflp_suite_scenarios_per_decision(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from omlt_relax.stochastic.bench import CFLPBenchConfig

    out = tmp_path / "bench"
    args = ["bench", "--suite", "cflp", "--sizes", "3x3", "--hidden", "4", "--n-decisions", "10",
            "--scenarios-per-decision", "3", "--epochs", "2", "--time-limit", "30",
            "--eval-scenarios", "4", "--variants", "unregularized", "--workers", "1", "--quiet",
            "--out", str(out)]
    assert cli_main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["scenarios_per_decision"] == 3
    rec = res["instances"]["cflp_3_3_s7"]
    assert rec["n_rows"] == 30  # 10 decisions x 3 scenarios, each labelled
    assert rec["networks"]["unregularized"]["saa_gap"] >= 0.0
    assert "10 training decisions × 3 scenarios" in capsys.readouterr().out
    # the same directory refuses another sampling, and resumes the same one
    other = list(args)
    other[args.index("--scenarios-per-decision") + 1] = "1"
    assert cli_main(other) == 2
    assert "another configuration" in capsys.readouterr().err
    assert cli_main(args) == 0
    # results written before the setting existed resume as scenarios_per_decision = 1
    old = {k: v for k, v in CFLPBenchConfig().to_dict().items() if k != "scenarios_per_decision"}
    assert CFLPBenchConfig().same_as(json.loads(json.dumps(old)))
    assert not CFLPBenchConfig(scenarios_per_decision=2).same_as(json.loads(json.dumps(old)))
    with pytest.raises(ValueError, match="scenarios_per_decision must be a whole number"):
        CFLPBenchConfig(scenarios_per_decision=0)
    with pytest.raises(ValueError, match="train_seed must be a whole number >= 0"):
        CFLPBenchConfig(train_seed=-1)
    with pytest.raises(ValueError, match="snap_weights must be in"):
        CFLPBenchConfig(snap_weights=-1e-5)


def test_bench_cflp_records_a_refused_milp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MILP the numeric guard refuses is a result ('refused', with the reason), not a crash."""
    from omlt_relax import guards
    from omlt_relax.stochastic.bench import CFLPBenchConfig, run_cflp_bench

    monkeypatch.setattr(guards, "MAX_COEFFICIENT_RATIO", 1.0)  # every network is refused
    cfg = CFLPBenchConfig(sizes=((3, 3),), hidden=(4,), n_decisions=10, epochs=2, time_limit=30,
                          eval_scenarios=4, workers=1, variants=("unregularized",))
    res = run_cflp_bench(tmp_path, cfg, log=lambda s: None)
    net = res["instances"]["cflp_3_3_s7"]["networks"]["unregularized"]
    assert net["milp"]["status"] == "refused" and "coefficients span" in net["milp"]["reason"]
    assert net["evaluation"] is None and net["enumerated_saa_gap"] >= 0.0
    assert "refused (coefficient range)" in (tmp_path / "results.md").read_text()


def test_snap_negligible_weights_zeroes_only_tiny_weights() -> None:
    from omlt_relax.stochastic.quantile_net import snap_negligible_weights

    net = build_quantile_net(3, (5,), 4).double()
    with torch.no_grad():
        net[0].weight[0, 0] = 1e-9  # negligible next to the layer's largest (~0.5)
        net[0].weight[1, 1] = 0.0  # already zero: not counted
    before = net[0].weight.clone()
    snapped, count = snap_negligible_weights(net, 1e-5)
    assert count == 1 and snapped[0].weight[0, 0] == 0.0
    assert torch.equal(net[0].weight, before)  # the original is untouched
    x = np.random.default_rng(0).random((20, 3))
    np.testing.assert_allclose(predict_quantiles(snapped, x), predict_quantiles(net, x),
                               atol=1e-7)
    assert snap_negligible_weights(net, 0.0)[1] == 0
    with pytest.raises(ValueError, match="negligible weights must be in"):
        snap_negligible_weights(net, 1.5)


def test_search_decision_finds_the_enumerated_optimum_and_a_local_optimum() -> None:
    """Local search by forward passes (the stand-in for instances too large to enumerate) reaches
    the enumeration's optimum on a small instance, and no single flip improves its decision."""
    from omlt_relax.stochastic import search_decision

    inst = make_instance(8, 6, 3)
    risk = RiskObjective(lam=0.5, tail=15)
    model = build_quantile_net(8, (16, 16), seed=7)
    with torch.no_grad():  # quantiles large against the fixed costs: the optimum opens 5 of 8
        model[-2].weight.mul_(10.0 * float(inst.f.sum()))
        model[-2].bias.zero_()
    x, obj = search_decision(model, inst, risk, starts=32)
    every = surrogate_objective(model, inst, all_decisions(8), risk)
    assert all_decisions(8)[every.argmin()].sum() == 5
    # one start stops at a worse local optimum here: the starts are what finds the optimum
    assert search_decision(model, inst, risk, starts=1)[1] > every.min() + 1.0
    assert obj == pytest.approx(every.min(), rel=1e-12)
    assert obj == pytest.approx(surrogate_objective(model, inst, x, risk)[0], rel=1e-12)
    flips = np.abs(x[None, :] - np.eye(8))
    assert surrogate_objective(model, inst, flips, risk).min() >= obj - 1e-9
    with pytest.raises(ValueError, match="starts must be a whole number >= 1"):
        search_decision(model, inst, risk, starts=0)


def test_bench_cflp_above_enumeration_uses_search_and_best_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above MAX_ENUMERATION facilities the bench scores each network's searched decision and
    gives gaps to the best held-out objective found (no exact SAA optimum)."""
    import omlt_relax.stochastic.bench as bench

    monkeypatch.setattr(bench, "MAX_ENUMERATION", 2)
    out = tmp_path / "bench"
    args = ["bench", "--suite", "cflp", "--sizes", "3x3", "--hidden", "4", "--n-decisions", "10",
            "--epochs", "2", "--time-limit", "30", "--eval-scenarios", "4",
            "--variants", "unregularized", "--workers", "1", "--quiet", "--out", str(out)]
    assert cli_main(args) == 0
    rec = json.loads((out / "results.json").read_text())["instances"]["cflp_3_3_s7"]
    net = rec["networks"]["unregularized"]
    assert "saa_optimum" not in rec
    assert net["own_optimum_method"].startswith("local search")
    gaps = [g for g in (net.get("saa_gap"), net.get("enumerated_saa_gap")) if g is not None]
    assert gaps and min(gaps) == pytest.approx(0.0, abs=1e-12) and min(gaps) >= 0.0
    assert rec["best_known"] == pytest.approx(
        min(net[k]["risk_objective"] for k in ("evaluation", "enumerated_evaluation") if net[k]))
    assert "best held-out risk objective" in (out / "results.md").read_text()


@pytest.mark.parametrize("with_head", [True, False])
def test_snap_change_bound_is_sound_by_sampling(with_head: bool) -> None:
    """The certified bound on |snapped(x) - original(x)| holds at 20,000 random points and at
    every corner of the box, with heavy snapping; identical networks get (almost) zero."""
    from omlt_relax.stochastic.quantile_net import snap_change_bound, snap_negligible_weights

    net = build_quantile_net(6, (20, 20), n_quantiles=8, seed=2).double()
    if not with_head:
        net = torch.nn.Sequential(*list(net)[:-1])
    lo, hi = np.full(6, -0.5), np.full(6, 2.0)
    snapped, count = snap_negligible_weights(net, 0.3)
    assert count > 100
    bound = snap_change_bound(net, snapped, lo, hi)
    rng = np.random.default_rng(0)
    x = np.vstack([lo + (hi - lo) * rng.random((20000, 6)),
                   np.where(all_decisions(6) > 0, hi, lo)])
    with torch.no_grad():
        diff = (net(torch.as_tensor(x)) - snapped(torch.as_tensor(x))).abs().max(0).values
    assert np.all(diff.numpy() <= bound) and bound.shape == (8,)
    assert np.all(snap_change_bound(net, net, lo, hi) <= 1e-300)
    with pytest.raises(ValueError, match="same architecture"):
        snap_change_bound(net, build_quantile_net(6, (20,), n_quantiles=8).double(), lo, hi)
    with pytest.raises(ValueError, match="finite input box"):
        snap_change_bound(net, snapped, hi, lo)
