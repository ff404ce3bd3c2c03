r"""Big-M formulation of a ReLU network with stored per-neuron bounds; stable neurons get no binary.

Notation (one dense chain, :math:`k = 1, \dots, L`; layer 0 is the input):

.. math::

    \hat z_k = W_k z_{k-1} + b_k,\qquad z_k = \max(0, \hat z_k)\ (k < L),\qquad
    z_L = W_L z_{L-1} + b_L,\qquad z_0 = x \in [x_{lo}, x_{hi}].

For every hidden neuron the formulation uses the bounds

.. math::

    l = \max(l^{\mathrm{stored}}, l^{\mathrm{int}}),\qquad
    u = \min(u^{\mathrm{stored}}, u^{\mathrm{int}}),

the stored bounds (:class:`~omlt_relax.NeuronBounds`, e.g. CROWN or OBBT) intersected with
interval bounds propagated from the previous layer's (already intersected) variable bounds -- the
bounds stock OMLT computes, only tighter because the layer before is tighter. Interval bounds are
computed in float64 and widened outward by ``SOUND_WIDEN`` relative (OMLT's own are rounded to
float32). So a bound is never looser than the stored one, nor than OMLT's beyond float32 rounding.

Per hidden neuron, with :math:`\hat z = w^\top z_{k-1} + b`:

.. math::

    \begin{aligned}
    &u \le 0 \ \text{(stably inactive)}: && z = 0 \text{ (variable bounds } 0 \le z \le 0\text{)}\\
    &l \ge 0 \ \text{(stably active)}: && z = \hat z,\quad l \le z \le u\\
    &l < 0 < u \ \text{(unstable)}: && z \ge \hat z,\quad z \le \hat z - l(1 - \sigma),
        \quad z \le u\sigma,\quad 0 \le z \le u,\quad \sigma \in \{0, 1\}
    \end{aligned}

and :math:`l \le \hat z \le u` as variable bounds, except on a stably inactive neuron, whose
:math:`\hat z` constrains nothing and is left free (with nearly-dead neurons -- weights of 1e-8 that
a solver partly drops, bounds 1e-7 wide -- such bounds made HiGHS presolve declare a feasible MILP
infeasible). Only unstable neurons get a binary.

Pyomo components (all names deterministic, indexed by position, never by ``id()``):
``layer[k]`` for ``k = 0..L`` with ``z`` (and ``zhat`` for hidden layers); on a hidden layer block
the index sets ``stable_active``, ``stable_inactive``, ``unstable``, constraints ``dense``,
``relu_active`` and, for the unstable neurons, binaries ``sigma`` with ``relu_lower``,
``relu_upper``, ``relu_upper_sigma``. The output layer has ``z`` and ``dense``.
``input_assignment`` and ``output_assignment`` link them to OMLT's ``scaled_inputs`` /
``scaled_outputs``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyomo.environ as pyo
from omlt.formulation import _PyomoFormulation, _setup_scaled_inputs_outputs
from omlt.neuralnet.layer import DenseLayer, InputLayer
from omlt.neuralnet.network_definition import NetworkDefinition

from omlt_relax.bounds import SOUND_WIDEN
from omlt_relax.guards import check_model_numerics
from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds

Chain = list[tuple[np.ndarray, np.ndarray]]

#: Relative tolerance of the spot check of stored bounds against forward passes of the network.
SPOT_CHECK_RTOL = 1e-7
#: Number of random inputs (plus box centre, corners and layer-1 extreme corners) of the check.
SPOT_CHECK_SAMPLES = 2048
#: Two bounds that cross by less than this (relative) are treated as equal (a constant neuron).
CROSSING_RTOL = 1e-9


# -- the network as an affine chain ----------------------------------------------------------------


def network_chain(net: NetworkDefinition) -> Chain:
    """The affine chain ``[(W_1, b_1), ..., (W_L, b_L)]`` of an OMLT network, float64.

    ``W_k`` has shape ``(n_k, n_{k-1})``. Raises ``ValueError`` unless ``net`` is a single chain
    input -> dense ReLU layers -> one dense linear output layer on vector inputs.
    """
    layers = list(net.layers)
    inputs = list(net.input_layers)
    outputs = list(net.output_layers)
    if len(inputs) != 1 or len(outputs) != 1:
        msg = (
            f"the network has {len(inputs)} input and {len(outputs)} output layers; omlt_relax "
            "formulations need exactly one of each"
        )
        raise ValueError(msg)
    if not isinstance(layers[0], InputLayer) or len(layers[0].output_size) != 1:
        msg = (
            f"the network's input layer is {layers[0]}; omlt_relax formulations need a vector "
            "input (ONNX input shape [batch, n])"
        )
        raise ValueError(msg)
    chain: Chain = []
    prev = layers[0]
    for k, layer in enumerate(layers[1:], start=1):
        preds = list(net.predecessors(layer))
        if len(preds) != 1 or preds[0] is not prev:
            msg = f"layer {k} ({layer}) is not fed by layer {k - 1}; only chains are supported"
            raise ValueError(msg)
        if not isinstance(layer, DenseLayer):
            msg = (
                f"layer {k} is a {type(layer).__name__}; omlt_relax formulations support dense "
                "(Gemm / MatMul+Add) layers only"
            )
            raise ValueError(msg)
        n_prev = int(prev.output_size[-1])
        if list(layer.input_size) != [n_prev] or len(layer.output_size) != 1:
            msg = (
                f"layer {k} maps shape {layer.input_size} to {layer.output_size}; omlt_relax "
                f"formulations need vector layers ([{n_prev}] -> [n])"
            )
            raise ValueError(msg)
        last = k == len(layers) - 1
        expected = "linear" if last else "relu"
        if layer.activation != expected:
            where = "the output layer" if last else f"hidden layer {k}"
            msg = (
                f"{where} has activation {layer.activation!r}; omlt_relax formulations need "
                "ReLU hidden layers and a linear output layer"
            )
            raise ValueError(msg)
        w = np.asarray(layer.weights, dtype=np.float64).T.copy()
        b = np.asarray(layer.biases, dtype=np.float64).reshape(-1).copy()
        chain.append((w, b))
        prev = layer
    if len(chain) < 1:
        msg = "the network has no dense layer"
        raise ValueError(msg)
    return chain


def chain_fingerprint(chain: Sequence[tuple[np.ndarray, np.ndarray]]) -> str:
    """SHA-256 of the float64 weights and biases of an affine chain (identifies a network)."""
    h = hashlib.sha256()
    h.update(f"omlt_relax-chain-v1:{len(chain)}".encode())
    for w, b in chain:
        w64 = np.ascontiguousarray(w, dtype="<f8")
        b64 = np.ascontiguousarray(b, dtype="<f8").reshape(-1)
        h.update(repr(w64.shape).encode())
        h.update(w64.tobytes())
        h.update(b64.tobytes())
    return h.hexdigest()


def network_input_box(net: NetworkDefinition, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """The input box of an OMLT network (``net.scaled_input_bounds``) as two float64 arrays."""
    sib = net.scaled_input_bounds
    if sib is None:
        msg = (
            "the network has no input bounds (net.scaled_input_bounds is None); big-M bounds need "
            "a finite input box. Load the ONNX file together with its <file>.bounds.json sidecar "
            "(omlt_relax.load_onnx) or build the NetworkDefinition with scaled_input_bounds"
        )
        raise ValueError(msg)
    lo = np.empty(n_inputs)
    hi = np.empty(n_inputs)
    for i in range(n_inputs):
        key: Any = i if i in sib else (i,)
        if key not in sib:
            msg = f"the network's input bounds have no entry for input {i}"
            raise ValueError(msg)
        a, c = sib[key]
        if a is None or c is None or not (np.isfinite(float(a)) and np.isfinite(float(c))):
            msg = f"input {i} has a missing or infinite bound ({a}, {c}); every input needs a box"
            raise ValueError(msg)
        lo[i], hi[i] = float(a), float(c)
    if len(sib) != n_inputs:
        msg = f"the network has {n_inputs} inputs but {len(sib)} input bounds"
        raise ValueError(msg)
    return lo, hi


def _forward_hidden(chain: Chain, x: np.ndarray) -> list[np.ndarray]:
    """Pre-activations of the hidden layers for a batch ``x`` of shape ``(B, n_0)``."""
    zs = []
    z = x
    for w, b in chain[:-1]:
        zh = z @ w.T + b
        zs.append(zh)
        z = np.maximum(zh, 0.0)
    return zs


def check_bounds(
    net_chain: Chain, bounds: NeuronBounds, lo: np.ndarray, hi: np.ndarray
) -> NeuronBounds:
    r"""Check that ``bounds`` belong to this chain and box and are sound; return them as numpy.

    Checks, each a :class:`~omlt_relax.BoundsMismatchError` naming what differs: hidden widths;
    the stored input box contains ``[lo, hi]``; the network fingerprint if the bounds carry one
    (``meta["network_sha256"]``, written by :func:`~omlt_relax.export_onnx`); then soundness:

    * **layer 1 exactly**: :math:`\hat z_1 = W_1 x + b_1` is affine, so its range over the box is
      :math:`[W_1^+ x_{lo} + W_1^- x_{hi} + b_1,\ W_1^+ x_{hi} + W_1^- x_{lo} + b_1]`; stored bounds
      must contain it up to the float64 rounding of that sum, :math:`\gamma_n` times the
      magnitude :math:`|W_1| \max(|x_{lo}|, |x_{hi}|) + |b_1|` (exported bounds are widened
      outward by far more, :data:`~omlt_relax.bounds.SOUND_WIDEN`);
    * **deeper layers by sampling**: a vectorized float64 forward pass at the box centre, every
      corner (random corners beyond ``MAX_CORNER_DIM`` inputs), the two extreme corners of every
      layer-1 neuron and ``SPOT_CHECK_SAMPLES`` random inputs must stay inside the stored bounds
      (relative tolerance ``SPOT_CHECK_RTOL``).

    The message of an unsound record names the layer, the neuron and by how much it is violated.
    """
    if not isinstance(bounds, NeuronBounds):
        msg = f"bounds must be a NeuronBounds, got {type(bounds).__name__}"
        raise TypeError(msg)
    widths = tuple(int(w.shape[0]) for w, _ in net_chain[:-1])
    bounds.check_compatible(widths, lo, hi)
    nb = bounds.numpy()
    fp = nb.meta.get("network_sha256")
    if fp is not None and fp != chain_fingerprint(net_chain):
        msg = (
            "the bounds were exported for a network with different weights (fingerprint "
            "mismatch); these bounds belong to another network"
        )
        raise BoundsMismatchError(msg)
    if not widths:
        return nb
    # layer 1: exact range over the box, up to float64 rounding of the sums
    w1, b1 = net_chain[0]
    wp, wn = np.maximum(w1, 0.0), np.minimum(w1, 0.0)
    exact_lo, exact_hi = wp @ lo + wn @ hi + b1, wp @ hi + wn @ lo + b1
    n = w1.shape[1] + 2
    gamma = n * 2.0**-53 / (1 - n * 2.0**-53)
    slack = 2 * gamma * (np.abs(w1) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b1))
    over = np.maximum(nb.lower[0] - exact_lo, exact_hi - nb.upper[0]) - slack
    if (over > 0).any():
        j = int(np.argmax(over))
        side = "lower" if nb.lower[0][j] - exact_lo[j] >= exact_hi[j] - nb.upper[0][j] else "upper"
        msg = (
            f"hidden layer 1 neuron {j}: stored bounds [{nb.lower[0][j]:.10g}, "
            f"{nb.upper[0][j]:.10g}] do not contain its exact range [{exact_lo[j]:.10g}, "
            f"{exact_hi[j]:.10g}] over the box (the {side} bound is off by {over[j]:.3g}); these "
            "bounds are unsound (edited, or they belong to another network)"
        )
        raise BoundsMismatchError(msg)
    # deeper layers: forward passes at the centre, corners, layer-1 extreme corners, random points
    from omlt_relax.verify import probe_inputs

    xs = np.vstack([probe_inputs(lo, hi, SPOT_CHECK_SAMPLES, seed=0),
                    np.where(w1 > 0, hi, lo), np.where(w1 > 0, lo, hi)])
    for k, zh in enumerate(_forward_hidden(net_chain, xs)):
        tol = SPOT_CHECK_RTOL * (1.0 + np.abs(zh))
        viol = np.maximum(nb.lower[k] - zh, zh - nb.upper[k]) - tol
        if (viol > 0).any():
            s, j = np.unravel_index(int(np.argmax(viol)), viol.shape)
            msg = (
                f"hidden layer {k + 1} neuron {j} takes the value {zh[s, j]:.10g} at input "
                f"{xs[s].tolist()}, outside its stored bounds [{nb.lower[k][j]:.10g}, "
                f"{nb.upper[k][j]:.10g}] by {viol[s, j] + tol[s, j]:.3g}; these bounds are "
                "unsound (edited, or they belong to another network)"
            )
            raise BoundsMismatchError(msg)
    return nb


def interval_affine(
    w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of ``w @ z + b`` over ``lo <= z <= hi``, float64, widened outward."""
    wp, wn = np.maximum(w, 0.0), np.minimum(w, 0.0)
    low = wp @ lo + wn @ hi + b
    up = wp @ hi + wn @ lo + b
    mag = np.abs(w) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(b)
    pad = SOUND_WIDEN * (1.0 + mag)
    return low - pad, up + pad


def _intersect(
    k: int, stored_lo: np.ndarray, stored_up: np.ndarray, int_lo: np.ndarray, int_up: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    low = np.maximum(stored_lo, int_lo)
    up = np.minimum(stored_up, int_up)
    cross = low > up
    if cross.any():
        scale = 1.0 + np.abs(low) + np.abs(up)
        far = cross & (low - up > CROSSING_RTOL * scale)
        if far.any():
            j = int(np.flatnonzero(far)[0])
            msg = (
                f"hidden layer {k} neuron {j}: stored bounds [{stored_lo[j]:.6g}, "
                f"{stored_up[j]:.6g}] and interval bounds [{int_lo[j]:.6g}, {int_up[j]:.6g}] "
                "do not intersect; the stored bounds belong to another network or input box"
            )
            raise BoundsMismatchError(msg)
        low, up = np.where(cross, up, low), np.where(cross, low, up)
    return low, up


def _affine_expr(w_row: np.ndarray, b: float, z: Any, active_inputs: np.ndarray) -> Any:
    return sum(float(w_row[i]) * z[int(i)] for i in active_inputs if w_row[i] != 0.0) + float(b)


# -- the formulation -------------------------------------------------------------------------------


class BoundedReluBigMFormulation(_PyomoFormulation):
    r"""Big-M ReLU formulation with stored bounds; stable neurons get no binary.

    Drop-in for ``OmltBlock.build_formulation`` (see the module docstring for the constraints):

    .. math::

        z \ge \hat z,\quad z \le \hat z - l(1 - \sigma),\quad z \le u\sigma,\quad
        0 \le z \le u,\quad l \le \hat z \le u,\quad \sigma \in \{0,1\}
        \qquad \text{for } l < 0 < u,

    :math:`z = \hat z` for :math:`l \ge 0` and :math:`z = 0` for :math:`u \le 0`.

    Args:
        net: OMLT ``NetworkDefinition`` of a dense ReLU chain with input bounds
            (``net.scaled_input_bounds``), e.g. from :func:`~omlt_relax.load_onnx`.
        bounds: pre-activation bounds of its hidden layers over a box containing the network's.

    After ``build_formulation``: ``bounds_used`` (the intersected float64 bounds the MILP carries)
    and ``n_binaries`` (= ``bounds_used.unstable_count()``).
    """

    def __init__(self, net: NetworkDefinition, bounds: NeuronBounds) -> None:
        super().__init__()
        self._net = net
        self._chain = network_chain(net)
        self._box = network_input_box(net, self._chain[0][0].shape[1])
        self._bounds = check_bounds(self._chain, bounds, *self._box)
        check_model_numerics(self._chain, self._bounds.lower, self._bounds.upper, *self._box)
        self.bounds_used: NeuronBounds | None = None
        self.n_binaries: int | None = None

    # -- OMLT interface ----------------------------------------------------------------------
    @property
    def input_indexes(self) -> list[Any]:
        """The indexes of the formulation inputs (as OMLT's: 1-tuples ``(i,)``)."""
        return list(next(iter(self._net.input_nodes)).input_indexes)

    @property
    def output_indexes(self) -> list[Any]:
        """The indexes of the formulation outputs (as OMLT's: 1-tuples ``(j,)``)."""
        return list(next(iter(self._net.output_nodes)).output_indexes)

    @property
    def pyomo_only(self) -> bool:
        """This formulation builds Pyomo components only (OMLT >= 1.3 asks)."""
        return True

    def _build_formulation(self) -> None:
        block = self.block
        net = self._net
        _setup_scaled_inputs_outputs(block, net.scaling_object, net.scaled_input_bounds)
        chain = self._chain
        n_layers = len(chain)
        lo, hi = self._box
        block.layers = pyo.RangeSet(0, n_layers)
        block.layer = pyo.Block(block.layers)

        inp = block.layer[0]
        inp.z = pyo.Var(range(lo.size), initialize=0.0)
        for i in range(lo.size):
            inp.z[i].setlb(float(lo[i]))
            inp.z[i].setub(float(hi[i]))
        block.input_assignment = pyo.Constraint(
            range(lo.size), rule=lambda b, i: b.scaled_inputs[i] == b.layer[0].z[i]
        )

        z_lo, z_hi = lo, hi
        used_lo: list[np.ndarray] = []
        used_up: list[np.ndarray] = []
        for k in range(1, n_layers):
            w, b = chain[k - 1]
            live = np.flatnonzero((z_lo != 0.0) | (z_hi != 0.0))
            int_lo, int_up = interval_affine(w, b, z_lo, z_hi)
            low, up = _intersect(
                k, self._bounds.lower[k - 1], self._bounds.upper[k - 1], int_lo, int_up
            )
            used_lo.append(low)
            used_up.append(up)
            prev = block.layer[k - 1].z
            self._hidden_layer(block.layer[k], k, w, b, low, up, prev, live, z_lo, z_hi)
            z_lo, z_hi = np.maximum(low, 0.0), np.maximum(up, 0.0)

        # output layer (linear): z_L = W_L z_{L-1} + b_L, bounded by interval arithmetic
        w, b = chain[-1]
        live = np.flatnonzero((z_lo != 0.0) | (z_hi != 0.0))
        int_lo, int_up = interval_affine(w, b, z_lo, z_hi)
        out = block.layer[n_layers]
        prev = block.layer[n_layers - 1].z
        out.z = pyo.Var(range(w.shape[0]), initialize=0.0)
        for j in range(w.shape[0]):
            out.z[j].setlb(float(int_lo[j]))
            out.z[j].setub(float(int_up[j]))
        out.dense = pyo.Constraint(
            range(w.shape[0]), rule=lambda bb, j: bb.z[j] == _affine_expr(w[j], b[j], prev, live)
        )
        block.output_assignment = pyo.Constraint(
            range(w.shape[0]), rule=lambda bb, j: bb.scaled_outputs[j] == out.z[j]
        )
        self.bounds_used = NeuronBounds(
            used_lo, used_up, f"{self._bounds.method}&interval", lo, hi
        )
        self.n_binaries = self.bounds_used.unstable_count()

    def _hidden_layer(
        self,
        blk: Any,
        k: int,
        w: np.ndarray,
        b: np.ndarray,
        low: np.ndarray,
        up: np.ndarray,
        prev: Any,
        live: np.ndarray,
        prev_lo: np.ndarray,
        prev_hi: np.ndarray,
    ) -> None:
        n = w.shape[0]
        inactive = [j for j in range(n) if up[j] <= 0.0]
        active = [j for j in range(n) if low[j] >= 0.0 and up[j] > 0.0]
        unstable = [j for j in range(n) if low[j] < 0.0 < up[j]]
        blk.stable_inactive = pyo.Set(initialize=inactive)
        blk.stable_active = pyo.Set(initialize=active)
        blk.unstable = pyo.Set(initialize=unstable)
        blk.zhat = pyo.Var(range(n), initialize=0.0)
        blk.z = pyo.Var(range(n), initialize=0.0)
        for j in range(n):
            if up[j] <= 0.0:
                # stably inactive: z = 0; zhat constrains nothing and stays free (tight bounds on
                # it plus tiny weights that a solver drops can make presolve declare infeasibility)
                blk.z[j].setlb(0.0)
                blk.z[j].setub(0.0)
                continue
            blk.zhat[j].setlb(float(low[j]))
            blk.zhat[j].setub(float(up[j]))
            blk.z[j].setlb(max(float(low[j]), 0.0))
            blk.z[j].setub(float(up[j]))
        blk.dense = pyo.Constraint(
            range(n),
            rule=lambda bb, j: bb.zhat[j] == _affine_expr(w[j], b[j], prev, live),
        )
        blk.relu_active = pyo.Constraint(
            blk.stable_active, rule=lambda bb, j: bb.z[j] == bb.zhat[j]
        )
        blk.sigma = pyo.Var(blk.unstable, within=pyo.Binary, initialize=0)
        self._unstable_neurons(blk, k, w, b, low, up, prev, live, prev_lo, prev_hi)

    def _unstable_neurons(
        self,
        blk: Any,
        k: int,
        w: np.ndarray,
        b: np.ndarray,
        low: np.ndarray,
        up: np.ndarray,
        prev: Any,
        live: np.ndarray,
        prev_lo: np.ndarray,
        prev_hi: np.ndarray,
    ) -> None:
        r"""Big-M constraints of the unstable neurons of hidden layer ``k``.

        .. math::

            z \ge \hat z,\qquad z \le \hat z - l(1 - \sigma),\qquad z \le u\sigma
        """
        _bigm_constraints(blk, low, up)


def _bigm_constraints(blk: Any, low: np.ndarray, up: np.ndarray) -> None:
    blk.relu_lower = pyo.Constraint(blk.unstable, rule=lambda bb, j: bb.z[j] >= bb.zhat[j])
    blk.relu_upper = pyo.Constraint(
        blk.unstable,
        rule=lambda bb, j: bb.z[j] <= bb.zhat[j] - float(low[j]) * (1 - bb.sigma[j]),
    )
    blk.relu_upper_sigma = pyo.Constraint(
        blk.unstable, rule=lambda bb, j: bb.z[j] <= float(up[j]) * bb.sigma[j]
    )


__all__ = [
    "BoundedReluBigMFormulation",
    "chain_fingerprint",
    "check_bounds",
    "interval_affine",
    "network_chain",
    "network_input_box",
]
