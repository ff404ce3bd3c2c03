r"""The paper's own protocol as a benchmark suite (``omlt-relax bench --suite paper``).

Tsay 2026 (arXiv 2604.22746) trains width-25 ReLU networks on three 2-D test functions and times the
MILP that minimizes each network. This module reproduces those settings exactly (see
``shared/PAPER.md``) and runs our own variants beside them, on the same data, seeds and solvers:

=============================  ====================================================================
setting                        value
=============================  ====================================================================
functions, domains             peaks on :math:`[-2, 2]^2`, Himmelblau on :math:`[-5, 5]^2`,
                               Ackley (a = 20, b = 0.2, c = 2π) on :math:`[-3.5, 3.5]^2`
networks                       width 25, depth 2, 3 or 5 hidden ReLU layers, linear output;
                               Kaiming-normal hidden / Xavier-normal output weights, zero biases
data                           Latin hypercube: 70,000 train, 30,000 validation, 10,000 test
                               (seeds s, s+1, s+2); targets min-max scaled to [0, 1] with the
                               training min/max; inputs unscaled
training                       :math:`\mathrm{MSE} + \lambda R`; Adam, lr 1e-3, batch 64, 200
                               epochs; the parameters with the lowest validation MSE are kept
weights                        :math:`\lambda \in \{10^{-4}, 10^{-3}, 10^{-2}\}`
MILP                           minimize the output; big-M; MIP gap 1e-4; time limit 1800 s
=============================  ====================================================================

Regularizers :math:`R(\theta)` (hidden neurons :math:`i = 1..N`, IBP pre-activation bounds
:math:`l_i \le \hat z_i \le u_i` over the box, differentiable in :math:`\theta`):

* ``width`` (the paper's "bound width"): :math:`\frac1N \sum_i (u_i - l_i)`;
* ``stable`` (the paper's "stable neuron"):
  :math:`\frac1N \sum_i \min(\max(-l_i, 0), \max(u_i, 0))`, zero on a stable neuron, so only
  neurons that cost a binary are penalized;
* ``lpgap``: the mean over 8 points of the mini-batch of :math:`f(x) - \min_{LP(x)} y`, the
  big-M LP relaxation with the input fixed to :math:`x` and the IBP big-M constants held
  constant; gradient from the LP duals (:class:`~omlt_relax.LPGapPenalty`, ``"direct"``);
* ``width+lpgap``: the sum of the two (weight 1 each); ``l1``/``l2``: sums of :math:`|\theta|`,
  :math:`\theta^2` over all parameters.

Our variants beside them (same data, seeds, epochs, checkpoint rule): ``stable_crown`` (the stable
neuron penalty on CROWN bounds), ``lpgap_total`` (LP gap with the total derivative through the
big-M constants), and ``stable_cont`` (continuation: the first half of the epochs plain, the
stable-neuron penalty ramped linearly to :math:`\lambda` over the next quarter, held for the last
quarter; the checkpoint is the best validation MSE after the ramp), and ``stable_ft``
(fine-tuning: start from the trained unregularized network of the same function, depth and seed,
train half the epochs more with the stable-neuron weight ramped linearly to :math:`\lambda` over
the first half of them, keep the best validation MSE after the ramp; its training time counts only
the fine-tuning).
The *recipe* variants ``stable_ftd``, ``stable_crown_ftd`` and ``width_ftd`` fine-tune the same way
and then, over the second half of the fine-tuning, cosine-decay the learning rate to
:data:`~omlt_relax.bench.paper.protocol.LR_FLOOR` × its start with λ held; ``none_ft`` is their
control (the same fine-tuning and decay with no penalty), so that the report can separate what the
schedule buys in accuracy from what the penalty costs. ``stable_width_crown_ftd`` is the same
recipe with both terms (stable neuron and bound width, each weighted 1, on CROWN bounds);
``lpgap_total_ftd`` is the recipe with the LP gap (total derivative) alone and
``stable_lpgap_ftd`` with the stable-neuron penalty plus the LP gap (each weighted 1).
``width_d`` and ``stable_d`` are the paper's ``width`` and ``stable`` (λ from the first step, all
epochs) with only the recipe's learning-rate decay added: what the decay alone buys the paper's
regularizers. ``width_stable_d`` and ``width_stable_ftd`` sum the paper's two IBP terms (each
weighted 1), from the first step with the decay and as the fine-tuning recipe.
``stable_crown_ftb`` is ``stable_crown_ftd`` with an accuracy budget instead of a fixed weight
(λ is the start; after the ramp it is multiplied by :data:`BUDGET_BACKOFF` on every epoch whose
validation MSE exceeds :data:`BUDGET` × the unregularized network's, and the kept epoch is the one
with the fewest CROWN-unstable neurons within budget); ``stable_crown_ftbl`` backs off only over
the last quarter; ``stable_lpgap_ftb`` is ``stable_lpgap_ftd`` with the same budget (the kept
epoch has the fewest IBP-unstable neurons within it).

Every trained network is measured two ways (three with ``stock``), minimization only, HiGHS and
Gurobi one thread each (Gurobi where its size-limited pip licence allows):

* **paper MILP**: big-M with sound IBP bounds (float64, rounded outward), a binary only for
  IBP-unstable neurons -- :class:`~omlt_relax.BoundedReluBigMFormulation` with
  :func:`~omlt_relax.sound_bounds` ``"ibp"``;
* **ours**: the same formulation with LP-based OBBT bounds (:func:`~omlt_relax.obbt_bounds`).
* **stock** (only if asked, ``formulations`` ``"stock"``): what plain OMLT builds from the ONNX
  file -- ``load_onnx_neural_network_with_bounds`` and ``ReluBigMFormulation`` with OMLT's own
  bounds, a binary for every neuron; the report adds our MILP's speed-up over stock OMLT on the
  unregularized network.

Metrics per network: test MSE/MAE/max error on the [0, 1] scale, unstable neurons (IBP and OBBT),
mean/max IBP bound width, root LP gap (MILP min minus LP min), MILP time, nodes, final gap, the true
function at the MILP minimizer minus the known minimum, and the network's own value at that input
(the forward pass that verifies the MILP).

Every (function, depth, seed, variant, λ) is one *job*: its trained network and its measurements are
files of their own under ``OUT/models`` and ``OUT/jobs``, so a run can be interrupted and resumed,
and several processes can share one output folder. ``run_paper(..., train_only=True)``
(``--train-only``) trains and stores the networks without solving any MILP, e.g. the plain
networks that the fine-tunings start from, whose baseline MILPs take the time limit once per
solver; a later run measures the stored networks. The default is the full grid (every
function, depth, setting and the 20 seeds); :data:`MINIMUM_SUBSET` (``--subset minimum``: the
paper's own settings at depths 3 and 5, seeds 0-2, 180 networks) is the least that answers the
paper's question, and the report counts what of it a folder holds (:func:`coverage`).
"""

from omlt_relax.bench.paper.measure import measure_paper
from omlt_relax.bench.paper.protocol import (
    BUDGET,
    BUDGET_BACKOFF,
    DEPTHS,
    FORMULATIONS,
    LAMBDAS,
    LP_SAMPLES,
    MINIMUM_SUBSET,
    MIP_GAP,
    MSE_RATIO,
    PAPER_FUNCTIONS,
    PAPER_VARIANTS,
    SEEDS,
    TIME_LIMIT,
    WIDTH,
    Job,
    PaperConfig,
    PaperData,
    PaperVariant,
    get_paper_variant,
    jobs_of,
    latin_hypercube,
    paper_data,
    paper_network,
    with_overrides,
)
from omlt_relax.bench.paper.report import (
    REPORT_FILE,
    coverage,
    dominance,
    equal_accuracy,
    headline,
    load_records,
    markdown_report,
    pareto_plots,
    summarize,
    write_report,
)
from omlt_relax.bench.paper.run import run_job, run_paper
from omlt_relax.bench.paper.training import (
    PaperRegularizer,
    TrainedNet,
    checkpoint_from,
    lr_factor,
    schedule_factor,
    train_paper,
)

__all__ = [
    "BUDGET",
    "BUDGET_BACKOFF",
    "DEPTHS",
    "FORMULATIONS",
    "LAMBDAS",
    "LP_SAMPLES",
    "MINIMUM_SUBSET",
    "MIP_GAP",
    "MSE_RATIO",
    "PAPER_FUNCTIONS",
    "PAPER_VARIANTS",
    "REPORT_FILE",
    "SEEDS",
    "TIME_LIMIT",
    "WIDTH",
    "Job",
    "PaperConfig",
    "PaperData",
    "PaperRegularizer",
    "PaperVariant",
    "TrainedNet",
    "checkpoint_from",
    "coverage",
    "dominance",
    "equal_accuracy",
    "get_paper_variant",
    "headline",
    "jobs_of",
    "latin_hypercube",
    "load_records",
    "lr_factor",
    "markdown_report",
    "measure_paper",
    "paper_data",
    "paper_network",
    "pareto_plots",
    "run_job",
    "run_paper",
    "schedule_factor",
    "summarize",
    "train_paper",
    "with_overrides",
    "write_report",
]
