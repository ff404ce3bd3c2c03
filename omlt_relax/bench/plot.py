"""The Pareto plot of the suite: test-RMSE ratio against MILP time, one panel per function."""

from __future__ import annotations

import math
import os
from typing import Any

from omlt_relax.bench.report import functions_present
from omlt_relax.bench.results import BASELINE, entry_key
from omlt_relax.bench.stats import TARGET_RMSE_RATIO


def pareto_plot(results: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """RMSE ratio vs MILP time (min + max), one panel per function, one point per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = results["entries"]
    funcs = functions_present(entries)
    n = max(1, len(funcs))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    markers = "osD^v<>pP*Xh"
    all_variants: list[str] = []
    for e in entries.values():
        if e["variant"] not in all_variants:
            all_variants.append(e["variant"])
    cmap = plt.get_cmap("tab10")
    for i, f in enumerate(funcs):
        ax = axes[i // cols][i % cols]
        base = entries.get(entry_key(f, BASELINE))
        pts = []
        for j, v in enumerate(all_variants):
            e = entries.get(entry_key(f, v))
            if e is None or base is None:
                continue
            r = e["test_rmse"] / base["test_rmse"]
            t = max(e["time_total"], 1e-3)
            pts.append((r, t))
            ax.scatter([r], [t], marker=markers[j % len(markers)], color=cmap(j % 10), s=45,
                       label=v, facecolors="none" if not e["solved_all"] else None)
        pts.sort()
        front = []
        best = math.inf
        for r, t in pts:
            if t < best:
                front.append((r, t))
                best = t
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.6",
                    lw=1, zorder=0)
        ax.axvline(TARGET_RMSE_RATIO, color="0.4", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(f)
        ax.set_xlabel("test RMSE / baseline")
        ax.set_ylabel("MILP time min+max [s]")
        ax.grid(alpha=0.3, which="both")
    for k in range(len(funcs), rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(5, max(1, len(labels))),
               fontsize=8, frameon=False)
    fig.suptitle("Accuracy vs MILP solve time (HiGHS, 1 thread; hollow: hit the time limit)")
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(labels) / 5), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["pareto_plot"]
