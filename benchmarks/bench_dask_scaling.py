"""Wall time of one small benchmark suite on a local Dask cluster of 1 and of 2 workers.

Both runs happen in this one process, one after the other, on the same machine, each with a fresh
output folder and a fresh ``distributed.LocalCluster`` (single-threaded worker processes); the
cluster start-up is included in the time. The load average is recorded before and after each run
(the machine may be shared).

    python benchmarks/bench_dask_scaling.py --out bench_dask [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from omlt_relax.bench.dask_runner import dask_client
from omlt_relax.bench.suite import SuiteConfig, run_suite
from omlt_relax.bench.train import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench_dask")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--functions", default="peaks,himmelblau")
    p.add_argument("--variants", default="unregularized,l1,bigm,stability")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--time-limit", type=float, default=5.0)
    a = p.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SuiteConfig(functions=a.functions.split(","), variants=a.variants.split(","),
                      train=TrainConfig(epochs=a.epochs), time_limit=a.time_limit)
    record: dict[str, object] = {"config": cfg.to_dict(), "runs": {}}
    for n in (int(s) for s in a.workers.split(",")):
        d = out / f"workers_{n}"
        shutil.rmtree(d, ignore_errors=True)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        with dask_client(None, jobs=n) as client:
            res = run_suite(cfg, d, progress=False, client=client,
                            log=lambda s, n=n: print(f"[{n} worker(s)] {s}", flush=True))
        wall = time.perf_counter() - t0
        record["runs"][str(n)] = {  # type: ignore[index]
            "wall_seconds": wall, "suite_seconds": res["meta"]["last_run_seconds"],
            "entries": len(res["entries"]), "failed": len(res.get("failed", {})),
            "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        }
        print(f"{n} worker(s): {wall:.1f} s wall (load average before {load0[0]:.2f}, after "
              f"{os.getloadavg()[0]:.2f})", flush=True)
        (out / "scaling.json").write_text(json.dumps(record, indent=1))
    runs = record["runs"]
    if "1" in runs and "2" in runs:  # type: ignore[operator]
        s = runs["1"]["wall_seconds"] / runs["2"]["wall_seconds"]  # type: ignore[index]
        record["speedup_2_over_1"] = s
        print(f"speed-up 2 workers over 1: {s:.2f}x")
    (out / "scaling.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
