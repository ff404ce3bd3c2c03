"""Files that are never half-written, and checks of a file pair before it is parsed.

Single files (records, reports, stored networks, cached arrays) go through
:func:`write_text_atomic`, :func:`save_torch_atomic` or, for any other writer,
:func:`write_atomic`: a temporary file in the same folder, then ``os.replace``.

An export writes two files, the ONNX network and OMLT's input-bounds sidecar
``<path>.bounds.json``. :func:`commit_pair`:

1. takes a lock (``filelock``, a file named by the SHA-256 of the absolute path in the system's
   temporary folder, so the user's folder stays clean), so concurrent exports to one path run
   one after the other and leave exactly one consistent pair;
2. writes each file to a temporary name in the same folder, flushes and ``fsync``\\ s it;
3. runs the caller's check on the temporary ONNX file (onnxruntime against torch);
4. renames both into place with ``os.replace`` (atomic per file), with Ctrl-C deferred between
   the two renames, and ``fsync``\\ s the folder.

A failure or interrupt before step 4 leaves the previous pair untouched and removes the temporary
files; nothing that existed before is deleted. Both files carry the same random **export id**
(ONNX ``metadata_props[EXPORT_ID_KEY]``, and ``EXPORT_ID_FIELD`` in every entry of the sidecar,
an extra key OMLT's ``load_input_bounds`` ignores), so a crash between the two renames (power
loss), or a sidecar copied from another export, is detected by :func:`preflight` (files
without ids -- a sidecar written by OMLT's own ``write_input_bounds``, an ONNX file of another
tool -- are not compared; the bounds checks of ``load_onnx`` follow) instead of
loading a network with another network's box.

:func:`preflight` checks a file pair before OMLT parses it and says, in one sentence naming the
file, what is wrong: an empty or truncated ONNX file, tensors that are neither float32 nor float64,
a sidecar that is not valid JSON or not a list of bounds, or export ids that differ.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omlt_relax.neuron_bounds import BoundsMismatchError

#: ONNX ``metadata_props`` key of the export id.
EXPORT_ID_KEY = "omlt_relax.export_id"
#: Key of the export id in every entry of the input-bounds sidecar.
EXPORT_ID_FIELD = "omlt_relax_export_id"
#: Seconds to wait for another export to the same path before giving up.
LOCK_TIMEOUT = 600.0

#: ONNX tensor element types of weights omlt_relax loads (FLOAT, DOUBLE) ...
_FLOAT_TYPES = {1: "float32", 11: "float64"}
#: ... and the low-precision float types it refuses (FLOAT16, BFLOAT16, the FLOAT8 and FLOAT4
#: variants); integer tensors (shapes of foreign graphs) pass.
_LOW_PRECISION = {10, 16, 17, 18, 19, 20, 23}


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """OMLT's input-bounds sidecar of an ONNX file: ``<path>.bounds.json``."""
    return Path(f"{os.fspath(path)}.bounds.json")


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file guarding exports to ``path`` (in the temporary folder, one per path)."""
    import hashlib
    import tempfile

    key = hashlib.sha256(os.fspath(Path(path).resolve()).encode()).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / "omlt_relax_locks"
    folder.mkdir(exist_ok=True)
    return folder / f"{key}.lock"


def new_export_id() -> str:
    """A fresh random export id (32 hex digits)."""
    return uuid.uuid4().hex


def sidecar_bytes(lo: Any, hi: Any, export_id: str) -> bytes:
    """The sidecar in OMLT's format (``omlt.io.input_bounds``) plus the export id per entry."""
    entries = [
        {"key": i, "lower_bound": float(a), "upper_bound": float(c), EXPORT_ID_FIELD: export_id}
        for i, (a, c) in enumerate(zip(lo, hi))
    ]
    return json.dumps(entries).encode()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(target: Path, data: bytes) -> Path:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``:
    a reader (or a run resumed after a kill) sees the old file or the new one, never half of one."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


def save_torch_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace`` (as
    :func:`write_text_atomic`): a stored network is never torn."""
    import torch  # not needed by the export's file checks

    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """``write(tmp)`` a temporary file beside ``path``, then rename it onto ``path``; on any error
    (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.

    ``write`` must write exactly the file it is given (e.g. ``np.savez`` to an open file handle:
    given a name, it would add ``.npz`` to it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per writer process
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) for the duration; re-raise it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[Any] = []
    old = signal.signal(signal.SIGINT, lambda *a: got.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt


def commit_pair(
    path: str | os.PathLike[str],
    onnx_data: bytes,
    sidecar_data: bytes,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Write the ONNX file and its sidecar atomically (module docstring, steps 1-4).

    ``check(tmp_onnx)`` runs on the written temporary ONNX file before anything is replaced; an
    exception from it (or anything else) leaves the previous files as they were.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    side = sidecar_path(path)
    lock = FileLock(lock_path(path))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT)
    except Timeout:
        msg = (f"another export to {path} has held its lock file {lock.lock_file} for "
               f"{LOCK_TIMEOUT:.0f} s; wait for it or remove the lock file if no export runs")
        raise TimeoutError(msg) from None
    temps: list[Path] = []
    try:
        temps.append(_write_temp(path, onnx_data))
        temps.append(_write_temp(side, sidecar_data))
        if check is not None:
            check(temps[0])
        with _sigint_deferred():
            os.replace(temps[1], side)
            os.replace(temps[0], path)
            temps.clear()
        _fsync_dir(path.parent)
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
        lock.release()


def _read_sidecar(side: Path) -> list[dict[str, Any]]:
    try:
        raw = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        msg = (f"the input-bounds sidecar {side} is not valid JSON ({e}); re-export the network "
               "(omlt_relax.export_onnx / omlt-relax train) or rewrite it with "
               "omlt.io.write_input_bounds")
        raise ValueError(msg) from None
    ok = isinstance(raw, list) and all(
        isinstance(d, dict) and {"key", "lower_bound", "upper_bound"} <= set(d) for d in raw
    )
    if not ok:
        msg = (f"the input-bounds sidecar {side} is not a list of {{key, lower_bound, "
               "upper_bound}} entries (OMLT's format); re-export the network")
        raise ValueError(msg)
    for d in raw:
        for k in ("lower_bound", "upper_bound"):
            v = d[k]
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v)):
                msg = f"the input-bounds sidecar {side} has {k} {v!r} for input {d['key']}"
                raise ValueError(msg)
    return raw


def preflight(path: str | os.PathLike[str]) -> Any:
    """Check an ONNX file and its sidecar before parsing (module docstring); return the model.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: empty or unreadable ONNX, unsupported tensor types, bad sidecar.
        BoundsMismatchError: ONNX file and sidecar come from different exports.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        msg = f"no ONNX file at {os.fspath(path)}"
        raise FileNotFoundError(msg)
    if path.stat().st_size == 0:
        msg = (f"{path} is empty (0 bytes), e.g. from an interrupted copy or export; export the "
               "network again")
        raise ValueError(msg)
    try:
        model = onnx.load(os.fspath(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        msg = (f"{path} is not an ONNX network omlt-relax can read (a truncated file or another "
               f"format: {e})")
        raise ValueError(msg) from None
    if len(model.graph.node) == 0:
        msg = f"{path} holds no ONNX graph (no nodes); is it an ONNX model file?"
        raise ValueError(msg)
    for t in model.graph.initializer:
        if t.data_type in _LOW_PRECISION:
            name = onnx.TensorProto.DataType.Name(t.data_type).lower()
            msg = (f"{path}: tensor {t.name!r} is {name}; omlt_relax loads float32 or float64 "
                   "networks (convert the model with model.float() or model.double() and export "
                   "again)")
            raise ValueError(msg)
    types = {_FLOAT_TYPES[t.data_type] for t in model.graph.initializer
             if t.data_type in _FLOAT_TYPES}
    if len(types) > 1:
        msg = (f"{path} mixes float32 and float64 tensors; convert the model to one dtype "
               "(model.float() or model.double()) and export again")
        raise ValueError(msg)
    side = sidecar_path(path)
    if side.is_file():
        entries = _read_sidecar(side)
        props = {p.key: p.value for p in model.metadata_props}
        onnx_id = props.get(EXPORT_ID_KEY)
        side_ids = {d.get(EXPORT_ID_FIELD) for d in entries}
        # compared when both carry ids (files of older versions and OMLT's own sidecars do not)
        if onnx_id is not None and side_ids - {None} and side_ids != {onnx_id}:
            msg = (f"{path} (export {onnx_id}) and {side} (export "
                   f"{', '.join(sorted(str(s) for s in side_ids))}) come from different "
                   "exports, e.g. an interrupted export or a copied sidecar; export the "
                   "network again")
            raise BoundsMismatchError(msg)
    return model


__all__ = [
    "EXPORT_ID_FIELD",
    "EXPORT_ID_KEY",
    "commit_pair",
    "lock_path",
    "new_export_id",
    "preflight",
    "save_torch_atomic",
    "sidecar_bytes",
    "sidecar_path",
    "write_atomic",
    "write_text_atomic",
]
