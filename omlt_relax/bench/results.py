"""The results file of the benchmark suite: reading, atomic writing under a lock, saved models.

``results.json`` in the output directory holds ``{"meta": ..., "entries":
{"<function>/<variant>": {...}}}`` and is rewritten atomically (a temporary file, then
``os.replace``) after every entry, under an exclusive ``fcntl`` lock so that worker processes can
add entries at the same time. Trained networks go to ``models/<function>__<variant>.pt``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omlt_relax.bench.functions import get_function
from omlt_relax.files import save_torch_atomic, write_text_atomic
from omlt_relax.train import build_model

RESULTS_FILE = "results.json"
#: The variant every other one is compared with.
BASELINE = "unregularized"


def entry_key(function: str, variant: str) -> str:
    """The key of one entry, ``"<function>/<variant>"``."""
    return f"{function}/{variant}"


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (numpy scalars and arrays allowed)."""
    write_text_atomic(path, json.dumps(obj, indent=1, default=json_default))


def json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    msg = f"not JSON serializable: {type(o).__name__}"
    raise TypeError(msg)


def load_results(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The results JSON of an output directory (``ValueError`` with a sentence if unreadable)."""
    path = Path(out_dir) / RESULTS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"no results file at {path}"
        raise ValueError(msg) from None
    except json.JSONDecodeError as e:
        msg = f"{path} is not valid JSON ({e}); delete it or use another output directory"
        raise ValueError(msg) from None


def update_entry(
    path: Path, key: str, entry: dict[str, Any] | None, error: str | None = None
) -> dict[str, Any]:
    """Add one entry (or, with ``entry=None``, one failure) to the results file under a lock.

    A failure goes under ``"failed"`` with its error line; a later entry of the same key removes
    it. Returns the file's entries.
    """
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            results = json.loads(path.read_text())
            failed = results.setdefault("failed", {})
            if entry is not None:
                results["entries"][key] = entry
                failed.pop(key, None)
            else:
                failed[key] = {"error": error, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
            results["meta"]["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
            write_json(path, results)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return results["entries"]


def save_model(out: Path, fname: str, vname: str,
               model: torch.nn.Module | dict[str, Any]) -> None:
    """Save a trained network (or its ``state_dict``) as :func:`model_file`."""
    path = model_file(out, fname, vname)
    path.parent.mkdir(exist_ok=True)
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    save_torch_atomic(state, path)


def model_file(out: str | os.PathLike[str], fname: str, vname: str) -> Path:
    """Where :func:`save_model` puts a network: ``<out>/models/<fname>__<vname>.pt`` (``+`` in
    the variant name written as ``_``)."""
    return Path(out) / "models" / f"{fname}__{vname.replace('+', '_')}.pt"


def load_model(out_dir: str | os.PathLike[str], function: str, variant: str) -> torch.nn.Module:
    """A network the suite saved (float64, original units)."""
    results = load_results(out_dir)
    cfg = results["meta"]["config"]["train"]
    fn = get_function(function)
    model = build_model(fn.dim, cfg["hidden"], 1, 0).to(torch.float64)
    state = torch.load(model_file(out_dir, function, variant))
    model.load_state_dict(state)
    return model


__all__ = [
    "BASELINE",
    "RESULTS_FILE",
    "entry_key",
    "load_model",
    "load_results",
    "model_file",
    "save_model",
    "update_entry",
    "write_json",
    "write_text_atomic",
]
