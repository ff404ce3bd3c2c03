"""The scale report's view of baselines solved again by ``benchmarks/bench_repeats.py``
(:mod:`omlt_relax.bench.resolves`), on synthetic suite entries and repeats files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omlt_relax.bench.resolves import (
    accuracy_levels_resolved,
    load_resolves,
    resolves_markdown,
    resolves_of_run,
    same_architecture_resolved,
)
from omlt_relax.bench.scale import (
    REPORT_FILE,
    REPORT_JSON,
    entry_key,
    records,
    same_architecture,
    write_scale_report,
)


def _entry(size: str, variant: str, scale: float, rmse: float, t: float,
           hit: bool) -> tuple[str, dict[str, Any]]:
    hidden = [100] * int(size[0])
    milp = {"time": t / 2, "status": "feasible" if hit else "optimal", "gap": 0.5 if hit else 0.0}
    return entry_key("peaks", hidden, variant, scale), {
        "function": "peaks", "size": size, "hidden": hidden, "variant": variant, "scale": scale,
        "test_rmse": rmse, "unstable_obbt": 10, "neurons": sum(hidden), "obbt_time": 1.0,
        "train_time": 1.0, "time_total": t, "solved_all": not hit,
        "milp": {"min": milp, "max": dict(milp)}}


U3 = entry_key("peaks", [100] * 3, "unregularized", 0.0)
U2 = entry_key("peaks", [100] * 2, "unregularized", 0.0)
A = entry_key("peaks", [100] * 3, "stability", 1e-5)  # 1.10x the RMSE, 12 s in the suite
B = entry_key("peaks", [100] * 3, "stability", 3e-5)  # 1.20x, 4 s in the suite
C = entry_key("peaks", [100] * 3, "stability", 1e-4)  # 2.00x: never within the ratio
D = entry_key("peaks", [100] * 2, "stability", 1e-5)  # 2x100: its baseline is not re-solved
E = entry_key("peaks", [100] * 3, "stability", 1e-6)  # 0.95x: more accurate than U3


def _results() -> dict[str, Any]:
    return {"meta": {}, "entries": dict([
        _entry("3x100", "unregularized", 0.0, 0.010, 1200.0, True),
        _entry("3x100", "stability", 1e-5, 0.011, 12.0, False),
        _entry("3x100", "stability", 3e-5, 0.012, 4.0, False),
        _entry("3x100", "stability", 1e-4, 0.020, 0.5, False),
        _entry("2x100", "unregularized", 0.0, 0.020, 300.0, False),
        _entry("2x100", "stability", 1e-5, 0.022, 3.0, False),
        _entry("3x100", "stability", 1e-6, 0.0095, 60.0, False),
    ])}


def _row(key: str, baseline: str | None, ratio: float, median: float,
         statuses: list[str]) -> dict[str, Any]:
    return {"key": key, "baseline": baseline, "error_ratio": ratio, "median": median,
            "times": [median], "statuses": statuses, "baseline_from": "this run"}


def _run(cap: float = 3600.0) -> dict[str, Any]:
    """A bench_repeats run that solved U3 again (stopped at the cap in one sense), A and C
    beside it, and D against the suite's 2x100 baseline (not solved in this run)."""
    return {"args": {"time_limit": cap}, "rows": [
        _row(A, U3, 1.1, 10.0, ["optimal"]),
        _row(C, U3, 2.0, 0.4, ["optimal"]),
        _row(D, U2, 1.1, 3.0, ["optimal"]),
        _row(U3, None, 1.0, 4800.0, ["feasible", "optimal"]),
    ]}


def test_only_ratios_measured_in_one_run_are_taken() -> None:
    res = _results()
    got = {r["net"]: r for r in resolves_of_run(_run(), res["entries"], "repeats_x.json")}
    # every network solved in the run against the baseline solved in it (U3 itself has no
    # ratio); D (2x100) is set against U3 (3x100) too, for the accuracy levels
    assert set(got) == {A, C, D} and {r["base"] for r in got.values()} == {U3}
    assert got[D]["base_size"] == "3x100" and got[D]["rmse_ratio"] == pytest.approx(2.2)
    assert got[A]["speedup"] == (pytest.approx(480.0), "≥")  # baseline stopped at the cap
    assert got[A]["base_time"] == 4800.0 and got[A]["cap"] == 3600.0
    assert got[C]["speedup"][0] == pytest.approx(12000.0)
    # a network that also stopped at the cap: both are bounds, not a measurement
    run = _run()
    run["rows"][0]["statuses"] = ["feasible"]
    assert {r["net"]: r for r in resolves_of_run(run, res["entries"])}[A]["speedup"][1] == "~"
    # a network no longer in the suite's results is left out
    assert {r["net"] for r in resolves_of_run(_run(), {})} == set()


def test_same_architecture_uses_the_resolved_baseline_where_there_is_one() -> None:
    res = _results()
    resolved = resolves_of_run(_run(), res["entries"], "repeats_x.json")
    suite = same_architecture(records(res["entries"]))
    same = {s["size"]: s for s in same_architecture_resolved(suite, resolved)}
    # 3x100: A's ratio against the 4800 s re-solve (C is faster but outside 1.25x the RMSE)
    assert same["3x100"]["net"] == A
    assert same["3x100"]["vs_b"] == (pytest.approx(480.0), "≥")
    assert same["3x100"]["from"] == "repeats_x.json (3600 s cap)"
    # 2x100: its baseline was not solved again (D's pair with U3 is across sizes): the suite's
    # row (D 3 s against the solved 300 s baseline)
    assert same["2x100"]["net"] == D and same["2x100"]["from"] == "suite"
    assert same["2x100"]["vs_b"] == (pytest.approx(100.0), "")
    # a control re-solved beside a network is an accuracy level, not the same-size baseline
    ctl = entry_key("peaks", [100] * 3, "unregularized_ftd", 0.0)
    res["entries"][ctl] = {**res["entries"][U3], "variant": "unregularized_ftd"}
    run = _run()
    run["rows"] = [_row(A, U3, 1.1, 10.0, ["optimal"]), _row(ctl, None, 1.0, 9000.0, ["feasible"])]
    only_ctl = resolves_of_run(run, res["entries"], "c.json")
    assert {r["base"] for r in only_ctl} == {ctl}
    same_ctl = {s["size"]: s for s in same_architecture_resolved(
        same_architecture(records(res["entries"])), only_ctl)}
    assert same_ctl["3x100"]["from"] == "suite" and same_ctl["3x100"]["net"] == B
    del res["entries"][ctl]
    text = "\n".join(resolves_markdown(same_architecture(records(res["entries"])), resolved))
    assert "≥480×" in text and "≥4,800" in text and "3x100 ≥480× (1 function)" in text
    assert resolves_markdown([], []) == []


def test_accuracy_levels_take_only_networks_at_least_as_accurate() -> None:
    res = _results()
    (level,) = accuracy_levels_resolved(resolves_of_run(_run(), res["entries"], "r.json"))
    assert level["level"] == U3 and level["net"] is None  # A, C, D: all less accurate
    run = _run()
    run["rows"].insert(0, _row(E, U3, 0.95, 96.0, ["optimal"]))
    (level,) = accuracy_levels_resolved(resolves_of_run(run, res["entries"], "r.json"))
    assert level["net"] == E and level["rmse_ratio"] == pytest.approx(0.95)
    assert level["speedup"] == (pytest.approx(50.0), "≥")


def test_the_report_reads_the_repeats_files_of_its_folder(tmp_path: Path) -> None:
    res = _results()
    (tmp_path / "results.json").write_text(json.dumps(res))
    write_scale_report(tmp_path, res)
    assert "solved again" not in (tmp_path / REPORT_FILE).read_text()
    (tmp_path / "repeats_ours_highs_t.json").write_text(json.dumps(_run()))
    write_scale_report(tmp_path, res)
    text = (tmp_path / REPORT_FILE).read_text()
    assert "## Baselines solved again" in text and "repeats_ours_highs_t.json, 3600 s" in text
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report["geomean_same_architecture_resolved"]["3x100"]["flag"] == "≥"
    assert {r["net"] for r in report["resolved"]} == {A, C, D}
    assert report["accuracy_levels_resolved"][0]["speedup"] is None
    # a truncated repeats file is an error naming it, not a silently shorter report
    (tmp_path / "repeats_ours_highs_bad.json").write_text('{"rows": [')
    with pytest.raises(ValueError, match="repeats_ours_highs_bad.json"):
        load_resolves(tmp_path, res["entries"])
