"""One clear line, exit status 2 and no traceback for every bad input of issue 10 (items 3, 6)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest import random_net
from onnx import numpy_helper

from omlt_relax import UnsupportedNetworkError, export_onnx
from omlt_relax.bench.data import Standardizer
from omlt_relax.cli import EXIT_USAGE, _one_line, main
from omlt_relax.data_io import DataError, read_csv

TRAIN = ["--epochs", "2", "--hidden", "4", "--quiet", "--bounds", "ibp"]


def _write(path, header, rows):
    path.write_text("\n".join([header, *(",".join(str(v) for v in r) for r in rows)]) + "\n")
    return path


def _data(tmp_path, header="a,b,y", n=40):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, 2))
    return _write(tmp_path / "d.csv", header, np.column_stack([x, x[:, 0] - x[:, 1] ** 2]))


def _fails(capsys, argv, *needles):
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"omlt-relax {argv[0]}: error: ")
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "net.onnx"
    export_onnx(random_net(2, [6, 6], seed=0), path, (np.zeros(2), np.ones(2)), bounds="crown")
    return path


# -- train -------------------------------------------------------------------------------------
def test_batch_size_zero(tmp_path, capsys):
    _fails(capsys, ["train", str(_data(tmp_path)), "--out", str(tmp_path / "n.onnx"),
                    "--batch-size", "0", *TRAIN], "--batch-size must be at least 1, got 0")


def test_out_under_a_regular_file(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    _fails(capsys, ["train", str(_data(tmp_path)), "--out", str(tmp_path / "file.txt" / "n.onnx"),
                    *TRAIN], "file.txt is a file, not a folder")


def test_duplicate_column_names(tmp_path, capsys):
    _fails(capsys, ["train", str(_data(tmp_path, "a,a,y")), "--out", str(tmp_path / "n.onnx"),
                    *TRAIN], "names two columns 'a' (columns 1 and 2)")


def test_missing_header_row(tmp_path, capsys):
    p = _data(tmp_path, "0.5,0.25,0.1")
    _fails(capsys, ["train", str(p), "--out", str(tmp_path / "n.onnx"), *TRAIN],
           "looks like data, not a header")


def test_bad_value_named_by_line_and_column(tmp_path):
    p = _write(tmp_path / "d.csv", "a,b,y", [[1, 2, 3], [1, 2, 3], [1, "abc", 3], [1, 2, 3]])
    with pytest.raises(DataError, match=r"line 4, column 'b': 'abc' is not a number"):
        read_csv(p)
    p = _write(tmp_path / "d.csv", "a,b,y", [[1, 2, 3], [1, "nan", 3]])
    with pytest.raises(DataError, match=r"line 3, column 'b' is 'nan'"):
        read_csv(p)


def test_targets_near_1e300_blame_the_data(tmp_path, capsys):
    rows = [[0.1 * i, 0.2 * i, 1e300 * (i % 3)] for i in range(30)]
    p = _write(tmp_path / "d.csv", "a,b,y", rows)
    err = _fails(capsys, ["train", str(p), "--out", str(tmp_path / "n.onnx"), *TRAIN],
                 "column 'y' has the value 1e+300", "the data are too large")
    assert "weight" not in err


def test_diverging_learning_rate_stops_training(tmp_path, capsys):
    out = tmp_path / "n.onnx"
    _fails(capsys, ["train", str(_data(tmp_path, n=200)), "--out", str(out), "--lr", "1e4",
                    "--epochs", "30", "--hidden", "8", "--quiet"],
           "training diverged", "--lr, now 10000")
    assert not out.exists()


def test_constant_column_is_centred_not_scaled(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 60)
    p = _write(tmp_path / "d.csv", "a,c,y", np.column_stack([x, np.full(60, 3.0), x**2]))
    out = tmp_path / "n.onnx"
    assert main(["train", str(p), "--out", str(out), "--lb=-1,0", "--ub=1,10",
                 "--epochs", "2", "--hidden", "4", "--bounds", "ibp"]) == 0
    err = capsys.readouterr().err
    assert "warning: input 'c' is constant (3) in the data but its box is [0, 10]" in err
    s = Standardizer.fit(np.column_stack([x, np.full(60, 3.0)]), x[:, None])
    assert s.x_std[1] == 1.0 and s.x_mean[1] == 3.0
    from omlt_relax import load_onnx
    from omlt_relax.chain import network_chain

    net, _ = load_onnx(out)
    assert np.abs(network_chain(net)[0][0]).max() < 1e3


# -- solve -------------------------------------------------------------------------------------
def test_negative_threads(onnx_file, capsys):
    _fails(capsys, ["solve", str(onnx_file), "--threads", "-1"], "--threads must be at least 1")


def test_library_solve_options_one_line():
    import pyomo.environ as pyo

    from omlt_relax import solve

    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1))
    m.o = pyo.Objective(expr=m.x)
    with pytest.raises(ValueError, match=r"^threads must be a whole number >= 1, got -2$"):
        solve(m, threads=-2)
    with pytest.raises(ValueError, match=r"^mip_gap must be a finite number >= 0 or None, got"):
        solve(m, mip_gap=-0.1)


def test_multi_line_messages_are_not_cut():
    assert _one_line(ValueError("first part\n  second part")) == "first part second part"


def test_zero_byte_onnx(tmp_path, capsys):
    (tmp_path / "e.onnx").write_bytes(b"")
    _fails(capsys, ["solve", str(tmp_path / "e.onnx")], "e.onnx is empty (0 bytes)")


def test_truncated_onnx(tmp_path, onnx_file, capsys):
    data = onnx_file.read_bytes()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) // 2])
    _fails(capsys, ["solve", str(tmp_path / "t.onnx")], "t.onnx is not an ONNX network")


def test_sidecar_not_json_names_the_file(tmp_path, onnx_file, capsys):
    p = tmp_path / "net.onnx"
    p.write_bytes(onnx_file.read_bytes())
    (tmp_path / "net.onnx.bounds.json").write_text("[{'key': 0,")
    _fails(capsys, ["solve", str(p)], "net.onnx.bounds.json is not valid JSON")


def test_float16_onnx_file(tmp_path, onnx_file, capsys):
    onx = onnx.load(onnx_file)
    for t in onx.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    p = tmp_path / "h.onnx"
    onnx.save(onx, p)
    (tmp_path / "h.onnx.bounds.json").write_bytes(
        (onnx_file.parent / "net.onnx.bounds.json").read_bytes())
    _fails(capsys, ["solve", str(p)], "is float16", "float32 or float64")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "mixed"])
def test_low_precision_and_mixed_models(tmp_path, dtype):
    model = random_net(2, [4], seed=0)
    if dtype == "mixed":
        model[0].float()
        match = "mixes float32 and float64"
    else:
        model = model.to(dtype)
        match = f"{str(dtype).replace('torch.', '')} parameters; .* model.float\\(\\)"
    with pytest.raises(UnsupportedNetworkError, match=match):
        export_onnx(model, tmp_path / "n.onnx", (np.zeros(2), np.ones(2)), bounds="ibp")


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    (tmp_path / "e.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        main(["--debug", "solve", str(tmp_path / "e.onnx")])
    monkeypatch.setenv("OMLT_RELAX_DEBUG", "1")
    with pytest.raises(ValueError, match="is empty"):
        main(["solve", str(tmp_path / "e.onnx")])


def test_unreliable_answer_exits_3_with_the_advice(onnx_file, monkeypatch, capsys):
    import dataclasses

    import omlt_relax.optimize as optimize

    real = optimize.solve_milp

    def contradicted(*a, **k):  # a real solve, then the verdict of a contradicted answer
        r = real(*a, **k)
        return dataclasses.replace(r, status="numerically_unreliable", discrepancy=1e9,
                                   note="the solver's objective differs ...; rescale the inputs")

    monkeypatch.setattr(optimize, "solve_milp", contradicted)
    assert main(["solve", str(onnx_file), "--sense", "min"]) == 3
    out, err = capsys.readouterr()
    assert "numerically_unreliable" in out
    assert err.strip().startswith("omlt-relax solve: error: min (bounded): the solver's objective")
