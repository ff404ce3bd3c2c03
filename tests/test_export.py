"""export_onnx / load_onnx: file contents, round trips through plain OMLT, and clear refusals."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import onnx
import pyomo.environ as pyo
import pytest
import torch
from omlt import OmltBlock
from omlt.io import load_onnx_neural_network_with_bounds
from omlt.io.input_bounds import load_input_bounds, write_input_bounds
from omlt.neuralnet import ReluBigMFormulation
from torch import nn

from omlt_relax import IncrementalQuantileHead, NeuronBounds
from omlt_relax.bounds import crown_bounds, sound_bounds
from omlt_relax.export import METADATA_KEY, export_onnx, load_onnx
from omlt_relax.formulations import BoundedReluBigMFormulation, BoundedReluPartitionFormulation
from omlt_relax.neuron_bounds import BoundsMismatchError
from omlt_relax.solve import solve

OPT_RTOL = 1e-6
OPT_ATOL = 1e-7
LO = np.array([-1.0, -2.0])
HI = np.array([1.5, 0.5])


def mlp(seed: int, sizes: list[int]) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods[:-1])


@pytest.fixture
def model() -> nn.Sequential:
    return mlp(0, [2, 16, 12, 1])


@pytest.fixture
def exported(tmp_path, model):
    path = tmp_path / "net.onnx"
    bounds = export_onnx(model, path, (LO, HI), bounds="crown")
    return path, bounds


def optimum(formulation, sense, output=0) -> tuple[float, pyo.ConcreteModel]:
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(formulation)
    m.obj = pyo.Objective(expr=m.nn.outputs[output], sense=sense)
    res = solve(m, mip_gap=1e-9)
    assert res.status == "optimal", str(res)
    return res.objective, m


def test_files_graph_and_metadata(exported, tmp_path, model):
    path, bounds = exported
    assert sorted(os.listdir(tmp_path)) == ["net.onnx", "net.onnx.bounds.json"]  # no .data file
    onx = onnx.load(path)
    assert {n.op_type for n in onx.graph.node} == {"Gemm", "Relu"}
    (inp,) = onx.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[0].dim_value == 0  # dynamic batch axis
    assert dims[1].dim_value == 2
    props = {p.key: p.value for p in onx.metadata_props}
    stored = json.loads(props[METADATA_KEY])
    assert stored["format"] == "omlt_relax.NeuronBounds" and stored["version"] >= 1
    assert stored["method"] == "crown" and len(stored["meta"]["network_sha256"]) == 64
    # OMLT's own reader sees the box
    assert load_input_bounds(f"{path}.bounds.json") == {0: (-1.0, 1.5), 1: (-2.0, 0.5)}
    # stored bounds are the float64 sound CROWN bounds, which contain the float32 ones
    ref = sound_bounds(model, LO, HI)
    f32 = crown_bounds(model, LO, HI)
    for k in range(2):
        np.testing.assert_array_equal(bounds.lower[k], ref.lower[k])
        np.testing.assert_array_equal(np.asarray(stored["upper"][k]), ref.upper[k])
        assert np.all(bounds.lower[k] <= f32.lower[k].detach().double().numpy() + 1e-6)


def test_plain_omlt_round_trip_same_optimum(exported):
    path, _ = exported
    plain = load_onnx_neural_network_with_bounds(str(path))
    assert plain.scaled_input_bounds == {0: (-1.0, 1.5), 1: (-2.0, 0.5)}
    net, bounds = load_onnx(path)
    for sense in (pyo.minimize, pyo.maximize):
        stock, _ = optimum(ReluBigMFormulation(plain), sense)
        ours, _ = optimum(BoundedReluBigMFormulation(net, bounds), sense)
        part, _ = optimum(BoundedReluPartitionFormulation(net, bounds), sense)
        assert ours == pytest.approx(stock, rel=OPT_RTOL, abs=OPT_ATOL)
        assert part == pytest.approx(stock, rel=OPT_RTOL, abs=OPT_ATOL)


def test_quantile_head_round_trip(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(3, 10), nn.ReLU(), nn.Linear(10, 6), IncrementalQuantileHead()
    )
    lo, hi = -np.ones(3), np.ones(3)
    path = tmp_path / "q.onnx"
    export_onnx(model, path, (lo, hi), bounds="crown")
    onx = onnx.load(path)
    assert [n.op_type for n in onx.graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    assert onx.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    net, bounds = load_onnx(path)
    assert bounds.widths == (10, 6)
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(BoundedReluBigMFormulation(net, bounds))
    m.obj = pyo.Objective(expr=sum(m.nn.outputs[j] for j in range(6)) / 6, sense=pyo.maximize)
    res = solve(m, mip_gap=1e-9)
    x = np.array([pyo.value(m.nn.inputs[i]) for i in range(3)])
    with torch.no_grad():
        q = model.double()(torch.as_tensor(x)[None])[0].numpy()
    assert res.objective == pytest.approx(q.mean(), rel=OPT_RTOL, abs=OPT_ATOL)
    qs = np.array([pyo.value(m.nn.outputs[j]) for j in range(6)])
    np.testing.assert_allclose(qs, q, rtol=1e-6, atol=1e-7)
    assert np.all(np.diff(qs) >= -1e-7)  # quantiles do not cross


def test_float64_model_and_given_bounds(tmp_path):
    model = mlp(1, [2, 8, 3]).double()
    nb = sound_bounds(model, LO, HI, method="ibp")
    out = export_onnx(model, tmp_path / "d.onnx", (LO, HI), bounds=nb)
    assert out.method == "ibp"
    onx = onnx.load(tmp_path / "d.onnx")
    assert onx.graph.initializer[0].data_type == onnx.TensorProto.DOUBLE
    net, back = load_onnx(tmp_path / "d.onnx")
    np.testing.assert_array_equal(back.upper[0], nb.upper[0])


def test_lp_bounds_when_obbt_exists(tmp_path, model):
    pytest.importorskip("omlt_relax.bounds.obbt")
    nb = export_onnx(model, tmp_path / "lp.onnx", (LO, HI), bounds="lp")
    crown = sound_bounds(model, LO, HI)
    for k in range(2):
        assert np.all(nb.lower[k] >= crown.lower[k]) and np.all(nb.upper[k] <= crown.upper[k])
    net, back = load_onnx(tmp_path / "lp.onnx")
    assert back.method == nb.method
    f = BoundedReluBigMFormulation(net, back)
    lp_min, m = optimum(f, pyo.minimize)
    n_bin = sum(1 for v in m.component_data_objects(pyo.Var) if v.is_binary())
    assert n_bin == f.n_binaries == back.unstable_count()
    plain = load_onnx_neural_network_with_bounds(str(tmp_path / "lp.onnx"))
    stock, _ = optimum(ReluBigMFormulation(plain), pyo.minimize)
    assert lp_min == pytest.approx(stock, rel=OPT_RTOL, abs=OPT_ATOL)


# -- clear errors -----------------------------------------------------------------------------


def test_model_without_input_bounds(tmp_path, model):
    with pytest.raises(ValueError, match="input bounds are missing"):
        export_onnx(model, tmp_path / "x.onnx", None, bounds="crown")
    with pytest.raises(ValueError, match="3 entries but the network has 2 inputs"):
        export_onnx(model, tmp_path / "x.onnx", (np.zeros(3), np.ones(3)), bounds="crown")
    with pytest.raises(ValueError, match="unknown bounds 'exact'"):
        export_onnx(model, tmp_path / "x.onnx", (LO, HI), bounds="exact")
    assert not (tmp_path / "x.onnx").exists()


def test_given_bounds_of_another_network(tmp_path, model):
    other = sound_bounds(mlp(5, [2, 16, 12, 1]), LO, HI)
    with pytest.raises(BoundsMismatchError, match="belong to another network"):
        export_onnx(model, tmp_path / "x.onnx", (LO, HI), bounds=other)


def test_torch_and_onnxruntime_disagree(tmp_path):
    class Shifted(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1.0

    torch.manual_seed(0)
    model = Shifted(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(RuntimeError, match="onnxruntime and torch disagree"):
        export_onnx(model, tmp_path / "s.onnx", (LO, HI), bounds="crown")
    assert os.listdir(tmp_path) == []


def test_missing_sidecar(exported):
    path, _ = exported
    os.remove(f"{path}.bounds.json")
    with pytest.raises(ValueError, match=r"sidecar .*net\.onnx\.bounds\.json is missing"):
        load_onnx(path)


def test_bounds_file_for_another_network(tmp_path, exported):
    path, _ = exported
    other = tmp_path / "other.onnx"
    export_onnx(mlp(9, [2, 16, 12, 1]), other, (LO, HI), bounds="crown")
    onx = onnx.load(path)
    theirs = {p.key: p.value for p in onnx.load(other).metadata_props}
    mine = {p.key: p.value for p in onx.metadata_props}
    onnx.helper.set_model_props(onx, {**mine, METADATA_KEY: theirs[METADATA_KEY]})
    onnx.save(onx, path)
    with pytest.raises(BoundsMismatchError, match="belong to another network"):
        load_onnx(path)


def test_sidecar_for_another_network(tmp_path, exported):
    path, _ = exported
    write_input_bounds(f"{path}.bounds.json", [(-1.0, 1.0)] * 3)
    with pytest.raises(ValueError, match="2 inputs but 3 input bounds"):
        load_onnx(path)
    write_input_bounds(f"{path}.bounds.json", [(-5.0, 5.0), (-2.0, 0.5)])
    with pytest.raises(BoundsMismatchError, match="does not contain"):
        load_onnx(path)


def test_unsupported_op(exported):
    path, _ = exported
    onx = onnx.load(path)
    onx.graph.node[1].op_type = "LeakyRelu"
    onnx.save(onx, path)
    msg = r"unsupported ONNX op 'LeakyRelu' in node 1 \(layer1\.relu\)"
    with pytest.raises(ValueError, match=msg):
        load_onnx(path)


def test_missing_and_garbled_metadata(exported):
    path, _ = exported
    onx = onnx.load(path)
    del onx.metadata_props[:]
    onnx.save(onx, path)
    with pytest.raises(ValueError, match="no 'omlt_relax.neuron_bounds' metadata"):
        load_onnx(path)
    onnx.helper.set_model_props(onx, {METADATA_KEY: '{"format": "omlt_relax.Neuron'})
    onnx.save(onx, path)
    with pytest.raises(BoundsMismatchError, match="not valid bounds JSON"):
        load_onnx(path)
    bad = NeuronBounds([np.zeros(16)], [np.ones(16)], "crown", LO, HI).to_json()
    onnx.helper.set_model_props(onx, {METADATA_KEY: bad})
    onnx.save(onx, path)
    with pytest.raises(BoundsMismatchError, match=r"widths \[16\] but the network has \[16, 12\]"):
        load_onnx(path)
