"""Benchmark pieces: functions' optima, data splits and folding, weight selection, measurement,
and the suite end to end on a tiny configuration (real HiGHS solves, seconds)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from omlt_relax import train as ltrain
from omlt_relax.bench import data as bdata
from omlt_relax.bench import train as btrain
from omlt_relax.bench.functions import FUNCTIONS, SUITE_2D, get_function
from omlt_relax.bench.measure import measure_network
from omlt_relax.bench.suite import SuiteConfig, load_results, run_suite, summarize

OPT_TOL = 1e-6  # relative to the function's range
GRID = 801  # points per axis of the dense 2-D grid

TINY = btrain.TrainConfig(hidden=(6, 6), epochs=3, batch_size=64)


@pytest.mark.parametrize("name", SUITE_2D)
def test_2d_optima_match_dense_grid(name: str) -> None:
    fn = get_function(name)
    lo, hi = fn.box
    g0, g1 = np.linspace(lo[0], hi[0], GRID), np.linspace(lo[1], hi[1], GRID)
    pts = np.array(np.meshgrid(g0, g1)).reshape(2, -1).T
    v = fn(pts)
    tol = OPT_TOL * fn.f_range
    # the stored optima are attained and no grid point beats them
    assert fn(np.array(fn.x_min))[0] == pytest.approx(fn.f_min, abs=tol)
    assert fn(np.array(fn.x_max))[0] == pytest.approx(fn.f_max, abs=tol)
    assert v.min() >= fn.f_min - tol
    assert v.max() <= fn.f_max + tol
    # and the grid gets close to them (grid spacing limits how close)
    assert v.min() <= fn.f_min + 0.01 * fn.f_range
    assert v.max() >= fn.f_max - 0.01 * fn.f_range


@pytest.mark.parametrize("name", ["ackley5", "rosenbrock5"])
def test_5d_optima_match_multistart(name: str) -> None:
    fn = get_function(name)
    lo, hi = fn.box
    rng = np.random.default_rng(1)
    corners = np.array(list(itertools.product(*zip(lo, hi))))
    pts = np.vstack([rng.uniform(lo, hi, (20000, fn.dim)), corners])
    v = fn(pts)
    tol = OPT_TOL * fn.f_range
    assert fn(np.array(fn.x_min))[0] == pytest.approx(fn.f_min, abs=tol)
    assert fn(np.array(fn.x_max))[0] == pytest.approx(fn.f_max, abs=tol)
    for sign, ref in ((1.0, fn.f_min), (-1.0, fn.f_max)):
        starts = pts[np.argsort(sign * v)[:5]]
        for x0 in starts:
            r = minimize(lambda x, s=sign: s * fn(x[None])[0], x0, bounds=list(zip(lo, hi)),
                         method="L-BFGS-B")
            assert sign * r.fun >= sign * ref - tol


def test_unknown_function_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown benchmark function 'nope'"):
        get_function("nope")
    with pytest.raises(ValueError, match="takes 2 inputs"):
        FUNCTIONS["peaks"](np.zeros((3, 5)))


def test_sampling_is_seeded_and_split() -> None:
    fn = get_function("peaks")
    a = bdata.sample_function(fn, 100, 30, 40, seed=3)
    b = bdata.sample_function(fn, 100, 30, 40, seed=3)
    c = bdata.sample_function(fn, 100, 30, 40, seed=4)
    assert a.x_train.shape == (100, 2) and a.x_val.shape == (30, 2) and a.y_test.shape == (40, 1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    lo, hi = fn.box
    assert (a.x_test >= lo).all() and (a.x_test <= hi).all()
    np.testing.assert_allclose(a.y_test[:, 0], fn(a.x_test))
    xs, ys = a.tensors("train")
    assert abs(float(xs.mean())) < 1e-5 and abs(float(ys.std()) - 1) < 0.02


def test_split_arrays_checks_input() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    d = bdata.split_arrays(x, x.sum(axis=1), val_fraction=0.2, test_fraction=0.2)
    assert d.x_train.shape[0] + d.x_val.shape[0] + d.x_test.shape[0] == 50
    np.testing.assert_allclose(d.lower, x.min(axis=0))
    with pytest.raises(ValueError, match="inverted"):
        bdata.split_arrays(x, x[:, 0], lower=[1, 1, 1], upper=[0, 2, 2])
    with pytest.raises(ValueError, match="NaN"):
        bdata.split_arrays(np.full((5, 1), np.nan), np.zeros(5))


def test_fold_standardization_matches_scaled_forward() -> None:
    fn = get_function("himmelblau")
    d = bdata.sample_function(fn, 200, 20, 20, seed=0)
    model = btrain.build_model(2, (7, 5), 1, seed=0)
    folded = bdata.fold_standardization(model, d.scaler)
    x = d.x_test
    with torch.no_grad():
        ref = model(torch.as_tensor(d.scaler.x(x), dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(bdata.predict(folded, x), d.scaler.y_inverse(ref), rtol=1e-4,
                               atol=1e-4 * float(d.scaler.y_std[0]))
    # hidden pre-activations are unchanged, so are the bounds' stable/unstable patterns
    with torch.no_grad():
        h_std = model[0](torch.as_tensor(d.scaler.x(x), dtype=torch.float32)).double()
        h_raw = folded[0](torch.as_tensor(x))
    np.testing.assert_allclose(h_std.numpy(), h_raw.numpy(), atol=1e-4)


def test_prune_masks_keep_the_output_layer() -> None:
    model = btrain.build_model(2, (10, 10), 1, seed=0)
    masks = btrain.prune_masks(model, 0.7)
    assert masks[0].mean().item() == pytest.approx(0.3, abs=0.05)
    assert masks[1].mean().item() == pytest.approx(0.3, abs=0.02)
    assert masks[2].min().item() == 1.0


def test_finetune_variant_starts_from_the_baseline_and_needs_it() -> None:
    """``bigm+stability_ft`` continues the unregularized network (it is not re-initialized),
    leaves the baseline object untouched, and trains that baseline itself when not given."""
    d = bdata.sample_function(get_function("peaks"), 200, 50, 50, seed=0)
    cfg = btrain.TrainConfig(hidden=(8, 8), epochs=10, batch_size=64)
    base = btrain.fit(d, "unregularized", 0.0, cfg)
    before = {k: v.clone() for k, v in base.std_model.state_dict().items()}
    ft = btrain.fit(d, "bigm+stability_ft", 1e-3, cfg, baseline=base.std_model)
    alone = btrain.fit(d, "bigm+stability_ft", 1e-3, cfg)  # trains the same baseline first
    for k, v in alone.std_model.state_dict().items():
        assert torch.equal(v, ft.std_model.state_dict()[k])
    for k, v in base.std_model.state_dict().items():
        assert torch.equal(v, before[k])  # the baseline is copied, not trained further
    # 3 fine-tuning epochs at a small learning rate: close to the baseline, but not equal
    w0, w1 = before["0.weight"], ft.std_model.state_dict()["0.weight"]
    assert 0 < float((w1 - w0).abs().max()) < 0.2 * float(w0.abs().max())
    assert len(ft.history) == round(cfg.finetune_fraction * cfg.epochs)
    scratch = btrain.fit(d, "bigm+stability", 1e-3, cfg)
    assert float((scratch.std_model.state_dict()["0.weight"] - w0).abs().max()) > float(
        (w1 - w0).abs().max())


def test_recipe_variant_ramps_the_weight_and_holds_then_decays_the_lr(monkeypatch) -> None:
    """``stability_ftd`` fine-tunes the baseline for ``ft_epochs`` × epochs: the penalty weight
    rises linearly over the first half of the steps, the learning rate starts at ``ft_lr`` × η,
    stays there for the first half and ends at ``ft_final_lr`` × its start."""
    d = bdata.sample_function(get_function("peaks"), 256, 64, 64, seed=0)
    cfg = btrain.TrainConfig(hidden=(8, 8), epochs=8, batch_size=64)
    base = btrain.fit(d, "unregularized", 0.0, cfg)
    v = btrain.VARIANTS["stability_ftd"]
    factors: list[float] = []
    lrs: list[float] = []
    from omlt_relax.schedule import ScheduledRegularizer

    real_scheduled = ScheduledRegularizer.backward  # the loop adds its gradient after backward

    def spy(self, x, scale=1.0):
        factors.append(self.schedule.factor(self.step, self.total))
        return real_scheduled(self, x, scale)

    real_step = torch.optim.Adam.step

    def step(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(ScheduledRegularizer, "backward", spy)
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    ft = btrain.fit(d, "stability_ftd", 1e-3, cfg, baseline=base.std_model)
    total = round(v.ft_epochs * cfg.epochs) * 4  # 256 rows / batch 64 = 4 steps per epoch
    assert len(ft.history) == round(v.ft_epochs * cfg.epochs) and len(factors) == total
    half = total // 2
    assert factors[0] == pytest.approx(1 / half) and factors[half - 1] == 1.0
    assert all(b > a for a, b in itertools.pairwise(factors[:half]))
    assert lrs[:half] == [pytest.approx(v.ft_lr * cfg.lr)] * half
    assert lrs[-1] < 0.05 * v.ft_lr * cfg.lr and lrs[-1] >= v.ft_final_lr * v.ft_lr * cfg.lr
    assert all(b <= a for a, b in itertools.pairwise(lrs[half:]))


def test_recipe_control_is_the_recipe_without_a_penalty(monkeypatch) -> None:
    """``unregularized_ftd`` continues the baseline with the recipe's learning rates and epochs
    and no penalty: same steps and lr schedule as ``stability_ftd``, no regularizer called, and it
    is left out of ``--variants all``."""
    d = bdata.sample_function(get_function("peaks"), 256, 64, 64, seed=0)
    cfg = btrain.TrainConfig(hidden=(8, 8), epochs=8, batch_size=64)
    base = btrain.fit(d, "unregularized", 0.0, cfg)
    lrs: dict[str, list[float]] = {"stability_ftd": [], "unregularized_ftd": []}
    current: list[str] = []
    real_step = torch.optim.Adam.step

    def step(self, *a, **k):
        lrs[current[0]].append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    from omlt_relax.regularizer import RelaxationRegularizer

    def no_penalty(*a, **k):
        raise AssertionError("the control must not build a regularizer")

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    current.append("stability_ftd")
    btrain.fit(d, "stability_ftd", 1e-3, cfg, baseline=base.std_model)
    monkeypatch.setattr(RelaxationRegularizer, "__init__", no_penalty)
    current[0] = "unregularized_ftd"
    ctrl = btrain.fit(d, "unregularized_ftd", 0.0, cfg, baseline=base.std_model)
    assert lrs["unregularized_ftd"] == lrs["stability_ftd"] and len(lrs["stability_ftd"]) == 16
    w0 = base.std_model.state_dict()["0.weight"]
    assert 0 < float((ctrl.std_model.state_dict()["0.weight"] - w0).abs().max())
    assert "unregularized_ftd" in btrain.VARIANTS
    assert "unregularized_ftd" not in btrain.SUITE_VARIANTS
    assert "stability_ftd" in btrain.SUITE_VARIANTS and "unregularized" in btrain.SUITE_VARIANTS


@pytest.mark.parametrize(("name", "lp_weight"), [("stability_lpgap_ftd", 1.0),
                                                  ("stability_lpgap4_ftd", 4.0)])
def test_lp_gap_recipe_adds_the_crown_lp_gap_of_both_senses(monkeypatch, name: str,
                                                            lp_weight: float) -> None:
    """The LP-gap recipe variants are ``stability_ftd`` plus an :class:`LPGapPenalty` on CROWN
    big-M constants, both senses, total derivative, weighted ``lp_weight`` × the scale: the
    penalty is built so, reports a finite gap, and moves the network away from
    ``stability_ftd``'s (same data, seed and steps)."""
    d = bdata.sample_function(get_function("peaks"), 256, 64, 64, seed=0)
    cfg = btrain.TrainConfig(hidden=(8, 8), epochs=4, batch_size=64)
    base = btrain.fit(d, "unregularized", 0.0, cfg)
    built: list[dict] = []
    real = ltrain.LPGapPenalty

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k):
            built.append(k)
            super().__init__(*a, **k)

    monkeypatch.setattr(ltrain, "LPGapPenalty", Spy)
    scale = 1e-3
    res = btrain.fit(d, name, scale, cfg, baseline=base.std_model)
    (k,) = built
    assert (k["bounds"], k["sense"], k["derivative"]) == ("crown", "both", "total")
    assert k["weight"] == pytest.approx(lp_weight * scale)
    gaps = [h["reg_mean_lp_gap"] for h in res.history if "reg_mean_lp_gap" in h]
    assert gaps and all(np.isfinite(g) and g >= -1e-9 for g in gaps)
    plain = btrain.fit(d, "stability_ftd", scale, cfg, baseline=base.std_model)
    w, w0 = res.std_model.state_dict()["0.weight"], plain.std_model.state_dict()["0.weight"]
    assert float((w - w0).abs().max()) > 1e-6


@pytest.mark.parametrize("search", ["bisect", "linear"])
def test_selection_picks_largest_weight_within_tolerance(monkeypatch, search: str) -> None:
    # the rule itself, on a known monotone RMSE curve (training replaced by the curve)
    d = bdata.sample_function(get_function("peaks"), 20, 10, 10)
    calls: list[float] = []

    def fake(data, variant, scale, config=None, baseline=None, progress=None):
        calls.append(scale)
        return btrain.TrainResult(None, "bigm", scale, 1.0 + scale, 1.0, 0.0)  # type: ignore[arg-type]

    monkeypatch.setattr(ltrain, "fit", fake)  # the library's training loop, which the rule calls
    v = btrain.Variant("t", bigm=1.0, grid=(1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.01))
    sel = btrain.select_weight(d, v, 1.0, tolerance=1.25, search=search)
    assert sel.result.scale == 0.2 and sel.within_tolerance
    if search == "bisect":
        assert len(calls) <= 4
    sel = btrain.select_weight(d, v, 1.0, tolerance=1.001, search=search)
    assert sel.result.scale == 0.01 and not sel.within_tolerance


def test_every_variant_trains() -> None:
    d = bdata.sample_function(get_function("peaks"), 64, 16, 16)
    for name, v in btrain.VARIANTS.items():
        res = btrain.train_variant(d, v, v.grid[-1], btrain.TrainConfig(hidden=(4, 4), epochs=1))
        assert res.model[0].weight.dtype == torch.float64, name
        assert np.isfinite(res.val_rmse), name


def test_measure_network_reports_a_consistent_milp() -> None:
    fn = get_function("peaks")
    d = bdata.sample_function(fn, 300, 50, 100)
    res = btrain.train_variant(d, "unregularized", 0.0, btrain.TrainConfig(hidden=(6, 6),
                                                                             epochs=5))
    m = measure_network(res.model, d, fn, time_limit=20)
    assert m["solved_all"]
    assert m["unstable_obbt"] <= m["unstable_crown"] <= m["unstable_ibp"]
    lo, hi = fn.box
    grid = np.random.default_rng(0).uniform(lo, hi, (5000, 2))
    vals = bdata.predict(res.model, grid)[:, 0]
    for s in ("min", "max"):
        r = m["milp"][s]
        # the optimum is the network at the solution and no sample beats it
        at_x = bdata.predict(res.model, np.array([r["x"]]))[0, 0]
        assert at_x == pytest.approx(r["objective"], rel=1e-6, abs=1e-6)
        if s == "min":
            assert vals.min() >= r["objective"] - 1e-6
            assert m["root_lp"]["min"] <= r["objective"] + 1e-6
        else:
            assert vals.max() <= r["objective"] + 1e-6
            assert m["root_lp"]["max"] >= r["objective"] - 1e-6
        assert m["true_opt"][s]["error"] >= -1e-9
        assert r["n_binaries"] == m["unstable_obbt"]


def test_suite_tiny_end_to_end_and_resume(tmp_path) -> None:
    cfg = SuiteConfig(functions=["peaks"], variants=["unregularized", "l1", "bigm"], train=TINY,
                      time_limit=5, n_train=150, n_val=40, n_test=100)
    lines: list[str] = []
    res = run_suite(cfg, tmp_path, progress=False, log=lines.append)
    assert len(lines) == 3
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["entries"]) == {"peaks/unregularized", "peaks/l1", "peaks/bigm"}
    assert data["summary"]["per_entry"]["peaks/unregularized"]["speedup"] == pytest.approx(1.0)
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert "| bigm |" in (tmp_path / "results.md").read_text()
    # resume: nothing left to do, nothing retrained
    lines.clear()
    res2 = run_suite(cfg, tmp_path, progress=False, log=lines.append)
    assert lines == []
    assert res2["entries"] == res["entries"]
    # a different configuration in the same directory is refused
    other = SuiteConfig(functions=["peaks"], variants=["unregularized"],
                        train=btrain.TrainConfig(hidden=(6, 6), epochs=4), time_limit=5,
                        n_train=150, n_val=40, n_test=100)
    with pytest.raises(ValueError, match="different configuration"):
        run_suite(other, tmp_path, progress=False)
    assert summarize(load_results(tmp_path))["per_variant"]["bigm"]["n_functions"] == 1
