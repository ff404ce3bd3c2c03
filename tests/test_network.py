"""Network intake and input-box validation: clear errors, never a wrong model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from omlt_relax import (
    BoundsMismatchError,
    IncrementalQuantileHead,
    NeuronBounds,
    UnsupportedNetworkError,
    interval_bounds,
    parse_network,
)
from omlt_relax.network import as_box


def test_accepts_flatten_and_quantile_head():
    p = parse_network(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    assert p.hidden_widths == (3,) and p.n_outputs == 2
    q = parse_network(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5),
                                    IncrementalQuantileHead()))
    assert q.quantile_head and q.hidden_widths == (3, 5)


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ([nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)], r"module 1 \(Tanh\) is not supported"),
        ([nn.Linear(2, 3), nn.LeakyReLU(), nn.Linear(3, 1)], r"module 1 \(LeakyReLU\)"),
        (
            [nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1)],
            r"module 1 \(BatchNorm1d\)",
        ),
        ([nn.Linear(2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3, 1)], r"module 2 \(Flatten\)"),
        ([nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1)], "without bias"),
        ([nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.ReLU()], "ends with a ReLU"),
        ([nn.Linear(2, 3), nn.Linear(3, 1)], "two Linear layers in a row"),
        ([nn.Linear(2, 3), nn.ReLU(), nn.Linear(4, 1)], "expects 4 inputs"),
        ([nn.ReLU(), nn.Linear(2, 1)], "ReLU must directly follow"),
        ([], "empty"),
    ],
)
def test_unsupported_networks(layers, match):
    with pytest.raises(UnsupportedNetworkError, match=match):
        parse_network(nn.Sequential(*layers))


def test_not_sequential():
    class Net(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(UnsupportedNetworkError, match="nn.Sequential"):
        parse_network(Net())


def test_nan_weights_refused():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        model[2].weight[0, 1] = float("nan")
    with pytest.raises(UnsupportedNetworkError, match="Linear layer 1 has a non-finite"):
        interval_bounds(model, -np.ones(2), np.ones(2))


@pytest.mark.parametrize(
    ("lb", "ub", "match"),
    [
        ([0.0, 1.0], [1.0, 0.0], "inverted at input 1"),
        ([0.0, float("nan")], [1.0, 1.0], "input bound 1 is not finite"),
        ([0.0, -float("inf")], [1.0, 1.0], "not finite"),
        ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], "3 entries but the network has 2 inputs"),
        ([0.0], [1.0, 1.0], "different lengths"),
    ],
)
def test_bad_boxes(lb, ub, match):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=match):
        interval_bounds(model, lb, ub)


def test_missing_box():
    with pytest.raises(ValueError, match="input bounds are missing"):
        as_box([0.0, 1.0])


def test_bounds_mismatch_messages():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    nb = interval_bounds(model, -np.ones(2), np.ones(2)).numpy()
    with pytest.raises(BoundsMismatchError, match="another network"):
        nb.check_compatible((4,))
    with pytest.raises(BoundsMismatchError, match="does not contain the requested box"):
        nb.check_compatible((3,), -2 * np.ones(2), np.ones(2))
    nb.check_compatible((3,), -0.5 * np.ones(2), np.ones(2))  # a smaller box is fine
    bad = nb.to_dict()
    bad["lower"][0][0] = 1e9
    with pytest.raises(BoundsMismatchError, match="exceeds its upper"):
        NeuronBounds.from_dict(bad)
    with pytest.raises(BoundsMismatchError, match="not an omlt_relax"):
        NeuronBounds.from_dict({"lower": []})
