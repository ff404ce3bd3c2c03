r"""Partition-based formulation (Tsay et al., NeurIPS 2021) with stored bounds.

Notation as in :mod:`omlt_relax.formulations.bigm`. For an unstable neuron
:math:`\hat z = \sum_i w_i z_{k-1,i} + b` with bounds :math:`l < 0 < u`, split its inputs into
groups :math:`S_1, \dots, S_N` and write :math:`v_n = \sum_{i \in S_n} w_i z_{k-1,i}`. Each group
gets bounds :math:`L_n \le v_n \le U_n`: interval bounds over the previous layer's variable bounds,
tightened with the neuron's own bounds,

.. math::

    U_n \leftarrow \min\Big(U_n,\ u - b - \sum_{m \ne n} L_m\Big),\qquad
    L_n \leftarrow \max\Big(L_n,\ l - b - \sum_{m \ne n} U_m\Big).

With auxiliary :math:`p_n` (the part of :math:`v_n` that is "on"), :math:`\sigma = 1` meaning
active, the constraints are

.. math::

    \begin{aligned}
    & z = \sum_{n=1}^{N} p_n + \sigma b, \qquad z \ge \hat z, \qquad 0 \le z \le u,
      \qquad l \le \hat z \le u,\\
    & \sigma L_n \le p_n \le \sigma U_n, \qquad
      (1 - \sigma) L_n \le v_n - p_n \le (1 - \sigma) U_n, \qquad n = 1, \dots, N,
      \qquad \sigma \in \{0, 1\}.
    \end{aligned}

(:math:`\sigma = 0`: all :math:`p_n = 0`, :math:`z = 0 \ge \hat z`; :math:`\sigma = 1`: all
:math:`p_n = v_n`, :math:`z = \hat z \ge 0`.) The neuron's own big-M inequalities

.. math::

    z \le \hat z - l(1 - \sigma),\qquad z \le u\sigma

are added as well: they are valid, and with group bounds from interval arithmetic (looser than
stored CROWN/OBBT bounds of the whole neuron) they keep the relaxation never weaker than the big-M
one with the same :math:`l, u` (measured on a 2x50 peaks net with LP-OBBT bounds, N = 2: root
bound -65.4 without them, -49.9 with them, -51.2 for big-M alone). With :math:`N = 1` the
tightened group bounds are :math:`l - b, u - b` and the partition rows add nothing to big-M, so
only big-M is built;
:math:`N` equal to the fan-in is the convex hull of the neuron over its input box (Tsay et al.,
before the tightening with :math:`l, u`). Stable neurons are
handled as in the big-M formulation (no binary).

Pyomo components: those of the big-M formulation (``relu_lower`` is :math:`z \ge \hat z`),
plus, for each unstable neuron ``j`` of hidden layer ``k``, the block ``layer[k].neuron[j]`` with
``p``, ``link``, ``on_lower``, ``on_upper``, ``off_lower``, ``off_upper`` (the constraints above,
in that order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyomo.environ as pyo
from omlt.neuralnet.network_definition import NetworkDefinition

from omlt_relax.bounds.interval import sound_interval_layer
from omlt_relax.bounds.rounding import SOUND_WIDEN, widen_outward
from omlt_relax.formulations.bigm import (
    BoundedReluBigMFormulation,
    HiddenLayer,
    bigm_constraints,
)
from omlt_relax.neuron_bounds import NeuronBounds

SplitFunc = Callable[[np.ndarray, int], Sequence[Sequence[int]]]

SPLITS = ("equal-size", "equal-range")


def split_inputs(key: np.ndarray, n: int, split: str = "equal-size") -> list[np.ndarray]:
    """Split input positions into at most ``n`` non-empty groups by a sort key.

    ``key`` is each input's contribution scale :math:`w_i (z^{hi}_i - z^{lo}_i)`.
    ``"equal-size"``: sort by key, ``n`` groups of (almost) equal size. ``"equal-range"``: ``n``
    bins of equal width over ``[min key, max key]`` (empty bins dropped).
    """
    order = np.argsort(key, kind="stable")
    n = max(1, min(int(n), order.size))
    if split == "equal-size":
        return [g for g in np.array_split(order, n) if g.size]
    if split == "equal-range":
        vals = key[order]
        lo, hi = float(vals[0]), float(vals[-1])
        if hi <= lo:
            return [order]
        bins = np.minimum(((vals - lo) / (hi - lo) * n).astype(int), n - 1)
        return [order[bins == i] for i in range(n) if np.any(bins == i)]
    msg = f"unknown split {split!r}; use one of {SPLITS} or a callable split(w, n) -> groups"
    raise ValueError(msg)


class BoundedReluPartitionFormulation(BoundedReluBigMFormulation):
    r"""Partition-based ReLU formulation with stored bounds; stable neurons get no binary.

    Drop-in for ``OmltBlock.build_formulation``. Unstable neurons use :math:`N` = ``n_partitions``
    groups (module docstring for the constraints); ``n_partitions=1`` is the big-M formulation.

    Args:
        net: OMLT ``NetworkDefinition`` with input bounds.
        bounds: pre-activation bounds of its hidden layers.
        n_partitions: groups per unstable neuron (capped at its number of live inputs).
        split: ``"equal-size"``, ``"equal-range"`` (see :func:`split_inputs`), or a callable
            ``split(w, n)`` returning index groups as OMLT's ``split_func`` does.
    """

    def __init__(
        self,
        net: NetworkDefinition,
        bounds: NeuronBounds,
        n_partitions: int = 2,
        split: str | SplitFunc = "equal-size",
    ) -> None:
        if int(n_partitions) < 1:
            msg = f"n_partitions must be at least 1, got {n_partitions}"
            raise ValueError(msg)
        if not callable(split) and split not in SPLITS:
            msg = f"unknown split {split!r}; use one of {SPLITS} or a callable split(w, n)"
            raise ValueError(msg)
        super().__init__(net, bounds)
        self.n_partitions = int(n_partitions)
        self.split = split

    def _groups(self, w_row: np.ndarray, live: np.ndarray, span: np.ndarray) -> list[np.ndarray]:
        if callable(self.split):
            groups = [np.asarray(g, dtype=int) for g in self.split(w_row, self.n_partitions)]
            covered = np.sort(np.concatenate(groups)) if groups else np.zeros(0, int)
            if not np.array_equal(covered, np.arange(w_row.size)):
                msg = "the split function must return disjoint groups covering every input once"
                raise ValueError(msg)
            groups = [g[np.isin(g, live)] for g in groups]
            return [g for g in groups if g.size]
        key = w_row[live] * span[live]
        return [live[g] for g in split_inputs(key, self.n_partitions, self.split)]

    def _unstable_neurons(self, blk: Any, layer: HiddenLayer) -> None:
        r"""Big-M and partition constraints of the unstable neurons of hidden layer ``k``.

        .. math::

            z \ge \hat z,\quad z \le \hat z - l(1 - \sigma),\quad z \le u\sigma,\quad
            z = \sum_n p_n + \sigma b,\\
            \sigma L_n \le p_n \le \sigma U_n,\quad (1-\sigma) L_n \le v_n - p_n \le (1-\sigma) U_n
        """
        bigm_constraints(blk, layer.low, layer.up)
        if self.n_partitions == 1:
            return
        w, live, prev_lo, prev_hi = layer.w, layer.live, layer.prev_lo, layer.prev_hi
        span = prev_hi - prev_lo
        groups = {}
        for j in blk.unstable:
            live_j = live[w[j, live] != 0.0]
            groups[j] = self._groups(w[j], live_j, span)
        blk.neuron = pyo.Block(blk.unstable)
        for j in blk.unstable:
            _partition_neuron(
                blk.neuron[j], blk.z[j], blk.sigma[j], w[j], float(layer.b[j]),
                float(layer.low[j]), float(layer.up[j]), layer.prev, prev_lo, prev_hi, groups[j],
            )


def group_bounds(
    w_row: np.ndarray,
    bias: float,
    low: float,
    up: float,
    prev_lo: np.ndarray,
    prev_hi: np.ndarray,
    groups: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``L_n <= v_n <= U_n`` of the group sums, tightened with the neuron's ``[l, u]``.

    Interval bounds of every group sum at once (the groups as rows of one matrix, no bias), and the
    tightening of the module docstring, each widened outward by the one rounding rule
    (:func:`~omlt_relax.bounds.rounding.widen_outward`, ``SOUND_WIDEN``).
    """
    rows = np.zeros((len(groups), w_row.size))
    for n, g in enumerate(groups):
        rows[n, g] = w_row[g]
    lg, ug = sound_interval_layer(rows, 0.0, prev_lo, prev_hi, SOUND_WIDEN)
    sum_l, sum_u = lg.sum(), ug.sum()
    mag = abs(low) + abs(up) + abs(bias) + np.abs(lg).sum() + np.abs(ug).sum()
    cand_lo, cand_up = widen_outward(
        (low - bias) - (sum_u - ug), (up - bias) - (sum_l - lg), mag, SOUND_WIDEN
    )
    ug_t = np.minimum(ug, cand_up)
    lg_t = np.maximum(lg, cand_lo)
    return np.minimum(lg_t, ug_t), np.maximum(lg_t, ug_t)


def _partition_neuron(
    nb: Any,
    z: Any,
    sigma: Any,
    w_row: np.ndarray,
    bias: float,
    low: float,
    up: float,
    prev: Any,
    prev_lo: np.ndarray,
    prev_hi: np.ndarray,
    groups: Sequence[np.ndarray],
) -> None:
    lg, ug = group_bounds(w_row, bias, low, up, prev_lo, prev_hi, groups)
    n_groups = range(len(groups))
    v = [sum(float(w_row[i]) * prev[int(i)] for i in g) for g in groups]
    nb.p = pyo.Var(n_groups, initialize=0.0)
    for n in n_groups:
        nb.p[n].setlb(min(0.0, float(lg[n])))
        nb.p[n].setub(max(0.0, float(ug[n])))
    nb.link = pyo.Constraint(expr=z == sum(nb.p[n] for n in n_groups) + bias * sigma)
    nb.on_lower = pyo.Constraint(n_groups, rule=lambda b, n: float(lg[n]) * sigma <= b.p[n])
    nb.on_upper = pyo.Constraint(n_groups, rule=lambda b, n: b.p[n] <= float(ug[n]) * sigma)
    nb.off_lower = pyo.Constraint(
        n_groups, rule=lambda b, n: float(lg[n]) * (1 - sigma) <= v[n] - b.p[n]
    )
    nb.off_upper = pyo.Constraint(
        n_groups, rule=lambda b, n: v[n] - b.p[n] <= float(ug[n]) * (1 - sigma)
    )


__all__ = ["SPLITS", "BoundedReluPartitionFormulation", "group_bounds", "split_inputs"]
