"""BoundedReluBigMFormulation / BoundedReluPartitionFormulation against forward passes and OMLT.

Random ReLU nets (depth 1-3, width up to 30, 1-4 inputs) go through the real pipeline
(export_onnx -> load_onnx -> formulation -> solver). Every formulation x solver reaches the same min
and max of an output; the optimum equals the float64 forward pass at the MILP's input; no sampled
input beats it; binaries = unstable neurons; bounds never looser than stored or OMLT's own.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import pytest
import torch
from omlt import OmltBlock
from omlt.neuralnet import ReluBigMFormulation
from omlt.neuralnet.network_definition import NetworkDefinition
from torch import nn

from omlt_relax.bounds import sound_bounds
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.formulations import BoundedReluBigMFormulation, BoundedReluPartitionFormulation
from omlt_relax.neuron_bounds import BoundsMismatchError
from omlt_relax.solve import solve

#: Relative agreement of optima across formulations/solvers and with the forward pass.
OPT_RTOL = 1e-6
#: Absolute floor of that comparison (optima near 0).
OPT_ATOL = 1e-7
#: Slack allowed for a sampled output beyond the MILP optimum.
SAMPLE_TOL = 1e-6
N_SAMPLES = 10_000
#: OMLT computes its own bounds in float32: compare with ours up to its rounding.
FLOAT32_SLACK = 1e-6
#: Solver settings that make "optimal" mean optimal to ~1e-9, not the default 1e-4 MIP gap.
DATA = Path(__file__).parent / "data"
EXACT = {"mip_gap": 1e-9}

# (seed, inputs, hidden widths, output used)
NETS = {
    "d1w30": (0, 1, [30], 0),
    "d2w20": (1, 2, [20, 12], 1),
    "d3w10": (2, 4, [10, 10, 8], 0),
}
SMALL = {"d2w6": (3, 3, [6, 5], 0)}


def random_net(seed: int, n_in: int, widths: list[int], n_out: int = 2) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    prev = n_in
    for w in widths:
        mods += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    mods.append(nn.Linear(prev, n_out))
    return nn.Sequential(*mods)


def box(seed: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-2.0, 0.0, n_in)
    return lo, lo + rng.uniform(0.5, 2.5, n_in)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = {}
    for name, (seed, n_in, widths, j) in {**NETS, **SMALL}.items():
        model = random_net(seed, n_in, widths)
        lo, hi = box(seed, n_in)
        path = tmp_path_factory.mktemp(name) / f"{name}.onnx"
        export_onnx(model, path, (lo, hi), bounds="crown")
        net, bounds = load_onnx(path)
        out[name] = {"model": model.double(), "lo": lo, "hi": hi, "path": path, "net": net,
                     "bounds": bounds, "output": j}
    return out


FORMULATIONS = {
    "bigm": lambda net, b: BoundedReluBigMFormulation(net, b),
    "partition2": lambda net, b: BoundedReluPartitionFormulation(net, b),
    "partition3-range": lambda net, b: BoundedReluPartitionFormulation(
        net, b, n_partitions=3, split="equal-range"
    ),
    "hull": lambda net, b: BoundedReluPartitionFormulation(net, b, n_partitions=10_000),
}


def build(formulation, output: int, sense) -> pyo.ConcreteModel:
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(formulation)
    m.obj = pyo.Objective(expr=m.nn.outputs[output], sense=sense)
    return m


def optimize(case: dict, make, sense, solver: str = "highs"):
    f = make(case["net"], case["bounds"])
    m = build(f, case["output"], sense)
    res = solve(m, solver, **EXACT)
    assert res.status == "optimal", str(res)
    x = np.array([pyo.value(m.nn.inputs[i]) for i in range(case["lo"].size)])
    return res, x, m, f


def forward(case: dict, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return case["model"](torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)).numpy()


def n_binaries(m: pyo.ConcreteModel) -> int:
    return sum(1 for v in m.component_data_objects(pyo.Var) if v.is_binary())


@pytest.fixture(scope="module")
def reference(exported: dict) -> dict:
    """HiGHS + big-M optima (min, max) and sampled extremes per net."""
    ref = {}
    for name, case in exported.items():
        ref[name] = {}
        for sense in (pyo.minimize, pyo.maximize):
            res, x, _, _ = optimize(case, FORMULATIONS["bigm"], sense)
            ref[name][sense] = res.objective
        rng = np.random.default_rng(7)
        lo, hi = case["lo"], case["hi"]
        xs = lo + (hi - lo) * rng.random((N_SAMPLES, lo.size))
        ys = forward(case, xs)[:, case["output"]]
        ref[name]["samples"] = (float(ys.min()), float(ys.max()))
    return ref


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("form", list(FORMULATIONS))
def test_highs_optimum_matches_forward_and_samples(exported, reference, name, form):
    case = exported[name]
    for sense in (pyo.minimize, pyo.maximize):
        res, x, m, f = optimize(case, FORMULATIONS[form], sense)
        assert res.objective == pytest.approx(reference[name][sense], rel=OPT_RTOL, abs=OPT_ATOL)
        y = forward(case, x)[0, case["output"]]
        assert res.objective == pytest.approx(y, rel=OPT_RTOL, abs=OPT_ATOL)
        assert n_binaries(m) == f.n_binaries == case["bounds"].unstable_count()
    smin, smax = reference[name]["samples"]
    assert smin >= reference[name][pyo.minimize] - SAMPLE_TOL * (1 + abs(smin))
    assert smax <= reference[name][pyo.maximize] + SAMPLE_TOL * (1 + abs(smax))


@pytest.mark.parametrize(
    ("solver", "names", "forms"),
    [
        ("gurobi", ["d2w20", "d3w10"], ["bigm", "partition2"]),
        ("scip", ["d2w6"], ["bigm", "partition2"]),
    ],
)
def test_other_solvers_agree(exported, reference, solver, names, forms):
    pytest.importorskip({"gurobi": "gurobipy", "scip": "pyscipopt"}[solver])
    for name in names:
        case = exported[name]
        for form in forms:
            for sense in (pyo.minimize, pyo.maximize):
                res, x, _, _ = optimize(case, FORMULATIONS[form], sense, solver)
                want = reference[name][sense]
                assert res.objective == pytest.approx(want, rel=OPT_RTOL, abs=OPT_ATOL), form
                y = forward(case, x)[0, case["output"]]
                assert res.objective == pytest.approx(y, rel=OPT_RTOL, abs=OPT_ATOL)


def test_bounds_never_looser_than_stored_or_omlt(exported):
    case = exported["d3w10"]
    f = BoundedReluBigMFormulation(case["net"], case["bounds"])
    build(f, 0, pyo.minimize)
    stock = pyo.ConcreteModel()
    stock.nn = OmltBlock()
    stock.nn.build_formulation(ReluBigMFormulation(case["net"]))
    stock_layers = list(stock.nn.layer.values())[1:-1]
    for k, blk in enumerate(stock_layers):
        lo_used, up_used = f.bounds_used.lower[k], f.bounds_used.upper[k]
        assert np.all(lo_used >= case["bounds"].lower[k])
        assert np.all(up_used <= case["bounds"].upper[k])
        omlt_lo = np.array([blk.zhat[j].lb for j in sorted(blk.zhat)])
        omlt_up = np.array([blk.zhat[j].ub for j in sorted(blk.zhat)])
        # OMLT rounds its interval bounds to float32 (weights are float32 arrays)
        slack = FLOAT32_SLACK * (1 + np.abs(omlt_lo) + np.abs(omlt_up))
        assert np.all(lo_used >= omlt_lo - slack)
        assert np.all(up_used <= omlt_up + slack)
    # stock OMLT spends a binary on every hidden neuron; we only on unstable ones
    assert n_binaries(stock) == sum(case["bounds"].widths) > f.n_binaries


def test_stable_neurons_have_no_binary_and_exact_relu(exported):
    case = exported["d2w20"]
    f = BoundedReluBigMFormulation(case["net"], case["bounds"])
    m = build(f, 0, pyo.maximize)
    for k, blk in enumerate(list(m.nn.layer.values())[1:-1]):
        lo, up = f.bounds_used.lower[k], f.bounds_used.upper[k]
        assert sorted(blk.stable_active) == [j for j in range(lo.size) if lo[j] >= 0 < up[j]]
        assert sorted(blk.unstable) == sorted(blk.sigma) == [
            j for j in range(lo.size) if lo[j] < 0 < up[j]
        ]
        for j in blk.stable_inactive:
            assert blk.z[j].lb == blk.z[j].ub == 0.0


def test_component_names_deterministic(exported):
    case = exported["d2w6"]

    def names() -> list[str]:
        m = build(BoundedReluPartitionFormulation(case["net"], case["bounds"]), 0, pyo.minimize)
        return [c.name for c in m.component_data_objects(descend_into=True)]

    first = names()
    assert first == names()
    assert not any(str(i) in n for n in first for i in (id(case["net"]),))
    assert "nn.layer[1].z[0]" in first


def test_pyomo_only_and_indexes(exported):
    case = exported["d2w6"]
    f = BoundedReluBigMFormulation(case["net"], case["bounds"])
    stock = ReluBigMFormulation(case["net"])
    assert f.pyomo_only is True
    assert f.input_indexes == list(stock.input_indexes)
    assert f.output_indexes == list(stock.output_indexes)


def test_partition_one_group_is_bigm(exported):
    case = exported["d2w6"]
    m = build(BoundedReluPartitionFormulation(case["net"], case["bounds"], n_partitions=1),
              0, pyo.minimize)
    assert hasattr(m.nn.layer[1], "relu_upper_sigma")
    assert not hasattr(m.nn.layer[1], "neuron")


def test_partition_callable_split(exported):
    case = exported["d2w6"]

    def halves(w: np.ndarray, n: int) -> list[np.ndarray]:
        return np.array_split(np.arange(w.size), n)

    make = lambda net, b: BoundedReluPartitionFormulation(net, b, n_partitions=2, split=halves)  # noqa: E731
    res, _, _, _ = optimize(case, make, pyo.maximize)
    best, _, _, _ = optimize(case, FORMULATIONS["bigm"], pyo.maximize)
    assert res.objective == pytest.approx(best.objective, rel=OPT_RTOL, abs=OPT_ATOL)


# -- clear errors -----------------------------------------------------------------------------


def test_bounds_of_other_width_rejected(exported):
    case = exported["d2w6"]
    with pytest.raises(BoundsMismatchError, match="belong to another network"):
        BoundedReluBigMFormulation(case["net"], exported["d2w20"]["bounds"])


def test_bounds_of_same_shape_other_weights_rejected(exported):
    case = exported["d2w6"]
    seed, n_in, widths, _ = SMALL["d2w6"]
    other = random_net(seed + 100, n_in, widths)
    nb = sound_bounds(other, case["lo"], case["hi"])
    with pytest.raises(BoundsMismatchError, match="belong to another network"):
        BoundedReluPartitionFormulation(case["net"], nb)
    # fingerprinted bounds exported for another same-shape network
    wrong = sound_bounds(case["model"], case["lo"], case["hi"])
    wrong.meta["network_sha256"] = "0" * 64
    with pytest.raises(BoundsMismatchError, match="another network"):
        BoundedReluBigMFormulation(case["net"], wrong)


def test_bounds_over_smaller_box_rejected(exported):
    case = exported["d2w6"]
    mid = (case["lo"] + case["hi"]) / 2
    nb = sound_bounds(case["model"], case["lo"], mid)
    with pytest.raises(BoundsMismatchError, match="does not contain"):
        BoundedReluBigMFormulation(case["net"], nb)


def test_network_without_input_bounds_rejected(exported):
    case = exported["d2w6"]
    bare = NetworkDefinition(scaled_input_bounds=None)
    for layer in case["net"].layers:
        bare.add_layer(layer)
    layers = list(case["net"].layers)
    for a, b in itertools.pairwise(layers):
        bare.add_edge(a, b)
    with pytest.raises(ValueError, match="no input bounds"):
        BoundedReluBigMFormulation(bare, case["bounds"])


def test_bad_partition_arguments(exported):
    case = exported["d2w6"]
    with pytest.raises(ValueError, match="n_partitions must be at least 1"):
        BoundedReluPartitionFormulation(case["net"], case["bounds"], n_partitions=0)
    with pytest.raises(ValueError, match="unknown split 'random'"):
        BoundedReluPartitionFormulation(case["net"], case["bounds"], split="random")


@pytest.mark.parametrize("bounds", ["crown", "lp"])
def test_nearly_dead_neurons_stay_feasible(tmp_path, bounds):
    """A regularized CSTR surrogate whose training left first-layer neurons with weights of 1e-8 to
    1e-10 (HiGHS drops coefficients below 1e-9) and bounds ~1e-7 wide: HiGHS presolve declared
    its MILP infeasible while the stably inactive neurons' zhat carried those bounds."""
    sd = torch.load(DATA / "nearly_dead_neurons_3x50x50x4.pt", weights_only=True)
    model = nn.Sequential(
        nn.Linear(3, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 4)
    )
    model.load_state_dict(sd)
    model = model.double()
    lo, hi = -np.ones(3), np.ones(3)
    path = tmp_path / "dead.onnx"
    export_onnx(model, path, (lo, hi), bounds=bounds)
    net, nb = load_onnx(path)
    for output, sense in [(0, pyo.minimize), (3, pyo.maximize)]:
        case = {"net": net, "bounds": nb, "output": output, "lo": lo, "hi": hi, "model": model}
        res, x, _, _ = optimize(case, FORMULATIONS["bigm"], sense)
        assert res.objective == pytest.approx(forward(case, x)[0, output], rel=1e-6, abs=1e-6)
