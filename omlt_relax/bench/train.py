"""The benchmark's training: re-exported from :mod:`omlt_relax.train` (library code).

The training loop, the variants, the weight grids and the weight-selection rule are library code
(``omlt-relax train`` uses them too); this module keeps the names the suite and older code import.
"""

from omlt_relax.train import (
    DEFAULT_TOLERANCE,
    GRID_BOUND,
    GRID_L1,
    GRID_LP,
    GRID_PRUNE,
    LP_WARMUP,
    VARIANTS,
    Selection,
    TrainConfig,
    TrainResult,
    Variant,
    build_model,
    fit,
    get_variant,
    prune_masks,
    select_weight,
    train_variant,
    with_overrides,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "GRID_BOUND",
    "GRID_L1",
    "GRID_LP",
    "GRID_PRUNE",
    "LP_WARMUP",
    "VARIANTS",
    "Selection",
    "TrainConfig",
    "TrainResult",
    "Variant",
    "build_model",
    "fit",
    "get_variant",
    "prune_masks",
    "select_weight",
    "train_variant",
    "with_overrides",
]
