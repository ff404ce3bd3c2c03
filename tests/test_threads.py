"""``single_thread``: torch and the BLAS pools numpy loaded run on one thread afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, numpy, torch
from threadpoolctl import threadpool_info
before = [p["num_threads"] for p in threadpool_info()]
from omlt_relax import single_thread
single_thread()
after = [p["num_threads"] for p in threadpool_info()]
import os
print(json.dumps({"before": before, "after": after, "torch": torch.get_num_threads(),
                  "env": os.environ["OPENBLAS_NUM_THREADS"]}))
"""


def test_single_thread_limits_blas_and_torch() -> None:
    # a fresh process told to start BLAS with two threads (this session already has one)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["before"]
    if max(r["before"]) < 2:
        pytest.skip("OpenBLAS started with one thread here (one core): nothing to limit")
    assert r["after"] == [1] * len(r["after"])
    assert r["torch"] == 1 and r["env"] == "1"
