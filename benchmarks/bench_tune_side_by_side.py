"""Side by side, in one process: the network a tune picked, the benchmark rule's best variant at
the same budget, and the unregularized reference, on the same data, measured one after the other
with the same MILP settings (LP-OBBT bounds, bounded big-M, HiGHS one thread, min + max).

    python benchmarks/bench_tune_side_by_side.py --tune-dir tune_results --trial 9 \\
        --variant bigm --budget 1.25 --time-limit 60 --out side_by_side.json

``--function`` must be the benchmark function the tune ran on (``omlt-relax tune --function``,
default ``--n-train 2000``: the same data are sampled again, seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from omlt_relax.bench.data import sample_function
from omlt_relax.bench.functions import get_function
from omlt_relax.bench.measure import measure_network
from omlt_relax.threads import single_thread
from omlt_relax.train import TrainConfig, build_model, select_weight


def _load(path: Path, hidden: tuple[int, ...]) -> torch.nn.Sequential:
    model = build_model(2, hidden, 1, 0).to(torch.float64)
    model.load_state_dict(torch.load(path))
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tune-dir", required=True)
    p.add_argument("--trial", type=int, required=True)
    p.add_argument("--function", default="peaks", help="the tune's --function")
    p.add_argument("--variant", default="bigm")
    p.add_argument("--budget", type=float, default=1.25)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--time-limit", type=float, default=60.0)
    p.add_argument("--out", default="side_by_side.json")
    a = p.parse_args()
    single_thread()
    fn = get_function(a.function)
    data = sample_function(fn, 2000, 500, 2000, seed=0)
    hidden = (50, 50)
    d = Path(a.tune_dir)
    ref = _load(d / "models" / "reference.pt", hidden)
    picked = _load(d / "models" / f"trial_{a.trial}.pt", hidden)
    from omlt_relax.data import predict, rmse

    ref_val = rmse(predict(ref, data.x_val), data.y_val)
    t0 = time.perf_counter()
    sel = select_weight(data, a.variant, ref_val, TrainConfig(epochs=a.epochs), a.budget)
    print(f"{a.variant}: scale {sel.result.scale:g} chosen in {time.perf_counter() - t0:.0f} s",
          flush=True)
    rows = {}
    for name, model in (("unregularized", ref), (f"tune trial {a.trial}", picked),
                        (f"bench rule: {a.variant} @ {sel.result.scale:g}", sel.result.model)):
        load = os.getloadavg()[0]
        m = measure_network(model, data, fn, a.time_limit)
        rows[name] = {"val_ratio": m["val_rmse"] / ref_val, "test_rmse": m["test_rmse"],
                      "milp_seconds": m["time_total"], "solved_all": m["solved_all"],
                      "nodes": m["nodes_total"], "unstable_obbt": m["unstable_obbt"],
                      "milp": {s: {k: r[k] for k in ("status", "time", "gap", "nodes")}
                               for s, r in m["milp"].items()}, "loadavg": load}
        print(name, json.dumps(rows[name]), flush=True)
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
