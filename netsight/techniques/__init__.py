"""The techniques, one module each; importing this package registers them all (in this order,
which is the order `netsight inspect --help` and the report show them)."""

from . import (  # noqa: F401
    filters,
    activations,
    deconv,
    top9,
    occlusion,
    attributions,
    sanity,
    faithfulness,
    agreement,
    evolution,
    invariance,
    sequence,
    rows,
    units,
    gates,
    trajectories,
    explore,
)
