"""Soundness of IBP, CROWN and float64 sound bounds by dense sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_net, sample_box
from torch import nn

from omlt_relax import IncrementalQuantileHead, NeuronBounds, crown_bounds, interval_bounds
from omlt_relax.bounds import affine_chain, sound_bounds

N_SAMPLES = 10_000
TOL = 1e-9  # float64 evaluation slack for the sampled pre-activations


def _preacts(model: nn.Sequential, x: np.ndarray, box: tuple) -> list[torch.Tensor]:
    chain = affine_chain(model, box, dtype=torch.float64)
    z = torch.as_tensor(x, dtype=torch.float64)
    out = []
    with torch.no_grad():
        for w, b in chain[:-1]:
            zh = z @ w.T + b
            out.append(zh)
            z = torch.relu(zh)
    return out


CASES = [
    (n_in, widths, seed)
    for seed, (n_in, widths) in enumerate(
        [
            (1, [8]),
            (2, [64]),
            (3, [20, 20]),
            (2, [50, 50]),
            (4, [32, 16, 8]),
            (2, [30, 30, 30, 30]),
            (3, [64, 64, 64, 64]),
            (1, [5, 7, 3, 9]),
        ]
    )
]


@pytest.mark.parametrize(("n_in", "widths", "seed"), CASES)
@pytest.mark.parametrize("box_seed", [0, 1])
def test_bounds_contain_samples_and_crown_not_looser(n_in, widths, seed, box_seed):
    rng = np.random.default_rng(100 + box_seed)
    lo = rng.uniform(-3, 1, n_in)
    hi = lo + rng.uniform(0.1, 4, n_in)
    model = random_net(n_in, widths, n_out=2, seed=seed)
    ibp = interval_bounds(model, lo, hi)
    crown = crown_bounds(model, (lo, hi))
    snd = sound_bounds(model, lo, hi, "crown")
    x = sample_box(lo, hi, N_SAMPLES, seed=seed)
    pre = _preacts(model, x, (lo, hi))
    for k, zh in enumerate(pre):
        zmin, zmax = zh.min(0).values.numpy(), zh.max(0).values.numpy()
        for nb in (ibp, crown):
            assert np.all(zmin >= nb.lower[k].detach().numpy() - TOL), (nb.method, k)
            assert np.all(zmax <= nb.upper[k].detach().numpy() + TOL), (nb.method, k)
        assert np.all(zmin >= snd.lower[k]) and np.all(zmax <= snd.upper[k])
        assert np.all(crown.lower[k].detach().numpy() >= ibp.lower[k].detach().numpy() - 1e-12)
        assert np.all(crown.upper[k].detach().numpy() <= ibp.upper[k].detach().numpy() + 1e-12)
    assert crown.unstable_count() <= ibp.unstable_count()


def test_crown_strictly_tighter_on_deep_net():
    model = random_net(2, [40, 40, 40], seed=3)
    lo, hi = -np.ones(2), np.ones(2)
    ibp, crown = interval_bounds(model, lo, hi), crown_bounds(model, lo, hi)
    width_ibp = (ibp.upper[-1] - ibp.lower[-1]).sum().item()
    width_crown = (crown.upper[-1] - crown.lower[-1]).sum().item()
    assert width_crown < 0.9 * width_ibp


def test_float32_bounds_are_differentiable():
    model = random_net(3, [16, 16], seed=1, dtype=torch.float32)
    for fn in (interval_bounds, crown_bounds):
        nb = fn(model, -np.ones(3), np.ones(3))
        assert nb.lower[0].dtype == torch.float32
        loss = sum((u - l).sum() for l, u in zip(nb.lower, nb.upper))
        loss.backward()
        hidden = list(model.parameters())[:-2]  # the output layer does not enter hidden bounds
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in hidden)
        model.zero_grad()


def test_crown_gradient_matches_finite_differences():
    model = random_net(2, [6, 5], seed=4)
    lo, hi = -np.ones(2), np.ones(2)
    params = list(model.parameters())[:-2]  # hidden layers only

    def total(*ps):
        with torch.no_grad():
            for p, q in zip(params, ps):
                p.copy_(q)
        nb = crown_bounds(model, lo, hi)
        return sum((u - l).sum() for l, u in zip(nb.lower, nb.upper))

    nb = crown_bounds(model, lo, hi)
    loss = sum((u - l).sum() for l, u in zip(nb.lower, nb.upper))
    grads = torch.autograd.grad(loss, params)
    base = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    h = 1e-6
    plus = total(*[b + h * d for b, d in zip(base, direction)]).item()
    minus = total(*[b - h * d for b, d in zip(base, direction)]).item()
    total(*base)
    fd = (plus - minus) / (2 * h)
    an = sum((gr * d).sum() for gr, d in zip(grads, direction)).item()
    assert abs(fd - an) <= 1e-5 * (1 + abs(fd))


def test_quantile_head_bounds_and_lowering():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 5), IncrementalQuantileHead()
    ).double()
    lo, hi = -np.ones(3), np.ones(3)
    nb = crown_bounds(model, lo, hi)
    assert nb.widths == (16, 5)
    # the shifted o_0 neuron is stably active
    assert nb.lower[1][0].item() >= 0
    x = torch.as_tensor(sample_box(lo, hi, 2000), dtype=torch.float64)
    chain = affine_chain(model, (lo, hi))
    from omlt_relax.network import forward_chain

    with torch.no_grad():
        q = model(x)
        assert torch.allclose(forward_chain(chain, x), q, atol=1e-10)
        assert torch.all(q[:, 1:] >= q[:, :-1] - 1e-12)


def test_neuron_bounds_round_trip_and_counts():
    model = random_net(2, [10, 10], seed=2)
    nb = sound_bounds(model, -np.ones(2), np.ones(2))
    back = NeuronBounds.from_json(nb.to_json())
    assert back.widths == nb.widths and back.method == nb.method
    for a, b in zip(nb.lower + nb.upper, back.lower + back.upper):
        assert np.array_equal(a, b)
    assert back.unstable_count() == nb.unstable_count()
    assert back.unstable_count() + back.stable_active_count() + back.stable_inactive_count() == 20
    per = back.unstable_per_layer()
    assert len(per) == 2 and sum(per) == back.unstable_count()
    for k, (lo, up) in enumerate(zip(back.lower, back.upper)):
        assert per[k] == sum(1 for lv, uv in zip(lo, up) if lv < 0 < uv)
    assert back.unstable_summary().endswith(f"(per layer {per[0]}/{per[1]})")
    assert back.mean_bigm() <= back.max_bigm()


def test_sound_bounds_are_outside_plain_float64_bounds():
    model = random_net(2, [20, 20], seed=5)
    lo, hi = -np.ones(2), np.ones(2)
    plain = crown_bounds(model, lo, hi)
    snd = sound_bounds(model, lo, hi, "crown")
    for k in range(2):
        assert np.all(snd.lower[k] < plain.lower[k].detach().numpy())
        assert np.all(snd.upper[k] > plain.upper[k].detach().numpy())
