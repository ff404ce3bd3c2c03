"""omlt_relax: relaxation-informed training of ReLU surrogates and lean OMLT MILP formulations.

Data flow: train (regularizers) -> bounds -> export (ONNX + bounds) -> formulate (OMLT) -> solve.
"""

from omlt_relax.bounds import crown_bounds, interval_bounds, sound_bounds
from omlt_relax.network import UnsupportedNetworkError, parse_network
from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds
from omlt_relax.quantile import IncrementalQuantileHead

__version__ = "0.1.0"

__all__ = [
    "BoundsMismatchError",
    "IncrementalQuantileHead",
    "NeuronBounds",
    "UnsupportedNetworkError",
    "crown_bounds",
    "interval_bounds",
    "parse_network",
    "sound_bounds",
]
