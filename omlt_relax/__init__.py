"""omlt_relax: relaxation-informed training of ReLU surrogates and lean OMLT MILP formulations.

Data flow: train (regularizers) -> bounds -> export (ONNX + bounds) -> formulate (OMLT) -> solve.
The Lightning callback lives in :mod:`omlt_relax.lightning` (Lightning is an optional extra).
"""

from omlt_relax.bounds import crown_bounds, interval_bounds, sound_bounds
from omlt_relax.bounds.obbt import obbt_bounds
from omlt_relax.export import export_onnx, load_onnx
from omlt_relax.foreign import ForeignNetwork, from_network_definition, read_onnx
from omlt_relax.formulations import BoundedReluBigMFormulation, BoundedReluPartitionFormulation
from omlt_relax.lp.gap import LPGapPenalty, lp_gap
from omlt_relax.mip_start import probe_start, start_from_input
from omlt_relax.network import UnsupportedNetworkError, chain_module, parse_network
from omlt_relax.neuron_bounds import BoundsMismatchError, NeuronBounds
from omlt_relax.penalties import BigMPenalty, BoundPenalty, Penalty, StabilityPenalty
from omlt_relax.quantile import IncrementalQuantileHead
from omlt_relax.regularizer import RelaxationRegularizer
from omlt_relax.solve import SolveResult, SolverUnavailableError, solve
from omlt_relax.threads import single_thread
from omlt_relax.tighten import tighten_onnx
from omlt_relax.verify import solve_verified

__version__ = "0.1.0"

__all__ = [
    "BigMPenalty",
    "BoundPenalty",
    "BoundedReluBigMFormulation",
    "BoundedReluPartitionFormulation",
    "BoundsMismatchError",
    "ForeignNetwork",
    "IncrementalQuantileHead",
    "LPGapPenalty",
    "NeuronBounds",
    "Penalty",
    "RelaxationRegularizer",
    "SolveResult",
    "SolverUnavailableError",
    "StabilityPenalty",
    "UnsupportedNetworkError",
    "chain_module",
    "crown_bounds",
    "export_onnx",
    "from_network_definition",
    "interval_bounds",
    "load_onnx",
    "lp_gap",
    "obbt_bounds",
    "parse_network",
    "probe_start",
    "read_onnx",
    "single_thread",
    "solve",
    "solve_verified",
    "sound_bounds",
    "start_from_input",
    "tighten_onnx",
]
