"""Two-stage stochastic programming with quantile-network surrogates of the recourse cost.

The workflow on capacitated facility location (CFLP; Neur2SP / Quantile2SP), one module per step:

* :mod:`~omlt_relax.stochastic.instance`: instances of any size and seed (``make_instance``);
* :mod:`~omlt_relax.stochastic.recourse`: the exact second stage :math:`Q(x, \\xi)` (HiGHS);
* :mod:`~omlt_relax.stochastic.data`: :math:`(x, \\xi, Q)` on all cores, cached and resumable
  (:mod:`~omlt_relax.stochastic.cache`);
* :mod:`~omlt_relax.stochastic.quantile_net`: pinball training with our regularizers;
* :mod:`~omlt_relax.stochastic.first_stage`: the first-stage MILP over the network (and
  ``search_decision``, the network's best decision by forward passes alone);
* :mod:`~omlt_relax.stochastic.evaluate`: held-out scoring and the exact SAA optimum;
* :mod:`~omlt_relax.stochastic.bench`: the ``cflp`` benchmark suite.
"""

from omlt_relax.stochastic.cache import CacheMismatchError, ChunkCache
from omlt_relax.stochastic.data import CFLPData, Sampling, generate_data, load_data, solve_parallel
from omlt_relax.stochastic.evaluate import (
    EVAL_SEED,
    Evaluation,
    SAATable,
    all_decisions,
    cvar,
    evaluate_decision,
    saa_table,
    score,
)
from omlt_relax.stochastic.first_stage import (
    FirstStageResult,
    RiskObjective,
    build_first_stage,
    search_decision,
    solve_first_stage,
    surrogate_objective,
)
from omlt_relax.stochastic.instance import CHECKSUM_10_10_SEED_7, CFLPInstance, make_instance
from omlt_relax.stochastic.quantile_net import (
    Penalties,
    QuantileFit,
    Standardization,
    TrainSettings,
    build_quantile_net,
    fit_quantile_net,
    fold_quantile_standardization,
    pinball_loss,
    predict_quantiles,
    quantile_levels,
)
from omlt_relax.stochastic.recourse import RecourseSolver, recourse_cost

__all__ = [
    "CHECKSUM_10_10_SEED_7",
    "EVAL_SEED",
    "CFLPData",
    "CFLPInstance",
    "CacheMismatchError",
    "ChunkCache",
    "Evaluation",
    "FirstStageResult",
    "Penalties",
    "QuantileFit",
    "RecourseSolver",
    "RiskObjective",
    "SAATable",
    "Sampling",
    "Standardization",
    "TrainSettings",
    "all_decisions",
    "build_first_stage",
    "build_quantile_net",
    "cvar",
    "evaluate_decision",
    "fit_quantile_net",
    "fold_quantile_standardization",
    "generate_data",
    "load_data",
    "make_instance",
    "pinball_loss",
    "predict_quantiles",
    "quantile_levels",
    "recourse_cost",
    "saa_table",
    "score",
    "search_decision",
    "solve_first_stage",
    "solve_parallel",
    "surrogate_objective",
]
