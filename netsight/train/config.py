"""The resolved training configuration and the assignment's protocol as defaults.

Layering: family defaults (the report's protocol) < explicit arguments / flags. The
resolved config is written to the run directory, and two runs with equal configs are the
same experiment (the resume check and the suite runner rely on this).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Optional, TypeGuard

import torch

from ..errors import NetsightError
from ..models import INITS, MODELS, SETTING_DEFAULTS, get_entry, models_with

OPTIMIZERS = ("adam", "sgd")
LABELS = ("true", "permuted")  # permuted: Adebayo et al. 2018's data-randomisation test (see training_labels)
MASK_MODES = ("roar", "kar")  # Hooker et al. 2019: remove the top-ranked pixels and retrain, or keep them


@dataclass(frozen=True)
class MaskSpec:
    """What a retraining run of ROAR/KAR (Hooker et al. 2019) trains and is tested on: the dataset with a
    `fraction` of each image's pixels replaced by the training set's mean, the pixels ranked by `method`'s
    map on the model of run `source` (a run directory under the suite's runs/). `mode` "roar" replaces the
    top-ranked fraction, "kar" the bottom-ranked one (keeping the top 1 - fraction). The pixels themselves
    come from the run directory's mask file (written before training; ops/masking.py)."""

    method: str  # an attribution method, or "random"
    mode: str  # roar | kar
    fraction: float  # of each image's pixels replaced, in (0, 1)
    source: str  # the run directory (relative to the suite's runs/) whose model ranked the pixels
    samples: int = 16  # SmoothGrad, SmoothGrad-squared, VarGrad: noisy copies per image (other methods: unused)


# The assignment report's protocol per model family.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": dict(
        data="cifar10-assignment",  # section 1: the course's grayscale CIFAR-10 subset
        iterations=5500,  # "We use 5500 iterations"
        batch_size=50,  # the starter code's batch of 50
        lr=1e-4,  # "a learning rate of 1e-4", Adam
        eval_every=100,  # the report does not say; 55 points per curve
    ),
    "rnn": dict(
        data="mnist",  # section 3
        iterations=5500,
        batch_size=128,  # lstmMNISTStarterCode's batch size
        lr=1e-3,  # "learning rate 0.001", Adam
        eval_every=50,  # "we record the accuracy and loss every 50 iteration"
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    model: str  # registry name (netsight models)
    data: str  # dataset name (netsight data list)
    iterations: int  # optimiser steps
    batch_size: int  # images per step
    lr: float  # learning rate
    optimizer: str = "adam"  # adam | sgd (SGD uses momentum 0.9)
    eval_every: int = 100  # iterations between evaluations on the whole test set
    seed: int = 0  # seeds weights, dropout and batch order
    hidden: Optional[int] = None  # recurrent nets: hidden units (128); None for models without
    dropout: Optional[float] = None  # cnn-bn: drop probability (0.5); None for models without
    init: str = "torch"  # torch | starter (course code's truncated normal std 0.1, bias 0.1)
    snapshots: tuple[int, ...] = ()  # iterations at which weights are kept (feature evolution)
    labels: str = "true"  # true | permuted: the training labels permuted once with the seed (the test set keeps its own)
    mask: Optional[MaskSpec] = None  # ROAR/KAR: train and test on masked images (MaskSpec); None: the images as they are

    def to_dict(self) -> dict[str, Any]:
        """The config as config.json records it. `labels` appears only when it is not "true": a run made
        before the option existed keeps its file, its key and its equality with the same config now."""
        d = asdict(self)
        d["snapshots"] = list(self.snapshots)
        if self.labels == "true":
            del d["labels"]
        if self.mask is None:  # likewise: a run without a mask keeps its key
            del d["mask"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise NetsightError(f"training config: unknown field(s) {', '.join(sorted(unknown))}")
        d = dict(d)
        snapshots = d.get("snapshots", ())
        if not isinstance(snapshots, (list, tuple)):
            raise NetsightError(f"training config: snapshots = {snapshots!r}: expected a list of integers")
        d["snapshots"] = tuple(snapshots)
        if isinstance(d.get("mask"), dict):
            try:
                d["mask"] = MaskSpec(**d["mask"])
            except TypeError as exc:
                raise NetsightError(f"training config: mask: {exc}") from None
        if d.get("model") in MODELS:  # files of older versions recorded hidden/dropout for every model
            for name in SETTING_DEFAULTS:
                if name not in MODELS[d["model"]].settings:
                    d[name] = None
        try:
            config = cls(**d)
        except TypeError as exc:
            raise NetsightError(f"training config: {exc}") from None
        return validate(config)

    def key(self) -> str:
        """A short stable hash of the config: equal configs, equal keys."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def default_init(model: str) -> str:
    """PyTorch's default initialisation: in our measurements it matched or beat the course
    starter's truncated normal (see docs/training.md, 'Initialisation')."""
    get_entry(model)
    return "torch"


def resolve(model: str, data: Optional[str] = None, **overrides: Any) -> TrainConfig:
    """Family defaults for `model`, then every override that is not None."""
    entry = get_entry(model)
    values: dict[str, Any] = dict(FAMILY_DEFAULTS[entry.family])
    values["init"] = default_init(model)
    if data is not None:
        values["data"] = data
    for name, default in SETTING_DEFAULTS.items():
        if name in entry.settings:
            values[name] = default
        elif overrides.get(name) is not None:
            raise NetsightError(
                f"--{name} {overrides[name]!r}: model {model} has no {name} setting "
                f"(it applies to {', '.join(models_with(name))})"
            )
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "snapshots" in values:
        snaps = values["snapshots"]
        if not isinstance(snaps, (list, tuple)) or not all(_is_int(s) for s in snaps):
            raise NetsightError(f"--snapshots {snaps!r}: expected a list of integers")
        values["snapshots"] = tuple(sorted(set(snaps)))
    try:
        config = TrainConfig(model=model, **values)
    except TypeError as exc:
        raise NetsightError(f"training config: {exc}") from None
    return validate(config)


MAX_SEED = 2**63 - 1


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> TypeGuard[float]:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def validate(c: TrainConfig) -> TrainConfig:
    """Every field's type and range; the same checks whether it came from a flag, a suite
    file, config.json or the Python API (a float where an integer belongs is refused)."""

    def need(ok: bool, flag: str, expected: str, value: Any) -> None:
        if not ok:
            raise NetsightError(f"{flag} {value!r}: expected {expected}")

    need(isinstance(c.model, str), "--model", "a model name", c.model)
    need(isinstance(c.data, str), "--data", "a dataset name", c.data)
    need(_is_int(c.iterations) and 1 <= c.iterations <= 10**9, "--iterations", "an integer from 1 to 1e9", c.iterations)
    need(_is_int(c.batch_size) and 1 <= c.batch_size <= 10**6, "--batch-size", "an integer from 1 to 1e6", c.batch_size)
    need(_is_number(c.lr) and 0 < c.lr <= 1e6, "--lr", "a number in (0, 1e+06]", c.lr)
    need(c.optimizer in OPTIMIZERS, "--optimizer", " or ".join(OPTIMIZERS), c.optimizer)
    need(_is_int(c.eval_every) and 1 <= c.eval_every <= 10**9, "--eval-every", "an integer from 1 to 1e9", c.eval_every)
    need(_is_int(c.seed) and 0 <= c.seed <= MAX_SEED, "--seed", f"an integer from 0 to {MAX_SEED}", c.seed)
    settings = get_entry(c.model).settings
    if "hidden" in settings:
        need(_is_int(c.hidden) and 1 <= c.hidden <= 65536, "--hidden", "an integer from 1 to 65536", c.hidden)
    else:
        need(c.hidden is None, "--hidden", f"none for {c.model} (it applies to {', '.join(models_with('hidden'))})", c.hidden)
    if "dropout" in settings:
        need(_is_number(c.dropout) and 0 <= c.dropout < 1, "--dropout", "a number in [0, 1)", c.dropout)
    else:
        need(c.dropout is None, "--dropout", f"none for {c.model} (it applies to {', '.join(models_with('dropout'))})", c.dropout)
    need(c.init in INITS, "--init", " or ".join(INITS), c.init)
    need(c.labels in LABELS, "--labels", " or ".join(LABELS), c.labels)
    if c.mask is not None:
        m = c.mask
        need(isinstance(m, MaskSpec), "mask", "a MaskSpec", m)
        need(isinstance(m.method, str) and bool(m.method), "mask.method", "a method name", m.method)
        need(m.mode in MASK_MODES, "mask.mode", " or ".join(MASK_MODES), m.mode)
        need(_is_number(m.fraction) and 0 < m.fraction < 1, "mask.fraction", "a number in (0, 1)", m.fraction)
        need(isinstance(m.source, str) and bool(m.source), "mask.source", "a run directory", m.source)
        need(_is_int(m.samples) and 1 <= m.samples <= 4096, "mask.samples", "an integer from 1 to 4096", m.samples)
    need(all(_is_int(s) for s in c.snapshots), "--snapshots", "integers", list(c.snapshots))
    bad = [s for s in c.snapshots if not 1 <= s <= c.iterations]
    need(not bad, "--snapshots", f"iterations between 1 and {c.iterations}", bad)
    return c


def training_labels(config: TrainConfig, labels: torch.Tensor) -> torch.Tensor:
    """The labels a run trains on: `labels` themselves, or (labels = "permuted") the same labels in an
    order drawn once from the run's seed, so the images keep no relation to their classes while the
    class frequencies stay as they were (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
    2018, section 4: the data randomisation test). A generator of its own: the seeds of the weights
    and the batches draw exactly what they draw for a run on true labels."""
    if config.labels == "true":
        return labels
    g = torch.Generator().manual_seed(config.seed)
    return labels[torch.randperm(len(labels), generator=g).to(labels.device)]


def changed_fields(a: TrainConfig, b: TrainConfig) -> list[str]:
    return [
        f"{f.name}: {getattr(a, f.name)!r} -> {getattr(b, f.name)!r}"
        for f in fields(TrainConfig)
        if getattr(a, f.name) != getattr(b, f.name)
    ]


__all__ = [
    "TrainConfig",
    "MaskSpec",
    "MASK_MODES",
    "FAMILY_DEFAULTS",
    "LABELS",
    "resolve",
    "validate",
    "training_labels",
    "changed_fields",
    "replace",
]
