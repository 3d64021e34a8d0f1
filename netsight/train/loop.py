"""The training loop: batch, forward, loss, backward, step — read it top to bottom.

Why our own loop instead of a DataLoader loop: the datasets are small enough to live on
the device as uint8 tensors, so a batch is one index into a permutation (no per-sample
Python, no worker processes), metrics accumulate on the device and are read back only at
evaluation points (no host sync per step), Adam runs fused, and CNNs run channels-last.
`benchmarks/bench_train.py` measures the gain against a plain PyTorch loop.

Robustness: Ctrl-C stops at the next iteration boundary and writes a checkpoint holding
the complete training state (weights, optimiser, RNG and sampler state, the metrics so
far), so `resume=True` continues to exactly the result an uninterrupted run gives. A
NaN/inf loss stops the run with status "diverged". Every file is written atomically.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset, load_dataset
from ..text import plural
from ..errors import NetsightError
from ..fileio import claim_output_folder, clean_leftovers
from ..models import ModelConfig, build_model, count_parameters, get_entry
from .config import TrainConfig, changed_fields, training_labels
from .rundir import METRIC_COLUMNS, RUN_FILES, RunDir, check_run_dir, load_checkpoint, load_weights, open_run
from .steps import (
    CheckpointClock,
    Interval,
    RunRecord,
    divergence,
    is_evaluation_point,
    progress_bar,
    restore_rng,
    stop_on_sigint,
    summaries_on_crash,
    train_eval_subset,
)

CHECKPOINT_SECONDS = 60.0  # while training, checkpoint at an evaluation point at most this often
# Test images per forward pass during evaluation. On the CPU a small batch keeps the activations
# in cache: evaluating LeNet5 / cnn-bn on 10,000 MNIST images took 2.64 s / 1.26 s at 100 against
# 4.00 s / 2.57 s at 1000 (2 threads; recurrent models within 5%); on a GPU large batches pay.
EVAL_BATCH = {"cpu": 100, "cuda": 1000}


def eval_batch(device: torch.device) -> int:
    return EVAL_BATCH.get(device.type, EVAL_BATCH["cuda"])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise NetsightError(f"--device {device!r}: expected auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NetsightError(
            f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}); use --device cpu"
        )
    return torch.device(device)


def versions() -> dict[str, str]:
    from .. import __version__

    return {
        "netsight": __version__,
        "torch": torch.__version__,
        "torchvision": _torchvision_version(),
        "python": platform.python_version(),
    }


def _torchvision_version() -> str:
    """torchvision.__version__ without importing torchvision (training never needs it, and its import
    took 1-3 s of a run's start here); read from its version.py, the file that defines it."""
    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        if spec is not None and spec.origin is not None:
            try:
                text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
            except OSError:
                text = ""
            found = re.search(r"""^__version__ = ['"]([^'"]+)['"]""", text, re.MULTILINE)
            if found:
                return found.group(1)
    import torchvision

    return torchvision.__version__


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {plural(torch.get_num_threads(), 'thread')})"


class BatchSampler:
    """Batches of indices from a fresh random permutation each epoch (last partial batch dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device):
        if batch_size > n:
            raise NetsightError(f"--batch-size {batch_size}: larger than the {n} training images")
        self.n, self.batch_size, self.device = n, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self.perm: Optional[torch.Tensor] = None
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.perm is None or self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator).to(self.device)
            self.pos = 0
        batch = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return batch

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": None if self.perm is None else self.perm.cpu(), "pos": self.pos}

    def load(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.pos = state["pos"]


def prepare_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 batch -> the float tensor the model wants (channels-last for CNNs)."""
    x = Dataset.normalise(images)
    return x.contiguous(memory_format=torch.channels_last) if getattr(model, "_channels_last", False) else x


def build_for_training(model_config: ModelConfig, dev: torch.device) -> nn.Module:
    """The model as the trainer runs it: on `dev`, in train mode, CNNs channels-last (weights drawn
    from torch's current RNG, so seed it first)."""
    model = build_model(model_config).to(dev)
    if get_entry(model_config.name).family == "cnn":
        model = model.to(memory_format=torch.channels_last)
        model._channels_last = True  # type: ignore[assignment]  # a marker attribute nn.Module does not declare
    return model.train()


@torch.inference_mode()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy over a whole set in eval mode, as device tensors (no sync)."""
    batch = batch or eval_batch(images.device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    for start in range(0, len(images), batch):
        logits = model(prepare_input(model, images[start : start + batch]))
        y = labels[start : start + batch]
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return loss_sum / len(images), correct.float() / len(images)


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    params = list(params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, fused=True)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, fused=True)


def prepare_run_dir(rundir: RunDir, config: TrainConfig, resume: bool) -> Optional[dict[str, Any]]:
    """Check `rundir` before training into it (the single-run trainer and the fleet share this):
    an existing run needs --resume and the same config; a finished one returns its summary
    (None otherwise); a new folder must be ours to write; a run directory that lost or had changed
    a file netsight wrote (rundir.check_run_dir) is refused; leftovers of killed writes go."""
    if rundir.config.exists():
        existing = open_run(rundir.path)
        if not resume:
            raise NetsightError(
                f"--out {rundir.path}: already holds a run (status {existing.summary.get('status')}); "
                f"pass --resume to continue it, or choose another --out"
            )
        diff = changed_fields(existing.config, config)
        if diff:
            raise NetsightError(f"--resume {rundir.path}: the run there has a different config ({'; '.join(diff)})")
        if existing.summary.get("status") == "completed":
            _check_completed(rundir)
        check_run_dir(rundir)
        if existing.summary.get("status") in ("completed", "diverged"):
            return existing.summary  # finished (a diverged run would only diverge again: same seed)
    else:
        if rundir.path.is_dir():
            check_run_dir(rundir)  # e.g. a finished run's folder that lost its config.json
        claim_output_folder(rundir.path, "--out")
    for folder in (rundir.path, rundir.snapshots):  # what a killed write left behind (never anything else)
        clean_leftovers(
            folder,
            RUN_FILES
            if folder == rundir.path
            else [p.name for p in folder.glob("iter_*.safetensors")] + [f"iter_{i:06d}.safetensors" for i in config.snapshots],
        )
    return None


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    device: str = "auto",
    data_root: Optional[str | Path] = None,
    download: bool = False,
    dataset: Optional[Dataset] = None,
    resume: bool = False,
    tensorboard: bool = False,
    progress: bool = True,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    on_checkpoint: Optional[Callable[[], None]] = None,
) -> dict[str, Any]:
    """Train `config` into the run directory `out`; returns the summary (also in summary.json).

    While training, the full state is saved at an evaluation point at most every `checkpoint_seconds`
    (what `resume` continues from); `on_checkpoint` is called after each such save (the Ray backend
    sends the run directory to the driver then)."""
    record = RunRecord(config, out)  # the run directory: metrics rows, checkpoint, summary (train/steps.py)
    dev = resolve_device(device)
    finished = prepare_run_dir(record.dir, config, resume)
    if finished is not None:
        return finished

    if dataset is None:
        dataset = load_dataset(config.data, data_root, download)
    elif dataset.name != config.data:
        raise NetsightError(f"dataset {dataset.name!r} given for a run configured with data {config.data!r}")
    data = dataset.to(dev)
    model_config = ModelConfig(config.model, data.image_shape, data.num_classes, config.hidden, config.dropout, config.init)
    record.model_config = model_config

    torch.manual_seed(config.seed)
    model = build_for_training(model_config, dev)
    optimizer = make_optimizer(config, model.parameters())
    sampler = BatchSampler(len(data.train_images), config.batch_size, config.seed, dev)
    train_labels = training_labels(config, data.train_labels)
    interval = Interval((), dev)  # training loss and accuracy since the last evaluation, on the device
    subset = train_eval_subset(len(data.train_images), dev)  # the train accuracy the gap reads, in eval mode
    subset_images, subset_labels = data.train_images[subset], train_labels[subset]

    iteration = 0
    if resume and record.dir.checkpoint.exists():
        with load_checkpoint(record.dir.checkpoint, dev) as state:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            iteration = record.resume(state, sampler)
            restore_rng(state, dev)
            interval.load([state["interval"]])
    record.begin(
        {
            "model": model_config.to_dict(),
            "data_source": dataset.source,
            "device": device_name(dev),
            "parameters": count_parameters(model),
            "versions": versions(),
        }
    )
    writer = _tensorboard(record.dir, iteration) if tensorboard else None

    def save_checkpoint() -> None:
        state = (model.state_dict(), optimizer.state_dict(), sampler.state(), interval.state())
        record.save_checkpoint(iteration, *state, device=dev)

    bar = progress_bar(config.iterations, iteration, record.dir.path.name, progress)
    checkpoints = CheckpointClock(checkpoint_seconds, on_checkpoint)
    status, message = "completed", ""
    tick = time.perf_counter()
    try:
        with summaries_on_crash([record], lambda: iteration), stop_on_sigint() as sigint:
            while iteration < config.iterations:
                if sigint["stop"]:
                    status = "interrupted"
                    break
                idx = sampler.next()
                x, y = prepare_input(model, data.train_images[idx]), train_labels[idx]
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                iteration += 1
                interval.add(loss.detach(), (logits.detach().argmax(1) == y).sum())
                if iteration in config.snapshots:
                    record.save_weights(model, snapshot=iteration)
                bar.update(1)
                if not is_evaluation_point(iteration, config):
                    continue
                # ---- evaluation point: the only place the host waits for the device
                seconds = record.seconds + time.perf_counter() - tick
                test_loss, test_acc = evaluate(model, data.test_images, data.test_labels)
                train_eval = evaluate(model, subset_images, subset_labels)
                values = interval.values(test_loss, test_acc, batch_size=len(y), train_eval=train_eval)
                row = record.add_row(iteration, values, seconds)
                message = divergence(values, iteration, interval.count, config.lr)
                interval.reset()
                if writer is not None:
                    for key in METRIC_COLUMNS[1:-1]:
                        writer.add_scalar(key.replace("_", "/", 1), row[key], iteration)
                bar.set_postfix(test_acc=f"{row['test_acc']:.4f}", loss=f"{row['train_loss_mean']:.3f}")
                if message:
                    status = "diverged"
                    break
                if checkpoints.due(iteration, config.iterations):
                    save_checkpoint()
                    record.summary("running", iteration)
                    checkpoints.done()
                tick = time.perf_counter()
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    if status == "interrupted":
        record.seconds += time.perf_counter() - tick
        save_checkpoint()
    return record.finish(status, iteration, message, model)


def _tensorboard(rundir: RunDir, start: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise NetsightError(
            "--tensorboard: the tensorboard package is not installed; pip install 'netsight[tensorboard]'"
        ) from None
    return SummaryWriter(str(rundir.path / "tb"), purge_step=start + 1 if start else None)


def _check_completed(rundir: RunDir) -> None:
    """A run that says it completed must have readable weights, or it is not complete."""
    try:
        load_weights(rundir.weights)
    except NetsightError as exc:
        raise NetsightError(
            f"{rundir.path}: marked completed, but {exc}. The run cannot be trusted: delete {rundir.path} and train it again"
        ) from None
