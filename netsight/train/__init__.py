"""Training: the resolved config, the loop, and the run directory it writes."""

from .config import FAMILY_DEFAULTS, TrainConfig, resolve
from .loop import evaluate, resolve_device, train
from .rundir import METRIC_COLUMNS, Run, RunDir, load_weights, open_run, save_weights

__all__ = ["FAMILY_DEFAULTS", "TrainConfig", "resolve", "train", "evaluate", "resolve_device",
           "METRIC_COLUMNS", "Run", "RunDir", "open_run", "load_weights", "save_weights"]
