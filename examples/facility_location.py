"""Two-stage stochastic facility location over a published quantile network (Quantile2SP CFLP).

An externally trained incremental quantile network (IQNN; Alcántara, Ruiz & Tsay 2025) maps the
first-stage decision :math:`x \\in \\{0,1\\}^{10}` (which facilities to open) to 50 quantiles of the
recourse cost :math:`Q(x, \\xi)` over random demand :math:`\\xi`. The data and the trained weights
are not ours; see ``shared/data/quantile2sp/README.md``. This example

1. rebuilds the network, ``nn.Sequential(Linear(10, 64), ReLU, Linear(64, 50),
   IncrementalQuantileHead())``, from the shipped ``state_dict`` (``model.0``, ``model.3``);
2. reproduces the standardization: ``numpy.random.seed(0)``, training mask
   ``rand(20000) < 0.8``, population mean/std of :math:`x` and of the cost on that split;
3. exports it with :func:`~omlt_relax.export.export_onnx` over the standardized image of
   :math:`[0, 1]^{10}` (LP-tightened neuron bounds; the monotone head becomes a Gemm/ReLU chain),
   loads it back and embeds it with
   :class:`~omlt_relax.formulations.BoundedReluBigMFormulation`;
4. solves the first-stage MILP with HiGHS,

   .. math::

       \\min_{x \\in \\{0,1\\}^{10}}\\ (1 + \\lambda) f^\\top x + \\frac{1}{50} \\sum_{j=0}^{49}
       \\tilde q_j(x) + \\frac{\\lambda}{15} \\sum_{j=35}^{49} \\tilde q_j(x),\\qquad
       \\tilde q = \\mu_y + \\sigma_y\\, q\\big((x - \\mu_x)/\\sigma_x\\big),

   (mean of the quantiles ≈ E[Q], the upper 15 ≈ CVaR\\ :sub:`0.7`) for :math:`\\lambda = 0.5` and
   :math:`\\lambda = 0`, and checks the published optimum: 10,804.96 and 6,979.58 at
   :math:`x^* = [0,0,0,1,1,1,0,1,0,1]`;
5. checks the MILP value against a torch forward pass at its solution and against enumeration of
   all 1,024 decisions, and compares the binaries (and solve) with stock OMLT's
   ``ReluBigMFormulation``, which gives every ReLU a binary.

The fixed costs :math:`f` are regenerated from the instance recipe (``RandomState(7)``) and compared
with the README's checksum.

Run ``python examples/facility_location.py [--data-dir DIR]``; ``DIR`` defaults to
``shared/data/quantile2sp`` beside the repository.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import torch
from omlt import OmltBlock
from omlt.neuralnet import ReluBigMFormulation
from torch import nn

from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.formulations import BoundedReluBigMFormulation
from omlt_relax.quantile import IncrementalQuantileHead
from omlt_relax.solve import solve

#: Where the Quantile2SP files live by default: ``<repo>/../shared/data/quantile2sp``.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "quantile2sp"
MODEL_FILE = "CFLP_10_10_model.pt"
DATA_FILE = "CFLP_10_10_data.csv"

N_FACILITIES = 10
N_QUANTILES = 50
TAIL_START = 35  # quantiles 35..49: the upper 15 of 50 (CVaR at 0.7)
#: Published optima (Quantile2SP paper / README), objective by lambda, and the optimal decision.
PUBLISHED = {0.5: 10804.96, 0.0: 6979.58}
PUBLISHED_X = (0, 0, 0, 1, 1, 1, 0, 1, 0, 1)
#: README checksum of the fixed opening costs.
FIXED_COST_CHECKSUM = (679, 1311, 704, 1083, 1329, 1261, 1089, 1388, 623, 1174)
#: Agreement required with the published objective (it is given to two decimals).
PUBLISHED_ATOL = 0.01
#: Relative agreement required between the MILP objective and a forward pass at its solution.
FORWARD_RTOL = 1e-6


class DataNotFoundError(FileNotFoundError):
    """The Quantile2SP files are not where they were looked for."""


def fixed_costs() -> np.ndarray:
    """Facility opening costs :math:`f` from the CFLP instance recipe (seed 7), checked.

    Draw order of ``RandomState(7)``: customer x, customer y, facility x, facility y (``rand(10)``
    each), demand ``randint(5, 36, 10)``, raw capacity ``s = randint(10, 161, 10)``, then
    ``f = int(randint(100, 111, 10) * sqrt(s) + randint(91, size=10))``.
    """
    rng = np.random.RandomState(7)
    for _ in range(4):
        rng.rand(N_FACILITIES)
    rng.randint(5, 36, N_FACILITIES)
    s = rng.randint(10, 161, N_FACILITIES)
    f = rng.randint(100, 111, N_FACILITIES) * np.sqrt(s) + rng.randint(91, size=N_FACILITIES)
    f = f.astype(int)
    if tuple(f.tolist()) != FIXED_COST_CHECKSUM:
        msg = f"regenerated fixed costs {f.tolist()} differ from the README checksum"
        raise RuntimeError(msg)
    return f.astype(np.float64)


def check_data_dir(data_dir: Path) -> Path:
    """``data_dir`` if it holds both Quantile2SP files; otherwise a clear ``DataNotFoundError``."""
    data_dir = Path(data_dir)
    missing = [n for n in (MODEL_FILE, DATA_FILE) if not (data_dir / n).is_file()]
    if missing:
        msg = (
            f"Quantile2SP data not found: {', '.join(missing)} missing in {data_dir}. "
            "Pass --data-dir pointing to the folder with CFLP_10_10_model.pt and "
            "CFLP_10_10_data.csv (files from antonioalcantaramata/Quantile2SP)"
        )
        raise DataNotFoundError(msg)
    return data_dir


@dataclass(frozen=True)
class Standardization:
    """Means and population standard deviations of the training split (x per column, y scalar)."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float


def load_standardization(data_dir: Path) -> Standardization:
    """The IQNN's scaling: ``numpy.random.seed(0)``; training rows ``rand(20000) < 0.8``."""
    table = np.loadtxt(data_dir / DATA_FILE, delimiter=",", skiprows=1)
    x = table[:, 1 : 1 + N_FACILITIES]  # column 0 is the unnamed index
    y = table[:, -1]
    # the original calls numpy.random.seed(0) then numpy.random.rand: the same stream as this
    train = np.random.RandomState(0).rand(len(table)) < 0.8
    return Standardization(
        x[train].mean(axis=0), x[train].std(axis=0), float(y[train].mean()), float(y[train].std())
    )


def load_network(data_dir: Path) -> nn.Sequential:
    """The shipped IQNN as an ``nn.Sequential`` ending in :class:`IncrementalQuantileHead`.

    The file's ``model.0`` / ``model.3`` (the original wraps the layers in a ``model`` attribute,
    with a module at index 2 that has no parameters) are this sequence's ``0`` and ``2``.
    """
    state = torch.load(data_dir / MODEL_FILE, weights_only=True, map_location="cpu")
    rename = {"model.0.": "0.", "model.3.": "2."}
    mapped = {}
    for key, val in state.items():
        prefix = next((p for p in rename if key.startswith(p)), None)
        if prefix is None:
            msg = f"unexpected key {key!r} in {MODEL_FILE}; expected model.0.* and model.3.*"
            raise KeyError(msg)
        mapped[rename[prefix] + key[len(prefix) :]] = val
    net = nn.Sequential(
        nn.Linear(N_FACILITIES, 64),
        nn.ReLU(),
        nn.Linear(64, N_QUANTILES),
        IncrementalQuantileHead(),
    )
    net.load_state_dict(mapped)
    return net.double().eval()


def first_stage_objective(
    net: nn.Module, std: Standardization, f: np.ndarray, x: np.ndarray, lam: float
) -> np.ndarray:
    """Objective of decisions ``x`` ``(N, 10)`` by a float64 forward pass → ``(N,)``."""
    xs = torch.as_tensor((np.atleast_2d(x) - std.x_mean) / std.x_std, dtype=torch.float64)
    with torch.no_grad():
        q = net.double()(xs).numpy() * std.y_std + std.y_mean
    return (
        (1.0 + lam) * np.atleast_2d(x) @ f
        + q.mean(axis=1)
        + lam / (N_QUANTILES - TAIL_START) * q[:, TAIL_START:].sum(axis=1)
    )


def input_box(std: Standardization) -> tuple[np.ndarray, np.ndarray]:
    """The standardized image of :math:`[0, 1]^{10}` (the network's input box)."""
    return (0.0 - std.x_mean) / std.x_std, (1.0 - std.x_mean) / std.x_std


def build_model(
    formulation: object, std: Standardization, f: np.ndarray, lam: float
) -> pyo.ConcreteModel:
    """First-stage MILP: binary ``x``, the network on standardized ``x``, the objective above."""
    m = pyo.ConcreteModel()
    m.I = pyo.RangeSet(0, N_FACILITIES - 1)
    m.J = pyo.RangeSet(0, N_QUANTILES - 1)
    m.x = pyo.Var(m.I, within=pyo.Binary)
    m.nn = OmltBlock()
    m.nn.build_formulation(formulation)
    m.standardize = pyo.Constraint(
        m.I, rule=lambda _m, i: m.nn.inputs[i] == (m.x[i] - std.x_mean[i]) / std.x_std[i]
    )
    m.q = pyo.Expression(m.J, rule=lambda _m, j: std.y_mean + std.y_std * m.nn.outputs[j])
    tail = lam / (N_QUANTILES - TAIL_START)
    m.cost = pyo.Objective(
        expr=(1.0 + lam) * sum(f[i] * m.x[i] for i in m.I)
        + sum(m.q[j] for j in m.J) / N_QUANTILES
        + tail * sum(m.q[j] for j in m.J if j >= TAIL_START),
        sense=pyo.minimize,
    )
    return m


def count_binaries(block: pyo.Block) -> int:
    """Number of binary variables in ``block`` and its sub-blocks."""
    return sum(1 for v in block.component_data_objects(pyo.Var, descend_into=True) if v.is_binary())


@dataclass
class Solved:
    """One first-stage MILP solve."""

    lam: float
    formulation: str
    binaries: int  # in the network block (the 10 x are extra)
    status: str
    objective: float
    time: float
    nodes: int | None
    x: tuple[int, ...]
    forward: float  # objective by a torch forward pass at x


def solve_first_stage(
    net: nn.Module,
    std: Standardization,
    f: np.ndarray,
    onnx_path: Path,
    lam: float,
    stock: bool = False,
    time_limit: float | None = 60.0,
) -> Solved:
    """Build and solve the MILP with our formulation (or stock OMLT's) and check it by torch."""
    net_def, bounds = load_onnx(onnx_path)
    if stock:
        formulation, name = ReluBigMFormulation(net_def), "OMLT ReluBigM"
    else:
        formulation, name = BoundedReluBigMFormulation(net_def, bounds), "BoundedReluBigM"
    m = build_model(formulation, std, f, lam)
    res = solve(m, solver="highs", time_limit=time_limit)
    if res.objective is None:
        msg = f"lambda={lam:g}, {name}: no solution from HiGHS ({res.status}, {res.termination})"
        raise RuntimeError(msg)
    x = tuple(round(pyo.value(m.x[i])) for i in m.I)
    return Solved(
        lam=lam,
        formulation=name,
        binaries=count_binaries(m.nn),
        status=str(res.status),
        objective=float(res.objective),
        time=float(res.wall_time),
        nodes=res.nodes,
        x=x,
        forward=float(first_stage_objective(net, std, f, np.array(x, dtype=float), lam)[0]),
    )


def enumerate_optimum(
    net: nn.Module, std: Standardization, f: np.ndarray, lam: float
) -> tuple[float, tuple[int, ...]]:
    """Best of all :math:`2^{10}` decisions by forward passes (an independent check)."""
    xs = np.array(list(itertools.product((0.0, 1.0), repeat=N_FACILITIES)))
    obj = first_stage_objective(net, std, f, xs, lam)
    i = int(np.argmin(obj))
    return float(obj[i]), tuple(int(v) for v in xs[i])


def run(data_dir: Path, lams: tuple[float, ...] = (0.5, 0.0)) -> tuple[list[Solved], str, bool]:
    """Solve for each ``lam`` with both formulations; returns results, report text and success."""
    data_dir = check_data_dir(data_dir)
    f = fixed_costs()
    std = load_standardization(data_dir)
    net = load_network(data_dir)
    results: list[Solved] = []
    lines: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cflp_10_10_iqnn.onnx"
        bounds = export_onnx(net, path, input_box(std), bounds="lp")
        lines.append(f"Quantile2SP CFLP 10×10 from {data_dir}")
        lines.append(
            f"IQNN 10→64→50 + incremental head, exported with {bounds.method!r} bounds: "
            f"{bounds.unstable_count()} unstable of {sum(bounds.widths)} hidden neurons "
            f"(layers {list(bounds.widths)})"
        )
        for lam in lams:
            for stock in (False, True):
                results.append(solve_first_stage(net, std, f, path, lam, stock=stock))
    head = (
        f"{'lambda':>6}  {'formulation':<16} {'net bins':>8} {'status':<12} {'objective':>10} "
        f"{'forward':>10} {'time [s]':>8} {'nodes':>6}  x"
    )
    lines += ["", head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.lam:>6g}  {r.formulation:<16} {r.binaries:>8d} {r.status[:12]:<12} "
            f"{r.objective:>10.2f} {r.forward:>10.2f} {r.time:>8.2f} "
            f"{'-' if r.nodes is None else r.nodes:>6}  {list(r.x)}"
        )
    lines.append("net bins: binaries in the network block (x adds 10 more)")
    lines.append("forward: the objective by a torch forward pass at the MILP's x")
    lines.append("")
    for lam in lams:
        enum_obj, enum_x = enumerate_optimum(net, std, f, lam)
        for r in (r for r in results if r.lam == lam):
            pub = PUBLISHED.get(lam)
            checks = {
                "forward pass": math.isclose(r.objective, r.forward, rel_tol=FORWARD_RTOL),
                "enumeration": r.x == enum_x
                and math.isclose(r.objective, enum_obj, rel_tol=FORWARD_RTOL),
            }
            if pub is not None:
                checks["published"] = (
                    abs(r.objective - pub) <= PUBLISHED_ATOL and r.x == PUBLISHED_X
                )
            ok = ok and all(checks.values())
            verdict = ", ".join(f"{k} {'ok' if v else 'MISMATCH'}" for k, v in checks.items())
            target = f"published {pub:,.2f} at x*={list(PUBLISHED_X)}; " if pub is not None else ""
            lines.append(f"lambda={lam:g} {r.formulation}: {target}{verdict}")
    return results, "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Quantile2SP CFLP 10×10: first-stage MILP over the published quantile network."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"folder with {MODEL_FILE} and {DATA_FILE} (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--lam", type=float, action="append", help="risk weight lambda (repeatable; default 0.5 0)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        _, report, ok = run(args.data_dir, tuple(args.lam) if args.lam else (0.5, 0.0))
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
