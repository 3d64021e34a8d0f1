"""The run directory: the one interface between training, analysis and reporting.

config.json        resolved TrainConfig + model config + where the data came from
metrics.csv        one row per evaluation point
model.safetensors  final weights; metadata holds the model config, so it rebuilds itself
summary.json       status (running / completed / diverged / interrupted), accuracies, time,
                   data source, versions, device
curves.png         train/test accuracy and loss against iterations
checkpoint.pt      full training state while a run is unfinished (removed on completion)
snapshots/         weights at chosen iterations (feature evolution)
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import NetsightError
from ..fileio import MANIFEST, atomic_write, changed_since_written, damaged_files, read_csv, read_json
from ..models import ModelConfig, build_model
from .config import TrainConfig

METRIC_COLUMNS = [
    "iteration",
    "train_loss",  # cross-entropy of the minibatch at this iteration (what the report plotted)
    "train_acc",  # accuracy of that minibatch, fraction in [0, 1]
    "train_loss_mean",  # mean minibatch loss over the iterations since the last evaluation
    "train_acc_mean",
    "test_loss",  # over the whole test set, eval mode
    "test_acc",
    "train_eval_loss",  # over a fixed training subset (TRAIN_EVAL_IMAGES, spread evenly), eval mode like the test set:
    "train_eval_acc",  # the train accuracy the train-test gap reads (dropout off, batch norm's running statistics)
    "seconds",  # training wall time so far (evaluation excluded)
]
# columns a metrics.csv written before netsight measured them may lack (read as NaN)
LATER_METRIC_COLUMNS = ("train_eval_loss", "train_eval_acc")
_MODEL_KEY = "netsight.model"
# every file name netsight writes at the top of a run directory (leftover temporary files of these are cleaned up)
RUN_FILES = ("config.json", "metrics.csv", "model.safetensors", "summary.json", "curves.png", "checkpoint.pt")
# the files of a run's training that must all still be there as netsight wrote them before it trains
# into the folder again (checkpoint.pt is not one: without it a run trains from the start, and a damaged
# one is named when it is read; analysis outputs are not either: a deleted one is made again)
TRAINING_FILES = tuple(name for name in RUN_FILES if name != "checkpoint.pt")


@dataclass(frozen=True)
class RunDir:
    path: Path

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    weights = property(lambda self: self.path / "model.safetensors")
    summary = property(lambda self: self.path / "summary.json")
    curves = property(lambda self: self.path / "curves.png")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    snapshots = property(lambda self: self.path / "snapshots")
    figures = property(lambda self: self.path / "figures")
    tables = property(lambda self: self.path / "tables")

    def snapshot(self, iteration: int) -> Path:
        return self.snapshots / f"iter_{iteration:06d}.safetensors"


def save_weights(model: nn.Module, config: ModelConfig, path: Path, extra: Optional[dict[str, str]] = None) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {_MODEL_KEY: json.dumps(config.to_dict(), sort_keys=True), **(extra or {})}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(path: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a netsight weights file alone (config from its metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise NetsightError(f"{path}: no weights file (has this run finished, or is it a netsight run directory?)")
    damaged = f"{path}: damaged weights file, cannot be read"
    if changed_since_written(path):
        raise NetsightError(f"{path}: damaged weights file (its content changed since netsight wrote it)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path), device=str(device))
    except OSError as exc:
        raise NetsightError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - a damaged header or body raises SafetensorError, ValueError...
        raise NetsightError(f"{damaged} ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    if _MODEL_KEY not in meta:
        raise NetsightError(f"{path}: no '{_MODEL_KEY}' metadata; not written by netsight (or damaged)")
    try:
        config = ModelConfig.from_dict(json.loads(meta[_MODEL_KEY]))
        model = build_model(config)
    except (ValueError, TypeError, KeyError, AttributeError, NetsightError) as exc:
        raise NetsightError(f"{damaged} (its model metadata is invalid: {exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise NetsightError(f"{path}: weights do not fit model {config.name} ({str(exc).splitlines()[0]})") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NetsightError(f"{damaged} (non-finite values in {bad[0]})")
    return model.to(device).eval()


def run_dir_problems(rundir: RunDir) -> list[str]:
    """What makes `rundir` damaged: a training file or snapshot that netsight's record of the folder
    (.netsight-files.json) lists and that is now missing or has other content, or a record that
    cannot be read. Files netsight replaced or removed itself are never among them."""
    problems = damaged_files(rundir.path, lambda name: name in TRAINING_FILES)
    problems += [
        f"snapshots/{p}" if not p.startswith("its record") else f"snapshots/: {p}" for p in damaged_files(rundir.snapshots)
    ]
    return problems


def check_run_dir(rundir: RunDir) -> None:
    """Refuse to train into a run directory that lost (or had changed) a file netsight wrote there:
    training would silently turn what is left of it into another run."""
    problems = run_dir_problems(rundir)
    if problems:
        shown = ", ".join(problems[:4]) + (f" and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise NetsightError(
            f"{rundir.path}: damaged run directory: {shown} (netsight records every file it writes "
            f"there in {MANIFEST}); refusing to train into it: choose another --out, or delete "
            f"{rundir.path} to train the run again"
        )


@contextmanager
def load_checkpoint(path: Path, device: torch.device) -> Iterator[dict[str, Any]]:
    """The training state in checkpoint.pt (tensors and plain data only: weights_only=True).

    Use as a context manager around the code that applies it, so a checkpoint that loads but
    does not fit (missing keys, wrong shapes) is reported the same way as an unreadable one."""
    advice = f"delete {path} to train this run from the start (its metrics so far are then recomputed), or delete {path.parent}"
    if changed_since_written(path):
        raise NetsightError(f"{path}: damaged checkpoint (its content changed since netsight wrote it); {advice}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except OSError as exc:
        raise NetsightError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - truncated/garbage zip or pickle: many exception types
        raise NetsightError(
            f"{path}: damaged checkpoint ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); {advice}"
        ) from None
    try:
        if not isinstance(state, dict):
            raise TypeError(f"expected a dict, got {type(state).__name__}")
        yield state
    except NetsightError:
        raise
    except Exception as exc:  # noqa: BLE001 - a checkpoint that does not fit this run
        raise NetsightError(
            f"{path}: checkpoint does not fit this run ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); {advice}"
        ) from None


@dataclass
class Run:
    """A finished (or stopped) run read back from disk."""

    dir: RunDir
    config: TrainConfig
    info: dict[str, Any]  # the rest of config.json: model config, data source, device
    summary: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def name(self) -> str:
        return self.dir.path.name

    def metrics(self) -> list[dict[str, float]]:
        if not self.dir.metrics.exists():
            return []
        rows = read_csv(self.dir.metrics)
        try:
            parsed = [
                {k: float(row[k]) if k in row or k not in LATER_METRIC_COLUMNS else math.nan for k in METRIC_COLUMNS}
                for row in rows
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise NetsightError(
                f"{self.dir.metrics}: damaged metrics file ({type(exc).__name__}: {exc}); expected the "
                f"columns {','.join(METRIC_COLUMNS)} with numbers"
            ) from None
        return parsed

    def model(self, device: str | torch.device = "cpu") -> nn.Module:
        return load_weights(self.dir.weights, device)


def open_run(path: str | Path) -> Run:
    rd = RunDir(Path(path))
    if not rd.path.is_dir():
        raise NetsightError(f"{rd.path}: no such run directory")
    if not rd.config.is_file():
        raise NetsightError(f"{rd.path}: not a netsight run directory (no config.json)")
    raw = read_json(rd.config)
    try:
        config = TrainConfig.from_dict(raw["train"])
    except (KeyError, TypeError) as exc:
        raise NetsightError(f"{rd.config}: missing or malformed 'train' section ({exc})") from None
    summary = read_json(rd.summary) if rd.summary.is_file() else {"status": "unknown"}
    return Run(rd, config, {k: v for k, v in raw.items() if k != "train"}, summary)
