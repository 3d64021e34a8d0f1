"""netsight: train small CNNs and RNNs, look inside them, and report the study.

The public Python API, re-exported from the subpackages; nothing else lives here.
"""

__version__ = "0.1.0"

from .data import DATASETS, Dataset, load_dataset  # noqa: E402
from .errors import NetsightError  # noqa: E402
from .models import MODELS, ModelConfig, build_model, count_parameters  # noqa: E402
from .train import TrainConfig, load_weights, open_run, resolve, train, train_fleet  # noqa: E402

__all__ = [
    "__version__",
    "DATASETS",
    "Dataset",
    "load_dataset",
    "NetsightError",
    "MODELS",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "TrainConfig",
    "resolve",
    "train",
    "train_fleet",
    "open_run",
    "load_weights",
]
