"""The benchmark's training: re-exported from :mod:`omlt_relax.train` (library code).

The training loop, the variants, the weight grids and the weight-selection rule are library code
(``omlt-relax train`` uses them too); this module keeps the names the suite and older code import.
"""

import omlt_relax.train as _train
from omlt_relax.train import *  # noqa: F403

__all__ = list(_train.__all__)
