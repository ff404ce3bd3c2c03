"""A resumable on-disk cache of array chunks, keyed by the settings that produced them.

A cache is a directory holding ``meta.json`` (the settings and their SHA-256, the *key hash*) and
``chunk_00000.npz``, ... Every chunk also stores the key hash, and both are checked on load: a
directory or chunk written for other settings (another instance, seed, size or sampling) raises
:class:`CacheMismatchError` instead of being reused. Both are written atomically (temporary file,
then ``os.replace``: :func:`~omlt_relax.files.write_atomic`), so an interrupted run leaves only
whole chunks and no temporary file, and the next run computes just the missing ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from omlt_relax.files import write_atomic, write_text_atomic

#: Bumped when the meaning of cached numbers changes (old caches then mismatch).
CACHE_VERSION = 1


class CacheMismatchError(ValueError):
    """A cached file was made with other settings than the ones asked for."""


def key_hash(key: dict[str, Any]) -> str:
    """SHA-256 hex digest of the settings ``key`` (JSON, sorted keys)."""
    text = json.dumps({"cache_version": CACHE_VERSION, **key}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _diff(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(set(stored) | set(wanted))
    diffs = [
        f"{k}: cached {stored.get(k)!r}, asked {wanted.get(k)!r}"
        for k in keys
        if json.dumps(stored.get(k), sort_keys=True, default=str)
        != json.dumps(wanted.get(k), sort_keys=True, default=str)
    ]
    return "; ".join(diffs) or "settings hash differs"


class ChunkCache:
    """Chunks ``0 .. n_chunks-1`` of arrays in ``directory``, made under the settings ``key``.

    Raises :class:`CacheMismatchError` at construction if ``directory`` already holds a cache
    for other settings.
    """

    def __init__(self, directory: str | os.PathLike[str], key: dict[str, Any], n_chunks: int):
        self.directory = Path(directory)
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        self.hash = key_hash(self.key)
        self.n_chunks = int(n_chunks)
        meta = self.directory / "meta.json"
        if meta.is_file():
            try:
                stored = json.loads(meta.read_text())
            except json.JSONDecodeError as err:
                msg = f"{meta} is not valid JSON ({err}); delete the directory or use another one"
                raise CacheMismatchError(msg) from err
            if stored.get("hash") != self.hash:
                msg = (
                    f"{self.directory} holds data made with other settings "
                    f"({_diff(stored.get('key', {}), self.key)}); use another directory or "
                    "delete it"
                )
                raise CacheMismatchError(msg)
        elif self.directory.exists() and any(self.directory.glob("chunk_*.npz")):
            msg = f"{self.directory} holds chunks but no meta.json; use another directory"
            raise CacheMismatchError(msg)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_text_atomic(meta, json.dumps({"hash": self.hash, "key": self.key}, indent=1))

    def path(self, i: int) -> Path:
        return self.directory / f"chunk_{i:05d}.npz"

    def missing(self) -> list[int]:
        """Indices of the chunks not on disk yet."""
        return [i for i in range(self.n_chunks) if not self.path(i).is_file()]

    def save(self, i: int, arrays: dict[str, np.ndarray]) -> None:
        """Write chunk ``i`` atomically, with the key hash (:func:`~omlt_relax.files.write_atomic`:
        an interrupted write leaves no chunk and no temporary file)."""

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:  # a handle: np.savez would add .npz to a name
                np.savez(fh, key_hash=np.array(self.hash), **arrays)

        write_atomic(self.path(i), write)

    def load(self, i: int) -> dict[str, np.ndarray]:
        """Chunk ``i``; :class:`CacheMismatchError` if it was made with other settings."""
        with np.load(self.path(i)) as z:
            if "key_hash" not in z.files or str(z["key_hash"]) != self.hash:
                msg = (
                    f"{self.path(i)} was made with other settings than {self.directory}/meta.json "
                    "says; delete the directory and generate again"
                )
                raise CacheMismatchError(msg)
            return {k: z[k] for k in z.files if k != "key_hash"}

    def load_all(self) -> dict[str, np.ndarray]:
        """All chunks concatenated along axis 0 (every chunk must be on disk)."""
        parts = [self.load(i) for i in range(self.n_chunks)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def get(
        self,
        indices: Iterable[int],
        compute: Callable[[Iterable[int]], Iterator[tuple[int, dict[str, np.ndarray]]]],
    ) -> dict[int, dict[str, np.ndarray]]:
        """Chunks ``indices`` by index, computing (and saving) the missing ones first."""
        indices = list(indices)
        todo = [i for i in indices if not self.path(i).is_file()]
        if todo:
            for i, arrays in compute(todo):
                self.save(i, arrays)
        return {i: self.load(i) for i in indices}

    def fill(
        self,
        compute: Callable[[Iterable[int]], Iterator[tuple[int, dict[str, np.ndarray]]]],
    ) -> dict[str, np.ndarray]:
        """Compute the missing chunks with ``compute(indices)`` (yielding ``(i, arrays)``), save
        each as it arrives, and return everything."""
        todo = self.missing()
        if todo:
            for i, arrays in compute(todo):
                self.save(i, arrays)
        return self.load_all()


__all__ = ["CACHE_VERSION", "CacheMismatchError", "ChunkCache", "key_hash"]
