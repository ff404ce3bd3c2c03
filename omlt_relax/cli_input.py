"""What the ``omlt-relax`` commands read: CSV data, number lists, and the one-line user error.

Shared by :mod:`omlt_relax.cli` and :mod:`omlt_relax.cli_tune`.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def floats_arg(text: str | None, what: str) -> list[float] | None:
    """Comma-separated numbers of option ``what`` (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        vals = [float(s) for s in text.replace(";", ",").split(",") if s.strip()]
    except ValueError:
        msg = f"{what} must be comma-separated numbers, got {text!r}"
        raise CliError(msg) from None
    if not vals:
        msg = f"{what} is empty"
        raise CliError(msg)
    return vals


def ints_arg(text: str, what: str) -> tuple[int, ...]:
    """Comma-separated positive whole numbers of option ``what``."""
    try:
        vals = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        msg = f"{what} must be comma-separated whole numbers, got {text!r}"
        raise CliError(msg) from None
    if not vals or any(v < 1 for v in vals):
        msg = f"{what} must be positive whole numbers, got {text!r}"
        raise CliError(msg)
    return vals


def check_positive(x: float | None, what: str) -> None:
    """``CliError`` unless ``x`` is ``None`` or a finite positive number."""
    if x is not None and not (math.isfinite(x) and x > 0):
        msg = f"{what} must be a positive number, got {x}"
        raise CliError(msg)


def read_csv(
    path: str | os.PathLike[str],
    inputs: Sequence[str] | None,
    targets: Sequence[str] | None,
    n_inputs: int | None,
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Read a CSV with a header row into ``(x, y, input_names, target_names)``.

    Columns are chosen by name (``inputs``/``targets``); by default the last column is the target
    and the others are inputs; ``n_inputs`` takes the first ``n_inputs`` columns as inputs and the
    rest as targets. Every row must have as many fields as the header.
    """
    p = Path(path)
    if not p.is_file():
        msg = f"no CSV file at {p}"
        raise CliError(msg)
    with p.open(newline="") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        msg = f"{p} needs a header row and at least one data row"
        raise CliError(msg)
    header = [h.strip() for h in rows[0]]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            msg = f"{p} line {i} has {len(r)} columns but the header has {len(header)}"
            raise CliError(msg)
    if len(header) < 2:
        msg = f"{p} has {len(header)} column; it needs at least one input and one target column"
        raise CliError(msg)
    if inputs is None and targets is None:
        k = len(header) - 1 if n_inputs is None else n_inputs
        if not 1 <= k < len(header):
            msg = (f"{p} has {len(header)} columns, so --n-inputs must be between 1 and "
                   f"{len(header) - 1}, got {k}")
            raise CliError(msg)
        in_names, out_names = header[:k], header[k:]
    else:
        out_names = list(targets) if targets is not None else [header[-1]]
        in_names = list(inputs) if inputs is not None else [h for h in header if h not in out_names]
        for name in [*in_names, *out_names]:
            if name not in header:
                msg = f"column {name!r} is not in {p} (columns: {', '.join(header)})"
                raise CliError(msg)
        if n_inputs is not None and n_inputs != len(in_names):
            msg = f"--n-inputs is {n_inputs} but {len(in_names)} input columns were selected"
            raise CliError(msg)
        if not in_names or not out_names:
            msg = "select at least one input and one target column"
            raise CliError(msg)
    idx = {h: i for i, h in enumerate(header)}
    try:
        data = np.array([[float(r[idx[h]]) for h in [*in_names, *out_names]] for r in rows[1:]])
    except ValueError as e:
        msg = f"{p} has a value that is not a number ({e})"
        raise CliError(msg) from None
    k = len(in_names)
    return data[:, :k], data[:, k:], in_names, out_names


def csv_dataset(a: argparse.Namespace) -> tuple[Any, np.ndarray, np.ndarray, list[str], list[str]]:
    """The CSV of ``train``/``tune`` as a ``Dataset``: ``(data, lo, hi, inputs, targets)``."""
    from omlt_relax.data import split_arrays

    inputs = a.inputs.split(",") if a.inputs else None
    targets = a.targets.split(",") if a.targets else None
    x, y, in_names, out_names = read_csv(a.csv, inputs, targets, a.n_inputs)
    lb, ub = floats_arg(a.lb, "--lb"), floats_arg(a.ub, "--ub")
    d = x.shape[1]
    for name, v in (("--lb", lb), ("--ub", ub)):
        if v is not None and len(v) == 1 and d > 1:
            v *= d
        if v is not None and len(v) != d:
            msg = (f"{name} has {len(v)} values but there are {d} input columns "
                   f"({', '.join(in_names)})")
            raise CliError(msg)
    lo = np.asarray(lb if lb is not None else x.min(axis=0), np.float64)
    hi = np.asarray(ub if ub is not None else x.max(axis=0), np.float64)
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        msg = f"input box is inverted for {in_names[i]}: lower {lo[i]:g} > upper {hi[i]:g}"
        raise CliError(msg)
    outside = np.flatnonzero((x < lo - 1e-12).any(axis=0) | (x > hi + 1e-12).any(axis=0))
    if outside.size and not a.quiet:
        print(f"note: data of {', '.join(in_names[i] for i in outside)} lie partly outside the "
              "input box; the network is optimized over the box only", file=sys.stderr)
    data = split_arrays(x, y, lo, hi, a.val_fraction, a.test_fraction, a.seed, name=str(a.csv))
    return data, lo, hi, in_names, out_names



__all__ = ["CliError", "check_positive", "csv_dataset", "floats_arg", "ints_arg", "read_csv"]
