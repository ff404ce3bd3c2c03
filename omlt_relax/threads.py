"""One thread for the numerical libraries: torch's pool and the BLAS pools under numpy/scipy.

The command line, the benchmarks and the tests measure and run everything on one thread (a solver
thread each, one torch thread). ``torch.set_num_threads(1)`` alone leaves the BLAS library that
numpy and scipy load (OpenBLAS, MKL) with a worker per core; between the many small products of
a training step its workers spin, so on a small machine a job takes a second core and competes
with the jobs beside it. Measured on the 2-core benchmark machine, beside one other job: an LP-gap
fine-tuning of a 3×100 network ran 2.6× longer in wall time (2.2× the CPU time) with the default
two BLAS threads than with one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import highspy

#: The variables that BLAS/OpenMP libraries read when they load (numpy's and scipy's OpenBLAS,
#: MKL, OpenMP): what :func:`single_thread` sets for libraries loaded later and for the worker
#: processes the calling process starts.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_thread() -> None:
    """Run torch and every BLAS/OpenMP library already loaded (numpy's, scipy's) on one thread.

    Process-wide and lasting (the calling process is a one-thread job: the CLI, a benchmark
    worker, a test session): the pools already loaded are limited now (``threadpoolctl``), and
    :data:`THREAD_VARIABLES` are set to 1 for the libraries and worker processes started later.
    """
    import torch  # here: the command line imports this module before it needs torch
    from threadpoolctl import threadpool_limits

    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def quiet_highs(threads: int = 1) -> highspy.Highs:
    """A ``highspy.Highs`` object that prints nothing and solves on ``threads`` threads (one by
    default): what every LP and MILP the library builds directly in HiGHS starts from."""
    import highspy  # here: not every user of this module solves an LP

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", int(threads))
    return h


__all__ = ["THREAD_VARIABLES", "quiet_highs", "single_thread"]
