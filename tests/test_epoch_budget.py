"""The accuracy budget over epochs (:mod:`omlt_relax.epoch_budget`) and the library's budgeted
recipe ``stability_ftb`` (:func:`omlt_relax.train.fit`)."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from omlt_relax import train as ltrain
from omlt_relax.bench import data as bdata
from omlt_relax.bench.functions import get_function
from omlt_relax.bounds import sound_bounds
from omlt_relax.data import predict, rmse
from omlt_relax.epoch_budget import EpochBudget


def _net(bias: float) -> nn.Sequential:
    """2 -> 3 -> 1; the hidden biases shift neurons between stable and unstable on [-1, 1]^2."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        net[0].bias.fill_(bias)
    return net


BOX = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))


def test_budget_keeps_the_most_stable_epoch_within_budget_and_backs_off_over_it() -> None:
    b = EpochBudget(1.0, BOX, "ibp", backoff=0.5)
    unstable = _net(0.0)   # 3 unstable neurons
    stable = _net(5.0)     # all active: 0 unstable
    # nothing within budget yet: the most accurate epoch is kept, the weight backs off
    assert b.offer(unstable, 3.0) and b.last_unstable == 3 and b.scale == 0.5
    assert not b.offer(unstable, 4.0) and b.scale == 0.25
    assert b.offer(unstable, 2.0, back_off=False) and b.scale == 0.25
    # within budget beats any epoch over it; then fewer unstable wins, ties go to the error
    assert b.offer(unstable, 0.9) and b.best == (3, 0.9)
    assert not b.offer(unstable, 0.95)
    assert b.offer(unstable, 0.5)
    assert b.offer(stable, 1.0) and b.best == (0, 1.0) and b.last_unstable == 0
    assert not b.offer(unstable, 0.1)  # more accurate but less stable: not kept
    assert not b.offer(stable, 1.5) and b.scale == 0.125  # over budget again
    assert not b.offer(stable, math.nan) and b.best == (0, 1.0)  # NaN counts as over budget


@pytest.mark.parametrize(("limit", "backoff"), [(0.0, 0.9), (math.nan, 0.9), (1.0, 1.0),
                                                 (1.0, 0.0)])
def test_budget_refuses_a_meaningless_setting(limit: float, backoff: float) -> None:
    with pytest.raises(ValueError, match="limit|backoff"):
        EpochBudget(limit, BOX, "ibp", backoff=backoff)


def test_a_budget_needs_a_ramped_finetuning_variant() -> None:
    with pytest.raises(ValueError, match="accuracy budget needs a fine-tuning variant"):
        ltrain.Variant("x", stability=0.3, budget=1.2)
    with pytest.raises(ValueError, match="budget >= 1"):
        ltrain.Variant("x", stability=0.3, budget=0.5, **ltrain.FT_RECIPE)


@pytest.fixture(scope="module")
def peaks() -> tuple:
    d = bdata.sample_function(get_function("peaks"), 1024, 128, 128, seed=0)
    cfg = ltrain.TrainConfig(hidden=(10, 10), epochs=24, batch_size=64, lr=3e-3)
    return d, cfg, ltrain.fit(d, "unregularized", 0.0, cfg)


@pytest.mark.parametrize(("name", "budget", "scale"), [
    ("stability_ftb", None, 1e-2), ("stability_ftb", 1.01, 10.0), ("stability_ftb1", None, 10.0)])
def test_budgeted_recipe_returns_the_kept_epoch_within_budget(peaks, name, budget, scale) -> None:
    """``stability_ftb`` (and the same with almost no slack, and ``stability_ftb1`` with none,
    where a strong weight goes over budget and is backed off on every such epoch): the network
    returned is the recorded kept epoch -- the fewest CROWN-unstable within β × the plain
    network's validation RMSE (float64, original units), with the count recorded for it."""
    d, cfg, base = peaks
    v = ltrain.get_variant(name)
    if budget is not None:
        v = dataclasses.replace(v, budget=budget)
    res = ltrain.fit(d, v, scale, cfg, baseline=base.std_model)
    post = [r for r in res.history if "budget_unstable" in r]
    assert len(post) == len(res.history)  # every epoch, the ramp's included
    xv, yv = d.tensors("val")
    with torch.no_grad():
        start = math.sqrt(float(torch.mean((base.std_model(xv) - yv) ** 2)))
    within = [r for r in post if r["val_rmse_std"] <= v.budget * start]
    kept_epoch = int(post[-1]["budget_kept"])
    kept = next(r for r in post if int(r["epoch"]) == kept_epoch)
    if within:
        assert kept == min(within, key=lambda r: (r["budget_unstable"], r["val_rmse_std"]))
        assert res.val_rmse <= v.budget * base.val_rmse * (1 + 1e-5)
    else:  # never within budget: the most accurate epoch
        assert kept == min(post, key=lambda r: r["val_rmse_std"])
    scales = [r["budget_scale"] for r in post]
    over = [r for r in post if r not in within]
    assert scales[-1] == pytest.approx(v.budget_backoff ** len(over))
    if v.budget < 1.1:
        assert over, "this weight must go over the tight budget"
    # the returned network is the kept epoch's: same validation error and unstable count
    assert rmse(predict(res.model, d.x_val), d.y_val) == pytest.approx(res.val_rmse)
    y_std = float(np.asarray(d.scaler.y_std).reshape(-1)[0])
    assert res.val_rmse / y_std == pytest.approx(kept["val_rmse_std"], rel=1e-4)
    count = sound_bounds(copy.deepcopy(res.std_model).double(), *d.std_box,
                         "crown").unstable_count()
    assert count == kept["budget_unstable"]


def test_progress_counts_every_epoch_a_finetuning_variant_trains() -> None:
    """``omlt-relax train --regularize stability_ftb``'s bar: the starting network's epochs and
    the fine-tuning's, :func:`~omlt_relax.train.total_epochs` in all."""
    d = bdata.sample_function(get_function("peaks"), 128, 32, 32, seed=0)
    cfg = ltrain.TrainConfig(hidden=(4,), epochs=6, batch_size=64)
    for name in ("stability_ftb", "unregularized", "pruning"):
        seen: list[int] = []
        ltrain.fit(d, name, 0.5 if name == "pruning" else 1e-3, cfg, progress=seen.append)
        assert sum(seen) == ltrain.total_epochs(ltrain.get_variant(name), cfg)
    assert ltrain.total_epochs(ltrain.get_variant("stability_ftb"), cfg) == 6 + 3


def test_long_finetuning_variant_trains_epochs_more() -> None:
    """``stability_lpgap4_ftd2`` is ``stability_lpgap4_ftd`` with ``epochs`` fine-tuning epochs
    instead of half as many (the progress bar counts them); ``stability_lpgap4_ftb1`` is it with
    an accuracy budget of 1."""
    cfg = ltrain.TrainConfig(hidden=(4,), epochs=6, batch_size=64)
    short, long = (ltrain.get_variant(n) for n in ("stability_lpgap4_ftd", "stability_lpgap4_ftd2"))
    assert dataclasses.replace(long, name=short.name, description=short.description,
                               ft_epochs=short.ft_epochs) == short
    assert ltrain.total_epochs(long, cfg) == 6 + 6
    assert ltrain.total_epochs(short, cfg) == 6 + 3
    budgeted = ltrain.get_variant("stability_lpgap4_ftb1")
    assert dataclasses.replace(budgeted, name=short.name, description=short.description,
                               budget=0.0) == short
