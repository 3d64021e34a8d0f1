"""netsight: train small CNNs and RNNs, look inside them, and report the study.

The public Python API, re-exported from the subpackages; nothing else lives here.
"""

__version__ = "0.1.0"

from .data import DATASETS, Dataset, load_dataset  # noqa: E402
from .errors import NetsightError  # noqa: E402
from .models import MODELS, ModelConfig, build_model, count_parameters  # noqa: E402
from .train import TrainConfig, load_weights, open_run, resolve, train, train_fleet  # noqa: E402
from .methods import (  # noqa: E402
    Agreement,
    AttributionMethod,
    Deconvolution,
    Faithfulness,
    GradCAM,
    GuidedBackprop,
    GuidedGradCAM,
    InputXGradient,
    IntegratedGradients,
    Maps,
    Normalize,
    Occlusion,
    Saliency,
    Sanity,
    SmoothGrad,
    SmoothGradSquared,
    VarGrad,
    RowScores,
    Trajectories,
    faithfulness as faithfulness,
    plot_maps,
    row_importance,
    run_steps,
    sanity_checks,
    seed_agreement,
    trajectories,
    unit_stats,
)
from .techniques.featureviz import FeatureVisualisation, feature_visualisation  # noqa: E402

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
    # the attribution family as method objects, and the checks of how far to trust their maps
    "Normalize",
    "AttributionMethod",
    "Saliency",
    "InputXGradient",
    "GuidedBackprop",
    "IntegratedGradients",
    "SmoothGrad",
    "SmoothGradSquared",
    "VarGrad",
    "GradCAM",
    "GuidedGradCAM",
    "Deconvolution",
    "Occlusion",
    "Maps",
    "plot_maps",
    "sanity_checks",
    "Sanity",
    "faithfulness",
    "Faithfulness",
    "seed_agreement",
    "Agreement",
    # feature visualisation by optimisation (Olah et al. 2017), beside the images that drive each unit most
    "feature_visualisation",
    "FeatureVisualisation",
    # the recurrent techniques (row readers): hidden states and gates per step, units, rows, trajectories
    "run_steps",
    "unit_stats",
    "row_importance",
    "RowScores",
    "trajectories",
    "Trajectories",
]
