"""The two big-M LP relaxations are the same LP.

``BigMRelaxationLP`` (a HiGHS matrix, used by the LP gap, OBBT and the root-LP measurement) and the
LP relaxation of :class:`~omlt_relax.BoundedReluBigMFormulation` (the Pyomo model a user solves,
binaries relaxed with Pyomo's ``core.relax_integer_vars`` and solved with HiGHS through
:func:`omlt_relax.solve`) must have the same optimum with the same bounds (the formulation's
``bounds_used``), for min and max of every output, on random nets with stably active, stably
inactive and unstable neurons.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import pytest
from conftest import random_net, sample_box
from omlt import OmltBlock

from omlt_relax import BoundedReluBigMFormulation, export_onnx, load_onnx, solve
from omlt_relax.chain import forward_chain, network_chain
from omlt_relax.lp.relaxation import BigMRelaxationLP

#: Agreement of the two optima, relative to 1 + |value| (HiGHS's feasibility tolerance is 1e-7).
LP_TOL = 1e-7

CASES = [  # (seed, half-width of the box, bounds stored with the network)
    (0, 0.1, "ibp"),
    (1, 0.3, "crown"),
    (2, 1.0, "lp"),
    (3, 0.1, "lp"),
    (4, 0.3, "ibp"),
    (5, 1.0, "crown"),
]


def formulation_lp(net_def, bounds, output: int, sense: str) -> tuple[float, object]:
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    form = BoundedReluBigMFormulation(net_def, bounds)
    m.nn.build_formulation(form)
    m.obj = pyo.Objective(
        expr=m.nn.outputs[output], sense=pyo.minimize if sense == "min" else pyo.maximize
    )
    pyo.TransformationFactory("core.relax_integer_vars").apply_to(m)
    res = solve(m, solver="highs")
    assert res.status == "optimal"
    return float(res.objective), form


@pytest.mark.parametrize(("seed", "radius", "method"), CASES)
def test_highs_lp_equals_relaxed_formulation(
    tmp_path: Path, seed: int, radius: float, method: str
) -> None:
    net = random_net(3, [8, 8, 6], n_out=2, seed=seed)
    lo, hi = -radius * np.ones(3), radius * np.ones(3)
    path = tmp_path / "net.onnx"
    export_onnx(net, path, (lo, hi), bounds=method)
    net_def, stored = load_onnx(path)
    chain = network_chain(net_def)
    f = forward_chain(chain, sample_box(lo, hi, 400, seed=seed))
    kinds = set()
    for output in range(2):
        for sense in ("min", "max"):
            v_form, form = formulation_lp(net_def, stored, output, sense)
            used = form.bounds_used
            for lo_k, up_k in zip(used.lower, used.upper):
                kinds |= {"inactive"} if (up_k <= 0).any() else set()
                kinds |= {"active"} if (lo_k >= 0).any() else set()
            lp = BigMRelaxationLP(chain, used.lower, used.upper, lo, hi)
            cost = np.zeros(2)
            cost[output] = 1.0
            lp.set_objective(cost, lp.y_cols, maximize=sense == "max")
            sol = lp.solve()
            assert sol.ok
            assert sol.value == pytest.approx(v_form, abs=LP_TOL * (1 + abs(v_form)))
            # a relaxation: never inside the network's range on sampled inputs
            if sense == "min":
                assert v_form <= f[:, output].min() + LP_TOL
            else:
                assert v_form >= f[:, output].max() - LP_TOL
    assert used.unstable_count() > 0
    if radius < 0.2:
        assert kinds == {"active", "inactive"}  # the small boxes have stable neurons of both kinds
