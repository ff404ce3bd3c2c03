"""The ``omlt-relax`` command: demo and bench end to end on tiny settings, train -> solve on a CSV,
and bad input that must end with exit status 2 and one clear line (no traceback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from omlt_relax.cli import EXIT_USAGE, main

TINY_DEMO = ["--epochs", "3", "--hidden", "8,8", "--time-limit", "5", "--n-train", "200",
             "--quiet"]


def _csv(path, n: int = 120, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2
    with open(path, "w") as fh:
        fh.write("a,b,y\n")
        for row in np.column_stack([x, y]):
            fh.write(",".join(f"{v:.6f}" for v in row) + "\n")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_demo_tiny(tmp_path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), *TINY_DEMO]) == 0
    rec = json.loads((tmp_path / "demo.json").read_text())
    assert set(rec["runs"]) == {"unregularized", "relaxation-informed"}
    for run in rec["runs"].values():
        assert {"min", "max"} <= set(run["milp"])
        assert run["test_rmse"] > 0
    assert rec["speedup"] > 0 and rec["rmse_ratio"] > 0
    assert (tmp_path / "demo.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "speed-up" in out and "relaxation-informed" in out


def test_bench_tiny(tmp_path, capsys) -> None:
    args = ["bench", "--out", str(tmp_path), "--functions", "himmelblau",
            "--variants", "unregularized,rs_xiao", "--epochs", "2", "--hidden", "6,6",
            "--time-limit", "5", "--n-train", "150", "--quiet"]
    assert main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["entries"]) == {"himmelblau/unregularized", "himmelblau/rs_xiao"}
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert (tmp_path / "results.md").read_text().count("| rs_xiao |") == 2
    # rerun resumes (nothing to do) and still succeeds
    assert main(args) == 0
    assert "2 entries" in capsys.readouterr().out


def test_train_then_solve(tmp_path, capsys) -> None:
    csv = tmp_path / "d.csv"
    _csv(csv)
    onnx = tmp_path / "net.onnx"
    assert main(["train", str(csv), "--out", str(onnx), "--hidden", "6,6", "--epochs", "5",
                 "--regularize", "bigm", "--lb=-1,-1", "--ub", "1,1", "--quiet"]) == 0
    assert onnx.is_file() and (tmp_path / "net.onnx.bounds.json").is_file()
    report = tmp_path / "r.json"
    assert main(["solve", str(onnx), "--time-limit", "10", "--compare-omlt", "--json",
                 str(report)]) == 0
    rep = json.loads(report.read_text())
    by = {(r["formulation"], r["sense"]): r for r in rep["results"]}
    assert len(by) == 4
    for s in ("min", "max"):
        ours, stock = by[("bounded", s)], by[("omlt", s)]
        assert ours["status"] == stock["status"] == "optimal"
        assert ours["objective"] == pytest.approx(stock["objective"], rel=1e-5, abs=1e-6)
        assert ours["n_binaries"] <= stock["n_binaries"]
        assert ours["n_binaries"] == rep["unstable"] == sum(rep["unstable_per_layer"])
    assert len(rep["unstable_per_layer"]) == 2
    out = capsys.readouterr().out
    assert "stock OMLT" in out
    per = "/".join(str(c) for c in rep["unstable_per_layer"])
    assert f"{rep['unstable']} of 12 hidden neurons unstable (per layer {per})" in out
    # the default start (local search from the best forward passes) is a feasible point:
    # never better than the optimum
    for r in rep["results"]:
        assert r["start"] == "local" and r["start_objective"] is not None
        sign = 1.0 if r["sense"] == "min" else -1.0
        assert sign * (r["start_objective"] - r["objective"]) >= -1e-6
    # the same MILPs without it: the same optima
    report2 = tmp_path / "r2.json"
    assert main(["solve", str(onnx), "--time-limit", "10", "--mip-start", "none", "--json",
                 str(report2)]) == 0
    for r in json.loads(report2.read_text())["results"]:
        assert r["status"] == "optimal" and r["start"] is None and r["start_objective"] is None
        assert r["objective"] == pytest.approx(by[("bounded", r["sense"])]["objective"],
                                               rel=1e-5, abs=1e-6)



@pytest.mark.parametrize(("solver", "formulation"),
                         [("gurobi", "bigm"), ("scip", "bigm"), ("highs", "partition"),
                          ("gurobi", "partition")])
def test_solve_with_another_solver_or_the_partition_formulation(tmp_path, capsys, solver,
                                                                formulation) -> None:
    """``--solver`` and ``--formulation``: the same optima as HiGHS on big-M, each equal to the
    network's forward pass (onnxruntime) at the reported minimizer / maximizer."""
    import onnxruntime as ort

    pytest.importorskip({"highs": "highspy", "gurobi": "gurobipy", "scip": "pyscipopt"}[solver])
    csv, onnx = tmp_path / "d.csv", tmp_path / "net.onnx"
    _csv(csv)
    assert main(["train", str(csv), "--out", str(onnx), "--hidden", "8,6", "--epochs", "5",
                 "--lb=-1,-1", "--ub", "1,1", "--quiet"]) == 0
    reports = {}
    for name, extra in (("ref", []), ("new", ["--solver", solver, "--formulation", formulation,
                                              "--partitions", "3"])):
        reports[name] = tmp_path / f"{name}.json"
        assert main(["solve", str(onnx), "--time-limit", "30", "--mip-start", "none",
                     "--json", str(reports[name]), *extra]) == 0
    ref = {r["sense"]: r for r in json.loads(reports["ref"].read_text())["results"]}
    rep = json.loads(reports["new"].read_text())
    assert rep["solver"] == solver
    sess = ort.InferenceSession(str(onnx))
    for r in rep["results"]:
        assert r["formulation"] == ("partition" if formulation == "partition" else "bounded")
        assert r["status"] == "optimal"
        assert r["objective"] == pytest.approx(ref[r["sense"]]["objective"], rel=1e-5, abs=1e-6)
        x = np.asarray([r["x"]], np.float64)  # the exported network is float64
        y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        assert r["objective"] == pytest.approx(float(y[0, 0]), rel=1e-5, abs=1e-5)
        assert r["n_binaries"] == rep["unstable"]  # no binary for a stable neuron either way
    out = capsys.readouterr().out
    assert {"gurobi": "Gurobi", "scip": "SCIP", "highs": "HiGHS"}[solver] + ", 1 thread" in out
    if formulation == "partition":
        assert "omlt_relax partition (3)" in out


def test_solve_compares_partition_with_stock_omlt_partition(tmp_path, capsys) -> None:
    """``--formulation partition --compare-omlt``: stock OMLT's ``ReluPartitionFormulation`` into
    the same groups beside ours; the same optima, each equal to onnxruntime's forward pass at the
    reported input, ours with a binary per unstable neuron and stock OMLT's with one per neuron."""
    import onnxruntime as ort

    csv, onnx, report = tmp_path / "d.csv", tmp_path / "net.onnx", tmp_path / "r.json"
    _csv(csv)
    assert main(["train", str(csv), "--out", str(onnx), "--hidden", "8,6", "--epochs", "5",
                 "--lb=-1,-1", "--ub", "1,1", "--quiet"]) == 0
    assert main(["solve", str(onnx), "--time-limit", "30", "--formulation", "partition",
                 "--partitions", "3", "--compare-omlt", "--json", str(report)]) == 0
    rep = json.loads(report.read_text())
    by = {(r["formulation"], r["sense"]): r for r in rep["results"]}
    assert set(by) == {(f, s) for f in ("partition", "omlt_partition") for s in ("min", "max")}
    sess = ort.InferenceSession(str(onnx))
    for s in ("min", "max"):
        ours, stock = by[("partition", s)], by[("omlt_partition", s)]
        assert ours["status"] == stock["status"] == "optimal"
        assert ours["objective"] == pytest.approx(stock["objective"], rel=1e-5, abs=1e-6)
        assert ours["n_binaries"] == rep["unstable"] and stock["n_binaries"] == 14
        for r in (ours, stock):
            y = sess.run(None, {sess.get_inputs()[0].name: np.asarray([r["x"]], np.float64)})[0]
            assert r["objective"] == pytest.approx(float(y[0, 0]), rel=1e-5, abs=1e-5)
    out = capsys.readouterr().out
    assert "omlt_relax partition (3)" in out and "stock OMLT partition (3)" in out


def test_solve_names_the_way_out_when_gurobi_cannot_take_the_model(tmp_path, capsys) -> None:
    """Gurobi's size-limited pip licence: a clear error that names ``--solver highs``."""
    gp = pytest.importorskip("gurobipy")
    try:  # a full licence takes the model: nothing to test here
        with gp.Env(params={"OutputFlag": 0}) as env, gp.Model(env=env) as m:
            m.addVars(2001)
            m.optimize()
        pytest.skip("this Gurobi licence is not size-limited")
    except gp.GurobiError:
        pass
    csv, onnx = tmp_path / "d.csv", tmp_path / "big.onnx"
    _csv(csv, n=60)
    assert main(["train", str(csv), "--out", str(onnx), "--hidden", "1100", "--epochs", "1",
                 "--bounds", "ibp", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["solve", str(onnx), "--solver", "gurobi", "--sense", "min",
                 "--mip-start", "none"]) == EXIT_USAGE
    line = _error_line(capsys)
    assert "size-limited licence" in line and f"omlt-relax solve {onnx} --solver highs" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "{missing}", "--out", "{out}"], "no CSV file"),
        (["train", "{csv}", "--out", "{out}", "--n-inputs", "3"], "--n-inputs must be between"),
        (["train", "{badrows}", "--out", "{out}"], "line 3 has 2 columns but the header has 3"),
        (["train", "{csv}", "--out", "{out}", "--lb", "0,0,0"], "--lb has 3 values"),
        (["train", "{csv}", "--out", "{out}", "--lb", "1,1", "--ub", "0,2"], "inverted"),
        (["train", "{csv}", "--out", "{out}", "--inputs", "a,zz"], "column 'zz' is not in"),
        (["train", "{csv}", "--out", "{out}", "--epochs", "0"], "--epochs must be at least 1"),
        (["solve", "{missing}"], "no ONNX file"),
        (["solve", "{csv}"], "is not an ONNX network"),
        (["solve", "{csv}", "--partitions", "0"], "--partitions must be at least 1"),
        (["solve", "{csv}", "--solver", "cplex"], "invalid choice: 'cplex'"),
        (["bench", "--functions", "nope", "--out", "{out}"], "unknown function 'nope'"),
        (["bench", "--variants", "magic", "--out", "{out}"], "unknown variant 'magic'"),
        (["demo", "--time-limit", "-1", "--out", "{out}"], "--time-limit must be a positive"),
        (["demo", "--hidden", "5,x", "--out", "{out}"], "--hidden must be"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_with_one_line(tmp_path, capsys, args, needle) -> None:
    csv = tmp_path / "d.csv"
    _csv(csv, n=30)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,3\n4,5\n")
    fmt = {"missing": str(tmp_path / "nope.csv"), "out": str(tmp_path / "o.onnx"),
           "csv": str(csv), "badrows": str(bad)}
    argv = [a.format(**fmt) for a in args]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    assert code == EXIT_USAGE
    line = _error_line(capsys)
    assert "error" in line
    assert needle in line


@pytest.mark.skipif(shutil.which("omlt-relax") is None, reason="console script not installed")
def test_console_script_reports_missing_file_without_traceback(tmp_path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run(
        [sys.executable, "-m", "omlt_relax.cli", "solve", str(tmp_path / "missing.onnx")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert p.returncode == EXIT_USAGE
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("omlt-relax solve: error: no ONNX file")
