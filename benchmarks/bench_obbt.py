"""Benchmark: LP-based OBBT of a 3×100 ReLU net over a 2-D box (target: under 30 s on one core).

Usage::

    . .venv/bin/activate
    python benchmarks/bench_obbt.py                    # briefly trained on peaks, [-3, 3]^2
    python benchmarks/bench_obbt.py --train-steps 0    # random initialization

Prints the machine; wall and CPU time of IBP / CROWN / LP-OBBT (all on one thread, so CPU time is
the one-core time even when the machine is shared); unstable-neuron counts and mean big-M per
method; a sampling soundness check; MILP-OBBT with a small time limit on a smaller net.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import highspy
import numpy as np
import torch
from torch import nn

from omlt_relax.bench.functions import peaks_tensor as peaks
from omlt_relax.bounds import chain_numpy, sound_bounds
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.threads import single_thread
from omlt_relax.train import build_model

TARGET_S = 30.0


def make_net(widths: list[int], seed: int) -> nn.Sequential:
    return build_model(2, widths, 1, seed)


def train(model: nn.Sequential, steps: int, lo: np.ndarray, hi: np.ndarray, seed: int) -> float:
    """A few Adam steps of MSE on the peaks function; returns the final training RMSE."""
    if steps <= 0:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4000, 2, generator=g) * torch.as_tensor(hi - lo).float() + torch.as_tensor(
        lo
    ).float()
    y = peaks(x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
    return float(loss.detach().sqrt())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(fn: Callable[[], NeuronBounds]) -> tuple[NeuronBounds, float, float]:
    """Result, wall-clock seconds and CPU seconds of this process (the machine may be shared)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def describe(name: str, b: NeuronBounds, wall: float, cpu: float) -> str:
    per_layer = [int(m.sum()) for m in b.unstable_mask()]
    return (
        f"  {name:<10} wall {wall:6.2f} s  cpu {cpu:6.2f} s   unstable {b.unstable_count():4d} "
        f"{per_layer!s:<18} mean big-M {b.mean_bigm():7.3f}"
    )


def check_sound(model: nn.Sequential, b: NeuronBounds, lo: np.ndarray, hi: np.ndarray) -> bool:
    chain = chain_numpy(model, lo, hi)
    x = np.random.default_rng(0).uniform(lo, hi, size=(100_000, lo.size))
    z = x
    for k, (w, bias) in enumerate(chain[:-1]):
        zhat = z @ w.T + bias
        if np.any(zhat < b.lower[k]) or np.any(zhat > b.upper[k]):
            return False
        z = np.maximum(zhat, 0.0)
    return True


def run(widths: list[int], args: argparse.Namespace, milp_time_limit: float | None) -> float:
    lo, hi = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
    model = make_net(widths, args.seed)
    t = time.perf_counter()
    rmse = train(model, args.train_steps, lo, hi, args.seed)
    print(
        f"\nnet {'x'.join(map(str, widths))} ({sum(widths)} hidden ReLUs) over [-3, 3]^2, "
        f"{args.train_steps} training steps ({time.perf_counter() - t:.1f} s, RMSE {rmse:.3f})"
    )
    ibp, *t_ibp = timed(lambda: sound_bounds(model, lo, hi, "ibp"))
    crown, *t_crown = timed(lambda: sound_bounds(model, lo, hi, "crown"))
    lp, *t_lp = timed(lambda: obbt_bounds(model, lo, hi, method="lp"))
    print(describe("IBP", ibp, *t_ibp))
    print(describe("CROWN", crown, *t_crown))
    print(describe("LP-OBBT", lp, *t_lp))
    print(f"    LP solves {lp.meta['lp_solves']}, not optimal {lp.meta['lp_not_optimal']}, "
          f"max |HiGHS value - rigorous bound| {lp.meta['max_lp_dual_slack']:.1e}")
    ok = check_sound(model, lp, lo, hi)
    if milp_time_limit is not None:
        milp, *t_milp = timed(
            lambda: obbt_bounds(model, lo, hi, method="milp", time_limit=milp_time_limit)
        )
        print(describe("MILP-OBBT", milp, *t_milp))
        meta = milp.meta
        print(
            f"    time limit {milp_time_limit:g} s total; MILP solves {meta['milp_solves']}, "
            f"stopped early {meta['milp_not_optimal']}, skipped {meta['skipped_for_time']}"
        )
        ok = ok and check_sound(model, milp, lo, hi)
    print(f"    sampled soundness (1e5 inputs): {'ok' if ok else 'VIOLATED'}")
    return t_lp[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--milp-time-limit", type=float, default=10.0)
    args = parser.parse_args()
    single_thread()
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} logical cores, load average "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}; {platform.platform()}"
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__} (1 thread), "
        f"highspy {highspy.Highs().version()} (1 thread), numpy {np.__version__}"
    )
    cpu_lp = run([100, 100, 100], args, None)
    verdict = "PASS" if cpu_lp <= TARGET_S else "FAIL"
    print(f"  target: LP-OBBT of 3x100 within {TARGET_S:g} s on one core (cpu time) -> {verdict}")
    run([20, 20, 20], args, args.milp_time_limit)


if __name__ == "__main__":
    main()
