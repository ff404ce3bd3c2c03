"""Map independent jobs over a Dask cluster and stream their results back, one at a time.

The benchmark suite, the tuner and any other long sweep (the paper's grid) are lists of independent
jobs (train a network, measure its MILP) whose results go into one resumable store (a results JSON
file, an Optuna study). This module runs such a list on a :class:`distributed.Client`:

.. code-block:: python

    with dask_client(scheduler=None, jobs=2) as client:          # a LocalCluster of 2 workers
        failed = run_jobs(client, [Job("a", f, (1,)), Job("b", f, (2,))],
                          on_result=lambda key, value: store(key, value))

* **One code path** for a laptop and a cluster: without ``scheduler`` a
  :class:`distributed.LocalCluster` of ``jobs`` worker *processes* with one thread each is started
  (one core per MILP, no GIL sharing); with ``scheduler="tcp://host:8786"`` the jobs go to that
  cluster instead. ``client=None`` in :func:`run_jobs` runs the jobs in this process, in order,
  with the same callbacks (no Dask needed).
* **Streaming**: ``on_result(key, value)`` is called in the submitting process as each job
  finishes (in completion order), so results land in the store one by one and an interrupted run
  keeps everything finished so far. It may return follow-up jobs (e.g. a function's variants once
  its baseline is trained); they are submitted at once.
* **Order**: every :class:`Job` has a ``priority``; the pending job with the highest priority is
  submitted first (ties: in the order they were queued). With ``max_in_flight="workers"`` jobs are
  handed out only as workers become free (at most one job per worker thread), so the order is
  exactly the list-scheduling order -- e.g. longest-processing-time first, which keeps the tail of
  a run short -- instead of whatever the scheduler assigned at submission time.
* **Failures are never dropped**: a job that raises is retried ``retries`` times; a worker that
  dies loses only the job it was running, which the scheduler gives to another worker (up to
  Dask's ``distributed.scheduler.allowed-failures`` times, then ``KilledWorker``). A job that
  still fails is passed to ``on_failure(key, error)`` and returned in the list of
  :class:`JobFailure` -- the caller records it (e.g. as failed in the results file, retried on the
  next run).
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: Seconds to wait for a scheduler given by address before giving up with a clear error.
CONNECT_TIMEOUT = 5.0

#: What to install for the distributed features.
DASK_PIP = "pip install 'dask[distributed]'"


class SchedulerUnreachableError(ValueError):
    """No Dask scheduler answers at the given address."""


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args, **kwargs)`` on some worker, identified by ``key``.

    ``fn`` must be importable by the workers (a module-level function) and its arguments and
    result picklable. Pending jobs with a higher ``priority`` are submitted first (e.g. the
    estimated run time, for longest-processing-time-first order).
    """

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    priority: float = 0.0


@dataclass(frozen=True)
class JobFailure:
    """A job that failed after its retries: its key and the error as one line."""

    key: str
    error: str


def require(module: str, what: str, pip: str) -> Any:
    """``import module``, or an ``ImportError`` saying ``what`` needs it and how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        msg = f"{what} needs {module}, which is not installed ({err}); {pip}"
        raise ImportError(msg) from err


def require_distributed() -> Any:
    """The ``distributed`` module, or an ``ImportError`` that says what to install."""
    return require("distributed", "running jobs on Dask", DASK_PIP)


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    jobs: int = 1,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Iterator[Any]:
    """A :class:`distributed.Client` for ``scheduler``, or for a new local cluster.

    The local cluster has ``jobs`` worker processes with one thread each (``OMP_NUM_THREADS=1``,
    no dashboard) and is closed on exit. A scheduler that does not answer within
    ``connect_timeout`` seconds raises :class:`SchedulerUnreachableError`.
    """
    distributed = require_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=connect_timeout,
                                        set_as_default=False)
        except Exception as err:
            msg = (
                f"cannot reach a Dask scheduler at {scheduler!r} within {connect_timeout:g} s "
                f"({_error_line(err)}); start one with `dask scheduler` (workers: `dask worker "
                f"ADDRESS --nthreads 1`) or leave out --scheduler to run on a local cluster"
            )
            raise SchedulerUnreachableError(msg) from None
        try:
            yield client
        finally:
            client.close()
        return
    if int(jobs) != jobs or jobs < 1:
        msg = f"jobs must be a whole number >= 1, got {jobs!r}"
        raise ValueError(msg)
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with warnings.catch_warnings():
        # no dashboard; its HTTP server still tries port 8787 and warns if taken (harmless)
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = distributed.LocalCluster(
            n_workers=int(jobs), threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR, env=env,
        )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@contextlib.contextmanager
def suite_client(client: Any = None, scheduler: str | None = None,
                 jobs: int = 1) -> Iterator[Any]:
    """Where a suite's jobs run: ``client`` if given; else the Dask scheduler at ``scheduler``;
    else a local cluster of ``jobs`` single-threaded workers if ``jobs > 1``; else ``None`` (in
    this process, one job after the other). A cluster started here is closed on exit."""
    if jobs < 1:
        msg = f"jobs must be at least 1, got {jobs}"
        raise ValueError(msg)
    if client is not None or (scheduler is None and jobs == 1):
        yield client
        return
    with dask_client(scheduler, jobs) as started:
        yield started


def n_workers(client: Any) -> int:
    """Number of workers (threads) the client's cluster has now (1 for ``client=None``)."""
    if client is None:
        return 1
    info = client.scheduler_info()
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


class _JobQueue:
    """Pending jobs; :meth:`pop` gives the highest priority, the earliest queued among equals."""

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self._heap: list[tuple[float, int, Job]] = []
        self._count = 0
        self.extend(jobs)

    def extend(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            heapq.heappush(self._heap, (-float(job.priority), self._count, job))
            self._count += 1

    def pop(self) -> Job:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)


def run_jobs(
    client: Any,
    jobs: Iterable[Job],
    on_result: Callable[[str, Any], Iterable[Job] | None],
    on_failure: Callable[[str, str], Iterable[Job] | None] | None = None,
    retries: int = 1,
    max_in_flight: int | str | None = None,
) -> list[JobFailure]:
    """Run ``jobs`` and the follow-ups the callbacks return to completion (module docstring).

    Args:
        client: a :class:`distributed.Client`, or ``None`` to run the jobs here, one by one.
        jobs: the initial jobs (keys must be unique within a run).
        on_result: called with ``(key, value)`` in this process as each job finishes; may return
            follow-up jobs.
        on_failure: called with ``(key, error line)`` for a job that failed after its retries
            (and after the scheduler's retries on dead workers); may return follow-up jobs.
        retries: extra attempts for a job that raised.
        max_in_flight: at most this many jobs submitted at once (``None``: all; ``"workers"``:
            the cluster's worker threads, counted again before each submission, so workers that
            join later get work). Jobs not yet submitted are submitted as others finish, highest
            ``priority`` first, so the callbacks can influence them (the tuner asks its sampler
            for the next trial only when a worker is free).

    Returns the failures, in the order they happened.
    """
    if retries < 0:
        msg = f"retries must be >= 0, got {retries}"
        raise ValueError(msg)
    if isinstance(max_in_flight, str) and max_in_flight != "workers":
        msg = f"max_in_flight must be a number, None or 'workers', got {max_in_flight!r}"
        raise ValueError(msg)
    queue = _JobQueue(jobs)
    failures: list[JobFailure] = []

    def fail(key: str, err: str) -> None:
        failures.append(JobFailure(key, err))
        if on_failure is not None:
            queue.extend(on_failure(key, err) or ())

    if client is None:
        while queue:
            job = queue.pop()
            err: BaseException | None = None
            for _ in range(retries + 1):
                try:
                    value = job.fn(*job.args, **job.kwargs)
                except Exception as e:
                    err = e
                    continue
                err = None
                queue.extend(on_result(job.key, value) or ())
                break
            if err is not None:
                fail(job.key, _error_line(err))
        return failures

    distributed = require_distributed()
    def limit() -> float:
        if max_in_flight is None:
            return math.inf
        if max_in_flight == "workers":
            return n_workers(client)
        return max(1, int(max_in_flight))

    keys: dict[Any, str] = {}
    ac = distributed.as_completed([], loop=client.loop, with_results=False)

    def submit_more() -> None:
        while queue and len(keys) < limit():
            job = queue.pop()
            fut = client.submit(job.fn, *job.args, **job.kwargs, pure=False, retries=retries,
                                key=f"{job.key}-{time.monotonic_ns()}",
                                priority=job.priority)
            keys[fut] = job.key
            ac.add(fut)

    submit_more()
    while keys:
        fut = next(ac)
        key = keys.pop(fut)
        if fut.status == "finished":
            value = fut.result()
            fut.release()
            queue.extend(on_result(key, value) or ())
        else:
            try:
                exc = fut.exception()
            except Exception as e:  # cancelled futures raise here
                exc = e
            fut.release()
            fail(key, _error_line(exc) if exc is not None else f"job {fut.status}")
        submit_more()
    return failures


__all__ = [
    "CONNECT_TIMEOUT",
    "DASK_PIP",
    "Job",
    "JobFailure",
    "SchedulerUnreachableError",
    "dask_client",
    "n_workers",
    "run_jobs",
    "suite_client",
]
