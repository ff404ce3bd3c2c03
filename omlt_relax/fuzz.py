r"""Soundness checks of every bound and MILP optimum on random networks (fuzzing, soak runs).

One *case* is a random ReLU network (:class:`NetSpec`: depth, widths, dtype, weight scale) over a
random box (widths from 1e-6 to 1e6, centred or offset, some inputs degenerate ``lo == hi``, some
boxes one-sided ``[0, w]`` / ``[-w, 0]``). :func:`check_case` then checks, each failure recorded
as one sentence:

* **containment**: interval, CROWN (torch, model dtype), sound IBP/CROWN (float64), LP-OBBT and,
  on small networks, MILP-OBBT bounds are finite, ordered, and contain every sampled
  pre-activation (box corners, per-neuron extreme corners of layer 1, random inputs); the torch
  bounds of a float32 model are compared with a slack of :data:`FLOAT32_RTOL` times the layer's
  magnitude (they are training-time bounds, not rounded outward), float64 bounds with
  :data:`FLOAT64_RTOL`;
* **CROWN ⊆ IBP** (same slack);
* **MILP optima** (on small networks): the bounded big-M and partition MILPs (HiGHS, gap 0) of
  min and max of output 0 equal a MILP-free reference, :func:`reference_extrema`, within
  :func:`~omlt_relax.verify.objective_tolerance`, and their answers pass
  :func:`~omlt_relax.verify.verify_optimum`.

The reference enumerates activation patterns: with the pattern of layers :math:`< k` fixed,
:math:`\hat z_k = M_k x + c_k` is affine on the region, each neuron is split into
:math:`\hat z \ge 0` / :math:`\hat z \le 0` (a side is kept when an LP says the region meets it),
and on every full pattern the output is affine, so its min and max over the region are LPs
(scipy ``linprog``/HiGHS). The global optimum is the best over the regions: exact up to the LP
tolerances, and independent of big-M constants and of every bound computed by this package.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bounds.interval import interval_chain, magnitude
from omlt_relax.chain import forward_chain, forward_hidden, probe_inputs
from omlt_relax.network import chain_module

#: Slack of torch bounds of a float32 model, relative to the layer's interval magnitude.
FLOAT32_RTOL = 1e-5
#: Slack of float64 bounds (torch float64 and sound/OBBT bounds), relative to the magnitude.
FLOAT64_RTOL = 1e-12
#: MILP checks run on networks with at most this many hidden neurons and inputs.
MILP_MAX_NEURONS = 10
MILP_MAX_INPUTS = 2
#: Random inputs sampled per case (plus corners).
N_SAMPLES = 512


@dataclass(frozen=True)
class NetSpec:
    r"""A random network and box, reproducible from its fields.

    Attributes:
        n_in: inputs; widths: hidden widths (depth = ``len(widths)`` hidden layers, 1-4).
        dtype: ``"float32"`` or ``"float64"``.
        seed: weights and box.
        box_width: :math:`\log_{10}` of the box width (-6 .. 6).
        box_kind: ``"centred"``, ``"offset"``, ``"positive"`` (``[0, w]``), ``"negative"``
            (``[-w, 0]``) or ``"degenerate"`` (some inputs ``lo == hi``).
        weight_scale: :math:`\log_{10}` of a factor on all weights (-2 .. 2).
    """

    n_in: int
    widths: tuple[int, ...]
    dtype: str = "float64"
    seed: int = 0
    box_width: float = 0.0
    box_kind: str = "centred"
    weight_scale: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "widths": list(self.widths)}


BOX_KINDS = ("centred", "offset", "positive", "negative", "degenerate")


def random_spec(rng: np.random.Generator, seed: int, small: bool = False) -> NetSpec:
    """A random :class:`NetSpec`: depth 1-4, widths 1-64 (log-uniform), float32 or float64.

    ``small``: 1-2 inputs and at most :data:`MILP_MAX_NEURONS` hidden neurons (MILP checks run).
    """
    depth = int(rng.integers(1, 5))
    if small:
        n_in = int(rng.integers(1, MILP_MAX_INPUTS + 1))
        widths: list[int] = []
        left = MILP_MAX_NEURONS
        for _ in range(min(depth, 3)):
            if left < 1:
                break
            w = int(rng.integers(1, min(5, left) + 1))
            widths.append(w)
            left -= w
    else:
        n_in = int(rng.integers(1, 9))
        widths = [round(math.exp(rng.uniform(0.0, math.log(64.0)))) for _ in range(depth)]
    return NetSpec(
        n_in=n_in,
        widths=tuple(widths),
        dtype=str(rng.choice(["float32", "float64"])),
        seed=seed,
        box_width=float(rng.uniform(-6.0, 6.0)),
        box_kind=str(rng.choice(BOX_KINDS)),
        weight_scale=float(rng.uniform(-2.0, 2.0)) if rng.random() < 0.3 else 0.0,
    )


def build_case(spec: NetSpec) -> tuple[nn.Sequential, np.ndarray, np.ndarray]:
    """The network (in ``spec.dtype``) and box ``(lo, hi)`` of a spec."""
    rng = np.random.default_rng(spec.seed)
    prev = spec.n_in
    dims = [*spec.widths, 1]
    scale = 10.0**spec.weight_scale
    width = 10.0**spec.box_width
    chain = []
    for k, n in enumerate(dims):
        w = scale * rng.standard_normal((n, prev)) / math.sqrt(prev)
        if k == 0:
            w = w / width  # keep layer-1 outputs O(scale) whatever the box width
        chain.append((w, scale * rng.standard_normal(n) * 0.5))
        prev = n
    model = chain_module(chain).to(getattr(torch, spec.dtype))
    centre = np.zeros(spec.n_in)
    if spec.box_kind == "offset":
        centre = rng.uniform(-1.0, 1.0, spec.n_in) * 10.0 ** rng.uniform(-3, 6, spec.n_in)
    lo, hi = centre - width / 2, centre + width / 2
    if spec.box_kind == "positive":
        lo, hi = np.zeros(spec.n_in), np.full(spec.n_in, width)
    elif spec.box_kind == "negative":
        lo, hi = np.full(spec.n_in, -width), np.zeros(spec.n_in)
    elif spec.box_kind == "degenerate":
        flat = rng.random(spec.n_in) < 0.5
        lo = np.where(flat, centre, lo)
        hi = np.where(flat, centre, hi)
    return model, lo.astype(np.float64), hi.astype(np.float64)


def model_chain(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """The float64 affine chain of exactly the model's (possibly float32) numbers."""
    lins = [m for m in model if isinstance(m, nn.Linear)]
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in lins]


def sample_inputs(
    chain: list[tuple[np.ndarray, np.ndarray]], lo: np.ndarray, hi: np.ndarray, n: int, seed: int
) -> np.ndarray:
    """Corners, the extreme corners of every layer-1 neuron, and ``n`` random inputs of the box."""
    w1 = chain[0][0]
    ext = np.vstack([np.where(w1 > 0, hi, lo), np.where(w1 > 0, lo, hi)])
    return np.vstack([probe_inputs(lo, hi, n, seed), ext])


def hidden_preactivations(
    chain: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray
) -> list[np.ndarray]:
    """Float64 pre-activations of every hidden layer, ``(B, n_k)`` each."""
    return forward_hidden(chain, x)[:-1]


def _magnitudes(chain: list[tuple[np.ndarray, np.ndarray]], lo: np.ndarray,
                hi: np.ndarray) -> list[np.ndarray]:
    """Interval magnitudes :math:`|W_k| \\max(|l|, |u|)_{k-1} + |b_k|` per hidden neuron."""
    lows, ups = interval_chain(chain, lo, hi)
    boxes = [(lo, hi), *((np.maximum(a, 0.0), np.maximum(c, 0.0)) for a, c in zip(lows, ups))]
    return [magnitude(w, b, zl, zu) for (w, b), (zl, zu) in zip(chain[:-1], boxes)]


def check_containment(
    name: str,
    lower: list[Any],
    upper: list[Any],
    pre: list[np.ndarray],
    mags: list[np.ndarray],
    rtol: float,
) -> list[str]:
    """Failures (sentences) of bounds that are non-finite, crossed, or miss a sample."""
    fails = []
    for k, (lo_k, up_k, z, m) in enumerate(zip(lower, upper, pre, mags), start=1):
        lo_k = np.asarray(torch.as_tensor(lo_k).detach().double().numpy() if isinstance(
            lo_k, torch.Tensor) else lo_k, np.float64)
        up_k = np.asarray(torch.as_tensor(up_k).detach().double().numpy() if isinstance(
            up_k, torch.Tensor) else up_k, np.float64)
        if not (np.isfinite(lo_k).all() and np.isfinite(up_k).all()):
            fails.append(f"{name}: layer {k} has non-finite bounds")
            continue
        slack = rtol * (1.0 + m)
        if (lo_k > up_k + slack).any():
            j = int(np.argmax(lo_k - up_k))
            fails.append(f"{name}: layer {k} neuron {j} lower {lo_k[j]:.6g} > upper {up_k[j]:.6g}")
        below = (lo_k - slack) - z
        above = z - (up_k + slack)
        worst = np.maximum(below, above)
        if (worst > 0).any():
            s, j = np.unravel_index(int(np.argmax(worst)), worst.shape)
            fails.append(
                f"{name}: layer {k} neuron {j} pre-activation {z[s, j]:.10g} outside "
                f"[{lo_k[j]:.10g}, {up_k[j]:.10g}] by {worst[s, j]:.3g}"
            )
    return fails


def check_subset(
    name: str, inner: Any, outer: Any, mags: list[np.ndarray], rtol: float
) -> list[str]:
    """Failures where ``inner`` bounds are not inside ``outer`` bounds (up to the slack)."""
    fails = []
    for k, (il, iu, ol, ou, m) in enumerate(
        zip(inner.lower, inner.upper, outer.lower, outer.upper, mags), start=1
    ):
        il, iu, ol, ou = (np.asarray(torch.as_tensor(a).detach().double().numpy())
                          for a in (il, iu, ol, ou))
        slack = rtol * (1.0 + m)
        worst = np.maximum(ol - il, iu - ou) - slack
        if (worst > 0).any():
            j = int(np.argmax(worst))
            fails.append(f"{name}: layer {k} neuron {j} not contained by {worst[j]:.3g}")
    return fails


# -- MILP-free reference ----------------------------------------------------------------------


def _lp_extreme(c: np.ndarray, a_ub: np.ndarray, b_ub: np.ndarray, lo: np.ndarray,
                hi: np.ndarray, maximize: bool) -> float | None:
    """``min``/``max`` of ``c x`` over ``{a_ub x <= b_ub, lo <= x <= hi}`` (None if infeasible).

    Solved in unit coordinates :math:`x = lo + (hi - lo) t`, :math:`t \\in [0, 1]`, with unit-norm
    objective and rows (HiGHS's absolute tolerances of 1e-7 would otherwise swamp tiny weights or
    huge boxes); the value is :math:`c^\\top x` evaluated at the returned point.
    """
    from scipy.optimize import linprog

    span = hi - lo
    ct = c * span
    scale = float(np.max(np.abs(ct))) if ct.size else 0.0
    kw: dict[str, Any] = {}
    if len(b_ub):
        at = a_ub * span
        rhs = b_ub - a_ub @ lo
        norm = np.max(np.abs(at), axis=1)
        if (rhs[norm == 0] < 0).any():
            return None
        keep = norm > 0
        if keep.any():
            kw = {"A_ub": at[keep] / norm[keep, None], "b_ub": rhs[keep] / norm[keep]}
    sign = -1.0 if maximize else 1.0
    res = linprog(sign * ct / max(scale, 1e-300), bounds=[(0.0, 1.0)] * lo.size, method="highs",
                  **kw)
    if res.status != 0:
        return None
    x = lo + span * np.clip(res.x, 0.0, 1.0)
    return float(c @ x)


def reference_extrema(
    chain: list[tuple[np.ndarray, np.ndarray]], lo: np.ndarray, hi: np.ndarray, output: int = 0
) -> tuple[float, float, int]:
    """``(min, max, regions)`` of output ``output`` over the box by activation-pattern enumeration.

    See the module docstring. Exponential in the number of hidden neurons: for small networks.
    """
    best_lo, best_hi = math.inf, -math.inf
    regions = 0
    n0 = lo.size
    # stack: (layer index k, neuron index j, affine map of current layer's zhat (M, c),
    #         affine map of the previous post-activation (P, q), constraint rows A, rhs)
    stack: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                      np.ndarray, np.ndarray]] = []
    w1, b1 = chain[0]
    eye = np.eye(n0)
    empty_a, empty_b = np.zeros((0, n0)), np.zeros(0)
    if len(chain) == 1:
        c = w1[output]
        return (float(c @ np.where(c > 0, lo, hi) + b1[output]),
                float(c @ np.where(c > 0, hi, lo) + b1[output]), 1)
    stack.append((0, 0, w1 @ eye, b1.copy(), np.zeros_like(w1 @ eye), np.zeros(w1.shape[0]),
                  empty_a, empty_b))
    while stack:
        k, j, m, c, p, q, a, r = stack.pop()
        if j == m.shape[0]:  # layer k decided: its post-activation is (p, q)
            w, b = chain[k + 1]
            mn, cn = w @ p, w @ q + b
            if k + 1 == len(chain) - 1:
                regions += 1
                v_lo = _lp_extreme(mn[output], a, r, lo, hi, False)
                v_hi = _lp_extreme(mn[output], a, r, lo, hi, True)
                if v_lo is not None:
                    best_lo = min(best_lo, v_lo + cn[output])
                if v_hi is not None:
                    best_hi = max(best_hi, v_hi + cn[output])
                continue
            stack.append((k + 1, 0, mn, cn, np.zeros_like(mn), np.zeros(mn.shape[0]), a, r))
            continue
        row, off = m[j], c[j]
        zmin = _lp_extreme(row, a, r, lo, hi, False)
        zmax = _lp_extreme(row, a, r, lo, hi, True)
        if zmin is None or zmax is None:
            continue
        zmin, zmax = zmin + off, zmax + off
        if zmax > 0:  # active side: zhat >= 0  <=>  -row x <= off
            p2, q2 = p.copy(), q.copy()
            p2[j], q2[j] = row, off
            a2 = np.vstack([a, -row]) if zmin < 0 else a
            r2 = np.append(r, off) if zmin < 0 else r
            stack.append((k, j + 1, m, c, p2, q2, a2, r2))
        if zmin < 0:  # inactive side: zhat <= 0  <=>  row x <= -off
            a2 = np.vstack([a, row]) if zmax > 0 else a
            r2 = np.append(r, -off) if zmax > 0 else r
            stack.append((k, j + 1, m, c, p.copy(), q.copy(), a2, r2))
        if zmin == 0 == zmax:
            stack.append((k, j + 1, m, c, p, q, a, r))
    return best_lo, best_hi, regions


def omlt_network(chain: list[tuple[np.ndarray, np.ndarray]], lo: np.ndarray,
                 hi: np.ndarray) -> Any:
    """An OMLT ``NetworkDefinition`` of the chain over the box (what ``load_onnx`` returns)."""
    from omlt.neuralnet.layer import DenseLayer, InputLayer
    from omlt.neuralnet.network_definition import NetworkDefinition

    net = NetworkDefinition(scaled_input_bounds={i: (float(a), float(c))
                                                 for i, (a, c) in enumerate(zip(lo, hi))})
    prev: Any = InputLayer([lo.size])
    net.add_layer(prev)
    for k, (w, b) in enumerate(chain):
        layer = DenseLayer(list(prev.output_size), [w.shape[0]],
                           activation="linear" if k == len(chain) - 1 else "relu",
                           weights=w.T.copy(), biases=b.copy())
        net.add_layer(layer)
        net.add_edge(prev, layer)
        prev = layer
    return net


def milp_optimum(net: Any, bounds: Any, sense: str, formulation: str) -> tuple[Any,
                                                                               list[float] | None]:
    """Min/max of output 0 with the bounded big-M or partition (N=2) formulation, MIP gap 0.

    Solved and verified as users get it (:func:`omlt_relax.verify.solve_verified`); returns
    ``(SolveResult, x)``.
    """
    import pyomo.environ as pyo
    from omlt import OmltBlock

    from omlt_relax.formulations import BoundedReluBigMFormulation, BoundedReluPartitionFormulation
    from omlt_relax.verify import solve_verified

    form = (BoundedReluBigMFormulation(net, bounds) if formulation == "bigm"
            else BoundedReluPartitionFormulation(net, bounds, n_partitions=2))
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(form)
    out = next(iter(m.nn.outputs.keys()))
    m.obj = pyo.Objective(expr=m.nn.outputs[out],
                          sense=pyo.minimize if sense == "min" else pyo.maximize)
    return solve_verified(m, m.nn, net, bounds, sense, 0, time_limit=60.0, threads=1, mip_gap=0.0)


@dataclass
class CaseReport:
    """What :func:`check_case` checked and what failed."""

    spec: dict[str, Any]
    containment_checks: int = 0
    samples: int = 0
    milp_solves: int = 0
    regions: int = 0
    failures: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    refused: str | None = None


def check_case(spec: NetSpec, milp: bool | None = None, obbt_milp: bool | None = None,
               n_samples: int = N_SAMPLES) -> CaseReport:
    """Run every check of the module docstring on one case; see :class:`CaseReport`.

    ``milp``/``obbt_milp``: run the MILP optimum checks / MILP-OBBT (default: when the network is
    small enough, :data:`MILP_MAX_NEURONS`, :data:`MILP_MAX_INPUTS`).
    """
    from omlt_relax.bounds import crown_bounds, interval_bounds, sound_bounds
    from omlt_relax.bounds.obbt import obbt_bounds
    from omlt_relax.verify import objective_tolerance

    rep = CaseReport(spec.to_dict())
    model, lo, hi = build_case(spec)
    chain = model_chain(model)
    small = sum(spec.widths) <= MILP_MAX_NEURONS and spec.n_in <= MILP_MAX_INPUTS
    milp = small if milp is None else milp
    obbt_milp = small if obbt_milp is None else obbt_milp
    x = sample_inputs(chain, lo, hi, n_samples, spec.seed)
    pre = hidden_preactivations(chain, x)
    mags = _magnitudes(chain, lo, hi)
    rep.samples = int(x.shape[0])
    torch_rtol = FLOAT32_RTOL if spec.dtype == "float32" else FLOAT64_RTOL * 1e3
    ibp_t = interval_bounds(model, lo, hi)
    crown_t = crown_bounds(model, lo, hi)
    named = [("interval", ibp_t, torch_rtol), ("crown", crown_t, torch_rtol)]
    ibp = sound_bounds(model, lo, hi, "ibp")
    crown = sound_bounds(model, lo, hi, "crown")
    lp = obbt_bounds(model, lo, hi, method="lp")
    named += [("sound ibp", ibp, FLOAT64_RTOL), ("sound crown", crown, FLOAT64_RTOL),
              ("obbt lp", lp, FLOAT64_RTOL)]
    if obbt_milp:
        named.append(("obbt milp", obbt_bounds(model, lo, hi, method="milp"), FLOAT64_RTOL))
    for name, nb, rtol in named:
        rep.containment_checks += sum(int(z.size) for z in pre)
        rep.failures += check_containment(name, nb.lower, nb.upper, pre, mags, rtol)
    rep.failures += check_subset("crown in ibp", crown_t, ibp_t, mags, torch_rtol)
    rep.failures += check_subset("sound crown in sound ibp", crown, ibp, mags, FLOAT64_RTOL * 1e3)
    if not milp:
        return rep
    from omlt_relax.guards import NumericalRangeError

    try:
        from omlt_relax.guards import check_model_numerics

        check_model_numerics(chain, lp.lower, lp.upper, lo, hi)
    except NumericalRangeError as e:  # a clear refusal is an accepted outcome; counted
        rep.refused = str(e)
        return rep
    ref_lo, ref_hi, rep.regions = reference_extrema(chain, lo, hi)
    vals = forward_chain(chain, x)[:, 0]
    t_ref = objective_tolerance(chain, lo, hi, lp, 0, ref_hi, feasibility_tolerance=1e-9)
    if vals.min() < ref_lo - t_ref or vals.max() > ref_hi + t_ref:
        rep.failures.append(f"reference [{ref_lo}, {ref_hi}] misses a sample "
                            f"[{vals.min()}, {vals.max()}]")
    net = omlt_network(chain, lo, hi)
    for form in ("bigm", "partition"):
        for sense, ref in (("min", ref_lo), ("max", ref_hi)):
            res, xs = milp_optimum(net, lp, sense, form)
            rep.milp_solves += 1
            obj = res.objective
            tol = objective_tolerance(chain, lo, hi, lp, 0, ref)
            if res.note:
                rep.retried.append(f"{form} {sense}: {res.note}")
            if res.status != "optimal" or obj is None:
                rep.failures.append(f"{form} {sense}: status {res.status} ({res.note})")
            elif abs(obj - ref) > tol:
                rep.failures.append(f"{form} {sense}: MILP {obj:.12g} but reference {ref:.12g} "
                                    f"(tolerance {tol:.3g})")
    return rep


__all__ = [
    "BOX_KINDS",
    "CaseReport",
    "NetSpec",
    "build_case",
    "check_case",
    "check_containment",
    "random_spec",
    "reference_extrema",
]
