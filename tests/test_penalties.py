"""BigMPenalty and StabilityPenalty: hand-computed values, gradients, bound sharing, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from omlt_relax import IncrementalQuantileHead, crown_bounds, interval_bounds
from omlt_relax.network import UnsupportedNetworkError
from omlt_relax.neuron_bounds import BoundsMismatchError
from omlt_relax.penalties import BigMPenalty, StabilityPenalty

TOL = 1e-12


def num(t: torch.Tensor) -> float:
    return float(t.detach())


BOX = ([-1.0], [2.0])


@pytest.fixture
def tiny() -> nn.Sequential:
    """1 input, hidden layers of widths 3 and 1, hand-computable bounds over x in [-1, 2].

    Layer 1: x -> [-1, 2], -2x+1 -> [-3, 3], x/2-2 -> [-2.5, -1] (stably inactive).
    Layer 2: relu(z1)+relu(z2)-1: IBP [-1, 4]; CROWN upper -x/3+5/3 <= 2, lower -x >= -2,
    so CROWN (intersected with IBP) [-1, 2].
    """
    m = nn.Sequential(nn.Linear(1, 3), nn.ReLU(), nn.Linear(3, 1), nn.ReLU(), nn.Linear(1, 1))
    m = m.double()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0], [-2.0], [0.5]]))
        m[0].bias.copy_(torch.tensor([0.0, 1.0, -2.0]))
        m[2].weight.copy_(torch.tensor([[1.0, 1.0, 0.0]]))
        m[2].bias.copy_(torch.tensor([-1.0]))
    return m


def test_bounds_of_the_fixture_are_what_the_docstring_says(tiny: nn.Sequential) -> None:
    ib = interval_bounds(tiny, *BOX)
    assert ib.lower[0].tolist() == [-1.0, -3.0, -2.5]
    assert ib.upper[0].tolist() == [2.0, 3.0, -1.0]
    assert ib.lower[1].tolist() == [-1.0] and ib.upper[1].tolist() == [4.0]
    cb = crown_bounds(tiny, *BOX)
    cbn = cb.numpy()
    assert cbn.lower[1].tolist() == pytest.approx([-1.0])
    assert cbn.upper[1].tolist() == pytest.approx([2.0])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # (1/K) sum_k mean_i (u - l) = ((3 + 6 + 1.5)/3 + 5)/2
        ({}, (10.5 / 3 + 5.0) / 2),
        ({"normalize": False}, 10.5 + 5.0),
        ({"bounds": "crown"}, (10.5 / 3 + 3.0) / 2),
        # max(-l, u) on unstable neurons: layer 1 (2 + 3 + 0)/3, layer 2: 4
        ({"variant": "max_unstable"}, (5.0 / 3 + 4.0) / 2),
        ({"variant": "max_unstable", "normalize": False}, 2.0 + 3.0 + 4.0),
        ({"variant": "max_unstable", "bounds": "crown"}, (5.0 / 3 + 2.0) / 2),
        ({"weight": 0.5}, 0.5 * (10.5 / 3 + 5.0) / 2),
    ],
)
def test_bigm_values_by_hand(tiny: nn.Sequential, kwargs: dict, expected: float) -> None:
    val = BigMPenalty(tiny, BOX, **kwargs)()
    assert val.dim() == 0 and val.dtype == torch.float64
    assert num(val) == pytest.approx(expected, abs=TOL)


def test_stability_values_by_hand(tiny: nn.Sequential) -> None:
    # l*u per neuron: -2, -9, 2.5 (layer 1) and -4 (layer 2, IBP)
    lu = [-2.0, -9.0, 2.5, -4.0]
    xiao = sum(-math.tanh(1 + v) for v in lu)
    assert num(StabilityPenalty(tiny, BOX)()) == pytest.approx(xiao, abs=TOL)
    xiao_c = sum(-math.tanh(1 + 0.1 * v) for v in lu)
    assert num(StabilityPenalty(tiny, BOX, c=0.1)()) == pytest.approx(xiao_c, abs=TOL)
    # relu(u) relu(-l) / (u - l): 2*1/3, 3*3/6, 0, 4*1/5
    tri = 2 / 3 + 1.5 + 0.0 + 4 / 5
    pen = StabilityPenalty(tiny, BOX, variant="triangle", weight=2.0)
    assert num(pen()) == pytest.approx(2.0 * tri, abs=TOL)
    # CROWN: layer 2 in [-1, 2] -> 2*1/3
    tri_c = 2 / 3 + 1.5 + 2 / 3
    pen_c = StabilityPenalty(tiny, BOX, variant="triangle", bounds="crown")
    assert num(pen_c()) == pytest.approx(tri_c, abs=TOL)
    # Tsay 2026's stable-neuron term min(relu(-l), relu(u)): min(1, 2), min(3, 3), 0, min(1, 4)
    stable_min = 1.0 + 3.0 + 0.0 + 1.0
    assert num(StabilityPenalty(tiny, BOX, variant="min")()) == pytest.approx(stable_min, abs=TOL)


def test_triangle_is_the_relaxation_gap_at_zero(tiny: nn.Sequential) -> None:
    """The triangle term equals the LP-relaxation upper envelope minus relu at zhat = 0."""
    l, u = -3.0, 3.0
    envelope_at_zero = u * (0.0 - l) / (u - l)
    single = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        single[0].weight.fill_(-2.0)
        single[0].bias.fill_(1.0)
    pen = StabilityPenalty(single, BOX, variant="triangle")
    assert num(pen()) == pytest.approx(envelope_at_zero - 0.0, abs=TOL)


def test_stable_network_has_zero_bigm_unstable_and_triangle() -> None:
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        m[0].bias.copy_(torch.tensor([5.0, -5.0]))
    box = ([-1.0, -1.0], [1.0, 1.0])
    assert num(BigMPenalty(m, box, variant="max_unstable")()) == 0.0
    assert num(StabilityPenalty(m, box, variant="triangle")()) == 0.0
    # both neurons clearly stable: each Xiao term close to -1
    assert num(StabilityPenalty(m, box)()) < -1.99


def _functional(model: nn.Sequential, make_pen):
    """A function of the Linear parameters, for gradcheck: parameters become plain tensors."""
    linears = [mod for mod in model if isinstance(mod, nn.Linear)]

    def f(*params: torch.Tensor) -> torch.Tensor:
        for lin, (w, b) in zip(linears, zip(params[::2], params[1::2], strict=True), strict=True):
            del lin.weight, lin.bias
            lin.weight, lin.bias = w, b
        return make_pen(model)()

    inputs = []
    for lin in linears:
        inputs += [lin.weight.detach().clone(), lin.bias.detach().clone()]
    return f, tuple(t.requires_grad_(True) for t in inputs)


@pytest.mark.parametrize("method", ["ibp", "crown"])
@pytest.mark.parametrize(
    "make",
    [
        lambda m, b: BigMPenalty(m, ([-1.0, -2.0], [1.5, 1.0]), bounds=b),
        lambda m, b: BigMPenalty(m, ([-1.0, -2.0], [1.5, 1.0]), bounds=b, normalize=False),
        lambda m, b: BigMPenalty(m, ([-1.0, -2.0], [1.5, 1.0]), bounds=b, variant="max_unstable"),
        lambda m, b: StabilityPenalty(m, ([-1.0, -2.0], [1.5, 1.0]), bounds=b, c=0.3),
        lambda m, b: StabilityPenalty(m, ([-1.0, -2.0], [1.5, 1.0]), bounds=b, variant="triangle"),
        lambda m, b: StabilityPenalty(m, ([-1.0, -2.0], [1.5, 1.0]), bounds=b, variant="min"),
    ],
    ids=["range", "range-sum", "max_unstable", "xiao", "triangle", "min"],
)
def test_gradients_match_gradcheck(method: str, make) -> None:
    """At a generic point (no bound at a kink) each penalty is smooth; autograd is exact."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)
    ).double()
    f, inputs = _functional(model, lambda m: make(m, method))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "make",
    [
        lambda m, box: BigMPenalty(m, box, weight=0.3),
        lambda m, box: BigMPenalty(m, box, normalize=False),
        lambda m, box: BigMPenalty(m, box, weight=2.0, variant="max_unstable"),
        lambda m, box: BigMPenalty(m, box, variant="max_unstable", normalize=False),
        lambda m, box: StabilityPenalty(m, box, weight=0.7, c=0.2),
        lambda m, box: StabilityPenalty(m, box, variant="triangle"),
        lambda m, box: StabilityPenalty(m, box, weight=0.5, variant="min"),
    ],
    ids=["range", "range-sum", "max_unstable", "max_unstable-sum", "xiao", "triangle", "min"],
)
def test_numpy_fast_path_equals_the_torch_reference(make, dtype: torch.dtype) -> None:
    """pen() (numpy IBP + numpy VJP) against pen(bounds=interval_bounds(...)) (torch autograd)."""
    tol = 1e-11 if dtype == torch.float64 else 2e-5
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(),
        nn.Linear(9, 2),
    ).to(dtype)  # fmt: skip
    box = ([-1.0, 0.0, -2.0], [1.0, 0.5, 1.0])
    pen = make(model, box)
    assert pen.source.fast_ibp()
    fast = pen()
    ref = pen(bounds=interval_bounds(model, *box))
    assert fast.dtype == dtype and fast.dim() == 0
    assert num(fast) == pytest.approx(num(ref), rel=tol, abs=tol)
    params = list(model.parameters())
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(g_fast, g_ref, strict=True):
        if b is None:
            assert a is None or float(a.abs().max()) == 0.0
        else:
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)


# -- the fused numpy path (IBP and CROWN) against torch autograd --------------------------------
#: Relative tolerance of the fused numpy path against torch autograd, float64 (rounding only).
FUSED_RTOL = 1e-10
PAPER_BOX = ([-3.0, -3.0], [3.0, 3.0])


def paper_net(seed: int, depth: int = 5, width: int = 25) -> nn.Sequential:
    """The paper's architecture (2 inputs, ``depth`` hidden ReLU layers of ``width``), float64."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = 2
    for _ in range(depth):
        layers += [nn.Linear(prev, width), nn.ReLU()]
        prev = width
    return nn.Sequential(*layers, nn.Linear(prev, 1)).double()


REFERENCE_BOUNDS = {"ibp": interval_bounds, "crown": crown_bounds}
FUSED_PENALTIES = {
    "range": lambda m, box, b: BigMPenalty(m, box, weight=0.7, bounds=b),
    "max_unstable": lambda m, box, b: BigMPenalty(m, box, bounds=b, variant="max_unstable"),
    "min": lambda m, box, b: StabilityPenalty(m, box, weight=1 / 125, bounds=b, variant="min"),
    "xiao": lambda m, box, b: StabilityPenalty(m, box, bounds=b, c=0.05),
    "triangle": lambda m, box, b: StabilityPenalty(m, box, bounds=b, variant="triangle"),
}


def assert_same_value_and_gradient(fast: torch.Tensor, ref: torch.Tensor,
                                   params: list[torch.Tensor], rtol: float = FUSED_RTOL) -> None:
    assert num(fast) == pytest.approx(num(ref), rel=rtol, abs=rtol)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    # relative to the largest gradient entry (a tensor of rounding noise has no relative error)
    scale = max(float(b.abs().max()) for b in g_ref if b is not None) + 1e-300
    for a, b in zip(g_fast, g_ref, strict=True):
        if b is None:
            assert a is None or float(a.abs().max()) == 0.0
            continue
        assert float((a - b).abs().max()) <= rtol * scale


@pytest.mark.parametrize("method", ["ibp", "crown"])
@pytest.mark.parametrize("pen_name", list(FUSED_PENALTIES))
@pytest.mark.parametrize("seed", [0, 1])
def test_fused_path_equals_torch_autograd_at_the_papers_size(method: str, pen_name: str,
                                                             seed: int) -> None:
    """pen() (fused numpy bounds + hand-written VJP) against the same penalty on torch bounds
    (interval_bounds / crown_bounds, torch autograd), depth 5 width 25 over [-3, 3]^2."""
    model = paper_net(seed)
    pen = FUSED_PENALTIES[pen_name](model, PAPER_BOX, method)
    assert pen.fusable and pen.source.fast_numpy()
    ref = pen(bounds=REFERENCE_BOUNDS[method](model, *PAPER_BOX))
    fast = pen()
    assert fast.dtype == torch.float64 and fast.dim() == 0
    assert_same_value_and_gradient(fast, ref, list(model.parameters()))


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_fused_bounds_equal_the_torch_bounds(method: str) -> None:
    """The fused bounds themselves (BoundSource.compute) and the gradient of a random linear
    function of them equal interval_bounds / crown_bounds with torch autograd."""
    model = paper_net(3, depth=4, width=16)
    source = BigMPenalty(model, PAPER_BOX, bounds=method).source
    fast = source.compute(method)
    ref = REFERENCE_BOUNDS[method](model, *PAPER_BOX)
    assert fast.method == method
    for a, b in zip(fast.lower + fast.upper, ref.lower + ref.upper, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    w = torch.randn(2 * sum(source.widths), dtype=torch.float64)
    params = list(model.parameters())
    assert_same_value_and_gradient((torch.cat(fast.lower + fast.upper) * w).sum(),
                                   (torch.cat(ref.lower + ref.upper) * w).sum(), params)


def test_fused_crown_gradient_at_ties_and_zero_coefficients() -> None:
    """Exactly representable weights make CROWN and IBP tie on layer 2 (gradient split in halves
    by torch.maximum/minimum) and a stably inactive layer gives zero back-substitution
    coefficients (clamp passes the gradient on both sides); the fused VJP does the same."""
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2),
                      nn.ReLU(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0], [0.5, -0.5]]))
        m[0].bias.copy_(torch.tensor([8.0, 8.0, 8.0]))  # stably active on the box
        m[2].weight.copy_(torch.eye(3))  # IBP == CROWN on layer 2: exact ties
        m[2].bias.zero_()
        m[4].weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.25, 1.0, -1.0]]))
        m[4].bias.copy_(torch.tensor([-100.0, -100.0]))  # stably inactive
        m[6].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0]]))
        m[6].bias.copy_(torch.tensor([0.5, -0.25]))
    box = ([-1.0, -2.0], [2.0, 1.0])
    ref_b = crown_bounds(m, *box)
    ib = interval_bounds(m, *box)
    assert torch.equal(ref_b.lower[1], ib.lower[1]) and torch.equal(ref_b.upper[1], ib.upper[1])
    for make in FUSED_PENALTIES.values():
        pen = make(m, box, "crown")
        assert_same_value_and_gradient(pen(), pen(bounds=crown_bounds(m, *box)),
                                       list(m.parameters()))
    # an input no first-layer neuron reads: zero columns of the final coefficients (three
    # inputs, so that the two others keep IBP and CROWN apart: no tie decided by rounding)
    torch.manual_seed(2)
    z = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6),
                      nn.ReLU(), nn.Linear(6, 1)).double()
    with torch.no_grad():
        z[0].weight[:, 1] = 0.0
    box3 = ([-1.0, -2.0, -1.5], [2.0, 1.0, 0.5])
    for make in FUSED_PENALTIES.values():
        pen = make(z, box3, "crown")
        assert_same_value_and_gradient(pen(), pen(bounds=crown_bounds(z, *box3)),
                                       list(z.parameters()))


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_fused_penalty_follows_the_live_weights(method: str) -> None:
    """No stale weights: in-place updates (optimizer, load_state_dict) and replaced storage
    (``.data = ...``) are all seen; an update between forward and backward is refused."""
    model = paper_net(4, depth=3, width=8)
    pen = StabilityPenalty(model, PAPER_BOX, bounds=method, variant="min")
    ref = REFERENCE_BOUNDS[method]
    params = list(model.parameters())
    assert_same_value_and_gradient(pen(), pen(bounds=ref(model, *PAPER_BOX)), params)
    with torch.no_grad():
        model[2].weight.mul_(0.5)  # in place, as an optimizer step
    assert_same_value_and_gradient(pen(), pen(bounds=ref(model, *PAPER_BOX)), params)
    model[0].weight.data = torch.randn(8, 2, dtype=torch.float64)  # new storage
    assert_same_value_and_gradient(pen(), pen(bounds=ref(model, *PAPER_BOX)), params)
    model.load_state_dict(paper_net(5, depth=3, width=8).state_dict())
    assert_same_value_and_gradient(pen(), pen(bounds=ref(model, *PAPER_BOX)), params)
    val = pen()
    with torch.no_grad():
        model[0].bias.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        val.backward()


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_training_with_the_fused_path_equals_training_on_torch_bounds(method: str) -> None:
    """Five Adam steps of mse + width + stable penalties: the fused regularizer and the penalties
    on torch bounds give the same parameters (exact penalty at every step, current weights)."""
    from omlt_relax.regularizer import RelaxationRegularizer

    nets = [paper_net(6, depth=4, width=12) for _ in range(2)]
    x = torch.rand(32, 2, dtype=torch.float64) * 6 - 3
    y = torch.sin(x[:, :1]) * torch.cos(x[:, 1:])
    opts = [torch.optim.Adam(n.parameters(), lr=1e-2) for n in nets]
    fused = RelaxationRegularizer(
        nets[0], PAPER_BOX, bigm=BigMPenalty(nets[0], PAPER_BOX, bounds=method),
        stability=StabilityPenalty(nets[0], PAPER_BOX, 0.01, bounds=method, variant="min"),
        bounds=method,
    )
    big = BigMPenalty(nets[1], PAPER_BOX, bounds=method)
    stab = StabilityPenalty(nets[1], PAPER_BOX, 0.01, bounds=method, variant="min")
    for _ in range(5):
        for net, opt, i in ((nets[0], opts[0], 0), (nets[1], opts[1], 1)):
            loss = torch.mean((net(x) - y) ** 2)
            if i == 0:
                loss = loss + fused(x)
            else:
                nb = REFERENCE_BOUNDS[method](net, *PAPER_BOX)
                loss = loss + big(bounds=nb) + stab(bounds=nb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_numpy_path_handles_quantile_heads_and_frozen_layers() -> None:
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 5), IncrementalQuantileHead())
    m = m.double()
    m[0].requires_grad_(False)
    box = ([0.0, 0.0], [1.0, 1.0])
    pen = StabilityPenalty(m, box, variant="triangle")
    fast, ref = pen(), pen(bounds=interval_bounds(m, *box))
    assert num(fast) == pytest.approx(num(ref), rel=1e-12)
    g_fast = torch.autograd.grad(fast, [m[2].weight, m[2].bias])
    g_ref = torch.autograd.grad(ref, [m[2].weight, m[2].bias])
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradient_flows_to_every_layer_that_shapes_the_bounds(tiny: nn.Sequential) -> None:
    pen = BigMPenalty(tiny, BOX)
    pen().backward()
    assert tiny[0].weight.grad is not None and tiny[0].weight.grad.abs().sum() > 0
    assert tiny[2].weight.grad is not None and tiny[2].weight.grad.abs().sum() > 0
    # the output layer does not shape hidden bounds
    assert tiny[4].weight.grad is None


def test_shared_bounds_give_the_same_value_and_gradient(tiny: nn.Sequential) -> None:
    pen = StabilityPenalty(tiny, BOX, variant="triangle", bounds="crown")
    own = pen()
    shared = pen(bounds=crown_bounds(tiny, *BOX))
    assert num(own) == pytest.approx(num(shared), abs=TOL)
    g1 = torch.autograd.grad(own, tiny[0].weight)[0]
    g2 = torch.autograd.grad(shared, tiny[0].weight)[0]
    torch.testing.assert_close(g1, g2)


def test_numpy_bounds_are_accepted_as_constants(tiny: nn.Sequential) -> None:
    pen = BigMPenalty(tiny, BOX)
    nb = interval_bounds(tiny, *BOX).numpy()
    val = pen(bounds=nb)
    assert num(val) == pytest.approx(num(pen()), abs=TOL)
    assert not val.requires_grad


def test_bounds_of_another_method_or_network_are_refused(tiny: nn.Sequential) -> None:
    pen = BigMPenalty(tiny, BOX, bounds="ibp")
    mismatch = "uses 'ibp' bounds but was given bounds computed with 'crown'"
    with pytest.raises(ValueError, match=mismatch):
        pen(bounds=crown_bounds(tiny, *BOX))
    other = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    with pytest.raises(BoundsMismatchError, match="belong to another network"):
        pen(bounds=interval_bounds(other, *BOX))


def test_quantile_network_is_penalized_including_the_lowered_head() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 5), IncrementalQuantileHead())
    box = ([0.0, 0.0], [1.0, 1.0])
    pen = BigMPenalty(m, box, normalize=False)
    val = pen()
    ib = interval_bounds(m, *box)
    assert len(ib.lower) == 2  # hidden layer + lowered head layer
    expected = sum(num((u - l).sum()) for l, u in zip(ib.lower, ib.upper, strict=True))
    assert num(val) == pytest.approx(expected, rel=1e-6)
    val.backward()
    assert m[2].weight.grad is not None


def test_float32_models_give_float32_terms() -> None:
    m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    val = StabilityPenalty(m, ([0, 0], [1, 1]))()
    assert val.dtype == torch.float32


# -- bad input -------------------------------------------------------------------------------
NET = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))


@pytest.mark.parametrize("cls", [BigMPenalty, StabilityPenalty])
@pytest.mark.parametrize(
    ("box", "match"),
    [
        (([1.0, 0.0], [0.0, 1.0]), "inverted at input 0"),
        (([0.0, float("nan")], [1.0, 1.0]), "input bound 1 is not finite"),
        (([0.0, 0.0], [1.0, float("inf")]), "input bound 1 is not finite"),
        (([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), "3 entries but the network has 2 inputs"),
        (([0.0, 0.0], [1.0]), "different lengths"),
        ([0.0, 0.0], "input bounds are missing"),
    ],
)
def test_bad_boxes_are_clear_errors(cls: type, box: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(NET, box)


@pytest.mark.parametrize("cls", [BigMPenalty, StabilityPenalty])
def test_unsupported_networks_are_refused(cls: type) -> None:
    box = ([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(UnsupportedNetworkError, match=r"module 1 \(Tanh\) is not supported"):
        cls(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)), box)
    with pytest.raises(UnsupportedNetworkError, match="expected a torch.nn.Sequential"):
        cls(nn.Bilinear(2, 2, 1), box)
    bad = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        bad[0].weight[0, 0] = float("nan")
    with pytest.raises(UnsupportedNetworkError, match="non-finite"):
        cls(bad, box)


def test_network_without_hidden_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="no hidden ReLU layer"):
        BigMPenalty(nn.Sequential(nn.Linear(2, 1)), ([0.0, 0.0], [1.0, 1.0]))


def test_bad_options_are_clear_errors() -> None:
    box = ([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="unknown bounds method 'lp'"):
        BigMPenalty(NET, box, bounds="lp")
    with pytest.raises(ValueError, match="unknown BigMPenalty variant 'width'"):
        BigMPenalty(NET, box, variant="width")
    with pytest.raises(ValueError, match="unknown StabilityPenalty variant 'relu'"):
        StabilityPenalty(NET, box, variant="relu")
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        BigMPenalty(NET, box, weight=-1.0)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        StabilityPenalty(NET, box, weight=float("nan"))
    with pytest.raises(ValueError, match="scale c must be a finite number > 0"):
        StabilityPenalty(NET, box, c=0.0)


def test_wrong_input_batch_is_a_clear_error() -> None:
    pen = BigMPenalty(NET, ([0.0, 0.0], [1.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(8, 3\) but the network takes 2 inputs"):
        pen(torch.zeros(8, 3))
    with pytest.raises(TypeError, match="as a torch.Tensor"):
        pen(np.zeros((8, 2)))  # type: ignore[arg-type]
    assert torch.isfinite(pen(torch.zeros(8, 2)))
