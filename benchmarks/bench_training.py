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

Rows marked ``every 2`` add the term on every second step only, with twice its weight (lazy
regularization, ``RelaxationRegularizer(..., every=2)``): the time is the mean over steps.

Rows marked ``(backward)`` take the gradient of the same term without an autograd graph:
``loss.backward(); reg.backward(x, scale=w); opt.step()``
(:meth:`~omlt_relax.RelaxationRegularizer.backward`: bitwise the same gradient; the library's
training loops, the paper suite's and the Lightning callback use it). The others add ``w * reg(x)``
to the loss, as a plain loop written from the README does.

``--whole-epochs E`` also times whole trainings as the paper suite runs them
(:func:`omlt_relax.bench.paper.train_paper`: peaks, the protocol's 70,000 samples, batch 64,
``E`` epochs per variant, λ = 1e-3; network width and depth from ``--hidden``), plain and with
the paper's IBP penalties and CROWN stable-neuron penalty, interleaved over ``--whole-rounds``
rounds; the ratio is the median epoch time over the plain one.

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
from omlt_relax.threads import single_thread
from omlt_relax.train import build_model

BOX = ([-3.0, -3.0], [3.0, 3.0])
CONFIGS = ("plain", "bigm", "bigm+xiao", "bigm+xiao (backward)", "bigm+triangle",
           "bigm+triangle (torch)", "paper width", "paper width (backward)", "paper stable",
           "paper stable (backward)", "paper stable (CROWN)", "paper stable (CROWN, backward)",
           "paper width (backward, every 2)", "paper stable (backward, every 2)")
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
        after: Callable[[], object] | None = None  # the term's gradient after loss.backward()
        if config == "bigm+xiao (backward)":
            reg = RelaxationRegularizer(net, BOX, bigm=w, stability=w)
            after = lambda: reg.backward(x)  # noqa: E731
        elif config.startswith("paper") and "backward" in config:
            from omlt_relax.bench.paper import PAPER_VARIANTS, PaperRegularizer

            name = ("stable_crown" if "CROWN" in config
                    else "width" if "width" in config else "stable")
            every = 2 if config.endswith("every 2)") else 1
            breg = PaperRegularizer(net, PAPER_VARIANTS[name], BOX, seed=0, every=every)
            after = lambda: breg.backward(x, w)  # noqa: E731
        elif config == "bigm":
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
            if after is not None:
                after()
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


def time_whole(epochs: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median seconds per epoch of :func:`~omlt_relax.bench.paper.train_paper` per variant
    (``none``, ``width``, ``stable``, ``stable_crown``, and ``width``/``stable`` with lazy
    regularization every 2 steps; λ = 1e-3), interleaved over ``rounds``, and the ratio to
    ``none``."""
    from omlt_relax.bench.paper import Job, PaperConfig, paper_data, train_paper, with_overrides

    if len(set(HIDDEN)) != 1:
        msg = "--whole-epochs needs equal hidden widths (the paper's networks)"
        raise SystemExit(msg)
    cfg = PaperConfig(functions=("peaks",), depths=(len(HIDDEN),), seeds=(0,), epochs=epochs,
                      width=HIDDEN[0])
    data = paper_data("peaks", 0)
    runs = {"none": ("none", 1), "width": ("width", 1), "stable": ("stable", 1),
            "stable_crown": ("stable_crown", 1), "width, every 2": ("width", 2),
            "stable, every 2": ("stable", 2)}
    per_epoch: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            variant, every = runs[name]
            job = Job("peaks", len(HIDDEN), 0, variant, 1e-3)
            run_cfg = with_overrides(cfg, penalty_every=every)
            per_epoch[name].append(train_paper(job, run_cfg, data).train_time / epochs)
    out = {name: {"epoch_s": statistics.median(t)} for name, t in per_epoch.items()}
    for name in names:
        out[name]["ratio"] = out[name]["epoch_s"] / out["none"]["epoch_s"]
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lp-samples", type=int, default=512)
    parser.add_argument("--hidden", default="50,50", help="hidden widths, e.g. 25,25,25,25,25")
    parser.add_argument("--whole-epochs", type=int, default=0,
                        help="also time whole paper-suite trainings of this many epochs (0: off)")
    parser.add_argument("--whole-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    single_thread()
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
    whole = None
    if args.whole_epochs > 0:
        whole = time_whole(args.whole_epochs, args.whole_rounds)
        print(
            f"\nwhole trainings (paper suite, peaks, 70,000 samples, batch 64, "
            f"{args.whole_epochs} epochs x {args.whole_rounds} rounds, lambda 1e-3): "
            "median s per epoch (target: IBP <= 1.5x, CROWN <= 3x none)"
        )
        for v, r in whole.items():
            print(f"{v:>24} {r['epoch_s']:9.3f} s {r['ratio']:10.3f}x")
    return {"machine": info, "steps": res, "lp": lp, "whole": whole}


if __name__ == "__main__":
    main()
