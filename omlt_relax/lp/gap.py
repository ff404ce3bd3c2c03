"""The LP-gap penalty: how far the big-M LP relaxation at a training input is from the network.

Notation as in :mod:`omlt_relax.lp.relaxation`: :math:`\\hat z_k = W_k z_{k-1} + b_k`,
:math:`z_k = \\max(0, \\hat z_k)`, :math:`f(x) = W_L z_{L-1} + b_L`, bounds
:math:`l_k \\le \\hat z_k \\le u_k` over the input box, output weights :math:`c` (default all
ones).

**The gap.** For a sample :math:`x_i`, fix :math:`z_0 = x_i` in the LP relaxation of the big-M
formulation and let :math:`V^{\\max}_i, V^{\\min}_i` be the max and min of :math:`c^\\top y`. Then

.. math::

    g_i = V^{\\max}_i - c^\\top f(x_i)\\ (\\text{"max"}),\\qquad
    g_i = c^\\top f(x_i) - V^{\\min}_i\\ (\\text{"min"}),\\qquad \\text{or their sum ("both")},

:math:`g_i \\ge 0` (the network's own point is feasible) and :math:`g_i = 0` where the relaxation is
exact at :math:`x_i` (e.g. every neuron stable).

**The per-sample LP, with the first layer substituted.** With :math:`x` fixed,
:math:`\\hat z_1 = W_1 x + b_1` is a constant and projecting :math:`\\sigma_1` out of the big-M rows
leaves each first-layer activation in an interval,

.. math::

    \\operatorname{relu}(\\hat z_{1j}) \\le z_{1j} \\le t_j(\\hat z_{1j}),\\qquad
    t_j(\\hat z) = \\frac{u_{1j}(\\hat z - l_{1j})}{u_{1j} - l_{1j}}
    \\ \\text{if } l_{1j} < 0 < u_{1j},\\ \\text{else } \\operatorname{relu}(\\hat z)

(nonempty iff :math:`l_1 \\le \\hat z_1 \\le u_1`, which the full LP demands through the column
bounds of :math:`\\hat z_1`; a sample violating it is an infeasible LP). The same projection in the
deeper layers replaces the big-M rows of an unstable neuron by the triangle
:math:`z \\ge \\hat z,\\ z \\le t(\\hat z)` (:math:`\\sigma` appears in no other row). So the
per-sample LP is the :class:`~omlt_relax.lp.relaxation.BigMRelaxationLP` (``formulation=
"triangle"``) of the network *without its first layer*, whose "input" columns are :math:`z_1` with
the box :math:`[\\operatorname{relu}(\\hat z_1), t(\\hat z_1)]`: no :math:`x`, :math:`\\hat z_1` or
:math:`\\sigma` columns (on a 2x50 net 151 rows instead of 401, about 2x faster per solve). Its
value is the big-M LP's value for every :math:`\\theta`, hence so is its gradient.

**Solving.** One LP object per sense is kept; each call reloads the current weights and bounds
(keeping the last simplex basis when the set of unstable neurons is unchanged) and then only
changes the bounds of the :math:`z_1` columns per sample, dual simplex warm-started from the
previous sample. Samples are visited along a greedy nearest-neighbour path in :math:`\\hat z_1`
(:func:`greedy_tour`), which cuts the simplex iterations per LP by 2-4x. A solve is capped at
:data:`~omlt_relax.lp.relaxation.ITERATION_LIMIT_FACTOR` iterations per row and column; one
that hits the cap is retried once from scratch and otherwise skipped like any failed LP (below).

**Gradient by the envelope theorem, without a custom autograd Function.** Write the LP as
:math:`\\max/\\min\\ c^\\top v` s.t. rows
:math:`a_r(\\theta)^\\top v \\;[\\le, =, \\ge]\\; b_r(\\theta)` and column bounds
:math:`v_j \\in [\\beta^-_j(\\theta), \\beta^+_j(\\theta)]`. HiGHS returns the optimum :math:`v^*`,
row duals :math:`\\lambda^*` and column duals (reduced costs) :math:`\\mu^*` with
:math:`c = A^\\top \\lambda^* + \\mu^*` *for either sense* (checked in the tests).
If the optimal active set does not change, differentiating the active constraints gives

.. math::

    \\frac{dV}{d\\theta} = \\frac{\\partial S}{\\partial\\theta}\\Big|_{v^*,\\lambda^*,\\mu^*},
    \\qquad
    S(\\theta) = \\sum_r \\lambda^*_r \\big(b_r(\\theta) - a_r(\\theta)^\\top v^*\\big)
    + \\sum_j \\mu^*_j\\, \\beta_j(\\theta),

:math:`\\beta_j` the bound column :math:`j` sits at (the nearer one; :math:`\\mu^*_j = 0` for basic
columns). The objective :math:`c^\\top y` does not depend on :math:`\\theta` (the output layer is
the equality row :math:`y - W_L z_{L-1} = b_L`). Built in torch with :math:`v^*, \\lambda^*, \\mu^*`
as constants, the terms are, per hidden layer :math:`k \\ge 2` of the reduced LP,

* affine rows :math:`\\hat z_k - W_k z_{k-1} = b_k`:
  :math:`\\lambda^\\top (W_k z^*_{k-1} + b_k - \\hat z^*_k)` (and the same for the output rows);
* triangle rows of unstable neurons, :math:`z - s\\hat z \\le -s\\,l` with :math:`s = u/(u-l)`:
  :math:`\\lambda\\,(u(\\hat z^* - l)/(u - l) - z^*)` (the rows :math:`z - \\hat z \\ge 0` carry no
  :math:`\\theta`);
* column bounds :math:`\\hat z \\in [l, u]`, :math:`z \\in [0, \\operatorname{relu}(u)]`:
  :math:`\\mu\\, l` or :math:`\\mu\\, u`, and :math:`\\mu\\, \\operatorname{relu}(u)` at the upper
  bound;

and for the input columns :math:`z_1`: :math:`\\mu\\, \\operatorname{relu}(W_1 x + b_1)` or
:math:`\\mu\\, t(W_1 x + b_1)`. Then

.. math::

    g^{\\max} = V^{\\max}.\\mathrm{detach}() - c^\\top f(x) + (S - S.\\mathrm{detach}()),\\qquad
    g^{\\min} = c^\\top f(x) - V^{\\min}.\\mathrm{detach}() - (S - S.\\mathrm{detach}())

has the LP's value and its gradient. The **"direct"** derivative treats :math:`l, u` as constants
(so only the :math:`W, b` terms carry gradient, as in Tsay 2026); the **"total"** derivative keeps
the graph of :math:`l(\\theta), u(\\theta)` from IBP/CROWN, so the sensitivity through the big-M
constants, the triangle :math:`t` and the column bounds is exact. The LPs are degenerate, so the
duals are one subgradient among several where the optimal face is not unique.

**Numerics.** The LP is solved in float64 from float64 copies of the weights. Bounds in a coarser
dtype (float32 training) are widened outward by ``WIDEN_EPS`` machine epsilons times
:math:`1 + |l| + |u|` so that their rounding cannot cut off the network's own point. A sample
whose LP is not solved to optimality is skipped with a ``warnings.warn``, counted, and contributes
an exact 0 (value and gradient); training goes on.

Shapes: ``x`` is ``(B, n_0)`` (batch first); gaps are ``(B,)`` in the model's dtype.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bounds import affine_chain
from omlt_relax.bounds.methods import BOUND_METHODS, propagate
from omlt_relax.bounds.rounding import widen_outward
from omlt_relax.chain import forward_chain
from omlt_relax.lp.relaxation import ITERATION_LIMIT_FACTOR, BigMRelaxationLP, greedy_tour
from omlt_relax.network import ParsedNetwork, as_box, parse_network
from omlt_relax.neuron_bounds import NeuronBounds
from omlt_relax.penalties import Penalty, method_mismatch

Tensor = torch.Tensor

SENSES = ("max", "min", "both")
DERIVATIVES = ("total", "direct")

#: Relative slack (times :math:`1 + |bound|`) by which :math:`\hat z_1(x)` may leave
#: :math:`[l_1, u_1]` before the sample's LP counts as infeasible (HiGHS's primal tolerance).
FEAS_TOL = 1e-7
#: Bounds in a dtype coarser than float64 are widened by this many of its machine epsilons times
#: :math:`1 + |l| + |u|` before they reach the float64 LP.
WIDEN_EPS = 64.0

_F64 = torch.float64


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        msg = f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
        raise ValueError(msg)
    return value


def _check_bounds_spec(bounds: object) -> str | NeuronBounds:
    if isinstance(bounds, NeuronBounds):
        return bounds
    if isinstance(bounds, str) and bounds in BOUND_METHODS:
        return bounds
    msg = f"bounds must be 'ibp', 'crown' or a NeuronBounds; got {bounds!r}"
    raise ValueError(msg)


def _output_weights(c: Any, n_out: int) -> np.ndarray:
    if c is None:
        return np.ones(n_out)
    if isinstance(c, Tensor):
        c = c.detach().cpu().double().numpy()
    arr = np.asarray(c, dtype=np.float64).reshape(-1)
    if arr.size != n_out:
        msg = f"c has {arr.size} entries but the network has {n_out} outputs"
        raise ValueError(msg)
    if not np.isfinite(arr).all():
        msg = "c (the output weights of the gap) contains NaN or infinite entries"
        raise ValueError(msg)
    return arr


def _as_batch(x: Any, n_inputs: int) -> Tensor:
    """``x`` as a detached float64 ``(B, n_0)`` tensor (trailing dims flattened), validated."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or x.shape[1] != n_inputs:
        msg = (
            f"x must be a batch of shape (B, {n_inputs}) for a network with {n_inputs} inputs; "
            f"got shape {tuple(x.shape)}"
        )
        raise ValueError(msg)
    x64 = x.detach().to(device="cpu", dtype=_F64)
    if not torch.isfinite(x64).all():
        msg = "x contains NaN or infinite entries"
        raise ValueError(msg)
    return x64


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _tensor(a: Any) -> Tensor:
    """A bound array as a tensor: tensors as they are (graph kept), anything else float64."""
    if isinstance(a, Tensor):
        return a
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


@dataclass
class _SenseSolve:
    """Per-sample results of one sense: values, success mask, primal, row and column duals."""

    value: np.ndarray  # (B,), 0 where not ok
    ok: np.ndarray  # (B,) bool
    col: np.ndarray  # (B, num_col)
    row_dual: np.ndarray  # (B, num_row)
    col_dual: np.ndarray  # (B, num_col)
    statuses: set[str]


class _GapEngine:
    """Parsed model, box and options of an LP gap, plus one reusable LP per sense.

    The LPs are the reduced per-sample LPs of the module docstring; each call reloads the current
    weights and bounds (keeping the simplex basis when the layout is unchanged) and re-solves only
    the input-column bounds per sample (dual simplex warm start).
    """

    def __init__(
        self,
        model: nn.Module,
        input_bounds: Any,
        sense: str,
        bounds: str | NeuronBounds,
        derivative: str,
        c: Any,
    ) -> None:
        self.sense = _check_choice("sense", sense, SENSES)
        self.derivative = _check_choice("derivative", derivative, DERIVATIVES)
        self.bounds = _check_bounds_spec(bounds)
        self.model = model
        self.parsed: ParsedNetwork = parse_network(model)
        self.input_bounds: tuple[np.ndarray, np.ndarray] = as_box(
            input_bounds, n_inputs=self.parsed.n_inputs
        )
        self.c = _output_weights(c, self.parsed.n_outputs)
        if isinstance(self.bounds, NeuronBounds):
            self._check_given(self.bounds)
        self.lps: dict[str, BigMRelaxationLP] = {}
        self.solved = 0
        self.skipped = 0
        self.last_ok = np.zeros(0, dtype=bool)
        self._last_x: np.ndarray | None = None

    # -- bounds ----------------------------------------------------------------------------
    def _check_given(self, nb: NeuronBounds) -> None:
        nb.check_compatible(self.parsed.hidden_widths, *self.input_bounds)

    def _bounds(
        self, chain: list[tuple[Tensor, Tensor]], given: NeuronBounds | None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Hidden-layer bounds as float64 tensors (graph kept for "total"), widened if coarse."""
        if given is None and isinstance(self.bounds, NeuronBounds):
            given = self.bounds
        if given is None:
            w0 = chain[0][0]
            lo, hi = (
                torch.as_tensor(a, dtype=w0.dtype, device=w0.device) for a in self.input_bounds
            )
            lowers, uppers = propagate(str(self.bounds))(chain, lo, hi)
        else:
            self._check_given(given)
            lowers = [_tensor(a) for a in given.lower]
            uppers = [_tensor(a) for a in given.upper]
        out_l: list[Tensor] = []
        out_u: list[Tensor] = []
        for lo_k, up_k in zip(lowers, uppers):
            lo64 = lo_k.reshape(-1).to(device="cpu", dtype=_F64)
            up64 = up_k.reshape(-1).to(device="cpu", dtype=_F64)
            if lo_k.dtype.is_floating_point and torch.finfo(lo_k.dtype).eps > torch.finfo(_F64).eps:
                # the one rounding rule; magnitude min(|l|, |u|) makes delta rel * (1 + |l| + |u|)
                mag = torch.minimum(lo64.detach().abs(), up64.detach().abs())
                lo64, up64 = widen_outward(
                    lo64, up64, mag, WIDEN_EPS * torch.finfo(lo_k.dtype).eps
                )
            if self.derivative == "direct":
                lo64, up64 = lo64.detach(), up64.detach()
            out_l.append(lo64)
            out_u.append(up64)
        return out_l, out_u

    # -- LPs -------------------------------------------------------------------------------
    def _lp(
        self,
        sense: str,
        tail: list[tuple[np.ndarray, np.ndarray]],
        lower: list[np.ndarray],
        upper: list[np.ndarray],
        box_lo: np.ndarray,
        box_hi: np.ndarray,
    ) -> BigMRelaxationLP:
        lp = self.lps.get(sense)
        if lp is None:
            lp = BigMRelaxationLP(tail, lower, upper, box_lo, box_hi, formulation="triangle",
                                  iteration_limit_factor=ITERATION_LIMIT_FACTOR)
            self.lps[sense] = lp
        else:
            lp.load(tail, lower, upper, box_lo, box_hi, warm_start=True)
        lp.set_objective(self.c, lp.y_cols, maximize=sense == "max")
        return lp

    def _solve(
        self,
        lp: BigMRelaxationLP,
        zlo: np.ndarray,
        zhi: np.ndarray,
        feasible: np.ndarray,
        order: np.ndarray,
    ) -> _SenseSolve:
        n = zlo.shape[0]
        value = np.zeros(n)
        ok = np.zeros(n, dtype=bool)
        col = np.zeros((n, lp.num_col))
        row_dual = np.zeros((n, lp.num_row))
        col_dual = np.zeros((n, lp.num_col))
        statuses: set[str] = set()
        if not feasible.all():
            statuses.add("infeasible (x's first-layer pre-activations lie outside [l_1, u_1])")
        for i in order:
            if not feasible[i]:
                continue
            lp.set_input_box(zlo[i], zhi[i])
            sol = lp.solve()
            if not sol.ok:
                statuses.add(sol.status)
                continue
            ok[i] = True
            value[i] = sol.value
            col[i] = sol.col_value
            row_dual[i] = sol.row_dual
            col_dual[i] = sol.col_dual
        self.solved += int(ok.sum())
        self.skipped += int(n - ok.sum())
        return _SenseSolve(value, ok, col, row_dual, col_dual, statuses)

    # -- the envelope function S -------------------------------------------------------------
    def _envelope(
        self,
        lp: BigMRelaxationLP,
        tail: list[tuple[Tensor, Tensor]],
        lowers: list[Tensor],
        uppers: list[Tensor],
        zlo: Tensor,
        zhi: Tensor,
        res: _SenseSolve,
    ) -> Tensor:
        """:math:`S(\\theta)` of the module docstring for every sample, shape ``(B,)``."""
        total = self.derivative == "total"
        v = torch.from_numpy(res.col)
        lam = torch.from_numpy(res.row_dual)
        mu = torch.from_numpy(res.col_dual)

        def cols(idx: np.ndarray) -> Tensor:
            return torch.as_tensor(idx, dtype=torch.long)

        xc = cols(lp.x_cols)
        vx = v[:, xc]
        at_hi = (vx - zhi.detach()).abs() < (vx - zlo.detach()).abs()
        s = (mu[:, xc] * torch.where(at_hi, zhi, zlo)).sum(1)
        prev = vx
        for k, li in enumerate(lp.layers):
            w, b = tail[k]
            zh_c, z_c = cols(li.zhat), cols(li.z)
            vzh, vz = v[:, zh_c], v[:, z_c]
            s = s + (lam[:, cols(li.affine_rows)] * (prev @ w.T + b - vzh)).sum(1)
            if total:
                lo, up = lowers[k], uppers[k]
                if li.unstable.size:  # triangle rows z - s zhat <= -s l, s = u / (u - l)
                    j = cols(li.unstable)
                    lj, uj = lo[j], up[j]
                    tri = uj * (vzh[:, j] - lj) / (uj - lj)
                    s = s + (lam[:, cols(li.bigm_rows[:, 1])] * (tri - vz[:, j])).sum(1)
                up_hat = (vzh - up.detach()).abs() < (vzh - lo.detach()).abs()
                s = s + (mu[:, zh_c] * torch.where(up_hat, up, lo)).sum(1)
                ru = torch.relu(up)
                up_z = (vz - ru.detach()).abs() < vz.abs()
                s = s + (mu[:, z_c] * up_z * ru).sum(1)
            prev = vz
        w, b = tail[-1]
        y_c = cols(lp.y_cols)
        s = s + (lam[:, cols(lp.output_rows)] * (prev @ w.T + b - v[:, y_c])).sum(1)
        return s

    # -- the gap ---------------------------------------------------------------------------
    def gaps(self, x: Any, bounds: NeuronBounds | None = None) -> Tensor:
        """Per-sample gaps ``(B,)`` in the model's dtype, differentiable in the parameters."""
        x64 = _as_batch(x, self.parsed.n_inputs)
        chain_m = affine_chain(self.parsed, self.input_bounds)
        dtype = chain_m[0][0].dtype
        device = chain_m[0][0].device
        chain = [(w.to("cpu", _F64), b.to("cpu", _F64)) for w, b in chain_m]
        cvec = torch.as_tensor(self.c, dtype=_F64)
        cf = forward_chain(chain, x64) @ cvec
        n = x64.shape[0]
        if len(chain) == 1:  # no hidden layer: the LP is exact
            self.last_ok = np.ones(n, dtype=bool)
            return (0.0 * cf).to(device=device, dtype=dtype)
        lowers, uppers = self._bounds(chain_m, bounds)
        senses = ("max", "min") if self.sense == "both" else (self.sense,)
        if not all(bool(torch.isfinite(t).all()) for t in lowers + uppers):
            self.skipped += n * len(senses)
            self.last_ok = np.zeros(n, dtype=bool)
            msg = (
                f"lp_gap: the neuron bounds contain NaN or infinite values; all {n} per-sample "
                "LPs were skipped and count as gap 0"
            )
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            return (0.0 * cf).to(device=device, dtype=dtype)
        # first layer substituted: z_1 in [relu(zhat_1), t(zhat_1)]
        w1, b1 = chain[0]
        l1, u1 = lowers[0], uppers[0]
        zh1 = x64 @ w1.T + b1
        unst = (l1 < 0) & (u1 > 0)
        den = torch.where(unst, u1 - l1, torch.ones_like(u1))
        zlo = torch.relu(zh1)
        zhi = torch.where(unst, u1 * (zh1 - l1) / den, zlo)
        zh1_np, l1_np, u1_np = _np(zh1), _np(l1), _np(u1)
        feasible = np.all(
            (zh1_np >= l1_np - FEAS_TOL * (1 + np.abs(l1_np)))
            & (zh1_np <= u1_np + FEAS_TOL * (1 + np.abs(u1_np))),
            axis=1,
        )
        zlo_np = _np(zlo)
        zhi_np = np.maximum(_np(zhi), zlo_np)
        tail_t = chain[1:]
        tail_np = [(_np(w), _np(b)) for w, b in tail_t]
        lo_np = [_np(t) for t in lowers[1:]]
        up_np = [_np(t) for t in uppers[1:]]
        box_lo, box_hi = np.maximum(l1_np, 0.0), np.maximum(u1_np, 0.0)
        # visit samples along a short path in zhat_1, starting next to where the last call ended
        start = 0
        if self._last_x is not None:
            last = self._last_x @ _np(w1).T + _np(b1)
            start = int(np.argmin(((zh1_np - last) ** 2).sum(1)))
        order = greedy_tour(zh1_np, start)
        self._last_x = _np(x64[order[-1]]) if n else self._last_x
        gap = torch.zeros(n, dtype=_F64)
        all_ok = feasible.copy()
        for sense in senses:
            lp = self._lp(sense, tail_np, lo_np, up_np, box_lo, box_hi)
            res = self._solve(lp, zlo_np, zhi_np, feasible, order)
            sign = 1.0 if sense == "max" else -1.0
            okf = torch.as_tensor(res.ok, dtype=_F64)
            s = self._envelope(lp, tail_t, lowers[1:], uppers[1:], zlo, zhi, res)
            vlp = torch.as_tensor(res.value, dtype=_F64)
            gap = gap + sign * (okf * (vlp - cf) + (s - s.detach()))
            all_ok &= res.ok
            failed = int((~res.ok).sum())
            if failed:
                msg = (
                    f"lp_gap: {failed} of {n} per-sample LPs (sense {sense!r}) were not solved to "
                    f"optimality ({'; '.join(sorted(res.statuses))}); those samples count as gap 0"
                )
                warnings.warn(msg, RuntimeWarning, stacklevel=3)
        self.last_ok = all_ok
        return gap.to(device=device, dtype=dtype)


def lp_gap(
    model: nn.Module,
    x: Tensor | np.ndarray,
    input_bounds: Any,
    sense: str = "max",
    bounds: str | NeuronBounds = "ibp",
    derivative: str = "total",
    c: Any = None,
) -> Tensor:
    """Per-sample LP-relaxation gaps :math:`g_i` of the big-M formulation, shape ``(B,)``.

    .. math::

        g_i = \\max_{LP(x_i)} c^\\top y - c^\\top f(x_i)\\ (\\text{"max"}),\\quad
        c^\\top f(x_i) - \\min_{LP(x_i)} c^\\top y\\ (\\text{"min"}),\\quad \\text{sum ("both")}.

    Args:
        model: ``nn.Sequential`` of ``Linear``/``ReLU``.
        x: batch ``(B, n_0)``.
        input_bounds: ``(lb, ub)`` of the box the bounds are taken over.
        sense: ``"max"``, ``"min"`` or ``"both"``.
        bounds: ``"ibp"``, ``"crown"`` (differentiable, computed here) or a :class:`NeuronBounds`
            (tensors keep their graph under ``"total"``; numpy arrays are constants).
        derivative: ``"total"`` (through :math:`l(\\theta), u(\\theta)` too) or ``"direct"``.
        c: output weights ``(n_L,)``, all ones by default.

    Returns the gaps in the model's dtype; ``backward`` gives the LP-dual (envelope) gradient of
    the module docstring. Samples whose LP fails count as 0, with a ``RuntimeWarning``. Raises
    ``ValueError`` for an unknown ``sense``/``derivative``/``bounds``, a bad box, ``c`` or ``x``.
    """
    return _GapEngine(model, input_bounds, sense, bounds, derivative, c).gaps(x)


class LPGapPenalty(Penalty):
    """``weight`` times the mean LP gap over a random subsample of the batch.

    .. math::

        P(\\theta; x) = w\\, \\frac{1}{|I|} \\sum_{i \\in I} g_i(\\theta),\\qquad
        I \\subseteq \\{1..B\\},\\ |I| = \\min(B, \\text{subsample}),

    :math:`I` drawn by a generator seeded with ``seed``. One LP per sense is kept and reloaded
    with the current weights at every call (warm start from the last basis). A
    :class:`~omlt_relax.penalties.Penalty`: ``value(bounds, x)`` is the unweighted mean gap, whose
    autograd gives the dual (envelope) gradient.

    Args:
        model, input_bounds, sense, bounds, derivative, c: as in :func:`lp_gap`.
        weight: :math:`w \\ge 0`.
        subsample: samples per call (``None``: the whole batch).
        seed: seed of the subsampling generator.

    A :class:`NeuronBounds` given as ``bounds`` is held fixed (constants, so ``"direct"`` and
    ``"total"`` coincide); differentiable bounds of the current weights can be passed per call.
    """

    name = "lp_gap"
    needs_x = True

    def __init__(
        self,
        model: nn.Module,
        input_bounds: Any,
        weight: float = 1.0,
        sense: str = "max",
        bounds: str | NeuronBounds = "ibp",
        derivative: str = "total",
        subsample: int | None = 32,
        seed: int = 0,
        c: Any = None,
    ) -> None:
        if subsample is not None and (
            isinstance(subsample, bool) or int(subsample) != subsample or subsample < 1
        ):
            msg = f"subsample must be a positive whole number or None, got {subsample!r}"
            raise ValueError(msg)
        if isinstance(bounds, NeuronBounds):  # fixed bounds are constants across calls
            bounds = bounds.numpy()
        method = _check_bounds_spec(bounds)
        super().__init__(model, input_bounds, weight, method if isinstance(method, str) else None)
        self.engine = _GapEngine(model, input_bounds, sense, bounds, derivative, c)
        self.subsample = None if subsample is None else int(subsample)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._mean_gap = math.nan
        self._calls = 0

    @property
    def sense(self) -> str:
        return self.engine.sense

    @property
    def derivative(self) -> str:
        return self.engine.derivative

    def check_bounds(self, bounds: NeuronBounds) -> None:
        """Given bounds must be a :class:`NeuronBounds`; if they come from ``"ibp"``/``"crown"``,
        from this penalty's method (tightened bounds of any other method are accepted)."""
        if not isinstance(bounds, NeuronBounds):
            msg = f"bounds must be a NeuronBounds or None, got {type(bounds).__name__}"
            raise TypeError(msg)
        method = self.bounds_method
        if method is not None and bounds.method in BOUND_METHODS and bounds.method != method:
            raise ValueError(method_mismatch(self, bounds))

    def value(self, bounds: NeuronBounds | None = None, x: Tensor | None = None) -> Tensor:
        """The mean gap over a subsample of the batch ``x`` ``(B, n_0)``, unweighted, a 0-d
        tensor in the model's dtype. ``bounds``: precomputed differentiable bounds of this
        penalty's method (e.g. shared with other penalties in the same step); computed here when
        ``None``."""
        if x is None:
            msg = "the LP-gap penalty needs the training batch x of shape (B, n)"
            raise ValueError(msg)
        x64 = _as_batch(x, self.engine.parsed.n_inputs)
        n = x64.shape[0]
        if self.subsample is not None and n > self.subsample:
            idx = torch.randperm(n, generator=self.generator)[: self.subsample]
            x64 = x64[idx]
        g = self.engine.gaps(x64, bounds)
        self._calls += 1
        ok = torch.as_tensor(self.engine.last_ok)
        vals = g.detach().to(_F64)
        self._mean_gap = float(vals[ok].mean()) if bool(ok.any()) else math.nan
        return g.mean() if n else g.sum()

    def __call__(self, x: Tensor | None = None, bounds: NeuronBounds | None = None) -> Tensor:
        """``weight`` times :meth:`value` for batch ``x`` ``(B, n_0)``, a 0-d tensor in the
        model's dtype (see :meth:`value` for ``bounds``)."""
        if x is not None:
            _as_batch(x, self.engine.parsed.n_inputs)  # a bad batch is reported before bounds
        return super().__call__(x, bounds)

    def metrics(self) -> dict[str, float]:
        """``mean_gap`` (last call, over samples whose LPs solved; NaN before the first call),
        ``skipped`` (LPs not solved, cumulative), ``lps_solved`` (cumulative), ``calls``."""
        return {
            "mean_gap": self._mean_gap,
            "skipped": float(self.engine.skipped),
            "lps_solved": float(self.engine.solved),
            "calls": float(self._calls),
        }

    def __repr__(self) -> str:
        return (
            f"LPGapPenalty(weight={self.weight}, sense={self.sense!r}, "
            f"bounds={self.bounds_method or 'fixed'!r}, derivative={self.derivative!r}, "
            f"subsample={self.subsample})"
        )


__all__ = ["DERIVATIVES", "SENSES", "LPGapPenalty", "greedy_tour", "lp_gap"]
