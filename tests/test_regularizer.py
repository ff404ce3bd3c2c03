"""RelaxationRegularizer: combination, shared bounds, warm-up, metrics, training effect, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import load_script
from torch import nn

from omlt_relax import crown_bounds, interval_bounds
from omlt_relax.bench.functions import peaks_tensor as peaks
from omlt_relax.network import UnsupportedNetworkError
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.regularizer import RelaxationRegularizer
from omlt_relax.train import build_model

ROOT = Path(__file__).resolve().parents[1]
BOX = ([-3.0, -3.0], [3.0, 3.0])
TOL = 1e-10

try:
    from omlt_relax.lp.gap import LPGapPenalty, lp_gap

    HAVE_LP = True
except ImportError:  # the LP module is optional for these tests
    HAVE_LP = False

needs_lp = pytest.mark.skipif(not HAVE_LP, reason="omlt_relax.lp not available")


def num(t: torch.Tensor) -> float:
    return float(t.detach())


def make_net(seed: int = 0, width: int = 12, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    return build_model(2, (width, width), 1, seed).to(dtype)


def test_value_is_the_sum_of_the_penalties_and_gradients_agree() -> None:
    net = make_net()
    x = torch.rand(8, 2, dtype=torch.float64) * 6 - 3
    reg = RelaxationRegularizer(net, BOX, bigm=0.1, stability=0.01)
    val = reg(x)
    ref = BigMPenalty(net, BOX, weight=0.1)() + StabilityPenalty(net, BOX, weight=0.01)()
    assert num(val) == pytest.approx(num(ref), abs=TOL)
    params = list(net.parameters())
    g1 = torch.autograd.grad(val, params, allow_unused=True)
    g2 = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(g1, g2, strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _count_bound_passes(reg: RelaxationRegularizer) -> list[str]:
    """Record every bound computation of ``reg`` (fused numpy passes with how many penalties ride
    along)."""
    calls: list[str] = []
    compute, fused = reg.source.compute, reg.source.fused_penalties

    def counting_compute(method: str):
        calls.append(f"compute:{method}")
        return compute(method)

    def counting_fused(method: str, pens: tuple):
        calls.append(f"{method}+{len(pens)} penalties")
        return fused(method, pens)

    reg.source.compute = counting_compute  # type: ignore[method-assign]
    reg.source.fused_penalties = counting_fused  # type: ignore[method-assign]
    return calls


def test_bounds_are_computed_once_per_method_and_call() -> None:
    net = make_net()
    reg = RelaxationRegularizer(
        net,
        BOX,
        bigm=BigMPenalty(net, BOX, weight=1.0, variant="max_unstable"),
        stability=StabilityPenalty(net, BOX, weight=1.0, variant="triangle"),
    )
    calls = _count_bound_passes(reg)
    reg()
    assert calls == ["ibp+2 penalties"]
    mixed = RelaxationRegularizer(
        net, BOX, bigm=0.1, stability=StabilityPenalty(net, BOX, bounds="crown")
    )
    calls = _count_bound_passes(mixed)
    val = mixed()
    assert calls == ["ibp+1 penalties", "crown+1 penalties"]
    assert mixed.metrics()["unstable"] == interval_bounds(net, *BOX).unstable_count()
    ref = BigMPenalty(net, BOX, weight=0.1)() + StabilityPenalty(net, BOX, bounds="crown")()
    assert num(val) == pytest.approx(num(ref), abs=TOL)
    crown = RelaxationRegularizer(net, BOX, bigm=0.1, stability=0.2, bounds="crown")
    calls = _count_bound_passes(crown)
    crown()
    assert calls == ["crown+2 penalties"]


def test_fast_interval_bounds_equal_the_foundation_ones() -> None:
    """Shared IBP bounds (numpy path) equal interval_bounds, values and gradients."""
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        net = make_net(seed=4, width=16, dtype=dtype)
        reg = RelaxationRegularizer(net, BOX, bigm=1.0)
        fast = reg.source.compute("ibp")
        ref = interval_bounds(net, *BOX)
        for a, b in zip(fast.lower + fast.upper, ref.lower + ref.upper, strict=True):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
        w = torch.randn(2 * sum(fast.widths), dtype=dtype)
        params = [p for p in net.parameters()][:4]
        g_fast = torch.autograd.grad((torch.cat(fast.lower + fast.upper) * w).sum(), params)
        g_ref = torch.autograd.grad((torch.cat(ref.lower + ref.upper) * w).sum(), params)
        for a, b in zip(g_fast, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=10 * tol, atol=10 * tol)


def test_warmup_returns_zero_then_the_full_term() -> None:
    net = make_net()
    reg = RelaxationRegularizer(net, BOX, bigm=0.5, warmup=3)
    full = num(BigMPenalty(net, BOX, weight=0.5)())
    for step in range(3):
        assert reg.step == step and not reg.active
        val = reg()
        assert num(val) == 0.0 and not val.requires_grad
        assert reg.metrics()["bigm"] == 0.0
    assert reg.active
    val = reg()
    assert val.requires_grad and num(val) == pytest.approx(full, abs=TOL)
    assert reg.step == 4


def test_no_terms_gives_zero_and_metrics_of_the_current_model() -> None:
    net = make_net()
    reg = RelaxationRegularizer(net, BOX)
    assert num(reg()) == 0.0
    m = reg.metrics()
    nb = interval_bounds(net, *BOX).numpy()
    assert m["unstable"] == nb.unstable_count()
    assert m["mean_bigm"] == pytest.approx(nb.mean_bigm())
    assert m["total"] == 0.0 and math.isnan(m["mean_lp_gap"])


def test_metrics_describe_the_last_call() -> None:
    net = make_net()
    reg = RelaxationRegularizer(net, BOX, bigm=0.1, stability=0.2, bounds="crown")
    val = reg()
    m = reg.metrics()
    nb = crown_bounds(net, *BOX).numpy()
    assert m["unstable"] == nb.unstable_count()
    assert m["mean_bigm"] == pytest.approx(nb.mean_bigm(), rel=1e-12)
    assert m["max_bigm"] == pytest.approx(nb.max_bigm(), rel=1e-12)
    assert m["bigm"] == pytest.approx(num(BigMPenalty(net, BOX, 0.1, bounds="crown")()))
    assert m["stability"] == pytest.approx(num(StabilityPenalty(net, BOX, 0.2, bounds="crown")()))
    assert m["total"] == pytest.approx(num(val))
    assert m["skipped_lps"] == 0.0 and m["step"] == 1.0
    assert set(m) == {
        "unstable", "mean_bigm", "max_bigm", "mean_lp_gap", "skipped_lps",
        "bigm", "stability", "total", "step",
    }  # fmt: skip


@needs_lp
def test_lp_gap_term_matches_the_lp_gap_penalty_and_reports_its_metrics() -> None:
    net = make_net(width=6)
    x = torch.rand(10, 2, dtype=torch.float64) * 6 - 3
    reg = RelaxationRegularizer(net, BOX, bigm=0.1, lp_gap=0.5)
    val = reg(x)
    gaps = lp_gap(net, x, BOX)
    ref = 0.1 * BigMPenalty(net, BOX)() + 0.5 * gaps.mean()
    assert num(val) == pytest.approx(num(ref), rel=1e-8, abs=1e-10)
    g1 = torch.autograd.grad(val, net[0].weight)[0]
    g2 = torch.autograd.grad(ref, net[0].weight)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-8)
    m = reg.metrics()
    assert m["mean_lp_gap"] == pytest.approx(num(gaps.mean()), rel=1e-8, abs=1e-10)
    assert m["skipped_lps"] == 0.0
    assert m["lp_gap"] == pytest.approx(0.5 * m["mean_lp_gap"], rel=1e-8, abs=1e-10)
    with pytest.raises(ValueError, match="needs the training batch"):
        reg()


@needs_lp
def test_lp_gap_penalty_instance_is_accepted() -> None:
    net = make_net(width=6)
    pen = LPGapPenalty(net, BOX, weight=2.0, sense="both", subsample=4)
    reg = RelaxationRegularizer(net, BOX, lp_gap=pen)
    val = reg(torch.rand(16, 2, dtype=torch.float64) * 6 - 3)
    assert val.requires_grad and num(val) >= 0.0
    assert reg.metrics()["mean_lp_gap"] >= 0.0


def _train(regularize: bool, steps: int = 150, seed: int = 0) -> dict[str, float]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(256, 2, generator=g) * 6 - 3
    y = peaks(x)
    net = make_net(seed=seed, width=16, dtype=torch.float32)
    reg = RelaxationRegularizer(
        net,
        BOX,
        bigm=0.01 if regularize else None,
        stability=StabilityPenalty(net, BOX, weight=0.01, variant="triangle")
        if regularize
        else None,
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = nn.functional.mse_loss(net(x), y) + reg(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = RelaxationRegularizer(net, BOX).metrics()
    out["rmse"] = num(nn.functional.mse_loss(net(x), y)) ** 0.5
    return out


def test_regularized_training_reduces_unstable_neurons_and_bigm() -> None:
    plain = _train(regularize=False)
    reg = _train(regularize=True)
    # seed 0: about 31 -> 18 unstable, mean big-M 10.0 -> 3.9 (seeds 1-3 behave alike)
    assert reg["unstable"] <= 0.8 * plain["unstable"]
    assert reg["mean_bigm"] <= 0.7 * plain["mean_bigm"]
    assert reg["rmse"] < 1.5  # still fits (peaks ranges over about [-6.5, 8])


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("box", "match"),
    [
        (([1.0, 0.0], [0.0, 1.0]), "inverted at input 0"),
        (([0.0, float("nan")], [1.0, 1.0]), "input bound 1 is not finite"),
        (([float("-inf"), 0.0], [1.0, 1.0]), "input bound 0 is not finite"),
        (([0.0], [1.0]), "1 entries but the network has 2 inputs"),
    ],
)
def test_bad_boxes_are_clear_errors(box: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RelaxationRegularizer(make_net(), box, bigm=1.0)


def test_bad_arguments_are_clear_errors() -> None:
    net = make_net()
    with pytest.raises(UnsupportedNetworkError, match=r"module 1 \(Sigmoid\) is not supported"):
        RelaxationRegularizer(
            nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1)), BOX, bigm=1.0
        )
    with pytest.raises(ValueError, match="bound to another model"):
        RelaxationRegularizer(net, BOX, bigm=BigMPenalty(make_net(1), BOX))
    with pytest.raises(TypeError, match="must be None, a weight or a penalty object"):
        RelaxationRegularizer(net, BOX, stability="xiao")
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        RelaxationRegularizer(net, BOX, bigm=-0.1)
    with pytest.raises(ValueError, match="warmup must be a whole number"):
        RelaxationRegularizer(net, BOX, bigm=0.1, warmup=-1)
    with pytest.raises(ValueError, match="unknown bounds method 'lp'"):
        RelaxationRegularizer(net, BOX, bigm=0.1, bounds="lp")
    reg = RelaxationRegularizer(net, BOX, bigm=0.1)
    with pytest.raises(ValueError, match=r"shape \(4, 3\) but the network takes 2 inputs"):
        reg(torch.zeros(4, 3, dtype=torch.float64))


# -- the example and the benchmark run -----------------------------------------------------------
_load = load_script


def test_peaks_example_runs_on_tiny_settings(capsys: pytest.CaptureFixture[str]) -> None:
    example = _load("examples/peaks_training.py")
    args = ["--epochs", "3", "--n-train", "256", "--n-test", "256", "--lp-samples", "8"]
    res = example.main(args)
    out = capsys.readouterr().out
    assert "test RMSE" in out and "unstable (IBP)" in out and "mean big-M" in out
    assert set(res) == {"unregularized", "regularized"}
    for row in res.values():
        assert row["unstable_crown"] <= row["unstable_ibp"]
        assert math.isfinite(row["rmse"])


def test_training_benchmark_runs_on_tiny_settings(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load("benchmarks/bench_training.py")
    res = bench.main(["--rounds", "2", "--steps", "3", "--lp-samples", "8"])
    out = capsys.readouterr().out
    assert "ratio" in out and res["steps"]["bigm+xiao"]["ratio_cpu"] > 0
    for row in ("paper stable (backward)", "paper width (backward, every 2)"):
        assert res["steps"][row]["ratio_cpu"] > 0 and row in out


def test_lazy_benchmark_refuses_a_folder_without_the_baseline(tmp_path: Path) -> None:
    bench = _load("benchmarks/bench_lazy.py")
    with pytest.raises(SystemExit, match="has no trained peaks-d5-s0-none-0"):
        bench.main(["--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no penalty"):
        bench.main(["--out", str(tmp_path), "--variant", "none_ft"])
