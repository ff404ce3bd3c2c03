"""The process-optimization examples run end to end and their MILPs agree with forward passes.

* ``examples/cstr_process.py --quick``: both surrogates' MILP optima equal the profit computed from
  a torch forward pass at the MILP's design, and the design meets the limits as the surrogate sees
  them.
* ``examples/facility_location.py``: the published Quantile2SP optimum (objective and decision) is
  reproduced; skipped when the external data folder is absent.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import load_script

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Relative agreement between a MILP objective and the forward pass at its solution.
FORWARD_RTOL = 1e-6
#: Absolute slack on the operating limits, in the limits' own units (solver feasibility tolerance).
LIMIT_ATOL = 1e-5
#: The published CFLP objective is given to two decimals.
PUBLISHED_ATOL = 0.01


def _load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples folder is not a package)."""
    return load_script(f"examples/{name}.py")


# ------------------------------------------------------------------------------------------------
# CSTR
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cstr() -> ModuleType:
    return _load("cstr_process")


@pytest.fixture(scope="module")
def cstr_quick(cstr: ModuleType) -> tuple[list, str]:
    """One ``--quick`` run shared by the CSTR tests (a few seconds)."""
    return cstr.run(cstr.parse_config(["--quick"]))


def test_cstr_steady_state_satisfies_balances(cstr: ModuleType) -> None:
    unit = cstr.CSTR()
    for v, f, tc in [(50.0, 60.0, 300.0), (160.0, 27.5, 386.0), (250.0, 5.0, 420.0)]:
        p_b, t, x, q = unit.steady_state(v, f, tc)
        assert abs(unit.energy_residual(t, v, f, tc)) < 1e-6 * unit.ua(v) * 100
        c_a, c_b = unit.concentrations(t, v, f)
        k1, k2 = unit.rates(t)
        # component balances of A and B: in - out - consumption = 0
        assert math.isclose(f * (unit.c_af - c_a), v * k1 * c_a, rel_tol=1e-9)
        assert math.isclose(f * c_b, v * (k1 * c_a - k2 * c_b), rel_tol=1e-9)
        assert math.isclose(p_b, f * c_b, rel_tol=1e-12)
        assert math.isclose(q, unit.ua(v) * (tc - t), rel_tol=1e-12)
        assert 0.0 < x < 1.0


def test_cstr_quick_milp_equals_forward_pass(cstr: ModuleType, cstr_quick: tuple) -> None:
    results, _ = cstr_quick
    assert [r.name for r in results] == ["unregularized", "relaxation-informed"]
    for r in results:
        assert r.status == "optimal", (r.name, r.status, r.termination)
        d = r.design
        assert math.isclose(d.objective, d.profit_forward, rel_tol=FORWARD_RTOL), (
            r.name,
            d.objective,
            d.profit_forward,
        )
        np.testing.assert_allclose(d.y_milp, d.y_forward, rtol=FORWARD_RTOL, atol=1e-6)


def test_cstr_quick_design_meets_limits(cstr: ModuleType, cstr_quick: tuple) -> None:
    results, _ = cstr_quick
    econ = cstr.Economics()
    for r in results:
        assert np.all(r.design.x >= cstr.INPUT_LOWER - LIMIT_ATOL)
        assert np.all(r.design.x <= cstr.INPUT_UPPER + LIMIT_ATOL)
        p_b, t, conv, _q = r.design.y_forward
        assert t <= econ.t_max + LIMIT_ATOL, (r.name, t)
        assert conv >= econ.x_min - LIMIT_ATOL, (r.name, conv)
        assert p_b <= econ.demand + LIMIT_ATOL, (r.name, p_b)
        # stable neurons get no binary: never more binaries than unstable neurons
        assert r.binaries <= r.unstable


def test_cstr_quick_table(cstr_quick: tuple) -> None:
    _, table = cstr_quick
    for row in ("test RMSE", "unstable neurons", "binaries in the MILP", "MILP time", "B&B nodes"):
        assert row in table
    assert "unregularized" in table and "relaxation-informed" in table
    assert "simulator's own best design" in table


def test_cstr_bad_argument_exits(cstr: ModuleType) -> None:
    with pytest.raises(SystemExit) as err:
        cstr.parse_config(["--time-limit", "soon"])
    assert err.value.code != 0


# ------------------------------------------------------------------------------------------------
# Quantile2SP facility location
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def facility() -> ModuleType:
    return _load("facility_location")


def test_facility_published_optimum(facility: ModuleType) -> None:
    data_dir = facility.DEFAULT_DATA_DIR
    if not all((data_dir / n).is_file() for n in (facility.MODEL_FILE, facility.DATA_FILE)):
        pytest.skip(f"Quantile2SP data (external) not present in {data_dir}")
    results, report, ok = facility.run(data_dir)
    assert ok, report
    assert {r.lam for r in results} == {0.5, 0.0}
    for r in results:
        assert r.status == "optimal", r
        assert abs(r.objective - facility.PUBLISHED[r.lam]) <= PUBLISHED_ATOL, r
        assert r.x == facility.PUBLISHED_X
        assert math.isclose(r.objective, r.forward, rel_tol=FORWARD_RTOL), r
    ours = [r.binaries for r in results if r.formulation == "BoundedReluBigM"]
    stock = [r.binaries for r in results if r.formulation == "OMLT ReluBigM"]
    assert stock == [114, 114]  # a binary for each of the 64 + 50 ReLUs
    assert all(b < 114 for b in ours)


def test_facility_missing_data_is_a_clear_error(
    facility: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert facility.main(["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Quantile2SP data not found" in err
    assert "--data-dir" in err
