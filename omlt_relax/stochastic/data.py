"""Training data :math:`(x, \\xi, Q(x, \\xi))` for a CFLP instance, made on all cores and cached.

Row :math:`r` of a dataset draws an opening probability :math:`p_r \\sim U[p_{lo}, p_{hi}]`, a
decision
:math:`x_{ri} \\sim \\text{Bernoulli}(p_r)`, and ``scenarios_per_decision`` demand scenarios
:math:`\\xi \\sim U\\{5..35\\}^m`, each labelled by an exact second-stage solve
(:class:`~omlt_relax.stochastic.recourse.RecourseSolver`). A quantile network fitted to
:math:`(x, Q)` pairs learns the distribution of :math:`Q(x, \\xi)` over :math:`\\xi` for each
:math:`x`.

Rows come in chunks, each from its own seed ``(seed, chunk)``, so a chunk is the same whichever
worker makes it and whenever. Chunks are solved by a process pool (one HiGHS thread per worker),
with a ``tqdm`` progress bar, and cached in a :class:`~omlt_relax.stochastic.cache.ChunkCache`
whose key holds the instance, the seed, the size and the sampling: an interrupted run resumes, and
a directory made for other settings is refused.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omlt_relax.stochastic.cache import ChunkCache
from omlt_relax.stochastic.instance import (
    DEMAND_HIGH,
    DEMAND_LOW,
    CFLPInstance,
    check_whole,
    make_instance,
)
from omlt_relax.stochastic.recourse import RecourseSolver


@dataclass(frozen=True)
class Sampling:
    """How the rows of a dataset are drawn (module docstring).

    Attributes:
        n_decisions: number of sampled decisions :math:`x`.
        scenarios_per_decision: scenarios (rows) per decision.
        seed: the sampling seed (not the instance's).
        open_low, open_high: range of the per-decision opening probability.
        chunk_size: decisions per cached chunk.
    """

    n_decisions: int = 5000
    scenarios_per_decision: int = 1
    seed: int = 0
    open_low: float = 0.2
    open_high: float = 0.8
    chunk_size: int = 250

    def __post_init__(self) -> None:
        for name in ("n_decisions", "scenarios_per_decision", "chunk_size"):
            check_whole(name, getattr(self, name))
        check_whole("the sampling seed", self.seed, 0)
        if not 0.0 <= self.open_low <= self.open_high <= 1.0:
            msg = (
                "the opening probability range needs 0 <= open_low <= open_high <= 1, got "
                f"[{self.open_low}, {self.open_high}]"
            )
            raise ValueError(msg)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_decisions / self.chunk_size)

    def draw(self, instance: CFLPInstance, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """Decisions and scenarios of one chunk: ``x`` ``(k, n)``, ``xi`` ``(k, m)`` (k rows)."""
        start = chunk * self.chunk_size
        k = min(self.chunk_size, self.n_decisions - start)
        rng = np.random.default_rng([self.seed, chunk])
        p = rng.uniform(self.open_low, self.open_high, size=k)
        x = (rng.random((k, instance.n_facilities)) < p[:, None]).astype(np.float64)
        x = np.repeat(x, self.scenarios_per_decision, axis=0)
        xi = rng.integers(DEMAND_LOW, DEMAND_HIGH + 1, size=(x.shape[0], instance.n_customers))
        return x, xi.astype(np.float64)


@dataclass
class CFLPData:
    """A labelled dataset: ``x`` ``(N, n)``, ``xi`` ``(N, m)``, ``q`` ``(N,)`` (recourse cost)."""

    instance: CFLPInstance
    sampling: Sampling
    x: np.ndarray
    xi: np.ndarray
    q: np.ndarray
    key_hash: str


# --- the worker side of the pool ------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(n: int, m: int, seed: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["solver"] = RecourseSolver(make_instance(n, m, seed))


def _solve_rows(tag: Any, x: np.ndarray, xi: np.ndarray) -> tuple[Any, np.ndarray]:
    solver: RecourseSolver = _WORKER["solver"]
    return tag, np.array([solver.solve(a, b) for a, b in zip(x, xi)])


def default_workers() -> int:
    """All cores: ``os.cpu_count()`` (at least 1)."""
    return max(1, os.cpu_count() or 1)


class RecoursePool:
    """A pool of ``workers`` processes solving second stages (one ``Highs``, one thread each).

    Use as a context manager; :meth:`run` yields ``(tag, q)`` for tasks ``(tag, x, xi)`` as they
    finish. ``workers=1`` solves in this process (no pool).
    """

    def __init__(self, instance: CFLPInstance, workers: int | None = None) -> None:
        self.instance = instance
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 1:
            msg = f"workers must be >= 1, got {self.workers}"
            raise ValueError(msg)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> RecoursePool:
        args = (self.instance.n_facilities, self.instance.n_customers, self.instance.seed)
        if self.workers == 1:
            _init_worker(*args)
        else:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=args,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def run(
        self,
        tasks: Iterable[tuple[Any, np.ndarray, np.ndarray]],
        desc: str = "second stage",
        progress: bool = True,
    ) -> Iterator[tuple[Any, np.ndarray]]:
        from tqdm.auto import tqdm

        tasks = list(tasks)
        with tqdm(total=len(tasks), desc=desc, disable=not progress, unit="task") as bar:
            if self._pool is None:
                _init_worker(self.instance.n_facilities, self.instance.n_customers,
                             self.instance.seed)
                for tag, x, xi in tasks:
                    yield _solve_rows(tag, x, xi)
                    bar.update(1)
                return
            futures = [self._pool.submit(_solve_rows, tag, x, xi) for tag, x, xi in tasks]
            for fut in as_completed(futures):
                yield fut.result()
                bar.update(1)


def solve_parallel(
    instance: CFLPInstance,
    tasks: Iterable[tuple[Any, np.ndarray, np.ndarray]],
    workers: int | None = None,
    desc: str = "second stage",
    progress: bool = True,
) -> Iterator[tuple[Any, np.ndarray]]:
    """Exact :math:`Q` for tasks ``(tag, x (k, n), xi (k, m))``, yielding ``(tag, q (k,))`` as done.

    A pool of ``workers`` processes (default: all cores), one ``Highs`` with one thread each;
    ``workers=1`` solves in this process. Order of results is completion order.
    """
    with RecoursePool(instance, workers) as pool:
        yield from pool.run(tasks, desc, progress)


def dataset_key(instance: CFLPInstance, sampling: Sampling) -> dict[str, Any]:
    """The cache key of a dataset: the instance, and every sampling setting."""
    return {"kind": "cflp-dataset", "instance": instance.key(), "sampling": asdict(sampling)}


def generate_data(
    instance: CFLPInstance,
    sampling: Sampling,
    cache_dir: str | os.PathLike[str],
    workers: int | None = None,
    progress: bool = True,
) -> CFLPData:
    """Make (or load, or finish) the dataset of ``instance`` under ``sampling`` in ``cache_dir``.

    Raises:
        CacheMismatchError: ``cache_dir`` holds data made for another instance or sampling.
    """
    cache = ChunkCache(Path(cache_dir), dataset_key(instance, sampling), sampling.n_chunks)

    def compute(indices: Iterable[int]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        draws = {i: sampling.draw(instance, i) for i in indices}
        tasks = [(i, x, xi) for i, (x, xi) in draws.items()]
        for i, q in solve_parallel(instance, tasks, workers, desc=f"data {instance.name}",
                                   progress=progress):
            x, xi = draws[i]
            yield i, {"x": x, "xi": xi, "q": q}

    arrays = cache.fill(compute)
    return CFLPData(instance, sampling, arrays["x"], arrays["xi"], arrays["q"], cache.hash)


def read_settings(cache_dir: str | os.PathLike[str]) -> tuple[CFLPInstance, Sampling]:
    """The instance and sampling a dataset directory was made with (from its ``meta.json``)."""
    import json

    meta = Path(cache_dir) / "meta.json"
    if not meta.is_file():
        msg = f"{meta} not found: {cache_dir} is not a dataset made by generate_data"
        raise FileNotFoundError(msg)
    key = json.loads(meta.read_text()).get("key", {})
    if key.get("kind") != "cflp-dataset":
        msg = f"{cache_dir} holds {key.get('kind', 'unknown data')!r}, not a CFLP dataset"
        raise ValueError(msg)
    i = key["instance"]
    instance = make_instance(i["n_facilities"], i["n_customers"], i["seed"])
    return instance, Sampling(**key["sampling"])


def load_data(
    cache_dir: str | os.PathLike[str], workers: int | None = None, progress: bool = True
) -> CFLPData:
    """The dataset in ``cache_dir`` (finishing missing chunks, checking every chunk's key)."""
    instance, sampling = read_settings(cache_dir)
    return generate_data(instance, sampling, cache_dir, workers, progress)


__all__ = [
    "CFLPData",
    "RecoursePool",
    "Sampling",
    "dataset_key",
    "default_workers",
    "generate_data",
    "load_data",
    "read_settings",
    "solve_parallel",
]
