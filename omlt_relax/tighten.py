"""Add our per-neuron bounds to a network someone else exported: ``tighten_onnx``.

:func:`tighten_onnx` reads a dense ReLU ONNX file (:func:`~omlt_relax.foreign.read_onnx`: Keras'
MatMul+Add, PyTorch's Gemm, ...), computes sound float64 bounds of every hidden pre-activation
over the input box (LP-/MILP-OBBT, CROWN or IBP), and writes

1. ``<out>``: the same graph (normalized for OMLT 1.2 as in
   :func:`~omlt_relax.foreign.check_onnx_graph`; weights untouched) with the bounds in
   ``metadata_props["omlt_relax.neuron_bounds"]``, fingerprinted by the float64 chain OMLT
   parses from it, exactly as :func:`~omlt_relax.export_onnx` writes them;
2. ``<out>.bounds.json``: OMLT's input-bounds sidecar,

so plain OMLT loads it (``omlt.io.load_onnx_neural_network_with_bounds``) and
:func:`~omlt_relax.load_onnx` returns the network with its bounds. Before returning, onnxruntime
evaluates the written file in the box and is compared with the float64 chain (files removed and an
error raised if they differ).

:func:`load_network` is what ``omlt-relax solve`` uses: our files load with their stored bounds,
anything else dense gets bounds computed on the fly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from omlt_relax.chain import chain_fingerprint, check_bounds
from omlt_relax.export import METADATA_KEY, check_onnxruntime, load_onnx
from omlt_relax.files import EXPORT_ID_KEY, commit_pair, new_export_id, preflight, sidecar_bytes
from omlt_relax.foreign import ForeignNetwork, read_onnx
from omlt_relax.neuron_bounds import NeuronBounds

#: Human names of the bound methods, for messages.
METHOD_NAMES = {"lp": "LP-OBBT", "milp": "MILP-OBBT", "crown": "CROWN", "ibp": "interval (IBP)"}


def foreign_bounds(
    fn: ForeignNetwork, bounds: str | NeuronBounds = "lp", time_limit: float | None = None
) -> NeuronBounds:
    """Checked float64 bounds of a foreign network, fingerprinted (``meta["network_sha256"]``).

    ``bounds`` is a method of :meth:`~omlt_relax.foreign.ForeignNetwork.bounds` or a sound
    :class:`~omlt_relax.NeuronBounds` of this network over a box containing its box.
    """
    nb = bounds if isinstance(bounds, NeuronBounds) else fn.bounds(bounds, time_limit)
    nb = check_bounds(fn.chain, nb, fn.lower, fn.upper)
    nb.meta = {**nb.meta, "network_sha256": chain_fingerprint(fn.chain), "source": fn.source}
    if fn.dropped_head:
        nb.meta["dropped_head"] = fn.dropped_head
    return nb


def tighten_onnx(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    input_bounds: Any = None,
    bounds: str | NeuronBounds = "lp",
    *,
    time_limit: float | None = None,
    logits: bool = False,
    seed: int = 0,
) -> NeuronBounds:
    """Write a copy of a dense ReLU ONNX network with our per-neuron bounds and OMLT's sidecar.

    Args:
        in_path: the ONNX file (exported by Keras, PyTorch, ...; see :mod:`omlt_relax.foreign`).
        out_path: the file to write (may equal ``in_path``); the sidecar goes next to it.
        input_bounds: ``(lb, ub)``; ``None``: the sidecar ``<in_path>.bounds.json``.
        bounds: ``"lp"`` (default), ``"milp"``, ``"crown"``, ``"ibp"``, or a sound
            :class:`~omlt_relax.NeuronBounds` for this network.
        time_limit: budget of OBBT in seconds (``None``: none).
        logits: drop a final ``Softmax``/``LogSoftmax`` (the bounds are for the logits).
        seed: seed of the random inputs of the onnxruntime check.

    Returns:
        The stored float64 bounds.

    Raises:
        FileNotFoundError: no file at ``in_path``.
        UnsupportedNetworkError: not a dense ReLU chain (the error names the node).
        ValueError: missing or wrong-length box, unknown ``bounds``.
        RuntimeError: onnxruntime disagrees with the chain (existing files are left as they were).
    """
    from onnx import helper

    fn = read_onnx(in_path, input_bounds, logits=logits)
    nb = foreign_bounds(fn, bounds, time_limit)
    model = fn.onnx_model
    props = {p.key: p.value for p in model.metadata_props
             if p.key not in (METADATA_KEY, EXPORT_ID_KEY)}
    del model.metadata_props[:]
    export_id = new_export_id()
    helper.set_model_props(model, {**props, METADATA_KEY: nb.to_json(), EXPORT_ID_KEY: export_id})
    inits = {t.name for t in model.graph.initializer}
    elem = next(v for v in model.graph.input if v.name not in inits).type.tensor_type.elem_type
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
    # both files atomically, checked before they replace anything (omlt_relax.files)
    commit_pair(
        Path(out_path),
        model.SerializeToString(),
        sidecar_bytes(fn.lower, fn.upper, export_id),
        check=lambda tmp: check_onnxruntime(tmp, fn.module(), dtype, fn.lower, fn.upper, seed),
    )
    return nb


def has_bounds(path: str | os.PathLike[str]) -> bool:
    """Whether an ONNX file carries our per-neuron bounds metadata."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    return any(p.key == METADATA_KEY for p in model.metadata_props)


def load_network(
    path: str | os.PathLike[str],
    input_bounds: Any = None,
    bounds: str = "lp",
    *,
    time_limit: float | None = None,
    logits: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[Any, NeuronBounds, bool]:
    """``(OMLT NetworkDefinition, NeuronBounds, computed)`` for any dense ReLU ONNX file.

    A file with our metadata and no ``input_bounds``/``logits`` loads with
    :func:`~omlt_relax.load_onnx` (``computed`` false); anything else is read with
    :func:`~omlt_relax.foreign.read_onnx` and gets ``bounds`` computed now (``computed`` true),
    announced through ``log``.
    """
    preflight(path)  # empty, truncated, low-precision files and bad sidecars: one clear line
    if input_bounds is None and not logits and has_bounds(path):
        net, nb = load_onnx(path)
        return net, nb, False
    fn = read_onnx(path, input_bounds, logits=logits)
    if log is not None:
        why = "has no omlt_relax bounds" if input_bounds is None else "gets a new input box"
        where = "the given box" if input_bounds is not None else f"{os.fspath(path)}.bounds.json"
        log(f"{os.fspath(path)} {why}: computing {METHOD_NAMES.get(bounds, bounds)} bounds "
            f"(--bounds {bounds}) on the fly over {where}")
    nb = foreign_bounds(fn, bounds, time_limit)
    return fn.net, nb, True


__all__ = ["foreign_bounds", "has_bounds", "load_network", "tighten_onnx"]
