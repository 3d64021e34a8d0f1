"""Training: the resolved config, the loop, the fleet trainer, and the run directory they write."""

from .config import FAMILY_DEFAULTS, TrainConfig, resolve
from .fleet import train_fleet
from .loop import evaluate, resolve_device, train
from .rundir import METRIC_COLUMNS, Run, RunDir, load_weights, open_run, save_weights

__all__ = [
    "FAMILY_DEFAULTS",
    "TrainConfig",
    "resolve",
    "train",
    "train_fleet",
    "evaluate",
    "resolve_device",
    "METRIC_COLUMNS",
    "Run",
    "RunDir",
    "open_run",
    "load_weights",
    "save_weights",
]
