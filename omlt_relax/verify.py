r"""Every network MILP answer checked against the network itself (float64 forward pass).

A MILP solver works with tolerances: a row may be violated by :math:`\tau`
(``mip_feasibility_tolerance``, 1e-6 in HiGHS), a binary may be :math:`\tau` away from 0 or 1. In a
big-M row :math:`z \le \hat z - l(1-\sigma)` that lets :math:`z` move by :math:`\tau(1 + |l|)`, so
with large bounds a solver can report as "optimal" a point whose network output is far from the
objective, or report a model "infeasible" that always has a solution. This module turns such
answers into the status :data:`UNRELIABLE` instead of a confident wrong number.

Notation as in :mod:`omlt_relax.network`. Given the returned input :math:`x^*` and objective
:math:`v^*` of ``min``/``max`` :math:`f_o(x)` over :math:`[x_{lo}, x_{hi}]`:

1. **Box**: :math:`x_{lo} - \tau(1+|x_{lo}|) \le x^* \le x_{hi} + \tau(1+|x_{hi}|)`.
2. **Objective**: :math:`|f_o(x^*) - v^*| \le T`, with the tolerance propagated through the layers
   from the bounds :math:`[l_k, u_k]` of the formulation,

   .. math::

       e_0 = \tau\,(1 + |x|_{\max}),\qquad
       e_k = \tau\,(1 + 2\max(|l_k|, |u_k|)) + |W_k|\,e_{k-1},\qquad
       T = F\,(\tau + (|W_L| e_{L-1})_o) + \epsilon\,(1 + |v^*|),

   :math:`F` = :data:`TOLERANCE_FACTOR`, :math:`\epsilon` = :data:`RELATIVE_SLACK`.
3. **Probes** (status "optimal"): the network is evaluated at the box centre, its corners (all
   of them up to :data:`omlt_relax.chain.MAX_CORNER_DIM` inputs, random ones beyond) and
   :data:`N_PROBES` random inputs (:func:`omlt_relax.chain.probe_inputs`); a probe
   better than the solver's proven bound (an optimal objective may be a MIP gap away from the
   optimum) by more than :math:`T` proves that "optimal" is wrong.

A network MILP over a non-empty box always has a solution (every :math:`x` in the box gives one),
so an "infeasible" status is reported as :data:`UNRELIABLE` too, with the network's value at the box
centre as witness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo

from omlt_relax.bounds.interval import interval_chain
from omlt_relax.chain import forward_chain, network_chain, network_input_box, probe_inputs
from omlt_relax.solve import solve

Chain = Sequence[tuple[np.ndarray, np.ndarray]]

#: Status of an answer the forward pass contradicts (objective, box or a better probe).
UNRELIABLE = "numerically_unreliable"
#: HiGHS's default ``mip_feasibility_tolerance`` (also its integrality tolerance).
FEASIBILITY_TOLERANCE = 1e-6
#: Safety factor on the propagated tolerance :math:`e_L`.
TOLERANCE_FACTOR = 10.0
#: Relative slack on the objective (float64 evaluation and the solver's reported value).
RELATIVE_SLACK = 1e-7
#: Random inputs evaluated as probes (besides the centre and the corners, see
#: :func:`omlt_relax.chain.probe_inputs`).
N_PROBES = 256
#: HiGHS's default relative and absolute MIP gaps (``mip_rel_gap``, ``mip_abs_gap``): how far an
#: "optimal" objective may be from the optimum when the solver's bound is not known.
DEFAULT_MIP_GAPS = (1e-4, 1e-6)
#: Statuses that claim "no solution exists"; for a network over a non-empty box this is wrong.
_INFEASIBLE = ("infeasible", "infeasible_or_unbounded", "unbounded")

ADVICE = (
    "the solver's tolerances are too coarse for this model's numbers: rescale the inputs to a "
    "box of moderate size, store tighter bounds (omlt-relax train --bounds lp or milp), or try "
    "another solver (omlt_relax.solve(..., solver='gurobi' or 'scip'))"
)


@dataclass(frozen=True)
class Verification:
    """What the forward pass says about a solver's answer.

    Attributes:
        ok: the answer is confirmed (or there is nothing to check: no solution, stopped early).
        status: the status to report: the solver's, or :data:`UNRELIABLE`.
        value: :math:`f_o(x^*)` (float64 forward pass), or ``None`` without :math:`x^*`.
        discrepancy: the largest measured violation: :math:`|f_o(x^*) - v^*|`, the distance of
            :math:`x^*` outside the box, or how much better a probe is (``None`` if not measured).
        tolerance: the tolerance :math:`T` it was compared with.
        message: one sentence: what was measured and what to do; empty when ``ok``.
    """

    ok: bool
    status: str
    value: float | None
    discrepancy: float | None
    tolerance: float
    message: str = ""


def _layer_bounds(chain: Chain, lo: np.ndarray, hi: np.ndarray, bounds: Any) -> list[np.ndarray]:
    """Per hidden layer ``max(|l|, |u|)``: from ``bounds`` if given, else interval arithmetic."""
    if bounds is not None:
        nb = bounds.numpy()
        return [np.maximum(np.abs(a), np.abs(c)) for a, c in zip(nb.lower, nb.upper)]
    lows, ups = interval_chain(chain, np.asarray(lo, np.float64), np.asarray(hi, np.float64))
    return [np.maximum(np.abs(a), np.abs(c)) for a, c in zip(lows, ups)]


def objective_tolerance(
    chain: Chain,
    lo: np.ndarray,
    hi: np.ndarray,
    bounds: Any = None,
    output: int = 0,
    objective: float = 0.0,
    feasibility_tolerance: float = FEASIBILITY_TOLERANCE,
) -> float:
    """The tolerance :math:`T` of the module docstring for output ``output``."""
    tau = float(feasibility_tolerance)
    mags = _layer_bounds(chain, lo, hi, bounds)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.full(np.asarray(lo).size, tau * (1.0 + float(np.max(np.abs([lo, hi])))))
        for (w, _b), m in zip(chain[:-1], mags):
            e = tau * (1.0 + 2.0 * m) + np.abs(w) @ e
        w_out = np.asarray(chain[-1][0], np.float64)
        t = TOLERANCE_FACTOR * (tau + float(np.abs(w_out[output]) @ e))
    return float(t + RELATIVE_SLACK * (1.0 + abs(float(objective))))


def verify_optimum(
    chain: Chain,
    lo: np.ndarray,
    hi: np.ndarray,
    sense: str,
    status: str,
    objective: float | None,
    x: Sequence[float] | np.ndarray | None,
    *,
    output: int = 0,
    bounds: Any = None,
    feasibility_tolerance: float = FEASIBILITY_TOLERANCE,
    bound: float | None = None,
) -> Verification:
    """Check a solver's answer to ``sense`` (``"min"``/``"max"``) of output ``output`` over the box.

    Args:
        chain: the network's float64 affine chain ``[(W_1, b_1), ..., (W_L, b_L)]``.
        lo, hi: the input box (non-empty).
        sense: ``"min"`` or ``"max"``.
        status: the solver's status (:class:`~omlt_relax.solve.SolveResult` names).
        objective, x: the reported objective and input (``None`` when there is none).
        output: which network output was optimized.
        bounds: the :class:`~omlt_relax.NeuronBounds` the formulation used (for the tolerance;
            interval bounds if ``None``).
        feasibility_tolerance: the solver's feasibility tolerance :math:`\tau`.
        bound: the solver's proven bound on the optimum. "Optimal" allows a MIP gap, so a probe
            contradicts the answer only when it beats this bound by more than :math:`T`
            (without one: the objective plus HiGHS's default gaps, :data:`DEFAULT_MIP_GAPS`).

    Returns:
        A :class:`Verification`; ``status`` is :data:`UNRELIABLE` when the answer is contradicted.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    sign = 1.0 if sense == "min" else -1.0
    tau = float(feasibility_tolerance)
    centre = forward_chain(chain, ((lo + hi) / 2)[None, :])[0, output]
    if status in _INFEASIBLE:
        t = objective_tolerance(chain, lo, hi, bounds, output, 0.0, tau)
        msg = (
            f"the solver reported {status!r}, but a network over a non-empty box always has a "
            f"solution (f = {centre:.6g} at the box centre): a numerical failure; {ADVICE}"
        )
        return Verification(False, UNRELIABLE, None, None, t, msg)
    if objective is None or x is None:
        return Verification(True, status, None, None, 0.0)
    xs = np.asarray(x, np.float64).reshape(-1)
    t = objective_tolerance(chain, lo, hi, bounds, output, float(objective), tau)
    out = np.abs(np.concatenate([lo - xs, xs - hi]))
    over = np.concatenate([lo - xs, xs - hi]) - tau * (1.0 + np.concatenate([np.abs(lo),
                                                                             np.abs(hi)]))
    value = float(forward_chain(chain, xs[None, :])[0, output])
    if not np.isfinite(value) or not np.isfinite(objective):
        msg = f"the network's value at the returned input is {value}; {ADVICE}"
        return Verification(False, UNRELIABLE, value, float("inf"), t, msg)
    if (over > 0).any():
        i = int(np.argmax(over))
        dist = float(out[i])
        msg = (
            f"the returned input {i % xs.size} = {xs[i % xs.size]:.6g} lies {dist:.3g} outside "
            f"the box [{lo[i % xs.size]:.6g}, {hi[i % xs.size]:.6g}]; {ADVICE}"
        )
        return Verification(False, UNRELIABLE, value, dist, t, msg)
    disc = abs(value - float(objective))
    if disc > t:
        msg = (
            f"the solver's objective {objective:.10g} differs from the network's value "
            f"{value:.10g} at the returned input by {disc:.3g} (tolerance {t:.3g}); {ADVICE}"
        )
        return Verification(False, UNRELIABLE, value, disc, t, msg)
    if status == "optimal":
        probes = probe_inputs(lo, hi, N_PROBES)
        vals = sign * forward_chain(chain, probes)[:, output]
        j = int(np.argmin(vals))
        if bound is not None and np.isfinite(bound):
            claim = sign * float(bound)
        else:
            rel, absolute = DEFAULT_MIP_GAPS
            claim = sign * float(objective) - (rel * abs(float(objective)) + absolute)
        better = claim - float(vals[j])
        if better > t:
            msg = (
                f"the solver reports the {sense}imum {objective:.10g}, but the network takes "
                f"{sign * vals[j]:.10g} at input {probes[j].tolist()} ({better:.3g} better); "
                f"{ADVICE}"
            )
            return Verification(False, UNRELIABLE, value, better, t, msg)
    return Verification(True, status, value, disc, t)


#: Solver options of the one retry after an answer the forward pass contradicts (HiGHS's presolve
#: declared feasible network MILPs with tiny weights over huge boxes infeasible; found by fuzzing).
RETRY_OPTIONS: dict[str, dict[str, Any]] = {"highs": {"presolve": "off"}}


def solve_verified(
    model: Any,
    block: Any,
    net: Any,
    bounds: Any,
    sense: str,
    output: int = 0,
    *,
    solver: str = "highs",
    **solve_kwargs: Any,
) -> tuple[Any, list[float] | None]:
    """Solve a network MILP with :func:`~omlt_relax.solve.solve` and verify the answer.

    Args:
        model: the Pyomo model (objective: ``sense`` of output ``output`` of ``block``).
        block: the ``OmltBlock`` holding the network (its ``inputs`` are read back).
        net: the OMLT ``NetworkDefinition`` (its input box is the MILP's box).
        bounds: the :class:`~omlt_relax.NeuronBounds` of the formulation (``None``: interval).
        solver, solve_kwargs: passed to :func:`~omlt_relax.solve.solve`.

    Returns:
        ``(SolveResult, x)``: the result with ``status``, ``discrepancy`` and ``note`` set by
        :func:`verify_optimum`, and the returned input (``None`` without a solution). An answer
        the forward pass contradicts is solved once more with :data:`RETRY_OPTIONS`; if that
        answer is confirmed it is returned, with a note saying so, else the first answer is
        returned as :data:`UNRELIABLE`.
    """
    chain = network_chain(net)
    lo, hi = network_input_box(net, chain[0][0].shape[1])

    def attempt(options: dict[str, Any]) -> tuple[Any, list[float] | None, Verification]:
        kw = dict(solve_kwargs)
        kw["options"] = {**(kw.get("options") or {}), **options}
        res = solve(model, solver=solver, **kw)
        x = None
        if res.objective is not None:
            x = [float(pyo.value(v)) for v in block.inputs.values()]
        check = verify_optimum(chain, lo, hi, sense, res.status, res.objective, x,
                               output=output, bounds=bounds, bound=res.bound)
        return res, x, check

    res, x, check = attempt({})
    if not check.ok and solver in RETRY_OPTIONS:
        res2, x2, check2 = attempt(RETRY_OPTIONS[solver])
        if check2.ok:
            note = (f"first answer rejected ({check.message.split(';')[0]}); re-solved with "
                    f"{RETRY_OPTIONS[solver]} and confirmed by the forward pass")
            return dataclasses.replace(verified(res2, check2), note=note), x2
    return verified(res, check), x


def verified(result: Any, check: Verification) -> Any:
    """A copy of a result dataclass (``SolveResult``, ``MilpResult``) with the verdict applied.

    Sets ``status`` to ``check.status`` and fills ``discrepancy`` and ``note`` (the message).
    """
    return dataclasses.replace(
        result, status=check.status, discrepancy=check.discrepancy, note=check.message or None
    )


__all__ = [
    "ADVICE",
    "FEASIBILITY_TOLERANCE",
    "UNRELIABLE",
    "Verification",
    "objective_tolerance",
    "solve_verified",
    "verified",
    "verify_optimum",
]
