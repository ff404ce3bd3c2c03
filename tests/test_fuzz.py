"""Property-based soundness fuzzing (issue 10, item 7): the fast profile of ``benchmarks/soak.py``.

Random networks (depth 1-4, widths 1-64, float32 and float64, weights scaled by 10^[-2, 2]) over
random boxes (10^-6 to 10^6 wide, centred, offset up to 1e6, one-sided, degenerate): interval,
CROWN, sound IBP/CROWN, LP- and MILP-OBBT bounds contain every sampled pre-activation, CROWN ⊆
IBP, and on small networks the bounded big-M and partition MILP optima equal the exact
activation-pattern reference (:mod:`omlt_relax.fuzz`). The soak run (10^4 networks) is in
RELIABILITY.md.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omlt_relax.fuzz import (
    BOX_KINDS,
    MILP_MAX_INPUTS,
    NetSpec,
    check_case,
    reference_extrema,
)

logging.getLogger("pyomo").setLevel(logging.ERROR)

FAST = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def specs(small: bool) -> st.SearchStrategy[NetSpec]:
    widths = (st.lists(st.integers(1, 4), min_size=1, max_size=3).filter(lambda w: sum(w) <= 10)
              if small else st.lists(st.integers(1, 64), min_size=1, max_size=4))
    return st.builds(
        NetSpec,
        n_in=st.integers(1, MILP_MAX_INPUTS if small else 8),
        widths=widths.map(tuple),
        dtype=st.sampled_from(["float32", "float64"]),
        seed=st.integers(0, 2**31 - 1),
        box_width=st.floats(-6.0, 6.0),
        box_kind=st.sampled_from(BOX_KINDS),
        weight_scale=st.one_of(st.just(0.0), st.floats(-2.0, 2.0)),
    )


@FAST
@given(specs(small=False))
def test_bounds_contain_samples_and_crown_within_ibp(spec):
    rep = check_case(spec, milp=False, obbt_milp=False, n_samples=128)
    assert not rep.failures, rep.failures


@settings(FAST, max_examples=6)
@given(specs(small=True))
def test_milp_optima_equal_reference(spec):
    rep = check_case(spec, milp=True, obbt_milp=True, n_samples=128)
    assert rep.milp_solves == 4
    assert not rep.failures, rep.failures


def test_reference_on_a_known_function():
    # f(x) = relu(x) + relu(-x) - 1 = |x| - 1 on [-2, 3]: min -1 at 0, max 2 at 3
    chain = [(np.array([[1.0], [-1.0]]), np.zeros(2)), (np.array([[1.0, 1.0]]), np.array([-1.0]))]
    lo, hi, regions = reference_extrema(chain, np.array([-2.0]), np.array([3.0]))
    assert (lo, hi, regions) == (pytest.approx(-1.0), pytest.approx(2.0), 2)


def test_regression_milp_obbt_of_a_pure_lp_layer():
    """MILP-OBBT used HiGHS's mip_dual_bound (0) of a model without binaries: unsound bounds."""
    spec = NetSpec(n_in=1, widths=(1, 5, 4), dtype="float32", seed=1000002,
                   box_width=-3.9380736180865714, box_kind="degenerate")
    rep = check_case(spec, milp=False, obbt_milp=True)
    assert not rep.failures, rep.failures


def test_regression_presolve_infeasible_is_retried():
    """HiGHS presolve called a network MILP (tiny weights, 2e5-wide box) infeasible."""
    spec = NetSpec(n_in=2, widths=(1, 4), dtype="float32", seed=1000326,
                   box_width=5.253889075575248, box_kind="offset")
    rep = check_case(spec, milp=True, obbt_milp=False, n_samples=64)
    assert not rep.failures, rep.failures
    assert any("re-solved" in r for r in rep.retried)
