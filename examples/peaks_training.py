"""Relaxation-informed training on the peaks function: the same network with and without it.

A 2x50 ReLU network learns MATLAB's ``peaks`` on the box :math:`[-3, 3]^2`

.. math::

    f(a, b) = 3(1-a)^2 e^{-a^2-(b+1)^2} - 10\\,(a/5 - a^3 - b^5)\\, e^{-a^2-b^2}
              - \\tfrac13 e^{-(a+1)^2-b^2},

twice, from the same seed, data and number of epochs: once with the plain MSE loss and once with
``loss = mse + reg(x)``, ``reg`` an IBP big-M penalty plus an IBP triangle stability penalty
(:class:`omlt_relax.RelaxationRegularizer`). The table compares test RMSE with what decides the
MILP's difficulty: unstable neurons (binaries), mean big-M constant :math:`\\max(-l, u)` over them
(IBP and CROWN bounds), and, if the LP module is installed, the mean LP-relaxation gap at test
points.

Run: ``python examples/peaks_training.py`` (about 30-60 s on one core; ``--epochs`` to change).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from omlt_relax import crown_bounds, interval_bounds
from omlt_relax.bench.functions import peaks_tensor as peaks
from omlt_relax.penalties import StabilityPenalty
from omlt_relax.regularizer import RelaxationRegularizer
from omlt_relax.threads import single_thread
from omlt_relax.train import build_model

BOX = ([-3.0, -3.0], [3.0, 3.0])


def make_data(n_train: int, n_test: int, seed: int) -> dict[str, torch.Tensor]:
    """Uniform samples of the box and their peaks values (float32)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(BOX[0]), torch.tensor(BOX[1])
    x = lo + (hi - lo) * torch.rand(n_train + n_test, 2, generator=g)
    y = peaks(x)
    return {"x": x[:n_train], "y": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def make_net(seed: int, width: int = 50) -> nn.Sequential:
    return build_model(2, (width, width), 1, seed)


def train(
    net: nn.Sequential,
    data: dict[str, torch.Tensor],
    reg: RelaxationRegularizer | None,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
) -> float:
    """Adam on shuffled mini-batches; returns wall seconds."""
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = data["x"], data["y"]
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            loss = nn.functional.mse_loss(net(x[idx]), y[idx])
            if reg is not None:
                loss = loss + reg(x[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def evaluate(
    net: nn.Sequential, data: dict[str, torch.Tensor], lp_samples: int
) -> dict[str, float]:
    """Test RMSE, unstable neurons and mean big-M (IBP, CROWN), mean LP gap (if available)."""
    with torch.no_grad():
        rmse = float(nn.functional.mse_loss(net(data["x_test"]), data["y_test"])) ** 0.5
        ibp = interval_bounds(net, *BOX).numpy()
        crown = crown_bounds(net, *BOX).numpy()
    row = {
        "rmse": rmse,
        "unstable_ibp": float(ibp.unstable_count()),
        "unstable_crown": float(crown.unstable_count()),
        "mean_bigm_ibp": ibp.mean_bigm(),
        "mean_bigm_crown": crown.mean_bigm(),
        "mean_lp_gap": math.nan,
    }
    try:
        from omlt_relax.lp.gap import lp_gap
    except ImportError:
        return row
    gaps = lp_gap(net, data["x_test"][:lp_samples], BOX, sense="max", bounds="crown")
    row["mean_lp_gap"] = float(gaps.detach().mean())
    return row


ROWS = [
    ("test RMSE", "rmse", "{:.4f}"),
    ("unstable (IBP)", "unstable_ibp", "{:.0f}"),
    ("unstable (CROWN)", "unstable_crown", "{:.0f}"),
    ("mean big-M (IBP)", "mean_bigm_ibp", "{:.3f}"),
    ("mean big-M (CROWN)", "mean_bigm_crown", "{:.3f}"),
    ("mean LP gap (CROWN)", "mean_lp_gap", "{:.4f}"),
    ("train time [s]", "seconds", "{:.1f}"),
]


def print_table(results: dict[str, dict[str, float]]) -> None:
    names = list(results)
    print(f"{'':22}" + "".join(f"{n:>16}" for n in names))
    for label, key, fmt in ROWS:
        vals = [results[n].get(key, math.nan) for n in names]
        if all(math.isnan(v) for v in vals):
            continue
        print(f"{label:22}" + "".join(f"{fmt.format(v):>16}" for v in vals))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--bigm", type=float, default=1e-2, help="big-M (u - l) weight")
    parser.add_argument("--stability", type=float, default=3e-3, help="triangle weight")
    parser.add_argument("--lp-samples", type=int, default=200, help="test points for LP gaps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    single_thread()

    data = make_data(args.n_train, args.n_test, args.seed)
    results: dict[str, dict[str, float]] = {}
    for name in ("unregularized", "regularized"):
        net = make_net(args.seed)
        reg = None
        if name == "regularized":
            stab = StabilityPenalty(net, BOX, weight=args.stability, variant="triangle")
            reg = RelaxationRegularizer(net, BOX, bigm=args.bigm, stability=stab)
        secs = train(net, data, reg, args.epochs, args.batch, args.lr, args.seed)
        results[name] = {**evaluate(net, data, args.lp_samples), "seconds": secs}
    print(
        f"peaks on [-3, 3]^2, 2x50 ReLU net, {args.epochs} epochs of {args.n_train} samples; "
        f"regularized: IBP big-M {args.bigm:g} + IBP triangle {args.stability:g}\n"
    )
    print_table(results)
    return results


if __name__ == "__main__":
    main()
