"""Throughput of the LP-gap penalty: per-sample LPs per second on a 2x50 ReLU net, one thread.

Measures, for sense "max":

* ``baseline``: the full big-M LP with x fixed by its column bounds, samples in random order;
* ``reduced LP``: the per-sample LP that :mod:`omlt_relax.lp.gap` solves (first layer
  substituted, triangle rows), weights fixed, in random and in greedy-tour order;
* ``LPGapPenalty fwd+bwd``: the penalty (bounds, LPs, envelope function) and its backward pass,
  for the ``"direct"`` and ``"total"`` derivatives, with an Adam step on the peaks MSE between
  calls (weights change every call, as in training, so every call reloads the LP).

Rates are per CPU-second of this process (the machine may be shared) and per wall-second.
Run: ``python benchmarks/bench_lp_gap.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import highspy
import numpy as np
import torch
from torch import nn

from omlt_relax.bench.functions import peaks_tensor as peaks
from omlt_relax.bounds import chain_numpy, interval_bounds
from omlt_relax.lp.gap import LPGapPenalty, greedy_tour
from omlt_relax.lp.relaxation import BigMRelaxationLP
from omlt_relax.train import build_model

BOX = (np.array([-3.0, -3.0]), np.array([3.0, 3.0]))


def make_net(seed: int) -> nn.Sequential:
    return build_model(2, (50, 50), 1, seed)


class Clock:
    """Wall and CPU (this process) time of the timed sections."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c

    def rates(self, n: int) -> str:
        return f"{n / self.cpu:7.0f} LPs/s per CPU-second, {n / self.wall:7.0f} LPs/s wall"


def bench_full_bigm(net: nn.Sequential, x: np.ndarray) -> Clock:
    """Baseline: the full big-M LP (x, zhat_1, sigma kept), x fixed per sample, random order."""
    lo, hi = BOX
    nb = interval_bounds(net, lo, hi).numpy()
    lp = BigMRelaxationLP(chain_numpy(net, lo, hi), nb.lower, nb.upper, lo, hi)
    lp.set_objective(np.ones(1), lp.y_cols, maximize=True)
    clock = Clock()
    with clock:
        for xi in x:
            lp.fix_input(xi)
            lp.solve()
    return clock


def bench_lp_only(net: nn.Sequential, x: np.ndarray, tour: bool) -> Clock:
    """The reduced per-sample LP (first layer substituted) alone, weights fixed."""
    lo, hi = BOX
    nb = interval_bounds(net, lo, hi).numpy()
    ch = chain_numpy(net, lo, hi)
    w1, b1 = ch[0]
    l1, u1 = nb.lower[0], nb.upper[0]
    zh = x @ w1.T + b1
    un = (l1 < 0) & (u1 > 0)
    zlo = np.maximum(zh, 0.0)
    zhi = np.maximum(np.where(un, u1 * (zh - l1) / np.where(un, u1 - l1, 1.0), zlo), zlo)
    lp = BigMRelaxationLP(
        ch[1:],
        nb.lower[1:],
        nb.upper[1:],
        np.maximum(l1, 0),
        np.maximum(u1, 0),
        formulation="triangle",
    )
    lp.set_objective(np.ones(1), lp.y_cols, maximize=True)
    order = greedy_tour(zh) if tour else np.arange(x.shape[0])
    clock = Clock()
    with clock:
        for i in order:
            lp.set_input_box(zlo[i], zhi[i])
            lp.solve()
    return clock


def bench_penalty(
    net: nn.Sequential, derivative: str, steps: int, batch: int, subsample: int, seed: int
) -> tuple[Clock, dict[str, float]]:
    """Penalty forward + backward per call, an Adam step on the peaks MSE between calls."""
    pen = LPGapPenalty(
        net,
        BOX,
        weight=1e-2,
        sense="max",
        bounds="ibp",
        derivative=derivative,
        subsample=subsample,
        seed=seed,
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    xs = [torch.rand(batch, 2, generator=g) * 6 - 3 for _ in range(steps + 1)]
    loss = pen(xs[-1])  # first call builds the LP (cold start): not timed
    loss.backward()
    clock = Clock()
    for x in xs[:steps]:
        opt.zero_grad()
        mse = ((net(x) - peaks(x)) ** 2).mean()
        mse.backward()
        with clock:
            loss = pen(x)
            loss.backward()
        opt.step()
    return clock, pen.metrics()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000, help="LPs for the 'lp only' rate")
    ap.add_argument("--steps", type=int, default=40, help="training steps per derivative mode")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--subsample", type=int, default=32, help="LPs per penalty call")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} | "
        f"python {platform.python_version()} torch {torch.__version__} "
        f"HiGHS {highspy.Highs().version()} | "
        f"torch threads {torch.get_num_threads()}, HiGHS threads 1"
    )
    net = make_net(args.seed)
    nb = interval_bounds(net, *BOX)
    print(f"net: 2x50 ReLU (float32 weights), IBP unstable neurons {nb.unstable_count()}/100")
    x = np.random.default_rng(args.seed).uniform(BOX[0], BOX[1], (args.samples, 2))
    clock = bench_full_bigm(net, x)
    print(f"baseline: full big-M LP, x fixed, random order    : {clock.rates(args.samples)}")
    for tour in (False, True):
        clock = bench_lp_only(net, x, tour)
        label = "greedy tour" if tour else "random order"
        rates = clock.rates(args.samples)
        print(f"reduced LP, x fixed, {label:12s}                 : {rates}")
    n_lp = args.steps * min(args.batch, args.subsample)
    for derivative in ("direct", "total"):
        clock, m = bench_penalty(
            make_net(args.seed), derivative, args.steps, args.batch, args.subsample, args.seed
        )
        print(
            f"LPGapPenalty max {derivative:6s} fwd+bwd, {args.steps} calls x "
            f"{min(args.batch, args.subsample)} LPs, weights changing: {clock.rates(n_lp)}, "
            f"{1e3 * clock.cpu / args.steps:.1f} CPU-ms/call, skipped {m['skipped']:.0f}"
        )


if __name__ == "__main__":
    main()
