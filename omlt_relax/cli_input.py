"""What the ``omlt-relax`` commands read: CSV data sets, number lists; the one-line user error.

Shared by :mod:`omlt_relax.cli` and :mod:`omlt_relax.cli_tune`.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from omlt_relax.data_io import box_warnings, read_csv


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
    if not a.quiet:
        for w in box_warnings(x, lo, hi, in_names):
            print(f"warning: {w}", file=sys.stderr)
    outside = np.flatnonzero((x < lo - 1e-12).any(axis=0) | (x > hi + 1e-12).any(axis=0))
    if outside.size and not a.quiet:
        print(f"note: data of {', '.join(in_names[i] for i in outside)} lie partly outside the "
              "input box; the network is optimized over the box only", file=sys.stderr)
    data = split_arrays(x, y, lo, hi, a.val_fraction, a.test_fraction, a.seed, name=str(a.csv))
    return data, lo, hi, in_names, out_names



__all__ = ["CliError", "check_positive", "csv_dataset", "floats_arg", "ints_arg"]
