"""The paper-scale suite (``omlt-relax bench --suite scale``): one tiny run end to end with real
HiGHS, and the report's arithmetic (speed-ups, bounds, equal accuracy, Pareto) on made-up
entries whose answers are worked out by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import load_script

from omlt_relax.bench.scale import (
    REPORT_FILE,
    REPORT_JSON,
    ScaleConfig,
    accuracy_levels,
    entry_key,
    equal_accuracy,
    fmt_bound,
    geomean_flag,
    markdown_report,
    pareto_front,
    parse_sizes,
    records,
    run_scale,
    same_architecture,
    time_cell,
)
from omlt_relax.bench.suite import RESULTS_FILE
from omlt_relax.cli import main
from omlt_relax.train import TrainConfig, build_model

#: Relative agreement of two optimal objectives of the same network / of a forward pass.
OBJ_TOL = 1e-6


def _tiny(epochs: int = 3) -> ScaleConfig:
    return ScaleConfig(
        functions=["peaks"], variants=["bigm+stability"], scales={"bigm+stability": [1e-3]},
        sizes=[[6, 6]], train=TrainConfig(epochs=epochs), n_train=200, n_val=50, n_test=200,
        time_limit=30.0, obbt_time_limit=10.0,
    )


def test_scale_suite_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = run_scale(_tiny(), tmp_path, progress=False)
    base_key = entry_key("peaks", [6, 6], "unregularized", 0.0)
    reg_key = entry_key("peaks", [6, 6], "bigm+stability", 1e-3)
    assert set(res["entries"]) == {base_key, reg_key}
    base = res["entries"][base_key]
    assert "stock" not in res["entries"][reg_key]
    stock = base["stock"]
    # stock OMLT: a binary for every hidden neuron; ours none for a stable one
    assert stock["n_binaries"] == 12
    model = build_model(2, [6, 6], 1, 0).to(torch.float64)
    model.load_state_dict(torch.load(tmp_path / "models" / "peaks__2x6__unregularized_0.pt"))
    for sense in ("min", "max"):
        a, b = stock["milp"][sense], base["milp"][sense]
        assert a["status"] == b["status"] == "optimal"
        # the stock objective is the network's value at its incumbent (forward pass here) ...
        with torch.no_grad():
            fx = float(model(torch.tensor([a["x"]], dtype=torch.float64))[0, 0])
        scale = 1 + abs(fx)
        assert abs(fx - a["objective"]) <= OBJ_TOL * scale
        assert abs(a["forward"] - fx) <= OBJ_TOL * scale
        assert a["forward_error"] <= OBJ_TOL * scale
        # ... and the same optimum as our pipeline finds on the same network
        assert abs(a["objective"] - b["objective"]) <= 1e-5 * scale
    for f in (REPORT_FILE, REPORT_JSON, "scale_peaks.png", RESULTS_FILE):
        assert (tmp_path / f).is_file(), f
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert [r["key"] for r in report["per_network"]] == [base_key, reg_key]
    assert "stock OMLT" in (tmp_path / REPORT_FILE).read_text()
    # resuming with the same settings trains nothing; other settings are refused
    again = run_scale(_tiny(), tmp_path, progress=False)
    assert again["entries"][base_key]["train_time"] == base["train_time"]
    with pytest.raises(ValueError, match="different configuration"):
        run_scale(_tiny(epochs=4), tmp_path, progress=False)
    # benchmarks/bench_repeats.py re-solves the folder's networks; a baseline named among
    # --keys is solved again and becomes the reference of its function and size
    repeats = load_script("benchmarks/bench_repeats.py")
    monkeypatch.setattr(sys, "argv", [
        "bench_repeats.py", "--out", str(tmp_path), "--repeats", "2", "--time-limit", "30",
        "--keys", f"{reg_key},{base_key}", "--tag", "t"])
    repeats.main()
    rows = {r["key"]: r for r in json.loads(
        (tmp_path / "repeats_ours_highs_t.json").read_text())["rows"]}
    assert (tmp_path / "repeats_ours_highs_t.md").is_file()
    reg, again_base = rows[reg_key], rows[base_key]
    assert again_base["statuses"] == reg["statuses"] == ["optimal"]
    assert len(reg["times"]) == 2 and reg["min"] <= reg["median"] <= reg["max"]
    assert reg["baseline_from"] == "this run" and again_base["baseline_from"] == "suite"
    assert reg["speedup_median"] == repeats.speedup(again_base["median"], False, reg["median"])
    assert again_base["speedup_median"] == "–"  # a baseline has no ratio to itself
    for rep in reg["per_sense"]:  # each sense's solve, the summed time being the repeat's
        assert set(rep) == {"min", "max"} and rep["min"][1] == rep["max"][1] == "optimal"
    assert reg["times"][0] == pytest.approx(sum(v[0] for v in reg["per_sense"][0].values()))


def test_repeats_take_a_baseline_that_hit_the_cap_as_a_lower_bound() -> None:
    repeats = load_script("benchmarks/bench_repeats.py")
    rows = [
        {"key": "f/3x100/v@1e-05", "baseline": "f/3x100/unregularized", "median": 2.0,
         "statuses": ["optimal"], "speedup_median": "30×", "baseline_from": "suite"},
        {"key": "g/3x100/v@1e-05", "baseline": "g/3x100/unregularized", "median": 2.0,
         "statuses": ["optimal"], "speedup_median": "7×", "baseline_from": "suite"},
        {"key": "f/3x100/w@1e-06", "baseline": "f/3x100/unregularized", "median": 3600.1,
         "statuses": ["optimal", "time_limit"], "speedup_median": "2×", "baseline_from": "suite"},
        {"key": "f/3x100/unregularized", "baseline": None, "median": 7200.4,
         "statuses": ["optimal", "time_limit"], "speedup_median": "–", "baseline_from": "suite"},
    ]
    out = {r["key"]: r for r in repeats.rebase_on_this_run(rows)}
    assert out["f/3x100/v@1e-05"]["speedup_median"] == "≥3,600×"
    assert out["f/3x100/v@1e-05"]["baseline_from"] == "this run"
    # no baseline solved in this run: the suite's ratio stands
    assert out["g/3x100/v@1e-05"]["speedup_median"] == "7×"
    assert out["g/3x100/v@1e-05"]["baseline_from"] == "suite"
    assert out["f/3x100/unregularized"]["speedup_median"] == "–"
    # the network stopped at the cap too: both sides are bounds, not a measurement
    assert out["f/3x100/w@1e-06"]["speedup_median"] == "~2×"


def test_job_progress_counts_every_training_epoch() -> None:
    """A local run shows each network's epochs: ``scale_job`` reports exactly
    :func:`job_epochs` of them, the starting network's included the first time and not once
    this process has it."""
    from omlt_relax.bench import scale as bscale

    cfg = ScaleConfig(functions=["peaks"], variants=["stability_ftd"],
                      scales={"stability_ftd": [1e-3]}, sizes=[[6, 6]],
                      train=TrainConfig(epochs=4), n_train=200, n_val=50, n_test=200,
                      time_limit=30.0, obbt_time_limit=10.0)
    bscale._BASELINES.clear()
    first = bscale.job_epochs(cfg, "peaks", [6, 6], "stability_ftd")
    seen: list[int] = []
    bscale.scale_job(cfg, "peaks", [6, 6], "stability_ftd", 1e-3, progress=seen.append)
    assert sum(seen) == first == 4 + 2  # the plain network's 4, then the recipe's half
    again = bscale.job_epochs(cfg, "peaks", [6, 6], "stability_ftd")
    seen.clear()
    bscale.scale_job(cfg, "peaks", [6, 6], "stability_ftd", 2e-3, progress=seen.append)
    assert sum(seen) == again == 2
    assert bscale.job_epochs(cfg, "peaks", [6, 6], "unregularized") == 4
    bscale._BASELINES.clear()


def test_snapped_networks_are_what_is_measured_and_the_change_is_certified(
        tmp_path: Path) -> None:
    """``snap_weights``: the MILPs, the test RMSE and the saved model are the zeroed network's;
    the recorded change bound holds at sampled points; results written before the setting
    existed resume as "off", and a snapped folder refuses an unsnapped run."""
    from dataclasses import replace

    from omlt_relax.bench.suite import function_data
    from omlt_relax.train import fit

    cfg = replace(_tiny(), variants=["unregularized"], stock=False, snap_weights=0.2)
    res = run_scale(cfg, tmp_path, progress=False)
    e = res["entries"]["peaks/2x6/unregularized"]
    snap = e["snap"]
    assert snap["zeroed"] > 0 and snap["change_bound"] > 0
    model = build_model(2, [6, 6], 1, 0).to(torch.float64)
    model.load_state_dict(torch.load(tmp_path / "models" / "peaks__2x6__unregularized_0.pt"))
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert sum(int((m.weight == 0).sum()) for m in lins) >= snap["zeroed"]
    fn, data = function_data(cfg, "peaks")
    orig = fit(data, "unregularized", 0.0, replace(cfg.train, hidden=(6, 6))).model
    x = torch.as_tensor(data.x_test, dtype=torch.float64)
    with torch.no_grad():
        diff = (model(x) - orig(x)).abs().max().item()
        rmse = float(((model(x)[:, 0] - torch.as_tensor(data.y_test).reshape(-1)) ** 2)
                     .mean().sqrt())
    assert 0 < diff <= snap["change_bound"]
    assert rmse == pytest.approx(e["test_rmse"], rel=1e-9)
    assert e["test_rmse"] != pytest.approx(snap["test_rmse_unsnapped"], rel=1e-9)
    for sense in ("min", "max"):
        m = e["milp"][sense]
        with torch.no_grad():
            fx = float(model(torch.tensor([m["x"]], dtype=torch.float64))[0, 0])
        assert m["status"] == "optimal" and abs(fx - m["objective"]) <= OBJ_TOL * (1 + abs(fx))
    assert "zeroing its weights below 0.2" in (tmp_path / REPORT_FILE).read_text()
    with pytest.raises(ValueError, match="different configuration"):
        run_scale(replace(cfg, snap_weights=None), tmp_path, progress=False)
    # a results file from before the setting existed resumes with it off
    path = tmp_path / RESULTS_FILE
    old = json.loads(path.read_text())
    del old["meta"]["config"]["snap_weights"]
    old["meta"]["config"]["stock"] = False
    path.write_text(json.dumps(old))
    again = run_scale(replace(cfg, snap_weights=0.0), tmp_path, progress=False)
    assert again["entries"]["peaks/2x6/unregularized"]["train_time"] == e["train_time"]
    with pytest.raises(ValueError, match="snap_weights must be in"):
        replace(cfg, snap_weights=1.5)


def _milp(t: float, hit: bool) -> dict[str, Any]:
    return {"time": t, "status": "feasible" if hit else "optimal", "gap": 0.5 if hit else 0.0}


def _entry(size: str, variant: str, scale: float, rmse: float, t: float, hit: bool,
           stock: tuple[float, bool] | None = None) -> tuple[str, dict[str, Any]]:
    hidden = [100] * int(size[0])
    e: dict[str, Any] = {
        "function": "peaks", "size": size, "hidden": hidden, "variant": variant, "scale": scale,
        "test_rmse": rmse, "unstable_obbt": 10, "neurons": sum(hidden), "obbt_time": 1.0,
        "train_time": 1.0, "time_total": t, "solved_all": not hit,
        "milp": {"min": _milp(t / 2, hit), "max": _milp(t / 2, False)},
    }
    if stock is not None:
        e["stock"] = {"time_total": stock[0], "solved_all": not stock[1],
                      "milp": {"min": _milp(stock[0] / 2, stock[1]),
                               "max": _milp(stock[0] / 2, False)}}
    return entry_key("peaks", hidden, variant, scale), e


def _synthetic() -> dict[str, Any]:
    rows = [
        _entry("2x100", "unregularized", 0.0, 0.020, 1200.0, True, (1200.0, True)),
        _entry("3x100", "unregularized", 0.0, 0.015, 800.0, False, (1200.0, True)),
        _entry("2x100", "bigm+stability", 1e-4, 0.024, 2.0, False),   # A
        _entry("3x100", "bigm+stability", 1e-4, 0.016, 10.0, False),  # B
        _entry("3x100", "bigm+stability", 1e-3, 0.050, 0.1, False),   # C
        _entry("2x100", "stability", 1e-5, 0.010, 50.0, False),       # D: best accuracy
    ]
    return {"meta": {}, "entries": dict(rows)}


def test_report_logic_on_synthetic_entries() -> None:
    results = _synthetic()
    recs = records(results["entries"])
    by = {r["key"]: r for r in recs}
    a, b, c, d = (f"peaks/{k}" for k in ("2x100/bigm+stability@0.0001",
                                        "3x100/bigm+stability@0.0001",
                                        "3x100/bigm+stability@0.001", "2x100/stability@1e-05"))
    u2, u3 = "peaks/2x100/unregularized", "peaks/3x100/unregularized"
    assert set(by) == {a, b, c, d, u2, u3}

    eq = {e["net"]["key"]: e for e in equal_accuracy(recs)}
    # A: both unregularized nets are as accurate; the fastest (b) is 3x100 (800 s, solved)
    assert eq[a]["base_b"]["key"] == u3
    assert eq[a]["vs_b"] == (pytest.approx(400.0), "")
    # vs (a): both stock solves hit the limit -> a lower bound
    assert eq[a]["vs_a"] == (pytest.approx(600.0), "≥")
    assert eq[b]["base_b"]["key"] == u3 and eq[b]["vs_b"][0] == pytest.approx(80.0)
    assert eq[c]["vs_b"][0] == pytest.approx(8000.0)
    assert eq[d]["base_b"] is None and eq[d]["vs_b"] is None  # more accurate than all

    same = {s["size"]: s for s in same_architecture(recs)}
    assert same["2x100"]["best"]["key"] == a  # D is within 1.25x too, but slower
    assert same["3x100"]["best"]["key"] == b  # C is faster but 3.3x the RMSE

    lev = {x["level"]["key"]: x for x in accuracy_levels(recs)}
    assert lev[u2]["best"]["key"] == b and lev[u2]["vs_b"] == (pytest.approx(120.0), "≥")
    assert lev[u3]["best"]["key"] == d and lev[u3]["vs_b"] == (pytest.approx(16.0), "")

    assert [r["key"] for r in pareto_front(recs, "peaks")] == [d, b, a, c]

    text = markdown_report(results)
    assert "≥600×" in text  # A vs stock OMLT
    assert "none as accurate" in text  # D
    assert "≥600 (gap 50%) + 600" in text  # 2x100 unregularized: min hit the limit, max solved


def test_a_control_is_an_accuracy_level_not_a_candidate() -> None:
    """``unregularized_ftd`` (plain training, longer) counts as an unregularized network for
    equal accuracy and accuracy levels, never as a relaxation-informed candidate."""
    results = _synthetic()
    key, e = _entry("3x100", "unregularized_ftd", 0.0, 0.009, 1.0, False)
    assert key == "peaks/3x100/unregularized_ftd"
    results["entries"][key] = e
    recs = records(results["entries"])
    same = {s["size"]: s for s in same_architecture(recs)}
    assert same["3x100"]["best"]["key"] == "peaks/3x100/bigm+stability@0.0001"  # not the control
    eq = {x["net"]["key"]: x for x in equal_accuracy(recs)}
    assert key not in eq
    d = "peaks/2x100/stability@1e-05"
    assert eq[d]["base_b"]["key"] == key and eq[d]["vs_b"] == (pytest.approx(0.02), "")
    lev = {x["level"]["key"]: x for x in accuracy_levels(recs)}
    assert lev[key]["best"] is None  # nothing relaxation-informed is as accurate as 0.009
    cfg = ScaleConfig(functions=["peaks"], sizes=[[5]], variants=["unregularized_ftd"],
                      scales={"unregularized_ftd": [1e-3]})
    assert cfg.scales["unregularized_ftd"] == [0.0]
    assert [j[0] for j in cfg.jobs()] == ["peaks/1x5/unregularized",
                                          "peaks/1x5/unregularized_ftd"]


def test_bounds_are_never_rounded_the_wrong_way() -> None:
    assert fmt_bound(1239.9, "≥") == "≥1,230×"
    assert fmt_bound(1231.0, "≤") == "≤1,240×"
    assert fmt_bound(0.59996, "≥") == "≥0.599×"
    assert fmt_bound(133.59, "≥", "x") == "≥133x"  # the demo's line: a lower bound, never ≥134x
    assert fmt_bound(133.59, "", "x") == "134x"
    assert time_cell(599.96, True) == "≥599"  # a limit-hit time is not shown as 600
    assert time_cell(12.345, False) == "12.3"
    assert geomean_flag([(100.0, "≥"), (1.0, "")]) == (pytest.approx(10.0), "≥")
    assert geomean_flag([(100.0, "≥"), (1.0, "≤")])[1] == "~"


def test_sizes_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert parse_sizes("2x100,3x100") == [[100, 100], [100, 100, 100]]
    assert parse_sizes("100,100;100,100,100") == [[100, 100], [100, 100, 100]]
    assert parse_sizes("50,20") == [[50, 20]]
    with pytest.raises(ValueError, match="cannot read the network size"):
        parse_sizes("2xabc")
    with pytest.raises(ValueError, match="positive"):
        ScaleConfig(scales={"stability": [-1.0]})
    assert main(["bench", "--suite", "scale", "--sizes", "0x5", "--out", str(tmp_path)]) == 2
    assert "at least one hidden layer" in capsys.readouterr().err
    assert main(["bench", "--suite", "scale", "--sizes", "2x5", "--hidden", "5,5",
                 "--out", str(tmp_path)]) == 2
    assert "give the network sizes once" in capsys.readouterr().err
