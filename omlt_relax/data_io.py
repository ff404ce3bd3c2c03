"""Reading training data from CSV: every problem named by file, line and column.

:func:`read_csv` reads a CSV with a header row into float64 arrays ``x`` ``(N, d)`` and ``y``
``(N, m)`` and refuses, with one sentence naming the file, the line and the column:

* a missing header row (a first row made only of numbers would otherwise be lost as a header),
  empty or repeated column names (a repeated name would silently merge two columns);
* rows with another number of fields than the header;
* values that are not numbers, NaN or infinite, or larger in magnitude than
  :data:`MAX_DATA_MAGNITUDE` (training standardizes in float64 and trains in float32: a target
  near 1e300 overflows its variance, and the message must blame the data, not the network).

:func:`box_warnings` lists the inputs whose optimization box is wider than the data (the network is
extrapolating there), constant columns included.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Largest absolute value accepted in a data column.
MAX_DATA_MAGNITUDE = 1e15


class DataError(ValueError):
    """The data file cannot be used as it is; the message names the file, line and column."""


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_csv(
    path: str | os.PathLike[str],
    inputs: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    n_inputs: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Read a CSV with a header row into ``(x, y, input_names, target_names)``.

    Columns are chosen by name (``inputs``/``targets``); by default the last column is the target
    and the others are inputs; ``n_inputs`` takes the first ``n_inputs`` columns as inputs and the
    rest as targets. Raises :class:`DataError` (see the module docstring).
    """
    p = Path(path)
    if not p.is_file():
        msg = f"no CSV file at {p}"
        raise DataError(msg)
    try:
        with p.open(newline="") as fh:
            raw = list(csv.reader(fh))
    except UnicodeDecodeError as e:
        msg = f"{p} is not a text CSV file ({e.reason} at byte {e.start})"
        raise DataError(msg) from None
    rows = [(i, r) for i, r in enumerate(raw, start=1) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        msg = f"{p} needs a header row and at least one data row"
        raise DataError(msg)
    head_line, head = rows[0]
    header = [h.strip() for h in head]
    if all(_is_number(h) for h in header):
        msg = (
            f"the first row of {p} ({', '.join(header[:4])}{', ...' if len(header) > 4 else ''}) "
            "is all numbers: it looks like data, not a header; add a header row with the column "
            "names"
        )
        raise DataError(msg)
    for j, h in enumerate(header, start=1):
        if not h:
            msg = f"column {j} of {p} has an empty name in the header (line {head_line}); name it"
            raise DataError(msg)
    seen: dict[str, int] = {}
    for j, h in enumerate(header, start=1):
        if h in seen:
            msg = (
                f"the header of {p} names two columns {h!r} (columns {seen[h]} and {j}); "
                "rename one so that every column has its own name"
            )
            raise DataError(msg)
        seen[h] = j
    for i, r in rows[1:]:
        if len(r) != len(header):
            msg = f"{p} line {i} has {len(r)} columns but the header has {len(header)}"
            raise DataError(msg)
    if len(header) < 2:
        msg = f"{p} has {len(header)} column; it needs at least one input and one target column"
        raise DataError(msg)
    in_names, out_names = _select(p, header, inputs, targets, n_inputs)
    idx = {h: i for i, h in enumerate(header)}
    cols = [*in_names, *out_names]
    data = np.empty((len(rows) - 1, len(cols)))
    for r_i, (line, r) in enumerate(rows[1:]):
        for c_i, name in enumerate(cols):
            text = r[idx[name]].strip()
            try:
                v = float(text)
            except ValueError:
                msg = f"{p} line {line}, column {name!r}: {text!r} is not a number"
                raise DataError(msg) from None
            if not math.isfinite(v):
                msg = f"{p} line {line}, column {name!r} is {text!r}; remove the row or fill it in"
                raise DataError(msg)
            if abs(v) > MAX_DATA_MAGNITUDE:
                msg = (
                    f"{p} line {line}, column {name!r} has the value {v:.3g}, beyond "
                    f"{MAX_DATA_MAGNITUDE:.0e} in magnitude: the data are too large to train on; "
                    "rescale that column (other units, or a logarithm) or remove the row"
                )
                raise DataError(msg)
            data[r_i, c_i] = v
    k = len(in_names)
    return data[:, :k], data[:, k:], in_names, out_names


def _select(
    p: Path,
    header: list[str],
    inputs: Sequence[str] | None,
    targets: Sequence[str] | None,
    n_inputs: int | None,
) -> tuple[list[str], list[str]]:
    if inputs is None and targets is None:
        k = len(header) - 1 if n_inputs is None else n_inputs
        if not 1 <= k < len(header):
            msg = (f"{p} has {len(header)} columns, so --n-inputs must be between 1 and "
                   f"{len(header) - 1}, got {k}")
            raise DataError(msg)
        return header[:k], header[k:]
    out_names = list(targets) if targets is not None else [header[-1]]
    in_names = list(inputs) if inputs is not None else [h for h in header if h not in out_names]
    for name in [*in_names, *out_names]:
        if name not in header:
            msg = f"column {name!r} is not in {p} (columns: {', '.join(header)})"
            raise DataError(msg)
    dup = [n for n in in_names if n in out_names]
    if dup:
        msg = f"column {dup[0]!r} is selected both as an input and as a target"
        raise DataError(msg)
    if n_inputs is not None and n_inputs != len(in_names):
        msg = f"--n-inputs is {n_inputs} but {len(in_names)} input columns were selected"
        raise DataError(msg)
    if not in_names or not out_names:
        msg = "select at least one input and one target column"
        raise DataError(msg)
    return in_names, out_names


def box_warnings(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray, names: Sequence[str]
) -> list[str]:
    """One sentence per input whose box ``[lo, hi]`` is wider than the data's range."""
    out = []
    dmin, dmax = x.min(axis=0), x.max(axis=0)
    for i, name in enumerate(names):
        if lo[i] < dmin[i] or hi[i] > dmax[i]:
            what = (f"is constant ({dmin[i]:.6g}) in the data" if dmax[i] == dmin[i]
                    else f"spans [{dmin[i]:.6g}, {dmax[i]:.6g}] in the data")
            out.append(
                f"input {name!r} {what} but its box is [{lo[i]:.6g}, {hi[i]:.6g}]: the network "
                "extrapolates there and the optimizer may pick such points"
            )
    return out


__all__ = ["MAX_DATA_MAGNITUDE", "DataError", "box_warnings", "read_csv"]
