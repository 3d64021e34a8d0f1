"""A suite's units of work and what every backend needs to train one.

A unit is a list of (RunSpec, run directory) pairs: a fleet, or one run. `train_runs` trains
one, wherever a backend runs it (this process, a pool worker, a Ray task), reading each
dataset once per process (`_DATA_CACHE`); `SuiteOptions` are the suite's settings, which the
runner and the backends (`backends/`) share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..data import Dataset, load_dataset
from ..train.config import TrainConfig
from ..train.loop import train

_DATA_CACHE: dict[tuple, Dataset] = {}


@dataclass(frozen=True)
class SuiteOptions:
    seeds: Optional[int] = None
    quick: bool = False
    device: str = "auto"
    data_root: Optional[str] = None
    download: bool = False
    jobs: int | str = 1  # local processes, or "auto" (resolve_jobs)
    progress: bool = True
    fleet: str = "auto"  # auto | on | off: train runs that differ only in seed/init as one batched fleet
    backend: str = "local"  # local | ray
    address: Optional[str] = None  # ray: a running cluster (auto or HOST:PORT); None starts a local Ray instance
    cpus_per_task: float = 1.0  # ray: resources of one unit of work
    gpus_per_task: float = 0.0
    shared_out: bool = False  # ray: --out is on storage every node mounts, so tasks write their runs there
    checkpoint_seconds: float = 60.0  # an unfinished run saves its state at most this often (what a rerun resumes)


def _dataset(name: str, options: SuiteOptions) -> Dataset:
    key = (name, options.data_root, options.download)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(name, options.data_root, options.download)
    return _DATA_CACHE[key]


def _run_dataset(config: TrainConfig, path: str, options: SuiteOptions) -> Dataset:
    """The data a run trains on: its dataset, or for a ROAR/KAR retraining run (config.mask) the dataset with
    the pixels its RUN/mask.safetensors marks replaced (suites/roar.py)."""
    data = _dataset(config.data, options)
    if config.mask is None:
        return data
    from .roar import masked_dataset

    return masked_dataset(data, path)


def _train_one(
    config: dict,
    path: str,
    options: SuiteOptions,
    threads: Optional[int],
    progress: bool,
    on_checkpoint: Optional[Callable[[], None]] = None,
) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(config)
    resume = Path(path, "config.json").exists()
    return train(
        cfg,
        path,
        device=options.device,
        dataset=_run_dataset(cfg, path, options),
        resume=resume,
        progress=progress,
        checkpoint_seconds=options.checkpoint_seconds,
        on_checkpoint=on_checkpoint,
    )


def _train_fleet(
    configs: list[dict],
    paths: list[str],
    options: SuiteOptions,
    threads: Optional[int],
    progress: bool,
    on_checkpoint: Optional[Callable[[], None]] = None,
) -> list[dict]:
    from ..train.fleet import train_fleet

    if threads:
        torch.set_num_threads(threads)
    cfgs = [TrainConfig.from_dict(c) for c in configs]
    resume = any(Path(p, "config.json").exists() for p in paths)
    return train_fleet(
        cfgs,
        paths,
        device=options.device,
        dataset=_run_dataset(cfgs[0], paths[0], options),  # a fleet's members share their mask (fleet_key)
        resume=resume,
        progress=progress,
        checkpoint_seconds=options.checkpoint_seconds,
        on_checkpoint=on_checkpoint,
    )


def train_runs(
    configs: list[dict],
    paths: list[str],
    options: SuiteOptions,
    threads: Optional[int],
    progress: bool,
    on_checkpoint: Optional[Callable[[], None]] = None,
) -> list[dict]:
    """Train one unit of work, a fleet or (one config) a single run; one summary per run. Every
    backend calls this, in this process, a pool worker or a Ray task."""
    if len(configs) == 1:
        return [_train_one(configs[0], paths[0], options, threads, progress, on_checkpoint)]
    return _train_fleet(configs, paths, options, threads, progress, on_checkpoint)


def unit_args(unit) -> tuple[list[dict], list[str]]:
    """A unit as `train_runs` takes it: the configs as dicts, the run directories as strings."""
    return [s.config.to_dict() for s, _ in unit], [str(p) for _, p in unit]


def label(unit) -> str:
    return unit[0][0].dirname if len(unit) == 1 else f"fleet of {len(unit)}: {unit[0][0].dirname} ..."


def accuracy_text(summary: dict) -> str:
    """', test acc 0.9812' for a run's line, or nothing when it has no evaluation yet."""
    return "" if summary["final_test_acc"] is None else f", test acc {summary['final_test_acc']:.4f}"
