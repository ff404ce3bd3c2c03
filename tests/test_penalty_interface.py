"""One penalty interface: built-in and user penalties in ``penalties=[...]``, same numbers as the
keyword arguments, and the Lightning callback's conventions (state key, checks in ``__init__``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from omlt_relax import BigMPenalty, LPGapPenalty, RelaxationRegularizer, StabilityPenalty
from omlt_relax.penalties import BoundPenalty, Penalty
from omlt_relax.train import build_model

BOX = ([-3.0, -3.0], [3.0, 3.0])
TOL = 1e-12


class WeightNorm(Penalty):
    """A user penalty: the squared Frobenius norm of the first layer (needs no bounds)."""

    name = "first_layer_norm"

    def value(self, bounds=None, x=None) -> torch.Tensor:
        return (self.model[0].weight ** 2).sum()


class MeanUpper(BoundPenalty):
    """A user bound penalty: the mean upper bound (torch path only, no numpy gradient)."""

    name = "mean_upper"

    def bounds_value(self, bounds) -> torch.Tensor:
        return torch.cat([u.reshape(-1) for u in bounds.upper]).mean()


def net64(seed: int = 0) -> nn.Sequential:
    return build_model(2, (8, 8), 1, seed).double()


def grads(t: torch.Tensor, net: nn.Module) -> list[torch.Tensor]:
    """Gradients in every parameter (zero where a term does not depend on it)."""
    params = list(net.parameters())
    gs = torch.autograd.grad(t, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs, strict=True)]


def num(t: torch.Tensor) -> float:
    return float(t.detach())


def test_every_penalty_implements_the_interface() -> None:
    net = net64()
    pens = [
        BigMPenalty(net, BOX, weight=0.1),
        StabilityPenalty(net, BOX, weight=0.2, bounds="crown"),
        LPGapPenalty(net, BOX, weight=0.3, subsample=8),  # no subsampling of 6 rows
        WeightNorm(net, BOX, weight=0.5),
    ]
    x = torch.rand(6, 2, dtype=torch.float64) * 6 - 3
    for pen in pens:
        assert isinstance(pen, Penalty)
        assert pen.model is net
        assert pen.bounds_method in ("ibp", "crown", None)
        val = pen(x)
        torch.testing.assert_close(val, pen.weight * pen.value(None, x), rtol=1e-9, atol=TOL)
    assert [p.needs_x for p in pens] == [False, False, True, False]
    assert [p.bounds_method for p in pens] == ["ibp", "crown", "ibp", None]


def test_list_of_penalties_equals_keyword_arguments() -> None:
    net = net64(1)
    x = torch.rand(8, 2, dtype=torch.float64) * 6 - 3
    kw = RelaxationRegularizer(net, BOX, bigm=0.1, stability=0.01)
    listed = RelaxationRegularizer(
        net, BOX,
        penalties=[BigMPenalty(net, BOX, weight=0.1), StabilityPenalty(net, BOX, weight=0.01)],
    )
    a, b = kw(x), listed(x)
    assert num(a) == pytest.approx(num(b), abs=TOL)
    for ga, gb in zip(grads(a, net), grads(b, net), strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=TOL)
    assert listed.metrics()["bigm"] == pytest.approx(kw.metrics()["bigm"], abs=TOL)


def test_user_penalties_add_their_terms_under_their_names() -> None:
    net = net64(2)
    x = torch.rand(8, 2, dtype=torch.float64) * 6 - 3
    mine = WeightNorm(net, BOX, weight=0.5)
    upper = MeanUpper(net, BOX, weight=0.25, bounds="ibp")
    third = MeanUpper(net, BOX, 1.0, "ibp")
    reg = RelaxationRegularizer(net, BOX, bigm=0.1, penalties=[mine, upper, third])
    total = reg(x)
    ref = BigMPenalty(net, BOX, weight=0.1)() + mine() + upper() + third()
    assert num(total) == pytest.approx(num(ref), abs=1e-10)
    for g, gr in zip(grads(total, net), grads(ref, net), strict=True):
        torch.testing.assert_close(g, gr, rtol=1e-9, atol=1e-12)
    m = reg.metrics()
    assert set(m) >= {"bigm", "first_layer_norm", "mean_upper", "mean_upper_2"}
    assert m["first_layer_norm"] == pytest.approx(num(mine()), rel=1e-12)
    assert not upper.fusable and BigMPenalty(net, BOX).fusable


def test_bad_penalties_are_clear_errors() -> None:
    net = net64()
    with pytest.raises(TypeError, match="penalties= takes Penalty objects"):
        RelaxationRegularizer(net, BOX, penalties=[lambda x, bounds=None: x.sum()])
    with pytest.raises(ValueError, match="bound to another model"):
        RelaxationRegularizer(net, BOX, penalties=[WeightNorm(net64(3), BOX)])
    with pytest.raises(ValueError, match="penalty weight must be a finite number >= 0"):
        WeightNorm(net, BOX, weight=-1.0)
    with pytest.raises(ValueError, match="penalty weight must be a finite number >= 0"):
        LPGapPenalty(net, BOX, weight="0.1")  # type: ignore[arg-type]


def test_callback_checks_options_at_construction_and_has_a_state_key(tmp_path: Path) -> None:
    pytest.importorskip("lightning.pytorch")
    from omlt_relax.lightning import RelaxationCallback

    with pytest.raises(ValueError, match="penalty weight must be a finite number >= 0"):
        RelaxationCallback(BOX, bigm=-1.0)
    with pytest.raises(ValueError, match="unknown bounds method 'lp'"):
        RelaxationCallback(BOX, bigm=0.1, bounds="lp")
    with pytest.raises(ValueError, match="warmup must be a whole number"):
        RelaxationCallback(BOX, bigm=0.1, warmup=1.5)
    with pytest.raises(TypeError, match="penalties= takes a list of Penalty objects"):
        RelaxationCallback(BOX, penalties=["bigm"])  # type: ignore[list-item]
    a = RelaxationCallback(BOX, bigm=0.1)
    b = RelaxationCallback(([-1.0, -1.0], [1.0, 1.0]), bigm=0.1)
    assert a.state_key != b.state_key
    assert a.state_key.startswith("RelaxationCallback")
