r"""The affine chain of a network: the neutral data every later stage works on.

A dense ReLU network is, for every stage of omlt_relax (bounds, LPs, export, formulations), the
list ``[(W_1, b_1), ..., (W_L, b_L)]`` with ``W_k`` of shape ``(n_k, n_{k-1})``:

.. math::

    \hat z_k = W_k z_{k-1} + b_k,\quad z_k = \max(0, \hat z_k)\ (k < L),\qquad
    f(x) = W_L z_{L-1} + b_L,\qquad z_0 = x.

This module holds what is said about such a chain without computing bounds:

* :func:`forward_chain`: the forward pass (numpy or torch, the same code);
* :func:`network_chain`: the float64 chain of an OMLT ``NetworkDefinition``, and
  :func:`network_input_box` its input box;
* :func:`chain_fingerprint`: the SHA-256 of the float64 weights (identifies a network);
* :func:`check_bounds`: whether a :class:`~omlt_relax.NeuronBounds` belongs to a chain and box
  and is sound (layer 1 exactly, deeper layers at :func:`probe_inputs` and more).

The torch chain of an ``nn.Sequential`` is :func:`omlt_relax.bounds.affine_chain` (lowering a
quantile head needs interval bounds, so it sits one stage later).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from omlt.neuralnet.layer import DenseLayer, InputLayer
from omlt.neuralnet.network_definition import NetworkDefinition

from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds

Chain = list[tuple[np.ndarray, np.ndarray]]
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

#: Relative tolerance of the spot check of stored bounds against forward passes of the network.
SPOT_CHECK_RTOL = 1e-7
#: Number of random inputs (plus box centre, corners and layer-1 extreme corners) of the check.
SPOT_CHECK_SAMPLES = 2048
#: Up to this many inputs every box corner is a sample (:func:`probe_inputs`).
MAX_CORNER_DIM = 10


def relu(z: ArrayT) -> ArrayT:
    """:math:`\\max(0, z)` of a numpy array or a torch tensor (autograd kept)."""
    if isinstance(z, torch.Tensor):
        return torch.relu(z)
    return np.maximum(z, 0.0)


def forward_hidden(chain: Sequence[tuple[ArrayT, ArrayT]], x: ArrayT) -> list[ArrayT]:
    """Pre-activations :math:`\\hat z_1, \\dots, \\hat z_{L-1}` of the hidden layers for a batch
    ``x`` of shape ``(B, n_0)``, then the output :math:`f(x)` as the last entry (``L`` arrays)."""
    out = []
    z = x
    for k, (w, b) in enumerate(chain):
        zh = z @ w.T + b
        out.append(zh)
        if k < len(chain) - 1:
            z = relu(zh)
    return out


def forward_chain(chain: Sequence[tuple[ArrayT, ArrayT]], x: ArrayT) -> ArrayT:
    """The output :math:`f(x)` for a batch ``x`` of shape ``(B, n_0)`` (numpy or torch)."""
    return forward_hidden(chain, x)[-1]


# -- OMLT networks -------------------------------------------------------------------------------
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


# -- identity and bounds checks ------------------------------------------------------------------
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


def probe_inputs(lo: np.ndarray, hi: np.ndarray, n: int = 256, seed: int = 0) -> np.ndarray:
    """Box centre, corners (all up to :data:`MAX_CORNER_DIM` inputs, else ``2n`` random ones) and
    ``n`` uniform random inputs of the box ``[lo, hi]``; shape ``(B, n_0)``."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    rng = np.random.default_rng(seed)
    d = lo.size
    if d <= MAX_CORNER_DIM:
        bits = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
    else:
        bits = rng.integers(0, 2, size=(2 * n, d))
    corners = np.where(bits == 1, hi, lo)
    rand = lo + (hi - lo) * rng.random((n, d))
    return np.vstack([(lo + hi) / 2, corners, rand])


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
    xs = np.vstack([probe_inputs(lo, hi, SPOT_CHECK_SAMPLES, seed=0),
                    np.where(w1 > 0, hi, lo), np.where(w1 > 0, lo, hi)])
    for k, zh in enumerate(forward_hidden(net_chain, xs)[:-1]):
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


__all__ = [
    "MAX_CORNER_DIM",
    "SPOT_CHECK_RTOL",
    "SPOT_CHECK_SAMPLES",
    "Chain",
    "chain_fingerprint",
    "check_bounds",
    "forward_chain",
    "forward_hidden",
    "network_chain",
    "network_input_box",
    "probe_inputs",
    "relu",
]
