"""Wall time of one benchmark suite on a local Dask cluster of 1 and of 2 workers.

Both runs happen in this one process, one after the other, on the same machine, each with a fresh
output folder and a fresh ``distributed.LocalCluster`` (single-threaded worker processes). Two
times are reported per run and both speed-ups:

* **with start-up**: from before the cluster starts to the end of the suite;
* **suite only**: from the moment every worker is up and has imported the library (a no-op task
  on each worker) to the end of the suite -- what a long run on an existing cluster pays.

Also recorded: the sum of the entries' job times (``job_seconds``), the workers' utilization
(that sum over workers × suite wall), whether both runs chose the same weights (training is
deterministic, so they must), and the load average before and after each run (the machine may
be shared: measure on an idle one).

    python benchmarks/bench_dask_scaling.py --out bench_dask             # the measurement
    python benchmarks/bench_dask_scaling.py --out /tmp/bench_dask --quick  # a smoke test (~1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from omlt_relax.bench.dask_runner import dask_client
from omlt_relax.bench.suite import SuiteConfig, run_suite
from omlt_relax.bench.train import TrainConfig
from omlt_relax.threads import single_thread

#: The measurement: 4 functions × 4 variants = 16 entries (4 baselines that run first).
FUNCTIONS = "peaks,himmelblau,ackley,rosenbrock"
VARIANTS = "unregularized,l1,bigm,stability"


def _warm() -> int:
    """Run on every worker before the clock of the suite starts: import what the jobs import."""
    import omlt_relax.bench.suite
    import omlt_relax.formulations  # noqa: F401

    single_thread()
    return os.getpid()


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",") if s.strip())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench_dask")
    p.add_argument("--workers", default="1,2", help="worker counts, run in this order")
    p.add_argument("--functions", default=None, help=f"default: {FUNCTIONS}")
    p.add_argument("--variants", default=VARIANTS)
    p.add_argument("--epochs", type=int, default=None, help="default 100 (--quick: 3)")
    p.add_argument("--hidden", default=None, help="default 50,50 (--quick: 8,8)")
    p.add_argument("--n-train", type=int, default=None, help="default 2000 (--quick: 200)")
    p.add_argument("--time-limit", type=float, default=None, help="default 5 (--quick: 2)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny setting to check the script end to end (not a measurement)")
    a = p.parse_args()
    single_thread()
    q = a.quick
    functions = a.functions or ("peaks,himmelblau" if q else FUNCTIONS)
    epochs = a.epochs if a.epochs is not None else (3 if q else 100)
    hidden = _ints(a.hidden) if a.hidden else ((8, 8) if q else (50, 50))
    n_train = a.n_train if a.n_train is not None else (200 if q else 2000)
    time_limit = a.time_limit if a.time_limit is not None else (2.0 if q else 5.0)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SuiteConfig(functions=functions.split(","), variants=a.variants.split(","),
                      train=TrainConfig(hidden=hidden, epochs=epochs), time_limit=time_limit,
                      n_train=n_train, n_val=max(50, n_train // 4), n_test=n_train)
    record: dict[str, Any] = {"config": cfg.to_dict(), "quick": q, "machine": platform.platform(),
                              "cpus": os.cpu_count(), "runs": {}}
    scales: dict[int, dict[str, float]] = {}
    for n in _ints(a.workers):
        d = out / f"workers_{n}"
        shutil.rmtree(d, ignore_errors=True)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        with dask_client(None, jobs=n) as client:
            client.wait_for_workers(n)
            client.run(_warm)
            t1 = time.perf_counter()
            res = run_suite(cfg, d, progress=False, client=client,
                            log=lambda s, n=n: print(f"[{n} worker(s)] {s}", flush=True))
            t2 = time.perf_counter()
        load1 = os.getloadavg()
        work = sum(e.get("job_seconds", 0.0) for e in res["entries"].values())
        scales[n] = {k: e["scale"] for k, e in res["entries"].items()}
        run = {"wall_with_startup": t2 - t0, "startup": t1 - t0, "suite_wall": t2 - t1,
               "suite_seconds_internal": res["meta"]["last_run_seconds"],
               "job_seconds_sum": work, "utilization": work / (n * (t2 - t1)),
               "entries": len(res["entries"]), "failed": len(res.get("failed", {})),
               "loadavg_before": load0, "loadavg_after": load1}
        record["runs"][str(n)] = run
        print(f"{n} worker(s): {t2 - t0:.1f} s with start-up ({t1 - t0:.1f} s start-up), "
              f"{t2 - t1:.1f} s suite; job time {work:.1f} s, utilization "
              f"{run['utilization']:.2f}; load average {load0[0]:.2f} -> {load1[0]:.2f}",
              flush=True)
        (out / "scaling.json").write_text(json.dumps(record, indent=1))
    runs = record["runs"]
    if "1" in runs and "2" in runs:
        for what in ("wall_with_startup", "suite_wall"):
            record[f"speedup_{what}"] = runs["1"][what] / runs["2"][what]
        record["same_weights"] = scales[1] == scales[2]
        print(f"speed-up 2 workers over 1: {record['speedup_wall_with_startup']:.2f}x with "
              f"start-up, {record['speedup_suite_wall']:.2f}x suite only; same weights chosen: "
              f"{record['same_weights']}")
    (out / "scaling.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
