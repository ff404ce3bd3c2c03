r"""Bring your own network: dense ReLU networks that OMLT can read, as our affine chain.

A *foreign* network is one that did not pass through :func:`~omlt_relax.export_onnx`: an ONNX file
exported from Keras (``tf2onnx``: ``MatMul`` + ``Add`` + ``Relu``) or PyTorch
(``torch.onnx.export``: ``Gemm`` with ``transB=1``), or an OMLT ``NetworkDefinition`` (e.g. from
``omlt.io.keras.load_keras_sequential``). Accepted: one vector input, dense layers

.. math::

    \hat z_k = W_k z_{k-1} + b_k,\qquad z_k = \max(0, \hat z_k)\ (k < L),\qquad
    f(x) = W_L z_{L-1} + b_L,\qquad x \in [x_{lo}, x_{hi}],

i.e. ``Gemm`` (``transA=0``, ``transB`` 0 or 1, any ``alpha``/``beta``) or ``MatMul`` followed by
``Add`` of a constant bias, each hidden layer followed by one ``Relu``, a linear (identity) output
layer (``Identity`` nodes are ignored). With ``logits=True`` a final ``Softmax``/``LogSoftmax``
is dropped, so a classifier's logits :math:`f(x)` (whose argmax is the class) can be optimized.
Anything else (``Conv``, ``Sigmoid``, ``Tanh``, pooling, ...) is refused with an error naming
the node.

:func:`read_onnx` checks the graph with ``onnx`` first (so the error names the offending node
instead of failing inside OMLT's parser), normalizes what OMLT 1.2 trips over without changing the
function (a static batch dimension of 1 becomes a dynamic one, missing ``Gemm`` attributes get
their ONNX defaults written out, nameless nodes get unique names), then lets OMLT's own parser build
the ``NetworkDefinition``. The input box comes from OMLT's sidecar ``<file>.bounds.json``
(``omlt.io.input_bounds.load_input_bounds``) or is given explicitly (which wins).

The result, :class:`ForeignNetwork`, holds the OMLT network (with the box as its
``scaled_input_bounds``), its float64 chain and box, and computes sound float64 bounds with any of
our methods (:meth:`ForeignNetwork.bounds`) on :func:`~omlt_relax.network.chain_module` of the
chain, so :class:`~omlt_relax.BoundedReluBigMFormulation` and
:class:`~omlt_relax.BoundedReluPartitionFormulation` work on it exactly as on our own files.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from omlt_relax.bounds import sound_bounds
from omlt_relax.bounds.methods import EXPORT_METHODS, OPTIMIZATION, check_method
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.chain import forward_chain, network_chain, network_input_box
from omlt_relax.network import UnsupportedNetworkError, as_box, chain_module
from omlt_relax.neuron_bounds import NeuronBounds

Chain = list[tuple[np.ndarray, np.ndarray]]

#: ONNX ops of a dense ReLU network (what OMLT parses into dense layers, and ReLU).
DENSE_OPS = ("Gemm", "MatMul", "Add", "Relu")
#: Classifier heads that ``logits=True`` drops (only as the last node).
SOFTMAX_OPS = ("Softmax", "LogSoftmax")
#: Bound methods of :meth:`ForeignNetwork.bounds` (those of :func:`~omlt_relax.export_onnx`).
BOUND_METHODS = EXPORT_METHODS
#: ONNX defaults of the Gemm attributes OMLT 1.2 reads without a default (KeyError otherwise).
_GEMM_DEFAULTS = {"alpha": 1.0, "beta": 1.0, "transB": 0}

_SUPPORTED = (
    "omlt_relax reads dense ReLU networks: Gemm (transA=0) or MatMul+Add layers, Relu between "
    "them, a linear output"
)


def _sidecar(path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(path)}.bounds.json")


def _node_label(i: int, node: Any) -> str:
    return f"node {i} {node.op_type!r} ({node.name or 'unnamed'})"


def _bypass(g: Any, node: Any) -> None:
    """Remove a one-input node from graph ``g``, wiring its input to whatever used its output."""
    src, dst = node.input[0], node.output[0]
    g.node.remove(node)
    if dst in {o.name for o in g.output}:  # the producer now writes the graph output
        for n in g.node:
            n.output[:] = [dst if o == src else o for o in n.output]
            n.input[:] = [dst if i == src else i for i in n.input]
    else:
        for n in g.node:
            n.input[:] = [src if i == dst else i for i in n.input]


def check_onnx_graph(model: Any, logits: bool = False) -> Any:
    """Check that an ONNX ``ModelProto`` is a dense ReLU chain; return a normalized copy.

    The copy computes the same function and is what OMLT 1.2 parses: a static batch dimension of 1
    on the (2-D) input and output becomes the symbolic ``"batch"``, every ``Gemm`` carries explicit
    ``alpha``, ``beta`` and ``transB``, unnamed or duplicate node names become unique, ``Identity``
    nodes are removed, and with
    ``logits=True`` a final ``Softmax``/``LogSoftmax`` node is removed (its input becomes the
    graph output).

    Raises:
        UnsupportedNetworkError: an unsupported node (named, with its position), ``transA=1``, a
            ``Gemm`` without bias, a ``MatMul`` not followed by a bias ``Add``, a softmax head
            without ``logits=True``, or an input that is not a vector per sample.
    """
    from onnx import TensorProto, helper

    m = copy.deepcopy(model)
    g = m.graph
    inits = {t.name for t in g.initializer}
    inputs = [v for v in g.input if v.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        msg = (
            f"the ONNX graph has {len(inputs)} inputs and {len(g.output)} outputs; "
            f"{_SUPPORTED}, with one input and one output"
        )
        raise UnsupportedNetworkError(msg)
    for node in [n for n in g.node if n.op_type == "Identity"]:
        _bypass(g, node)
    nodes = list(g.node)
    if logits and nodes and nodes[-1].op_type in SOFTMAX_OPS:
        _bypass(g, nodes[-1])
        nodes = list(g.node)
    for i, node in enumerate(nodes):
        if node.op_type in SOFTMAX_OPS:
            where = "the last node" if i == len(nodes) - 1 else "not the last node"
            msg = (
                f"{_node_label(i, node)} is a classifier head ({where}); a MILP cannot represent "
                "softmax. Pass logits=True (omlt-relax --logits) to drop a final "
                f"Softmax/LogSoftmax and optimize a logit; {_SUPPORTED}"
            )
            raise UnsupportedNetworkError(msg)
        if node.op_type not in DENSE_OPS:
            msg = f"unsupported {_node_label(i, node)}; {_SUPPORTED}"
            raise UnsupportedNetworkError(msg)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm":
            if attrs.get("transA", 0) != 0:
                msg = f"{_node_label(i, node)} has transA=1; {_SUPPORTED}"
                raise UnsupportedNetworkError(msg)
            if len(node.input) != 3 or node.input[1] not in inits or node.input[2] not in inits:
                msg = (
                    f"{_node_label(i, node)} needs a constant weight B and bias C (three inputs, "
                    f"both initializers); {_SUPPORTED}"
                )
                raise UnsupportedNetworkError(msg)
            for key, val in _GEMM_DEFAULTS.items():
                if key not in attrs:
                    node.attribute.append(helper.make_attribute(key, val))
        if node.op_type == "MatMul":
            users = [n for n in nodes if node.output[0] in n.input]
            if (len(node.input) != 2 or node.input[1] not in inits or len(users) != 1
                    or users[0].op_type != "Add"
                    or not any(v in inits for v in users[0].input)):
                msg = (
                    f"{_node_label(i, node)} must multiply by a constant weight and be followed "
                    f"by exactly one Add of a constant bias; {_SUPPORTED}"
                )
                raise UnsupportedNetworkError(msg)
    seen: set[str] = set()
    for i, node in enumerate(g.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type.lower()}_{i}"
            while node.name in seen:
                node.name += "_"
        seen.add(node.name)
    for v in (inputs[0], g.output[0]):
        dims = v.type.tensor_type.shape.dim
        if len(dims) != 2:
            shape = [d.dim_value or d.dim_param for d in dims]
            msg = (
                f"the graph {'input' if v is inputs[0] else 'output'} {v.name!r} has shape "
                f"{shape}; {_SUPPORTED}, on inputs of shape [batch, n]"
            )
            raise UnsupportedNetworkError(msg)
        if dims[0].dim_value == 1:
            dims[0].dim_param = "batch"  # OMLT indexes a static batch of 1 as (0, i)
    if inputs[0].type.tensor_type.elem_type not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        msg = f"the graph input {inputs[0].name!r} is not float32/float64; {_SUPPORTED}"
        raise UnsupportedNetworkError(msg)
    return m


def _n_inputs(model: Any) -> int:
    inits = {t.name for t in model.graph.initializer}
    v = next(v for v in model.graph.input if v.name not in inits)
    return int(v.type.tensor_type.shape.dim[1].dim_value)


@dataclass
class ForeignNetwork:
    """A dense ReLU network read from ONNX or OMLT, with its input box.

    Attributes:
        net: the OMLT ``NetworkDefinition``; its ``scaled_input_bounds`` is the box.
        chain: float64 ``[(W_1, b_1), ..., (W_L, b_L)]``, ``W_k`` of shape ``(n_k, n_{k-1})``.
        lower, upper: the input box, float64 arrays of shape ``(n_0,)``.
        source: where it came from (a path or ``"NetworkDefinition"``).
        onnx_model: the normalized ONNX ``ModelProto`` (``None`` for a ``NetworkDefinition``).
        dropped_head: the op type of a dropped softmax head, or ``None``.
    """

    net: Any
    chain: Chain
    lower: np.ndarray
    upper: np.ndarray
    source: str
    onnx_model: Any = None
    dropped_head: str | None = None

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return tuple(int(w.shape[0]) for w, _ in self.chain[:-1])

    def module(self) -> nn.Sequential:
        """The chain as a float64 ``nn.Sequential`` (:func:`~omlt_relax.network.chain_module`)."""
        return chain_module(self.chain)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs for inputs ``x`` of shape ``(B, n_0)``, float64 numpy."""
        return forward_chain(self.chain, np.asarray(x, dtype=np.float64))

    def bounds(self, method: str = "lp", time_limit: float | None = None) -> NeuronBounds:
        """Sound float64 pre-activation bounds of every hidden layer over the box.

        ``method``: ``"lp"`` / ``"milp"`` (:func:`~omlt_relax.obbt_bounds`, ``time_limit`` its
        budget in seconds) or ``"crown"`` / ``"ibp"`` (:func:`~omlt_relax.sound_bounds`), all
        computed in float64 on :meth:`module` and rounded outward.
        """
        return network_bounds(self.module(), self.lower, self.upper, method, time_limit)


def network_bounds(
    model: nn.Module,
    lo: np.ndarray,
    hi: np.ndarray,
    method: str = "lp",
    time_limit: float | None = None,
) -> NeuronBounds:
    """Sound float64 bounds of ``model`` over ``[lo, hi]`` by ``method`` (see ``BOUND_METHODS``).

    ``"lp"``/``"milp"``: :func:`~omlt_relax.obbt_bounds` (``time_limit`` its budget);
    ``"crown"``/``"ibp"``: :func:`~omlt_relax.sound_bounds`; all float64, rounded outward.
    """
    check_method(method, EXPORT_METHODS)
    if method in OPTIMIZATION:
        return obbt_bounds(model, lo, hi, method=method, time_limit=time_limit).numpy()
    return sound_bounds(model, lo, hi, method=method)


def _box_dict(lo: np.ndarray, hi: np.ndarray) -> dict[int, tuple[float, float]]:
    return {i: (float(a), float(c)) for i, (a, c) in enumerate(zip(lo, hi))}


def read_onnx(
    path: str | os.PathLike[str] | Any,
    input_bounds: Any = None,
    *,
    logits: bool = False,
) -> ForeignNetwork:
    """Read a dense ReLU network from an ONNX file (or ``ModelProto``) with its input box.

    Args:
        path: an ONNX file, or an ``onnx.ModelProto``.
        input_bounds: ``(lb, ub)``, two 1-D array-likes of length :math:`n_0`; ``None``: read
            OMLT's sidecar ``<path>.bounds.json``.
        logits: drop a final ``Softmax``/``LogSoftmax`` and optimize the logits.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsupportedNetworkError: a node or structure that is not a dense ReLU chain (named).
        ValueError: no box (no sidecar, no ``input_bounds``) or a box of the wrong length,
            non-finite or inverted; a file ``onnx``/OMLT cannot parse.
    """
    import onnx
    from omlt.io.onnx import load_onnx_neural_network

    if isinstance(path, onnx.ModelProto):
        model, source, sidecar = path, "ONNX model", None
    else:
        p = Path(path)
        if not p.is_file():
            msg = f"no ONNX file at {os.fspath(p)}"
            raise FileNotFoundError(msg)
        try:
            model = onnx.load(os.fspath(p))
        except Exception as e:
            msg = f"{os.fspath(p)} is not an ONNX file onnx can read ({type(e).__name__}: {e})"
            raise ValueError(msg) from None
        source, sidecar = os.fspath(p), _sidecar(p)
    normal = check_onnx_graph(model, logits=logits)
    dropped = None
    if logits and model.graph.node and model.graph.node[-1].op_type in SOFTMAX_OPS:
        dropped = model.graph.node[-1].op_type
    n_in = _n_inputs(normal)
    if input_bounds is not None:
        lo, hi = as_box(input_bounds, n_inputs=n_in)
        box: dict[Any, tuple[float, float]] = _box_dict(lo, hi)
        where = "the given input box"
    elif sidecar is not None and sidecar.is_file():
        from omlt.io.input_bounds import load_input_bounds

        try:
            box = load_input_bounds(sidecar)
        except Exception as e:
            msg = f"the input-bounds sidecar {sidecar} cannot be read ({type(e).__name__}: {e})"
            raise ValueError(msg) from None
        where = f"the input-bounds sidecar {sidecar}"
        if len(box) != n_in:
            msg = (
                f"{where} has {len(box)} entries but the network has {n_in} inputs; rewrite it "
                "with omlt.io.input_bounds.write_input_bounds or pass input_bounds=(lb, ub)"
            )
            raise ValueError(msg)
    else:
        hint = f"no sidecar {sidecar} found" if sidecar is not None else "no file given"
        msg = (
            f"the input box of {source} is missing ({hint}); pass input_bounds=(lb, ub) "
            "(omlt-relax: --lb/--ub) or write the sidecar with "
            "omlt.io.input_bounds.write_input_bounds"
        )
        raise ValueError(msg)
    try:
        net = load_onnx_neural_network(normal, input_bounds=box)
        chain = network_chain(net)
    except UnsupportedNetworkError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        msg = f"OMLT cannot read {source} as a dense ReLU chain ({type(e).__name__}: {e})"
        raise UnsupportedNetworkError(msg) from None
    try:
        lo, hi = network_input_box(net, chain[0][0].shape[1])
        lo, hi = as_box(lo, hi)
    except ValueError as e:
        msg = f"{where} does not fit {source}: {e}"
        raise ValueError(msg) from None
    _check_finite(chain, source)
    return ForeignNetwork(net, chain, lo, hi, source, normal, dropped)


def from_network_definition(net: Any, input_bounds: Any = None) -> ForeignNetwork:
    """An OMLT ``NetworkDefinition`` (e.g. from OMLT's Keras reader) as a :class:`ForeignNetwork`.

    The box is ``input_bounds`` if given (the network is then rebuilt around the same layer
    objects with that box as its ``scaled_input_bounds``), else ``net.scaled_input_bounds``. With
    a scaling object, the chain and box are in OMLT's scaled space, as in OMLT's formulations.

    Raises:
        ValueError: not a dense ReLU chain with a linear output, or a missing/wrong-length box.
    """
    from omlt.neuralnet.network_definition import NetworkDefinition

    if not isinstance(net, NetworkDefinition):
        msg = f"expected an OMLT NetworkDefinition, got {type(net).__name__}"
        raise TypeError(msg)
    chain = network_chain(net)
    n_in = int(chain[0][0].shape[1])
    if input_bounds is not None:
        lo, hi = as_box(input_bounds, n_inputs=n_in)
        rebuilt = NetworkDefinition(
            scaling_object=net.scaling_object, scaled_input_bounds=_box_dict(lo, hi)
        )
        layers = list(net.layers)
        for layer in layers:
            rebuilt.add_layer(layer)
        for layer in layers:
            for pred in net.predecessors(layer):
                rebuilt.add_edge(pred, layer)
        net = rebuilt
    else:
        try:
            lo, hi = network_input_box(net, n_in)
        except ValueError as e:
            msg = f"{e}; or pass input_bounds=(lb, ub)"
            raise ValueError(msg) from None
    _check_finite(chain, "the NetworkDefinition")
    return ForeignNetwork(net, chain, *as_box(lo, hi), "NetworkDefinition")


def _check_finite(chain: Chain, source: str) -> None:
    for k, (w, b) in enumerate(chain, start=1):
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            msg = f"dense layer {k} of {source} has non-finite (NaN or inf) weights or biases"
            raise UnsupportedNetworkError(msg)


__all__ = [
    "BOUND_METHODS",
    "DENSE_OPS",
    "ForeignNetwork",
    "check_onnx_graph",
    "from_network_definition",
    "network_bounds",
    "read_onnx",
]
