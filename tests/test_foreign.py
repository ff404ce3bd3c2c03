"""Foreign networks: OMLT's Keras test model, Gemm/MatMul files written here, torch-exported nets.

Every MILP optimum is compared with stock OMLT's and with onnxruntime at the MILP's solution;
bounds are checked by sampling; unsupported graphs and bad boxes give one clear error each.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyomo.environ as pyo
import pytest
import torch
from conftest import random_net, sample_box
from omlt import OmltBlock
from omlt.io import load_onnx_neural_network_with_bounds
from omlt.io.input_bounds import write_input_bounds
from omlt.io.onnx import load_onnx_neural_network
from omlt.neuralnet import ReluBigMFormulation
from onnx import TensorProto, helper, numpy_helper

from omlt_relax import (
    BoundedReluBigMFormulation,
    BoundedReluPartitionFormulation,
    UnsupportedNetworkError,
    from_network_definition,
    load_onnx,
    read_onnx,
    tighten_onnx,
)
from omlt_relax.cli import EXIT_USAGE, main
from omlt_relax.export import METADATA_KEY
from omlt_relax.solve import solve

OMLT_DATA = Path(__file__).parent / "data" / "omlt"
KERAS_131 = OMLT_DATA / "keras_linear_131_relu.onnx"
#: Optima of two formulations agree to this (relative to 1 + |value|).
OPT_RTOL = 1e-6
#: float32 onnxruntime against the float64 chain, relative to 1 + |value|.
ORT_RTOL = 1e-5
#: Sampled pre-activations may exceed float64 bounds by float64 rounding only.
SAMPLE_TOL = 1e-9


def run_ort(model: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs for ``x`` (cast to the graph's input type)."""
    proto = onnx.load(str(model)) if isinstance(model, Path) else model
    elem = proto.graph.input[0].type.tensor_type.elem_type
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    feed = {sess.get_inputs()[0].name: np.atleast_2d(x).astype(dtype)}
    return np.asarray(sess.run(None, feed)[0], dtype=np.float64)


def optimum(net, form, sense) -> tuple[float, np.ndarray]:
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(form)
    m.obj = pyo.Objective(expr=m.nn.outputs[0], sense=sense)
    res = solve(m, mip_gap=1e-9)
    assert res.status == "optimal", str(res)
    return res.objective, np.array([pyo.value(v) for v in m.nn.inputs.values()])


def check_against_omlt(fn, x_check: Path | onnx.ModelProto, methods=("lp",)) -> None:
    """Ours (bounded big-M, partition) = stock OMLT = onnxruntime at x*, both senses."""
    stock_net = load_onnx_neural_network(fn.onnx_model, input_bounds=fn.net.scaled_input_bounds)
    for method in methods:
        nb = fn.bounds(method)
        for sense in (pyo.minimize, pyo.maximize):
            ref, _ = optimum(stock_net, ReluBigMFormulation(stock_net), sense)
            for form in (BoundedReluBigMFormulation(fn.net, nb),
                         BoundedReluPartitionFormulation(fn.net, nb)):
                val, x = optimum(fn.net, form, sense)
                assert val == pytest.approx(ref, rel=OPT_RTOL, abs=OPT_RTOL)
                f = run_ort(x_check, x)[0, 0]
                assert val == pytest.approx(f, rel=ORT_RTOL, abs=ORT_RTOL)


def check_sound(fn, nb, n: int = 2000) -> None:
    """Every sampled pre-activation lies in the bounds; the chain equals onnxruntime."""
    x = sample_box(fn.lower, fn.upper, n)
    z = x
    for k, (w, b) in enumerate(fn.chain[:-1]):
        zh = z @ w.T + b
        tol = SAMPLE_TOL * (1 + np.abs(zh))
        assert (zh >= nb.lower[k] - tol).all() and (zh <= nb.upper[k] + tol).all()
        z = np.maximum(zh, 0.0)
    ref = run_ort(fn.onnx_model, x)
    np.testing.assert_allclose(fn.forward(x), ref, rtol=ORT_RTOL, atol=ORT_RTOL)


# -- files written here ----------------------------------------------------------------------------


def dense_onnx(style: str, sizes: list[int], seed: int = 0, head: str | None = None,
               static_batch: bool = False) -> onnx.ModelProto:
    """A float32 dense ReLU net as ONNX: ``style`` "matmul" (MatMul+Add), "gemm0"/"gemm1"
    (transB 0/1), "gemm_defaults" (no attributes, nameless nodes), "gemm_scaled" (alpha, beta)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "x"
    for k in range(len(sizes) - 1):
        n_in, n_out = sizes[k], sizes[k + 1]
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
        b = (0.3 * rng.standard_normal(n_out)).astype(np.float32)
        out = f"h{k}"
        name = "" if style == "gemm_defaults" else f"dense{k}"
        if style == "matmul":
            inits += [numpy_helper.from_array(w.T.copy(), f"W{k}"),
                      numpy_helper.from_array(b, f"b{k}")]
            nodes += [helper.make_node("MatMul", [x, f"W{k}"], [f"m{k}"], name=f"{name}/MatMul"),
                      helper.make_node("Add", [f"m{k}", f"b{k}"], [out], name=f"{name}/Add")]
        else:
            trans = 1 if style in ("gemm1", "gemm_scaled") else 0
            inits += [numpy_helper.from_array(w if trans else w.T.copy(), f"W{k}"),
                      numpy_helper.from_array(b, f"b{k}")]
            attrs = {} if style == "gemm_defaults" else {"alpha": 1.0, "beta": 1.0, "transB": trans}
            if style == "gemm_scaled":
                attrs.update(alpha=0.5, beta=2.0)
            nodes.append(helper.make_node("Gemm", [x, f"W{k}", f"b{k}"], [out], name=name,
                                          **attrs))
        x = out
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [out], [f"r{k}"], name="" if not name else
                                          f"{name}/Relu"))
            x = f"r{k}"
    y = "y"
    if head is not None:
        nodes.append(helper.make_node(head, [x], [y], name="head", axis=1))
    else:
        nodes[-1].output[0] = y
    batch = 1 if static_batch else "batch"
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, sizes[0]])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [batch, sizes[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path, box=None) -> Path:
    onnx.save_model(model, str(path))
    if box is not None:
        write_input_bounds(f"{path}.bounds.json", [(float(a), float(b)) for a, b in zip(*box)])
    return path


BOX3 = (np.array([-1.0, -2.0, 0.0]), np.array([1.0, 0.5, 1.5]))


# -- OMLT's Keras model ------------------------------------------------------------------------


def test_omlt_keras_131_with_sidecar(tmp_path) -> None:
    path = tmp_path / "k.onnx"
    shutil.copy(KERAS_131, path)
    write_input_bounds(f"{path}.bounds.json", [(-1.0, 1.0)])
    fn = read_onnx(path)
    assert fn.hidden_widths == (3,)
    assert fn.lower.tolist() == [-1.0] and fn.upper.tolist() == [1.0]
    for method in ("ibp", "crown", "lp", "milp"):
        check_sound(fn, fn.bounds(method))
    check_against_omlt(fn, path, methods=("lp", "milp"))


# -- Gemm / MatMul files written here ------------------------------------------------------------


@pytest.mark.parametrize("style", ["matmul", "gemm0", "gemm1", "gemm_defaults", "gemm_scaled"])
def test_dense_styles_match_omlt_and_onnxruntime(tmp_path, style) -> None:
    path = save(dense_onnx(style, [3, 8, 6, 1], seed=1), tmp_path / "n.onnx", BOX3)
    fn = read_onnx(path)
    assert fn.hidden_widths == (8, 6)
    nb = fn.bounds("lp")
    check_sound(fn, nb)
    assert nb.unstable_count() <= fn.bounds("crown").unstable_count()
    check_against_omlt(fn, path)


def test_all_styles_give_the_same_chain(tmp_path) -> None:
    chains = [read_onnx(dense_onnx(s, [3, 5, 2], seed=2), BOX3).chain
              for s in ("matmul", "gemm0", "gemm1", "gemm_defaults")]
    for c in chains[1:]:
        for (w, b), (w0, b0) in zip(c, chains[0]):
            np.testing.assert_array_equal(w, w0)
            np.testing.assert_array_equal(b, b0)


def test_identity_nodes_are_ignored() -> None:
    plain = dense_onnx("gemm1", [3, 5, 2], seed=7)
    model = dense_onnx("gemm1", [3, 5, 2], seed=7)
    g = model.graph
    relu = next(n for n in g.node if n.op_type == "Relu")
    last = g.node[-1]
    relu.output[0], last.output[0] = "r_raw", "y_raw"
    g.node.insert(2, helper.make_node("Identity", ["r_raw"], [last.input[0]], name="mid"))
    g.node.append(helper.make_node("Identity", ["y_raw"], ["y"], name="out"))
    onnx.checker.check_model(model)
    fn = read_onnx(model, BOX3)
    assert {n.op_type for n in fn.onnx_model.graph.node} == {"Gemm", "Relu"}
    x = sample_box(*BOX3, 50)
    np.testing.assert_allclose(fn.forward(x), run_ort(plain, x), rtol=ORT_RTOL, atol=ORT_RTOL)
    np.testing.assert_allclose(run_ort(model, x), run_ort(plain, x), rtol=0, atol=0)


# -- a torch-exported network without our metadata -------------------------------------------------


@pytest.fixture
def torch_file(tmp_path) -> Path:
    """``torch.onnx.export(dynamo=False)`` of a float32 2-12-10-1 net, static batch of 1."""
    net = random_net(2, [12, 10], seed=3, dtype=torch.float32).eval()
    path = tmp_path / "torch.onnx"
    torch.onnx.export(net, torch.zeros(1, 2), str(path), dynamo=False)
    write_input_bounds(f"{path}.bounds.json", [(-2.0, 1.0), (-1.0, 3.0)])
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_export_then_tighten(torch_file, tmp_path) -> None:
    fn = read_onnx(torch_file)  # the static batch dimension is made dynamic for OMLT
    assert fn.hidden_widths == (12, 10)
    check_against_omlt(fn, torch_file)
    out = tmp_path / "tight.onnx"
    nb = tighten_onnx(torch_file, out, bounds="lp")
    check_sound(fn, nb)
    plain = load_onnx_neural_network_with_bounds(str(out))  # plain OMLT still loads it
    assert plain.scaled_input_bounds == {0: (-2.0, 1.0), 1: (-1.0, 3.0)}
    net, stored = load_onnx(out)
    for a, b in zip(stored.lower + stored.upper, nb.lower + nb.upper):
        np.testing.assert_array_equal(a, b)
    assert stored.method == "lp" and stored.meta["network_sha256"] == nb.meta["network_sha256"]
    val, x = optimum(net, BoundedReluBigMFormulation(net, stored), pyo.maximize)
    assert val == pytest.approx(run_ort(torch_file, x)[0, 0], rel=ORT_RTOL, abs=ORT_RTOL)


def test_network_definition_intake() -> None:
    omlt_net = load_onnx_neural_network(onnx.load(str(KERAS_131)))  # no box
    with pytest.raises(ValueError, match="no input bounds.*pass input_bounds"):
        from_network_definition(omlt_net)
    fn = from_network_definition(omlt_net, ([-0.5], [2.0]))
    assert fn.net.scaled_input_bounds == {0: (-0.5, 2.0)}
    nb = fn.bounds("lp")
    val, x = optimum(fn.net, BoundedReluBigMFormulation(fn.net, nb), pyo.maximize)
    assert -0.5 - 1e-6 <= x[0] <= 2.0 + 1e-6
    assert val == pytest.approx(run_ort(KERAS_131, x)[0, 0], rel=ORT_RTOL, abs=ORT_RTOL)
    with pytest.raises(ValueError, match="2 entries but the network has 1 inputs"):
        from_network_definition(omlt_net, ([0.0, 0.0], [1.0, 1.0]))


# -- softmax heads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["Softmax", "LogSoftmax"])
def test_softmax_head_refused_or_dropped(tmp_path, head) -> None:
    model = dense_onnx("gemm1", [3, 6, 4], seed=4, head=head)
    with pytest.raises(UnsupportedNetworkError, match=f"node 3 '{head}' .*logits=True"):
        read_onnx(model, BOX3)
    fn = read_onnx(model, BOX3, logits=True)
    assert fn.dropped_head == head
    logits = dense_onnx("gemm1", [3, 6, 4], seed=4)  # the same net without the head
    x = sample_box(*BOX3, 50)
    np.testing.assert_allclose(fn.forward(x), run_ort(logits, x), rtol=ORT_RTOL, atol=ORT_RTOL)
    check_against_omlt(fn, logits)


# -- clear errors ----------------------------------------------------------------------------------


def _with_node(op: str) -> onnx.ModelProto:
    model = dense_onnx("gemm1", [3, 4, 1], seed=5)
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type, relu.name = op, f"my{op}"
    return model


def test_unsupported_ops_named(tmp_path) -> None:
    for op in ("Sigmoid", "Tanh"):
        with pytest.raises(UnsupportedNetworkError, match=f"node 1 '{op}' \\(my{op}\\).*Relu"):
            read_onnx(_with_node(op), BOX3)
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "k"], ["c"], name="conv1"),
         helper.make_node("Flatten", ["c"], ["y"], name="flat")],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 9])],
        [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "k")])
    model = helper.make_model(conv, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedNetworkError, match="node 0 'Conv' \\(conv1\\).*Gemm"):
        read_onnx(model, BOX3)


def test_missing_and_wrong_boxes(tmp_path) -> None:
    path = save(dense_onnx("gemm1", [3, 4, 1]), tmp_path / "n.onnx")
    with pytest.raises(ValueError, match="input box of .* is missing .*write_input_bounds"):
        read_onnx(path)
    with pytest.raises(ValueError, match="2 entries but the network has 3 inputs"):
        read_onnx(path, ([0.0, 0.0], [1.0, 1.0]))
    write_input_bounds(f"{path}.bounds.json", [(0.0, 1.0)] * 2)
    with pytest.raises(ValueError, match="sidecar .* has 2 entries but the network has 3 inputs"):
        read_onnx(path)
    with pytest.raises(ValueError, match="inverted"):
        read_onnx(path, ([0.0, 2.0, 0.0], [1.0, 1.0, 1.0]))


# -- the CLI ---------------------------------------------------------------------------------------


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_cli_solve_foreign_and_tighten(tmp_path, capsys) -> None:
    path = save(dense_onnx("matmul", [3, 8, 1], seed=6), tmp_path / "n.onnx", BOX3)
    assert main(["solve", str(path), "--time-limit", "20", "--bounds", "crown"]) == 0
    out = capsys.readouterr().out
    assert "has no omlt_relax bounds: computing CROWN bounds (--bounds crown) on the fly" in out
    assert "optimal" in out
    tight = tmp_path / "t.onnx"
    assert main(["tighten", str(path), "--out", str(tight), "--bounds", "ibp"]) == 0
    assert METADATA_KEY in {p.key for p in onnx.load(str(tight)).metadata_props}
    assert main(["solve", str(tight), "--sense", "max"]) == 0
    assert "under the stored ibp bounds" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ([], "input box of .* is missing"),
        (["--lb=0,0", "--ub=1,1"], "2 entries but the network has 3 inputs"),
        (["--lb=0,0,0"], "give both --lb and --ub"),
        (["--sigmoid"], "node 1 'Sigmoid'"),
        (["--softmax"], "node 3 'Softmax'"),
    ],
)
@pytest.mark.parametrize("cmd", ["solve", "tighten"])
def test_cli_errors_exit_2(tmp_path, capsys, cmd, extra, needle) -> None:
    if "--sigmoid" in extra:
        model = _with_node("Sigmoid")
    elif "--softmax" in extra:
        model = dense_onnx("gemm1", [3, 4, 2], head="Softmax")
    else:
        model = dense_onnx("gemm1", [3, 4, 1])
    path = save(model, tmp_path / "n.onnx", None if not extra[:1] or "--lb" in extra[0]
                else BOX3)
    args = [a for a in extra if not a.startswith("--s")]
    argv = [cmd, str(path), *args, *(["--out", str(tmp_path / "o.onnx")] if cmd == "tighten"
                                     else [])]
    assert main(argv) == EXIT_USAGE
    line = _error_line(capsys)
    assert line.startswith(f"omlt-relax {cmd}: error: ")
    assert re.search(needle, line), line
    assert not (tmp_path / "o.onnx").exists()
