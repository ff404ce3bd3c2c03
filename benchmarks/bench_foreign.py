"""Networks we did not train for MILP-easiness: stock OMLT vs omlt_relax bounds, side by side.

Networks (all read through :func:`omlt_relax.foreign.read_onnx`, exactly as a user's file):

* OMLT's own dense ReLU test networks (``tests/data/omlt/``, BSD-3, see the README there):
  ``keras_linear_131_relu.onnx`` (Keras, MatMul+Add), ``gemm_transB.onnx``,
  ``gemm_not_transB.onnx`` (PyTorch Gemm, transB 1/0) and ``gemm.onnx`` (an MNIST classifier
  784-75-75-10; its LogSoftmax head is dropped, logit 0 is optimized over ``[0, 1]^784``);
* unregularized peaks networks (2×50, 3×50, 3×100) trained by our trainer and exported with plain
  ``torch.onnx.export(..., dynamo=False)`` in float32 (no omlt_relax metadata) plus OMLT's sidecar.

Per network and sense (min/max of output 0): stock OMLT ``ReluBigMFormulation`` (its own float32
interval bounds, a binary per neuron) against :class:`~omlt_relax.BoundedReluBigMFormulation` with
LP-OBBT and MILP-OBBT bounds (no binary on stable neurons). HiGHS, one thread, the same time limit
for every MILP. Times are HiGHS's own solve times; "ours total" adds the bounds time (reading the
file included). Every incumbent is checked against a float64 forward pass of the network.

    python benchmarks/bench_foreign.py --out bench_foreign [--time-limit 300]

Resumable: results go to ``<out>/results.json`` after every solve, the table to
``<out>/table.md``; a rerun skips what is done.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omlt_relax.threads import single_thread

ROOT = Path(__file__).resolve().parents[1]
OMLT_DIR = ROOT / "tests" / "data" / "omlt"
SENSES = ("min", "max")
METHODS = ("omlt", "lp", "milp")
LABELS = {"omlt": "stock OMLT big-M", "lp": "ours, LP-OBBT", "milp": "ours, MILP-OBBT"}
#: OMLT networks: file, input box, logits.
OMLT_NETS = {
    "omlt keras 1-3-1": ("keras_linear_131_relu.onnx", ([-1.0], [1.0]), False),
    "omlt gemm transB=1 2-2-1": ("gemm_transB.onnx", ([-1.0, -1.0], [1.0, 1.0]), False),
    "omlt gemm transB=0 2-2-1": ("gemm_not_transB.onnx", ([-1.0, -1.0], [1.0, 1.0]), False),
    "omlt gemm MNIST 784-75-75 (logit 0)": ("gemm.onnx", (np.zeros(784), np.ones(784)), True),
}
PEAKS_NETS = {"peaks 2x50": (50, 50), "peaks 3x50": (50, 50, 50), "peaks 3x100": (100, 100, 100)}
#: Relative tolerance for "same optimum" between two formulations.
SAME_RTOL = 1e-6


def export_plain(hidden: tuple[int, ...], path: Path, epochs: int) -> dict[str, Any]:
    """Train an unregularized peaks net and export it with plain ``torch.onnx.export``."""
    from omlt.io.input_bounds import write_input_bounds

    from omlt_relax.bench.data import sample_function
    from omlt_relax.bench.functions import get_function
    from omlt_relax.data import predict, rmse
    from omlt_relax.train import TrainConfig, fit

    fn = get_function("peaks")
    data = sample_function(fn, n_train=2000, n_val=500, n_test=2000, seed=0)
    t0 = time.perf_counter()
    res = fit(data, "unregularized", 0.0, TrainConfig(hidden=hidden, epochs=epochs))
    train_time = time.perf_counter() - t0
    model = copy.deepcopy(res.model).float().eval()
    torch.onnx.export(
        model, torch.zeros(1, fn.dim), os.fspath(path), dynamo=False,
        input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
    )
    lo, hi = fn.box
    write_input_bounds(f"{path}.bounds.json", [(float(a), float(b)) for a, b in zip(lo, hi)])
    return {"test_rmse": rmse(predict(res.model, data.x_test), data.y_test),
            "train_time": train_time, "epochs": epochs}


def run_one(name: str, path: Path, box: Any, logits: bool, method: str, tl: float,
            milp_obbt_tl: float, done: dict[str, Any], save: Any) -> None:
    """Bounds (ours) and the min and max MILPs of one network with one method."""
    from omlt.io.onnx import load_onnx_neural_network

    from omlt_relax.foreign import read_onnx
    from omlt_relax.optimize import solve_milp

    key = f"{name}|{method}"
    rec = done.setdefault(key, {})
    t0 = time.perf_counter()
    fn = read_onnx(path, box, logits=logits)
    if method == "omlt":
        net, nb, t_bounds = None, None, 0.0
        net = load_onnx_neural_network(fn.onnx_model, input_bounds=dict(fn.net.scaled_input_bounds))
    else:
        if "bounds_time" not in rec:
            nb = fn.bounds(method, time_limit=milp_obbt_tl if method == "milp" else None)
            rec["bounds_time"] = time.perf_counter() - t0
            rec["bounds_json"] = nb.to_json()
            rec["unstable"] = nb.unstable_count()
            save()
        from omlt_relax.neuron_bounds import NeuronBounds

        nb = NeuronBounds.from_json(rec["bounds_json"])
        net, t_bounds = fn.net, rec["bounds_time"]
    rec["neurons"] = int(sum(fn.hidden_widths))
    for s in SENSES:
        if s in rec:
            continue
        print(f"  {name} | {LABELS[method]} | {s} ...", flush=True)
        r = solve_milp(net, nb, s, tl, output=0, formulation="bounded" if nb else "omlt",
                       threads=1)
        d = r.to_dict()
        if r.x is not None:
            d["f_at_x"] = float(fn.forward(np.asarray([r.x]))[0, 0])
            d["forward_error"] = abs(d["f_at_x"] - r.objective)
        rec[s] = d
        save()
        print(f"    {r.status} obj={r.objective} bound={r.bound} time={r.time:.3g}s "
              f"binaries={r.n_binaries} (bounds {t_bounds:.3g}s)", flush=True)


def _total(rec: dict[str, Any]) -> tuple[float, bool]:
    t = rec.get("bounds_time", 0.0) + sum(rec[s]["time"] for s in SENSES)
    return t, all(rec[s]["status"] == "optimal" for s in SENSES)


def _obj(d: dict[str, Any]) -> str:
    if d["objective"] is None:
        return "none" if d["bound"] is None else f"none (bound {d['bound']:.6g})"
    if d["status"] == "optimal":
        return f"{d['objective']:.6g}"
    return f"{d['objective']:.6g} (bound {d['bound']:.6g})"


def table(done: dict[str, Any], meta: dict[str, Any], tl: float) -> str:
    """The markdown table: one row per network and method."""
    rows = ["| network | formulation | binaries | bounds s | min s | max s | total s | "
            "speed-up vs stock | nodes | min | max |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    names = list(dict.fromkeys(k.split("|")[0] for k in done))
    for name in names:
        stock = done.get(f"{name}|omlt", {})
        stock_ok = all(s in stock for s in SENSES)
        for method in METHODS:
            rec = done.get(f"{name}|{method}", {})
            if not all(s in rec for s in SENSES):
                continue
            t, solved = _total(rec)
            ts = [f"{rec[s]['time']:.3g}" + ("" if rec[s]["status"] == "optimal" else " (limit)")
                  for s in SENSES]
            sp = "-"
            if method != "omlt" and stock_ok:
                t0, s0 = _total(stock)
                ratio = t0 / t
                sp = f"{'≥' if not s0 else ''}{ratio:.3g}×"
                if not solved and not s0:
                    sp = "both hit the limit"
                elif not solved:
                    sp = f"≤{ratio:.3g}×"
                for s in SENSES:
                    a, b = rec[s], stock[s]
                    if a["status"] == b["status"] == "optimal":
                        same = abs(a["objective"] - b["objective"]) <= SAME_RTOL * (
                            1 + abs(b["objective"]))
                        if not same:
                            notes.append(f"{name} {s}: {LABELS[method]} {a['objective']!r} vs "
                                         f"stock {b['objective']!r}")
            bt = f"{rec.get('bounds_time', 0.0):.3g}" if method != "omlt" else "-"
            nodes = sum(rec[s]["nodes"] or 0 for s in SENSES)
            rows.append(
                f"| {name} | {LABELS[method]} | {rec['min']['n_binaries']} | {bt} | {ts[0]} | "
                f"{ts[1]} | {'≥' if not solved else ''}{t:.3g} | {sp} | {nodes} | "
                f"{_obj(rec['min'])} | {_obj(rec['max'])} |")
    head = (f"HiGHS {meta.get('highs', '?')}, 1 thread, time limit {tl:g} s per MILP; "
            f"{meta.get('machine', '')}. Times are HiGHS solve times; 'total' adds our bounds "
            "time (reading the file included). '≥': a solve hit the limit. nodes: min + max.\n\n")
    tail = "\n\nDifferent optima: " + "; ".join(notes) if notes else \
        "\n\nEvery optimum solved by both formulations agrees (rel. tol. 1e-6)."
    errs = [rec[s].get("forward_error", 0.0) for rec in done.values() for s in SENSES if s in rec]
    tail += f" Largest |objective − forward pass at x*|: {max(errs, default=0.0):.2g}.\n"
    return head + "\n".join(rows) + tail


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench_foreign")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds per MILP")
    p.add_argument("--milp-obbt-time", type=float, default=120.0,
                   help="budget of MILP-OBBT per network, seconds")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--nets", default="all", help="comma-separated names (substrings) or 'all'")
    p.add_argument("--table-only", action="store_true", help="rewrite table.md, run nothing")
    a = p.parse_args(argv)
    single_thread()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res_file = out / "results.json"
    state: dict[str, Any] = json.loads(res_file.read_text()) if res_file.exists() else {}
    done: dict[str, Any] = state.setdefault("runs", {})
    import highspy

    h = highspy.Highs()
    meta = state.setdefault("meta", {})
    meta.update({"highs": f"{h.version()}" if hasattr(h, "version") else "?",
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
                 "time_limit": a.time_limit, "milp_obbt_time": a.milp_obbt_time,
                 "command": " ".join([sys.executable, *sys.argv])})

    def save() -> None:
        res_file.write_text(json.dumps(state, indent=1))
        (out / "table.md").write_text(table(done, meta, a.time_limit))

    if a.table_only:
        (out / "table.md").write_text(table(done, state.get("meta", {}), a.time_limit))
        print((out / "table.md").read_text())
        return 0
    nets: list[tuple[str, Path, Any, bool]] = []
    for name, (f, box, logits) in OMLT_NETS.items():
        nets.append((name, OMLT_DIR / f, box, logits))
    for name, hidden in PEAKS_NETS.items():
        path = out / f"{name.replace(' ', '_')}.onnx"
        if not path.exists():
            print(f"training {name} ...", flush=True)
            state.setdefault("trained", {})[name] = export_plain(hidden, path, a.epochs)
            save()
        nets.append((name, path, None, False))
    order = ["omlt keras", "omlt gemm transB", "peaks 2x50", "peaks 3x100", "peaks 3x50", "MNIST"]
    nets.sort(key=lambda n: next((i for i, o in enumerate(order) if o in n[0]), len(order)))
    if a.nets != "all":
        want = a.nets.split(",")
        nets = [n for n in nets if any(w in n[0] for w in want)]
    for name, path, box, logits in nets:
        print(f"== {name}", flush=True)
        for method in METHODS:
            run_one(name, path, box, logits, method, a.time_limit, a.milp_obbt_time, done, save)
    save()
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
