"""omlt_relax: relaxation-informed training of ReLU surrogates and lean OMLT MILP formulations.

Data flow: train (regularizers) -> bounds -> export (ONNX + bounds) -> formulate (OMLT) -> solve.
The Lightning callback lives in :mod:`omlt_relax.lightning` (Lightning is an optional extra).
"""

from omlt_relax.bounds import crown_bounds, interval_bounds, sound_bounds
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.lp.gap import LPGapPenalty, lp_gap
from omlt_relax.network import UnsupportedNetworkError, parse_network
from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds
from omlt_relax.penalties import BigMPenalty, StabilityPenalty
from omlt_relax.quantile import IncrementalQuantileHead
from omlt_relax.regularizer import RelaxationRegularizer

__version__ = "0.1.0"

__all__ = [
    "BigMPenalty",
    "BoundsMismatchError",
    "IncrementalQuantileHead",
    "LPGapPenalty",
    "NeuronBounds",
    "RelaxationRegularizer",
    "StabilityPenalty",
    "UnsupportedNetworkError",
    "crown_bounds",
    "interval_bounds",
    "lp_gap",
    "obbt_bounds",
    "parse_network",
    "sound_bounds",
]
