"""``RelaxationRegularizer.backward`` (the gradient of ``scale * reg(x)`` added without a graph)
and lazy regularization (``every=k``).

The numpy path must add exactly (bitwise: same numpy VJP, same operations) what autograd adds
through ``scale * reg(x)``; every other configuration falls back to that autograd call.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from omlt_relax.lp.gap import LPGapPenalty
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.penalty_schedule import Schedule, ScheduledRegularizer
from omlt_relax.regularizer import RelaxationRegularizer, backward_term
from omlt_relax.train import build_model

BOX = ([-3.0, -2.0], [2.5, 3.0])


def _pair(dtype: torch.dtype, seed: int = 0) -> tuple[nn.Sequential, nn.Sequential]:
    net = build_model(2, (16, 16, 16), 1, seed).to(dtype)
    return net, copy.deepcopy(net)


def _reg(net: nn.Module, method: str, **kw: object) -> RelaxationRegularizer:
    return RelaxationRegularizer(
        net, BOX,
        bigm=BigMPenalty(net, BOX, weight=0.3, bounds=method),
        stability=StabilityPenalty(net, BOX, weight=0.7, variant="min", bounds=method),
        bounds=method, **kw,
    )


def _batch(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(32, 2, generator=g, dtype=torch.float64).to(dtype) * 5 - 2.5
    return x, torch.sin(x[:, :1]) * x[:, 1:]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_direct_gradient_is_bitwise_the_autograd_one(dtype: torch.dtype, method: str) -> None:
    net, twin = _pair(dtype)
    r_graph, r_direct = _reg(net, method), _reg(twin, method)
    assert twin[0].weight.grad is None
    # the numpy path, not the autograd fallback
    assert r_direct.source.direct_grad() and r_direct._fused and not r_direct._others
    x, y = _batch(dtype)
    # two steps: the first creates .grad (None before), the second adds to the MSE's gradient
    for _ in range(2):
        for p in (*net.parameters(), *twin.parameters()):
            p.grad = None
        loss = nn.functional.mse_loss(net(x), y) + 0.05 * r_graph(x)
        loss.backward()
        mse = nn.functional.mse_loss(twin(x), y)
        mse.backward()
        value = r_direct.backward(x, scale=0.05)
        assert not value.requires_grad and value.dtype == dtype
        assert float(mse.detach()) + float(value) == pytest.approx(float(loss.detach()), rel=1e-6)
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            assert torch.equal(a.grad, b.grad)
        # the gradient only: no graph left, so another backward() has nothing to add
        assert r_direct.metrics() == r_graph.metrics()
        with torch.no_grad():
            for a, b in zip(net.parameters(), twin.parameters(), strict=True):
                a -= 0.1 * a.grad
                b -= 0.1 * b.grad
    # the penalty-only gradient as well (no MSE term before it)
    for p in twin.parameters():
        p.grad = None
    r_direct.backward(x)
    ref = torch.autograd.grad(r_graph(x), list(net.parameters()), allow_unused=True)
    for g, p in zip(ref, twin.parameters(), strict=True):
        if g is None:  # the output layer: no bound depends on it
            assert p.grad is None
        else:
            assert torch.equal(g, p.grad)


def test_frozen_parameters_and_warmup_are_respected() -> None:
    net, twin = _pair(torch.float64)
    twin[0].weight.requires_grad_(False)
    net[0].weight.requires_grad_(False)
    r_graph, r_direct = _reg(net, "ibp", warmup=2), _reg(twin, "ibp", warmup=2)
    x, _ = _batch(torch.float64)
    for step in range(4):
        for p in (*net.parameters(), *twin.parameters()):
            p.grad = None
        term = r_graph(x)
        if term.requires_grad:
            term.backward()
        value = r_direct.backward(x)
        assert r_direct.step == r_graph.step == step + 1
        if step < 2:  # warm-up: exact zero, nothing added
            assert float(value) == 0.0
            assert all(p.grad is None for p in twin.parameters())
        assert twin[0].weight.grad is None
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            assert (a.grad is None) == (b.grad is None)
            if a.grad is not None:
                assert torch.equal(a.grad, b.grad)


def test_lp_gap_and_scheduled_regularizers_fall_back_to_autograd() -> None:
    net, twin = _pair(torch.float64, seed=1)
    x, _ = _batch(torch.float64)

    def make(m: nn.Module) -> ScheduledRegularizer:
        reg = RelaxationRegularizer(
            m, BOX, bigm=0.2,
            lp_gap=LPGapPenalty(m, BOX, weight=0.5, sense="min", subsample=4, seed=0),
        )
        return ScheduledRegularizer(reg, Schedule(warmup=0.25, ramp=0.5), total=4)

    s_graph, s_direct = make(net), make(twin)
    for step in range(4):
        for p in (*net.parameters(), *twin.parameters()):
            p.grad = None
        term = 2.0 * s_graph(x)
        if term.requires_grad:
            term.backward()
        value = backward_term(s_direct, x, 2.0)
        assert float(value) == pytest.approx(float(term.detach()), rel=1e-12, abs=1e-15)
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            assert (a.grad is None) == (b.grad is None), step
            if a.grad is not None:
                torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
        if step == 0:  # schedule factor 0: nothing evaluated, nothing added
            assert all(p.grad is None for p in twin.parameters())


def test_plain_callables_and_bad_scales() -> None:
    net = build_model(2, (8,), 1, 0).double()
    w = net[0].weight

    def l2(_x: torch.Tensor) -> torch.Tensor:
        return (w * w).sum()

    value = backward_term(l2, None, 3.0)
    torch.testing.assert_close(w.grad, 6.0 * w.detach())
    assert float(value) == pytest.approx(3.0 * float((w * w).sum().detach()))
    reg = _reg(net, "ibp")
    with pytest.raises(ValueError, match="scale must be a finite number"):
        reg.backward(None, float("nan"))


@pytest.mark.parametrize("direct", [False, True])
def test_lazy_regularization_adds_k_times_the_term_on_every_kth_call(direct: bool) -> None:
    net, twin = _pair(torch.float64, seed=2)
    full = _reg(net, "ibp")
    lazy = _reg(twin, "ibp", warmup=1, every=3)
    assert "every=3" in repr(lazy)
    x, _ = _batch(torch.float64)
    for call in range(8):
        for p in (*net.parameters(), *twin.parameters()):
            p.grad = None
        if direct:
            value = lazy.backward(x, scale=0.5)
        else:
            term = 0.5 * lazy(x)
            value = term.detach()
            if term.requires_grad:
                term.backward()
        on = call >= 1 and (call - 1) % 3 == 0  # after the warm-up call: calls 1, 4, 7
        if not on:
            assert float(value) == 0.0
            assert all(p.grad is None for p in twin.parameters()), call
            continue
        ref = 1.5 * full(x)  # k * scale * R at the same weights
        ref.backward()
        assert float(value) == pytest.approx(float(ref.detach()), rel=1e-12)
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            if a.grad is None:
                assert b.grad is None
            else:
                torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0.0)


def test_lazy_every_is_checked_everywhere() -> None:
    from omlt_relax.bench.paper import PaperConfig
    from omlt_relax.lightning import RelaxationCallback

    net = build_model(2, (8,), 1, 0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="every must be a whole number"):
            RelaxationRegularizer(net, BOX, bigm=0.1, every=bad)
        with pytest.raises(ValueError, match="every must be a whole number"):
            RelaxationCallback(BOX, bigm=0.1, every=bad)
    with pytest.raises(ValueError, match="penalty_every"):
        PaperConfig(penalty_every=0)
    # the protocol's key is unchanged at 1 (stored networks stay valid), and differs otherwise
    assert "penalty_every" not in PaperConfig().train_key()
    assert PaperConfig(penalty_every=2).train_key()["penalty_every"] == 2


@pytest.mark.parametrize("variant", ["l1", "l2", "width", "stable_crown", "width+lpgap"])
def test_paper_regularizer_backward_is_the_gradient_of_its_term(variant: str) -> None:
    from omlt_relax.bench.paper import PAPER_VARIANTS, PaperRegularizer

    net, twin = _pair(torch.float32, seed=4)
    box = (torch.tensor(BOX[0]).numpy(), torch.tensor(BOX[1]).numpy())
    p_graph = PaperRegularizer(net, PAPER_VARIANTS[variant], box, seed=0)
    p_direct = PaperRegularizer(twin, PAPER_VARIANTS[variant], box, seed=0)
    x, _ = _batch(torch.float32)
    term = 0.3 * p_graph(x)
    term.backward()
    value = p_direct.backward(x, 0.3)
    assert float(value) == pytest.approx(float(term.detach()), rel=1e-5)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
