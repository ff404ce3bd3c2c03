"""Benchmarks: how much faster the MILP of a relaxation-informed surrogate solves, at what accuracy.

Data flow of one benchmark entry (function × variant)::

    functions (known optima) ── data (seeded splits, standardization)
        ── train (one routine for every variant, weight chosen by a fixed rule)
        ── measure (RMSE, unstable neurons, big-M, root LP, MILP min/max, true optimality)
        ── suite (resumable results JSON, markdown table, Pareto plot)

``omlt-relax bench`` (:mod:`omlt_relax.cli`) runs the suite; ``omlt-relax demo`` runs one pair.
``--suite paper`` is Tsay 2026's protocol (:mod:`omlt_relax.bench.paper`); ``--suite scale`` the
paper-scale suite (2×100 and 3×100 networks, stock OMLT and our pipeline as baselines, speed-ups at
equal accuracy; :mod:`omlt_relax.bench.scale`).
"""

from omlt_relax.bench.data import Dataset, Standardizer, fold_standardization, sample_function
from omlt_relax.bench.functions import FUNCTIONS, SUITE_2D, SUITE_5D, BenchFunction, get_function
from omlt_relax.bench.measure import MilpResult, measure_network, solve_milp
from omlt_relax.bench.suite import SuiteConfig, run_suite
from omlt_relax.bench.train import VARIANTS, TrainConfig, Variant, select_weight, train_variant

__all__ = [
    "FUNCTIONS",
    "SUITE_2D",
    "SUITE_5D",
    "VARIANTS",
    "BenchFunction",
    "Dataset",
    "MilpResult",
    "Standardizer",
    "SuiteConfig",
    "TrainConfig",
    "Variant",
    "fold_standardization",
    "get_function",
    "measure_network",
    "run_suite",
    "sample_function",
    "select_weight",
    "solve_milp",
    "train_variant",
]
