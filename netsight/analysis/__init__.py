"""Looking inside trained networks: the target (`target`), the technique registry (`registry`),
one module per technique (`techniques/`) over the computing modules beside them; hooks live in
`hooks`."""

from .target import Target, open_model_target, open_run_target

__all__ = ["Target", "open_model_target", "open_run_target"]
