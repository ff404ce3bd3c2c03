"""ONNX export with per-neuron bounds, and loading for OMLT.

:func:`export_onnx` writes three things for a trained ``nn.Sequential``:

1. ``<path>``: an ONNX graph of ``Gemm`` (``transB=1``) and ``Relu`` nodes only, input ``"input"``
   of shape ``[batch, n_0]`` (dynamic batch axis, as OMLT needs), output ``"output"``, weights
   inline (no external data file). The graph is the network's affine chain
   (:func:`~omlt_relax.bounds.affine_chain`): a leading ``Flatten`` disappears and an
   :class:`~omlt_relax.IncrementalQuantileHead` becomes a ReLU layer plus a fixed linear layer.
   Weights keep the model's dtype; a lowered quantile head is written in float64 so the stored
   bounds are for exactly the exported numbers.
2. ``<path>.bounds.json``: OMLT's input-bounds sidecar (the format of
   ``omlt.io.write_input_bounds``, plus the export id in every entry, which OMLT ignores), so plain
   ``omlt.io.load_onnx_neural_network_with_bounds(path)`` gives a bounded network.
3. ONNX ``metadata_props["omlt_relax.neuron_bounds"]``: :meth:`NeuronBounds.to_dict` as JSON
   (versioned; method, input box, float64 pre-activation bounds of every hidden layer, rounded
   outward) plus the SHA-256 fingerprint of the exported weights in ``meta["network_sha256"]``.

Before the files are put in place, onnxruntime evaluates the written file on random inputs in the
box and the result is compared with the torch model (an error is raised if they differ). Both
files are written atomically under a lock, with one export id in both (:mod:`omlt_relax.files`):
a failed or interrupted export leaves the previous pair as it was.

:func:`load_onnx` reads all three back and refuses anything that does not fit together.

Graph building is done with ``onnx.helper`` rather than ``torch.onnx.export``: the graph is a fixed
Gemm/Relu chain, the TorchScript exporter is deprecated and the dynamo exporter takes seconds, warns
and writes external data by default; the onnxruntime check guards the equivalence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omlt_relax.bounds import affine_chain, chain_numpy
from omlt_relax.bounds.methods import EXPORT_METHODS
from omlt_relax.chain import chain_fingerprint, check_bounds, network_chain, network_input_box
from omlt_relax.files import (
    EXPORT_ID_KEY,
    commit_pair,
    new_export_id,
    preflight,
    sidecar_bytes,
    sidecar_path,
)
from omlt_relax.foreign import network_bounds
from omlt_relax.guards import check_finite_bounds, check_model_numerics
from omlt_relax.network import as_box, chain_module, parse_network
from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds

#: ONNX ``metadata_props`` key holding the per-neuron bounds.
METADATA_KEY = "omlt_relax.neuron_bounds"
#: ONNX opset written (Gemm and Relu are unchanged since opset 13/14).
OPSET = 17
#: ONNX IR version written (readable by onnxruntime >= 1.13 and OMLT's parser).
IR_VERSION = 8
#: Ops :func:`load_onnx` accepts: what OMLT parses into dense layers, and ReLU.
SUPPORTED_OPS = frozenset({"Gemm", "MatMul", "Add", "Relu"})
#: Random inputs used to compare onnxruntime with torch at export.
N_CHECK = 256

#: Bounds :func:`export_onnx` computes by name (the registry's :data:`EXPORT_METHODS`).
BOUND_METHODS = EXPORT_METHODS


def _plain_chain(model: nn.Module, lo: np.ndarray, hi: np.ndarray) -> list[tuple[Any, Any]]:
    """The chain to export: model dtype, or float64 when a quantile head is lowered."""
    parsed = parse_network(model)
    with torch.no_grad():
        if parsed.quantile_head:
            return chain_numpy(model, lo, hi)
        chain = affine_chain(parsed)
        return [(w.detach().cpu().numpy().copy(), b.detach().cpu().numpy().copy())
                for w, b in chain]


def _onnx_model(chain: list[tuple[np.ndarray, np.ndarray]], metadata: dict[str, str]) -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.DOUBLE if chain[0][0].dtype == np.float64 else TensorProto.FLOAT
    nodes, inits = [], []
    x = "input"
    for k, (w, b) in enumerate(chain, start=1):
        wn, bn = f"layer{k}.weight", f"layer{k}.bias"
        inits += [numpy_helper.from_array(w, wn), numpy_helper.from_array(b, bn)]
        last = k == len(chain)
        out = "output" if last else f"layer{k}.zhat"
        nodes.append(
            helper.make_node(
                "Gemm", [x, wn, bn], [out], name=f"layer{k}.gemm", alpha=1.0, beta=1.0, transB=1
            )
        )
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"layer{k}.z"], name=f"layer{k}.relu"))
            x = f"layer{k}.z"
    n_in, n_out = chain[0][0].shape[1], chain[-1][0].shape[0]
    graph = helper.make_graph(
        nodes,
        "omlt_relax_network",
        [helper.make_tensor_value_info("input", elem, ["batch", n_in])],
        [helper.make_tensor_value_info("output", elem, ["batch", n_out])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name="omlt_relax",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def _resolve_bounds(
    bounds: str | NeuronBounds,
    plain: nn.Sequential,
    lo: np.ndarray,
    hi: np.ndarray,
    time_limit: float | None,
) -> NeuronBounds:
    if isinstance(bounds, NeuronBounds):
        return bounds.numpy()
    if bounds in EXPORT_METHODS:
        return network_bounds(plain, lo, hi, bounds, time_limit)
    msg = f"unknown bounds {bounds!r}; use one of {EXPORT_METHODS} or a NeuronBounds"
    raise ValueError(msg)


def check_onnxruntime(
    path: Path, model: nn.Module, dtype: np.dtype, lo: np.ndarray, hi: np.ndarray, seed: int
) -> None:
    """Raise ``RuntimeError`` unless onnxruntime on ``path`` matches ``model`` in the box.

    Inputs: the box's corners ``lo``, ``hi``, its centre and ``N_CHECK`` uniform samples, cast to
    ``dtype`` (the graph's input type); tolerance ``1e3 * eps * (1 + max |f|)``.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    x = np.vstack([lo, hi, (lo + hi) / 2, lo + (hi - lo) * rng.random((N_CHECK, lo.size))])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.astype(dtype)}
    got = np.asarray(sess.run(None, feed)[0], dtype=np.float64)
    p0 = next(iter(model.parameters()))
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=p0.dtype)).double().numpy()
    eps = max(float(np.finfo(dtype).eps), float(torch.finfo(p0.dtype).eps))
    tol = 1e3 * eps * (1.0 + np.abs(ref).max())
    err = float(np.abs(got - ref).max())
    if got.shape != ref.shape or not err <= tol:
        msg = (
            f"onnxruntime and torch disagree on the exported network (max abs difference {err:.3g} "
            f"> {tol:.3g}, shapes {got.shape} vs {ref.shape}); nothing was written"
        )
        raise RuntimeError(msg)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_bounds: Any,
    bounds: str | NeuronBounds = "lp",
    *,
    time_limit: float | None = None,
    seed: int = 0,
) -> NeuronBounds:
    """Export a ReLU ``nn.Sequential`` to ONNX for OMLT, with per-neuron bounds.

    Args:
        model: an ``nn.Sequential`` accepted by :func:`~omlt_relax.parse_network`.
        path: the ONNX file to write; the sidecar goes to ``<path>.bounds.json``.
        input_bounds: ``(lb, ub)``, two 1-D array-likes: the box the network is optimized over.
        bounds: ``"lp"`` / ``"milp"`` (OBBT), ``"crown"`` / ``"ibp"`` (float64, widened outward),
            or a :class:`~omlt_relax.NeuronBounds` for this network over a box containing
            ``input_bounds`` (stored as given after checks; it must be sound).
        time_limit: passed to OBBT.
        seed: seed of the random inputs of the onnxruntime check.

    Returns:
        The stored bounds (float64 numpy; ``meta["network_sha256"]`` fingerprints the weights).

    Raises:
        ValueError: missing or bad input bounds, unsupported model, unknown ``bounds``.
        BoundsMismatchError: given bounds do not belong to this network or box.
        RuntimeError: onnxruntime and torch disagree (nothing is left on disk).
    """
    parsed = parse_network(model)
    lo, hi = as_box(input_bounds, n_inputs=parsed.n_inputs)
    chain = _plain_chain(model, lo, hi)
    plain = chain_module(chain)
    nb = _resolve_bounds(bounds, plain, lo, hi, time_limit)
    chain64 = [(w.astype(np.float64), b.astype(np.float64)) for w, b in chain]
    nb = check_bounds(chain64, nb, lo, hi)
    check_finite_bounds(nb.lower, nb.upper, nb.method)
    check_model_numerics(chain64, nb.lower, nb.upper, lo, hi)
    nb.meta = {**nb.meta, "network_sha256": chain_fingerprint(chain64)}
    export_id = new_export_id()
    onnx_model = _onnx_model(chain, {METADATA_KEY: nb.to_json(), EXPORT_ID_KEY: export_id})
    commit_pair(
        path,
        onnx_model.SerializeToString(),
        sidecar_bytes(lo, hi, export_id),
        check=lambda tmp: check_onnxruntime(tmp, model, chain[0][0].dtype, lo, hi, seed),
    )
    return nb


def load_onnx(path: str | os.PathLike[str]) -> tuple[Any, NeuronBounds]:
    """Load a file written by :func:`export_onnx`: ``(omlt NetworkDefinition, NeuronBounds)``.

    Uses ``omlt.io.load_onnx_neural_network_with_bounds`` and then checks that the graph has only
    supported ops, that the input-bounds sidecar exists, and that the stored bounds fit the network
    (hidden widths, input box, weight fingerprint, forward passes inside the bounds).

    Raises:
        FileNotFoundError: no ONNX file at ``path``.
        ValueError: missing sidecar, missing metadata, unsupported op or network structure.
        BoundsMismatchError: garbled bounds, or bounds that belong to another network or box.
    """
    from omlt.io import load_onnx_neural_network_with_bounds

    path = Path(path)
    model = preflight(path)
    for i, node in enumerate(model.graph.node):
        if node.op_type not in SUPPORTED_OPS:
            msg = (
                f"unsupported ONNX op {node.op_type!r} in node {i} ({node.name or 'unnamed'}); "
                f"omlt_relax loads dense ReLU networks ({', '.join(sorted(SUPPORTED_OPS))})"
            )
            raise ValueError(msg)
        trans_a = [a.i for a in node.attribute if a.name == "transA"]
        if node.op_type == "Gemm" and trans_a and trans_a[0] != 0:
            msg = f"Gemm node {i} ({node.name or 'unnamed'}) has transA=1, which OMLT cannot parse"
            raise ValueError(msg)
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        msg = (
            f"the input-bounds sidecar {os.fspath(sidecar)} is missing; the MILP needs the input "
            "box. Re-export with omlt_relax.export_onnx or write it with "
            "omlt.io.input_bounds.write_input_bounds"
        )
        raise ValueError(msg)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        msg = (
            f"{os.fspath(path)} has no {METADATA_KEY!r} metadata, so no per-neuron bounds; add "
            "them with omlt_relax.tighten_onnx (omlt-relax tighten) or export it with "
            "omlt_relax.export_onnx"
        )
        raise ValueError(msg)
    try:
        nb = NeuronBounds.from_json(props[METADATA_KEY])
    except BoundsMismatchError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        msg = f"the {METADATA_KEY!r} metadata of {os.fspath(path)} is not valid bounds JSON: {e}"
        raise BoundsMismatchError(msg) from e
    net = load_onnx_neural_network_with_bounds(os.fspath(path))
    chain = network_chain(net)
    lo, hi = network_input_box(net, chain[0][0].shape[1])
    return net, check_bounds(chain, nb, lo, hi)


__all__ = ["METADATA_KEY", "export_onnx", "load_onnx"]
