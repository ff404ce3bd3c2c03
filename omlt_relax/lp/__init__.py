"""LP relaxations solved with HiGHS.

* :mod:`omlt_relax.lp.relaxation`: :class:`BigMRelaxationLP`, the LP relaxation of the big-M
  formulation (or its triangle projection) in one reusable ``highspy.Highs`` object.
* :mod:`omlt_relax.lp.gap`: :func:`lp_gap` and :class:`LPGapPenalty`, the per-sample LP-gap and
  its dual (envelope-theorem) gradient for training.
"""

from omlt_relax.lp.gap import LPGapPenalty, lp_gap
from omlt_relax.lp.relaxation import BigMRelaxationLP, LPSolution

__all__ = ["BigMRelaxationLP", "LPGapPenalty", "LPSolution", "lp_gap"]
