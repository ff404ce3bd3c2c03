"""Text and markdown tables: the one table formatter of the library and the cells it holds.

:func:`format_table` lays out rows of cells either as aligned text columns (the command line) or
as a markdown table (reports); :func:`fmt` writes one number, a dash for a missing one;
:func:`milp_cell` writes one MILP solve, marking a solve stopped at its limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["fmt", "format_table", "milp_cell"]


def fmt(x: Any, spec: str = ".3g", missing: str = "–") -> str:
    """``format(x, spec)``, or ``missing`` for ``None``, NaN and infinities."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return missing
    return format(x, spec)


def format_table(head: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    """A table of ``rows`` under ``head``: right-aligned text columns separated by two spaces and a
    dashed rule, or (``markdown=True``) a markdown table ``| a | b |`` with a ``|---|`` rule."""
    if markdown:
        def line(r: Sequence[Any]) -> str:
            return "| " + " | ".join(str(c) for c in r) + " |"

        return "\n".join([line(head), "|" + "---|" * len(head), *map(line, rows)])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]

    def aligned(r: Sequence[Any]) -> str:
        return "  ".join(str(c).rjust(w) for c, w in zip(r, widths))

    return "\n".join([aligned(head), "  ".join("-" * w for w in widths), *map(aligned, rows)])


def milp_cell(m: dict[str, Any], text: bool = False) -> str:
    """One MILP solve (a :class:`~omlt_relax.optimize.MilpResult` dict) in a table cell.

    Markdown: ``t`` or ``t (limit, gap g%)``; text (``text=True``, the command line): ``t s`` or
    ``≥t s (limit, gap g%)``.
    """
    if text:
        if m["status"] == "optimal":
            return f"{m['time']:.3g} s"
        gap = m.get("gap")
        g = f"{100 * gap:.3g}%" if gap is not None else "-"
        return f"≥{m['time']:.3g} s (limit, gap {g})"
    t = fmt(m["time"], ".3g")
    if m["status"] != "optimal":
        gap = m.get("gap")
        return f"{t} (limit, gap {fmt(100 * gap, '.3g') if gap is not None else '–'}%)"
    return t
