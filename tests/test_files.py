"""Load-time soundness checks and files that are never half-written (issue 10, items 4-5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import onnx
import pytest
from conftest import random_net

from omlt_relax import BoundsMismatchError, NeuronBounds, export_onnx, load_onnx
from omlt_relax import export as export_mod
from omlt_relax.export import METADATA_KEY
from omlt_relax.files import (
    EXPORT_ID_FIELD,
    EXPORT_ID_KEY,
    lock_path,
    save_torch_atomic,
    sidecar_path,
    write_text_atomic,
)

LO, HI = np.array([-1.0, -2.0]), np.array([1.5, 2.0])


@pytest.fixture
def pair(tmp_path):
    path = tmp_path / "net.onnx"
    export_onnx(random_net(2, [12, 10], seed=0), path, (LO, HI), bounds="lp")
    return path


def _snapshot(path):
    return path.read_bytes(), sidecar_path(path).read_bytes()


def _edit_bounds(path, fn):
    onx = onnx.load(path)
    props = {p.key: p.value for p in onx.metadata_props}
    nb = NeuronBounds.from_json(props[METADATA_KEY])
    fn(nb)
    props[METADATA_KEY] = nb.to_json()
    onnx.helper.set_model_props(onx, props)
    onnx.save(onx, path)


# -- item 4: load-time soundness -------------------------------------------------------------
def test_first_layer_shrunk_by_a_percent_is_refused(pair):
    def shrink(nb):
        mid = (nb.lower[0] + nb.upper[0]) / 2
        nb.lower[0] = mid + 0.99 * (nb.lower[0] - mid)
        nb.upper[0] = mid + 0.99 * (nb.upper[0] - mid)

    _edit_bounds(pair, shrink)
    with pytest.raises(BoundsMismatchError, match=r"hidden layer 1 neuron \d+: .*off by"):
        load_onnx(pair)


def test_first_layer_exact_check_accepts_exported_bounds(pair):
    _net, nb = load_onnx(pair)
    assert nb.method == "lp"


def test_deeper_layer_shrunk_is_refused(pair):
    def collapse(nb):
        nb.upper[1] = nb.lower[1] + 0.01 * (nb.upper[1] - nb.lower[1])

    _edit_bounds(pair, collapse)
    with pytest.raises(BoundsMismatchError, match=r"layer 2 neuron \d+ takes the value .* by"):
        load_onnx(pair)


# -- item 5: atomic files, export id, lock ---------------------------------------------------
def test_sidecar_has_export_id_and_plain_omlt_loads_it(pair):
    from omlt.io import load_onnx_neural_network_with_bounds

    entries = json.loads(sidecar_path(pair).read_text())
    props = {p.key: p.value for p in onnx.load(pair).metadata_props}
    assert {e[EXPORT_ID_FIELD] for e in entries} == {props[EXPORT_ID_KEY]}
    net = load_onnx_neural_network_with_bounds(str(pair))
    assert net.scaled_input_bounds == {0: (-1.0, 1.5), 1: (-2.0, 2.0)}
    assert sorted(os.listdir(pair.parent)) == ["net.onnx", "net.onnx.bounds.json"]
    assert lock_path(pair).parent != pair.parent


@pytest.mark.parametrize("exc", [RuntimeError("onnxruntime disagrees"), KeyboardInterrupt()])
def test_failed_or_interrupted_export_keeps_previous_pair(pair, monkeypatch, exc):
    before = _snapshot(pair)

    def boom(*_a, **_k):
        raise exc

    monkeypatch.setattr(export_mod, "check_onnxruntime", boom)
    with pytest.raises(type(exc)):
        export_onnx(random_net(2, [5], seed=9), pair, (LO, HI), bounds="ibp")
    assert _snapshot(pair) == before
    assert sorted(os.listdir(pair.parent)) == ["net.onnx", "net.onnx.bounds.json"]
    load_onnx(pair)



class _Unpicklable:
    """Stands for a save that fails (or is interrupted) halfway through the file."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __reduce__(self):
        raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_single_file_write_leaves_the_old_file(tmp_path, monkeypatch, exc):
    """Records, reports and stored networks: the old file stays whole and no temporary is left."""
    import pathlib

    import torch

    net, rec = tmp_path / "net.pt", tmp_path / "rec.json"
    save_torch_atomic({"w": torch.ones(3)}, net)
    write_text_atomic(rec, '{"ok": 1}')
    with pytest.raises(type(exc)):
        save_torch_atomic({"w": torch.zeros(3), "bad": _Unpicklable(exc)}, net)
    real_write = pathlib.Path.write_text

    def torn_write(self, data, *a, **k):  # half the text reaches the disk, then the failure
        real_write(self, data[: len(data) // 2], *a, **k)
        raise exc

    monkeypatch.setattr(pathlib.Path, "write_text", torn_write)
    with pytest.raises(type(exc)):
        write_text_atomic(rec, '{"ok": 2}')
    monkeypatch.undo()
    assert torch.equal(torch.load(net)["w"], torch.ones(3))
    assert json.loads(rec.read_text()) == {"ok": 1}
    assert sorted(os.listdir(tmp_path)) == ["net.pt", "rec.json"]


def test_mismatched_pair_is_refused_naming_both_files(pair, tmp_path):
    other = tmp_path / "other.onnx"
    export_onnx(random_net(2, [12, 10], seed=0), other, (LO, HI), bounds="lp")
    sidecar_path(pair).write_bytes(sidecar_path(other).read_bytes())  # same box, other export
    with pytest.raises(BoundsMismatchError) as e:
        load_onnx(pair)
    assert "net.onnx (export" in str(e.value) and "net.onnx.bounds.json (export" in str(e.value)
    assert "different exports" in str(e.value)


def test_concurrent_exports_leave_one_consistent_pair(tmp_path):
    path = tmp_path / "net.onnx"
    models = [random_net(2, [6, 6], seed=s) for s in range(4)]
    errors = []

    def run(m):
        try:
            export_onnx(m, path, (LO, HI), bounds="ibp")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    net, nb = load_onnx(path)
    from omlt_relax.chain import network_chain

    w = network_chain(net)[0][0]
    assert any(np.allclose(w, m[0].weight.detach().numpy()) for m in models)
    assert sorted(os.listdir(tmp_path)) == ["net.onnx", "net.onnx.bounds.json"]


@pytest.mark.slow  # a real SIGINT to a subprocess; the in-process path is test_ctrl_c_in_process
def test_ctrl_c_during_train_exits_130_and_keeps_files(tmp_path):
    csv = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 2))
    np.savetxt(csv, np.column_stack([x, x[:, 0] * x[:, 1]]), delimiter=",", header="a,b,y",
               comments="")
    out = tmp_path / "net.onnx"
    export_onnx(random_net(2, [4], seed=1), out, (LO, HI), bounds="ibp")
    before = _snapshot(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "omlt_relax.cli", "train", str(csv), "--out", str(out),
         "--epochs", "100000", "--hidden", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    seen = ""
    while "epoch" not in seen:  # the progress bar: training has started
        ch = proc.stderr.read(1)
        assert ch, f"the command ended before training: {seen}"
        seen += ch
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert "Traceback" not in err and lines[-1].startswith("omlt-relax train: interrupted")
    assert _snapshot(out) == before


def test_ctrl_c_in_process(pair, monkeypatch, capsys):
    from omlt_relax import cli

    before = _snapshot(pair)

    def interrupted(_a):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_solve", interrupted)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_solve(parser(), interrupted))
    assert cli.main(["solve", str(pair)]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("omlt-relax solve: interrupted") and len(err.splitlines()) == 1
    assert _snapshot(pair) == before


def _with_solve(parser, fn):
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.choices["solve"].set_defaults(func=fn)
    return parser
