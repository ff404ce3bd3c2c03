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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyomo.environ as pyo
from omlt.formulation import _PyomoFormulation
from omlt.neuralnet.network_definition import NetworkDefinition

from omlt_relax.bounds.interval import sound_interval_layer
from omlt_relax.bounds.rounding import SOUND_WIDEN
from omlt_relax.chain import (
    SPOT_CHECK_RTOL,
    SPOT_CHECK_SAMPLES,
    chain_fingerprint,
    check_bounds,
    network_chain,
    network_input_box,
)
from omlt_relax.guards import check_model_numerics
from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds

#: Two bounds that cross by less than this (relative) are treated as equal (a constant neuron).
CROSSING_RTOL = 1e-9


def interval_affine(
    w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of ``w @ z + b`` over ``lo <= z <= hi``, float64, widened outward
    (:func:`~omlt_relax.bounds.interval.sound_interval_layer` with ``SOUND_WIDEN``)."""
    return sound_interval_layer(w, b, lo, hi, SOUND_WIDEN)


@dataclass(frozen=True)
class HiddenLayer:
    """What the constraints of hidden layer ``k`` are built from.

    Attributes:
        k: the layer (1-based); ``w``, ``b``: its weights ``(n_k, n_{k-1})`` and biases.
        low, up: the bounds the MILP uses (stored intersected with interval bounds).
        prev: the Pyomo variables :math:`z_{k-1}`; ``live``: the inputs that are not fixed to 0.
        prev_lo, prev_hi: the bounds of :math:`z_{k-1}`.
    """

    k: int
    w: np.ndarray
    b: np.ndarray
    low: np.ndarray
    up: np.ndarray
    prev: Any
    live: np.ndarray
    prev_lo: np.ndarray
    prev_hi: np.ndarray


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


def scaled_inputs_outputs(block: Any, scaler: Any, scaled_input_bounds: Any) -> None:
    r"""OMLT's input/output plumbing of a formulation block, with public OMLT API only.

    Creates ``scaled_inputs`` (bounded by ``scaled_input_bounds``) and ``scaled_outputs`` on the
    block, bounds ``inputs`` (unscaled through ``scaler`` when there is one) and links them with
    the constraints ``_scale_input_constraint`` (:math:`\tilde x = s(x)`) and
    ``_scale_output_constraint`` (:math:`y = s^{-1}(\tilde y)`), exactly as stock OMLT 1.2
    formulations do, so the block looks the same to a user of OMLT. ``scaler`` is an
    ``omlt.scaling.ScalingInterface`` (e.g. ``OffsetScaling``) or ``None``.
    """

    def plain(k: Any) -> Any:
        return k[0] if isinstance(k, tuple) and len(k) == 1 else k

    if scaled_input_bounds is not None:
        bnds = {
            k: (float(scaled_input_bounds[k][0]), float(scaled_input_bounds[k][1]))
            for k in block.inputs_set
        }
        block.scaled_inputs = pyo.Var(block.inputs_set, initialize=0, bounds=bnds)
    else:
        block.scaled_inputs = pyo.Var(block.inputs_set, initialize=0)
    block.scaled_outputs = pyo.Var(block.outputs_set, initialize=0)
    if scaled_input_bounds is not None:
        if scaler is None:
            lbs = {k: pyo.value(block.scaled_inputs[k].lb) for k in block.scaled_inputs}
            ubs = {k: pyo.value(block.scaled_inputs[k].ub) for k in block.scaled_inputs}
        else:
            lbs = scaler.get_unscaled_input_expressions(
                {k: t[0] for k, t in scaled_input_bounds.items()}
            )
            ubs = scaler.get_unscaled_input_expressions(
                {k: t[1] for k, t in scaled_input_bounds.items()}
            )
        for k in block.inputs:
            block.inputs[k].setlb(lbs[k])
            block.inputs[k].setub(ubs[k])
    inputs = {k: block.inputs[k] for k in block.inputs}
    outputs = {k: block.scaled_outputs[k] for k in block.outputs}
    if scaler is not None:
        inputs = scaler.get_scaled_input_expressions(inputs)
        outputs = scaler.get_unscaled_output_expressions(outputs)
    block._scale_input_constraint = pyo.Constraint(
        block.scaled_inputs.index_set(),
        rule=lambda b, *k: b.scaled_inputs[k] == inputs[plain(k)],
    )
    block._scale_output_constraint = pyo.Constraint(
        block.outputs.index_set(), rule=lambda b, *k: b.outputs[k] == outputs[plain(k)]
    )


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
        scaled_inputs_outputs(block, net.scaling_object, net.scaled_input_bounds)
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
            layer = HiddenLayer(k, w, b, low, up, prev, live, z_lo, z_hi)
            self._hidden_layer(block.layer[k], layer)
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

    def _hidden_layer(self, blk: Any, layer: HiddenLayer) -> None:
        w, b, low, up, prev, live = layer.w, layer.b, layer.low, layer.up, layer.prev, layer.live
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
        self._unstable_neurons(blk, layer)

    def _unstable_neurons(self, blk: Any, layer: HiddenLayer) -> None:
        r"""Big-M constraints of the unstable neurons of hidden layer ``k``.

        .. math::

            z \ge \hat z,\qquad z \le \hat z - l(1 - \sigma),\qquad z \le u\sigma
        """
        bigm_constraints(blk, layer.low, layer.up)


def bigm_constraints(blk: Any, low: np.ndarray, up: np.ndarray) -> None:
    r"""The big-M rows of the unstable neurons ``blk.unstable`` of a hidden layer block.

    .. math::

        z \ge \hat z\ (\texttt{relu\_lower}),\qquad
        z \le \hat z - l(1 - \sigma)\ (\texttt{relu\_upper}),\qquad
        z \le u\sigma\ (\texttt{relu\_upper\_sigma})
    """
    blk.relu_lower = pyo.Constraint(blk.unstable, rule=lambda bb, j: bb.z[j] >= bb.zhat[j])
    blk.relu_upper = pyo.Constraint(
        blk.unstable,
        rule=lambda bb, j: bb.z[j] <= bb.zhat[j] - float(low[j]) * (1 - bb.sigma[j]),
    )
    blk.relu_upper_sigma = pyo.Constraint(
        blk.unstable, rule=lambda bb, j: bb.z[j] <= float(up[j]) * bb.sigma[j]
    )


__all__ = [
    "SPOT_CHECK_RTOL",
    "SPOT_CHECK_SAMPLES",
    "BoundedReluBigMFormulation",
    "HiddenLayer",
    "bigm_constraints",
    "chain_fingerprint",
    "check_bounds",
    "interval_affine",
    "network_chain",
    "network_input_box",
    "scaled_inputs_outputs",
]
