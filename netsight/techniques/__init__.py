"""Looking inside trained networks, one module per technique (`occlusion`, `top9`, `attributions`, ...),
each a `Technique` subclass (`base`) registered with `@register`; `registry` finds them by name (and imports them all, in the
order `netsight inspect --help` and the report show them); `target` is what they look at, a run or a
model; `inspection` runs several on one target. The operations several techniques share live one
package below, in `netsight.ops`."""

from .target import Target, open_model_target, open_run_target

__all__ = ["Target", "open_model_target", "open_run_target"]
