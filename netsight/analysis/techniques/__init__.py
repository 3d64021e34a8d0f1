"""The techniques, one module each; importing this package registers them all (in this order,
which is the order `netsight inspect --help` and the report show them)."""

from . import filters, activations, deconv, top9, occlusion, attributions, evolution, invariance, sequence, explore  # noqa: F401
