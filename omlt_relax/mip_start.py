r"""A MIP start for a network MILP from forward passes: an incumbent before the first node.

A ReLU network MILP always has feasible points, one for every input :math:`x` of the box, and a
forward pass finds their values without a solver. A branch-and-bound solver that is handed one
of them prunes every node whose bound is worse from the start, and never reports "no incumbent"
at its time limit. Two steps:

1. :func:`best_probe_input`: evaluate the network (float64) at the box centre, its corners and
   ``n`` uniform random inputs (:func:`omlt_relax.chain.probe_inputs`) and keep the best for the
   objective's sense,

   .. math:: x^0 = \arg\min_{x \in P}\ \pm f_o(x),\qquad P = \{\text{probes}\}.

   With ``start="local"`` (:func:`best_local_input`) the best few probes are then improved by
   a local search over the network's linear regions
   (:func:`~omlt_relax.linear_regions.descend_regions`: one small LP per region, moving across
   a border neuron while the output improves), which ends at a local optimum of :math:`f_o`
   over the box.

2. :func:`start_from_input`: fix the network block's inputs at :math:`x^0`, solve the model
   (every other variable -- pre-activations, ReLU outputs and binaries, and the rest of a
   user's model -- follows from the fixed inputs; for a network alone presolve solves it), then
   free the inputs again. The model's variables now hold a complete feasible point, which
   :func:`omlt_relax.solve.solve` with ``warm_start=True`` hands to the solver.

:func:`omlt_relax.optimize.solve_milp` does both with ``start="probe"`` or ``"local"``. A start
cannot make an answer wrong: the solver checks it like any other point and drops it if
infeasible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from omlt_relax.chain import forward_chain, network_chain, network_input_box, probe_inputs
from omlt_relax.linear_regions import descend_regions
from omlt_relax.solve import SolveResult, solve

#: Random inputs :func:`best_probe_input` evaluates (besides the centre and the corners).
DEFAULT_PROBES = 4096
#: Seconds allowed to the completion solve of :func:`start_from_input`.
START_TIME_LIMIT = 10.0
#: Best probes :func:`best_local_input` improves by the local search.
LOCAL_STARTS = 8
#: Start modes of :func:`omlt_relax.optimize.solve_milp`.
STARTS = (None, "probe", "local")


@dataclass(frozen=True)
class MipStart:
    """A start built for one network MILP.

    Attributes:
        x: the input the start is built at.
        value: the network output there (float64 forward pass).
        status: the completion solve's status (``"optimal"``: the model holds the start).
        objective: the model's objective at the start (``None`` if the completion failed).
        time: seconds for probing and completing.
    """

    x: list[float]
    value: float
    status: str
    objective: float | None
    time: float

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "feasible")


def _probes(net: Any, sense: str, output: int, n: int, seed: int) -> tuple[
        Any, tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """The network's chain and box, the probes and the output ``output`` at each (float64)."""
    if sense not in ("min", "max"):
        msg = f"sense must be 'min' or 'max', got {sense!r}"
        raise ValueError(msg)
    chain = network_chain(net)
    lo, hi = network_input_box(net, chain[0][0].shape[1])
    xs = probe_inputs(lo, hi, n, seed)
    return chain, (lo, hi), xs, forward_chain(chain, xs)[:, output]


def best_probe_input(
    net: Any, sense: str = "min", output: int = 0, n: int = DEFAULT_PROBES, seed: int = 0
) -> tuple[np.ndarray, float]:
    r"""The probe with the best network output for ``sense`` (module docstring, step 1).

    Args:
        net: OMLT ``NetworkDefinition`` with input bounds (from :func:`~omlt_relax.load_onnx`).
        sense: ``"min"`` or ``"max"``.
        output: index of the output.
        n: random probes besides the box centre and corners.
        seed: random seed of the probes.

    Returns ``(x, f_o(x))`` in float64.
    """
    _, _, xs, vals = _probes(net, sense, output, n, seed)
    i = int(np.argmin(vals) if sense == "min" else np.argmax(vals))
    return xs[i].copy(), float(vals[i])


def best_local_input(
    net: Any, sense: str = "min", output: int = 0, n: int = DEFAULT_PROBES, seed: int = 0,
    starts: int = LOCAL_STARTS,
) -> tuple[np.ndarray, float]:
    r"""The probes of :func:`best_probe_input`, the ``starts`` best of them improved by
    :func:`~omlt_relax.linear_regions.descend_regions`; the best result for ``sense``.

    .. math:: x^0 = \arg\min_{x \in D}\ \pm f_o(x),\qquad
        D = \{\mathrm{descend}(p) : p \text{ among the } k \text{ best probes}\},

    so :math:`\pm f_o(x^0)` is never worse than the best probe's. Returns ``(x, f_o(x))``,
    float64 (by a forward pass).
    """
    if starts < 1:
        msg = f"starts must be at least 1, got {starts}"
        raise ValueError(msg)
    chain, (lo, hi), xs, vals = _probes(net, sense, output, n, seed)
    order = np.argsort(vals if sense == "min" else -vals, kind="stable")[:starts]
    best = [descend_regions(chain, lo, hi, xs[i], sense, output) for i in order]
    pick = (min if sense == "min" else max)(best, key=lambda d: d.value)
    return pick.x.copy(), pick.value


def start_from_input(
    model: Any,
    block: Any,
    x: Any,
    solver: str = "highs",
    threads: int = 1,
    time_limit: float | None = START_TIME_LIMIT,
) -> SolveResult:
    """Complete a feasible point of ``model`` with ``block``'s inputs at ``x`` (module docstring,
    step 2); on success (status ``"optimal"`` or ``"feasible"``) the model's variables hold it.

    Inputs the caller has fixed stay fixed at their own values; the others are fixed at ``x``
    only for the completion and freed afterwards, whatever happens.

    Raises:
        ValueError: ``x`` has not one value per input of ``block``.
    """
    inputs = list(block.inputs.values())
    xv = np.asarray(x, np.float64).ravel()
    if xv.size != len(inputs):
        msg = f"the start has {xv.size} input values; the network block has {len(inputs)} inputs"
        raise ValueError(msg)
    fixed_here = [v for v in inputs if not v.fixed]
    try:
        for v, val in zip(inputs, xv):
            if not v.fixed:
                v.fix(float(val))
        return solve(model, solver=solver, time_limit=time_limit, threads=threads)
    finally:
        for v in fixed_here:
            v.unfix()


def probe_start(
    model: Any,
    block: Any,
    net: Any,
    sense: str,
    output: int = 0,
    solver: str = "highs",
    threads: int = 1,
    n: int = DEFAULT_PROBES,
    seed: int = 0,
    time_limit: float | None = START_TIME_LIMIT,
    local: bool = False,
) -> MipStart:
    """:func:`best_probe_input` (with ``local``: :func:`best_local_input`), then
    :func:`start_from_input` at it (its completion solve within ``time_limit`` seconds): the
    model holds the start when :attr:`MipStart.ok`."""
    t0 = time.perf_counter()
    pick = best_local_input if local else best_probe_input
    x, value = pick(net, sense, output, n, seed)
    res = start_from_input(model, block, x, solver=solver, threads=threads, time_limit=time_limit)
    return MipStart(
        x=[float(v) for v in x],
        value=value,
        status=res.status,
        objective=res.objective,
        time=time.perf_counter() - t0,
    )


__all__ = [
    "DEFAULT_PROBES",
    "LOCAL_STARTS",
    "STARTS",
    "START_TIME_LIMIT",
    "MipStart",
    "best_local_input",
    "best_probe_input",
    "probe_start",
    "start_from_input",
]
