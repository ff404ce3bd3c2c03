"""Cost of relaxation-informed training: a plain MSE step versus MSE + IBP penalties.

Setting (issue 2): 2x50 ReLU net, 2 inputs on [-3, 3]^2, batch 256, Adam, one torch thread.
Regularized steps are ``loss = mse + reg(x)`` with a ``RelaxationRegularizer`` (IBP bounds
computed once per step and shared):

* ``bigm``: big-M "range" penalty only;
* ``bigm+xiao``: ``RelaxationRegularizer(net, box, bigm=w, stability=w)``, the defaults;
* ``bigm+triangle``: big-M + triangle stability (the example's setting);
* ``bigm+triangle (torch)``: the same penalties on bounds from
  :func:`omlt_relax.interval_bounds`, i.e. plain torch autograd instead of the fused numpy path,
  for comparison.

All steps are timed in many short interleaved rounds (so drifting machine load hits all alike),
in wall time and in this thread's CPU time (``time.thread_time``, mostly blind to other processes
on a shared machine); per-step time is the median over rounds, the overhead ratio
``median(regularized) / median(plain)``, target <= 1.5. If the LP-gap penalty is installed,
per-sample LPs per second of ``lp_gap`` (value + backward) are measured too.

The paper's penalties (Tsay 2026, as in ``omlt-relax bench --suite paper``) are timed too:
``width`` (bound width, IBP), ``stable`` (stable neuron, IBP) and ``stable (CROWN)``.

Run: ``python benchmarks/bench_training.py`` (``--rounds``, ``--steps`` to change the effort);
the paper's size: ``python benchmarks/bench_training.py --hidden 25,25,25,25,25 --batch 64``
(targets there: IBP penalties <= 1.5x plain, CROWN <= 3x).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from omlt_relax import interval_bounds
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.regularizer import RelaxationRegularizer
from omlt_relax.train import build_model

BOX = ([-3.0, -3.0], [3.0, 3.0])
CONFIGS = ("plain", "bigm", "bigm+xiao", "bigm+triangle", "bigm+triangle (torch)",
           "paper width", "paper stable", "paper stable (CROWN)")
HIDDEN: tuple[int, ...] = (50, 50)


def make_net(seed: int = 0, hidden: tuple[int, ...] | None = None) -> nn.Sequential:
    return build_model(2, hidden or HIDDEN, 1, seed)


def machine_info() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "load_avg_1_5_15": " ".join(f"{v:.2f}" for v in load),
    }


def _step_fns(batch: int) -> dict[str, Callable[[], None]]:
    """One training-step function per configuration, each with its own net and optimizer."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 2, generator=g) * 6 - 3
    y = torch.sin(x[:, :1]) * torch.cos(x[:, 1:])

    def make_step(config: str) -> Callable[[], None]:
        net = make_net()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        w = 1e-2
        term: Callable[[], torch.Tensor] | None = None
        if config == "bigm":
            reg = RelaxationRegularizer(net, BOX, bigm=w)
            term = lambda: reg(x)  # noqa: E731
        elif config == "bigm+xiao":
            reg = RelaxationRegularizer(net, BOX, bigm=w, stability=w)
            term = lambda: reg(x)  # noqa: E731
        elif config == "bigm+triangle":
            tri = StabilityPenalty(net, BOX, weight=w, variant="triangle")
            reg = RelaxationRegularizer(net, BOX, bigm=w, stability=tri)
            term = lambda: reg(x)  # noqa: E731
        elif config == "bigm+triangle (torch)":
            bigm = BigMPenalty(net, BOX, weight=w)
            tri = StabilityPenalty(net, BOX, weight=w, variant="triangle")

            def term() -> torch.Tensor:
                nb = interval_bounds(net, *BOX)
                return bigm(x, bounds=nb) + tri(x, bounds=nb)
        elif config.startswith("paper"):
            from omlt_relax.bench.paper import PAPER_VARIANTS, PaperRegularizer

            name = {"paper width": "width", "paper stable": "stable",
                    "paper stable (CROWN)": "stable_crown"}[config]
            preg = PaperRegularizer(net, PAPER_VARIANTS[name], BOX, seed=0)
            term = lambda: w * preg(x)  # noqa: E731

        def step() -> None:
            loss = nn.functional.mse_loss(net(x), y)
            if term is not None:
                loss = loss + term()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    return {c: make_step(c) for c in CONFIGS}


def time_steps(rounds: int, steps: int, batch: int) -> dict[str, dict[str, float]]:
    """Per-step times of every configuration over ``rounds`` interleaved rounds of ``steps``.

    Returns, per configuration, median wall and CPU seconds per step and both ratios to
    ``plain``.
    """
    fns = _step_fns(batch)
    for _ in range(max(20, steps)):  # warm up allocator and autograd caches
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 else names[::-1]:
            fn = fns[name]
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(steps):
                fn()
            cpu[name].append((time.thread_time() - c0) / steps)
            wall[name].append((time.perf_counter() - t0) / steps)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        mw, mc = statistics.median(wall[name]), statistics.median(cpu[name])
        out[name] = {"wall_s": mw, "cpu_s": mc}
    for name in names:
        out[name]["ratio_wall"] = out[name]["wall_s"] / out["plain"]["wall_s"]
        out[name]["ratio_cpu"] = out[name]["cpu_s"] / out["plain"]["cpu_s"]
    return out


def time_lp_gap(n_samples: int, repeats: int) -> dict[str, float] | None:
    """Per-sample LPs per second of ``lp_gap`` (value and backward), if the LP module exists."""
    try:
        from omlt_relax.lp.gap import lp_gap
    except ImportError:
        return None
    net = make_net()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n_samples, 2, generator=g) * 6 - 3
    lp_gap(net, x[:8], BOX).sum().backward()  # warm-up (solver objects, caches)
    best = float("inf")
    for _ in range(repeats):
        net.zero_grad()
        t0 = time.perf_counter()
        lp_gap(net, x, BOX).sum().backward()
        best = min(best, time.perf_counter() - t0)
    return {"lp_samples": float(n_samples), "lps_per_s": n_samples / best}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lp-samples", type=int, default=512)
    parser.add_argument("--hidden", default="50,50", help="hidden widths, e.g. 25,25,25,25,25")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    global HIDDEN
    HIDDEN = tuple(int(v) for v in args.hidden.split(","))

    info = machine_info()
    for k, v in info.items():
        print(f"{k:>16}: {v}")
    res = time_steps(args.rounds, args.steps, args.batch)
    print(
        f"\nhidden {list(HIDDEN)}, batch {args.batch}, Adam, 1 thread; {args.rounds} rounds x "
        f"{args.steps} steps; medians per step; ratio = step / plain step (target <= 1.5)"
    )
    print(f"{'step':>24} {'wall us':>9} {'CPU us':>9} {'ratio CPU':>10} {'ratio wall':>11}")
    for name, r in res.items():
        print(
            f"{name:>24} {r['wall_s'] * 1e6:9.1f} {r['cpu_s'] * 1e6:9.1f} "
            f"{r['ratio_cpu']:10.3f} {r['ratio_wall']:11.3f}"
        )
    lp = time_lp_gap(args.lp_samples, repeats=3)
    if lp is None:
        print("LP gap: omlt_relax.lp not available, skipped")
    else:
        print(
            f"LP gap: {lp['lps_per_s']:.0f} per-sample LPs per second "
            f"({int(lp['lp_samples'])} samples, value + backward, best of 3)"
        )
    return {"machine": info, "steps": res, "lp": lp}


if __name__ == "__main__":
    main()
