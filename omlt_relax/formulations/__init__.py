r"""OMLT formulations of ReLU networks that use stored per-neuron bounds.

Both are drop-in for ``OmltBlock.build_formulation`` and take an OMLT ``NetworkDefinition`` (with
input bounds) plus a :class:`~omlt_relax.NeuronBounds` for it:

* :class:`BoundedReluBigMFormulation`: big-M with each neuron's own :math:`l, u`;
* :class:`BoundedReluPartitionFormulation`: partition-based (Tsay et al. 2021), ``n_partitions``
  groups per unstable neuron, ``n_partitions=1`` being big-M.

Stable neurons (:math:`l \ge 0` or :math:`u \le 0` after intersecting the stored bounds with
interval bounds) get no binary; the stored bounds are never loosened. The exact constraint sets
are in the module docstrings of :mod:`~omlt_relax.formulations.bigm` and
:mod:`~omlt_relax.formulations.partition`.
"""

from omlt_relax.formulations.bigm import BoundedReluBigMFormulation, network_chain
from omlt_relax.formulations.partition import BoundedReluPartitionFormulation

__all__ = ["BoundedReluBigMFormulation", "BoundedReluPartitionFormulation", "network_chain"]
