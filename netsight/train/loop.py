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

import math
import platform
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset, load_dataset
from ..errors import NetsightError
from ..fileio import atomic_write, claim_output_folder, clean_leftovers, remove, write_csv, write_json
from ..models import ModelConfig, build_model, count_parameters, get_entry
from .config import TrainConfig, changed_fields, training_labels
from .rundir import METRIC_COLUMNS, RUN_FILES, RunDir, check_run_dir, load_checkpoint, load_weights, open_run, save_weights

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
    import torchvision

    from .. import __version__

    return {
        "netsight": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


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


@contextmanager
def _stop_on_sigint() -> Iterator[dict[str, bool]]:
    """The first Ctrl-C asks the loop to stop at the next iteration boundary; a second one
    interrupts at once."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["stop"] = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _plot_curves(rundir: RunDir, title: str, rows: list[dict[str, float]]) -> None:
    from .curves import write_curves  # matplotlib loads with a run's first figure, not with netsight

    write_curves(rundir.curves, title, rows)


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
    rundir = RunDir(Path(out))
    dev = resolve_device(device)
    finished = prepare_run_dir(rundir, config, resume)
    if finished is not None:
        return finished

    if dataset is None:
        dataset = load_dataset(config.data, data_root, download)
    elif dataset.name != config.data:
        raise NetsightError(f"dataset {dataset.name!r} given for a run configured with data {config.data!r}")
    data = dataset.to(dev)
    model_config = ModelConfig(config.model, data.image_shape, data.num_classes, config.hidden, config.dropout, config.init)

    torch.manual_seed(config.seed)
    model = build_for_training(model_config, dev)
    optimizer = make_optimizer(config, model.parameters())
    sampler = BatchSampler(len(data.train_images), config.batch_size, config.seed, dev)
    train_labels = training_labels(config, data.train_labels)

    info = {
        "model": model_config.to_dict(),
        "data_source": dataset.source,
        "device": device_name(dev),
        "parameters": count_parameters(model),
        "versions": versions(),
    }
    rows: list[dict[str, float]] = []
    start, seconds = 0, 0.0
    interval: dict[str, Any] = {
        "loss": torch.zeros((), device=dev),
        "correct": torch.zeros((), device=dev, dtype=torch.long),
        "count": 0,
    }
    if resume and rundir.checkpoint.exists():
        with load_checkpoint(rundir.checkpoint, dev) as state:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            sampler.load(state["sampler"])
            torch.set_rng_state(state["rng_cpu"])
            if dev.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"], dev)
            start, seconds, rows = int(state["iteration"]), float(state["seconds"]), list(state["metrics"])
            interval = {
                "loss": state["interval"]["loss"].to(dev),
                "correct": state["interval"]["correct"].to(dev),
                "count": int(state["interval"]["count"]),
            }
            if not 0 <= start <= config.iterations or len(rows) > start:
                raise ValueError(f"iteration {start} and {len(rows)} metric rows do not fit a run of {config.iterations}")
    write_json(rundir.config, {"train": config.to_dict(), **info})
    write_csv(rundir.metrics, METRIC_COLUMNS, rows)

    writer = None
    if tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise NetsightError(
                "--tensorboard: the tensorboard package is not installed; pip install 'netsight[tensorboard]'"
            ) from None
        writer = SummaryWriter(str(rundir.path / "tb"), purge_step=start + 1 if start else None)

    def summary(status: str, message: str = "") -> dict[str, Any]:
        best = max(rows, key=lambda r: r["test_acc"]) if rows else None
        s = {
            "status": status,
            "message": message,
            "iterations_done": iteration,
            "final_test_acc": rows[-1]["test_acc"] if rows else None,
            "final_train_acc_mean": rows[-1]["train_acc_mean"] if rows else None,
            "best_test_acc": best["test_acc"] if best else None,
            "best_iteration": best["iteration"] if best else None,
            "seconds": round(seconds, 3),
            **info,
            "config_key": config.key(),
        }
        write_json(rundir.summary, s)
        return s

    def save_checkpoint() -> None:
        state = {
            "iteration": iteration,
            "seconds": seconds,
            "metrics": rows,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "sampler": sampler.state(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
            "interval": {"loss": interval["loss"].cpu(), "correct": interval["correct"].cpu(), "count": interval["count"]},
        }
        atomic_write(rundir.checkpoint, lambda tmp: _torch_save(state, tmp))

    iteration = start
    title = f"{config.model} on {config.data} (seed {config.seed})"
    bar = _progress_bar(config, start, rundir, progress)
    last_checkpoint = time.perf_counter()
    status, message = "completed", ""
    tick = time.perf_counter()
    try:
        with _stop_on_sigint() as sigint:
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
                batch_loss, batch_correct = loss.detach(), (logits.detach().argmax(1) == y).sum()
                interval["loss"] += batch_loss
                interval["correct"] += batch_correct
                interval["count"] += 1
                if iteration in config.snapshots:
                    save_weights(model, model_config, rundir.snapshot(iteration), {"iteration": str(iteration)})
                bar.update(1)
                if iteration % config.eval_every and iteration != config.iterations:
                    continue
                # ---- evaluation point: the only place the host waits for the device
                seconds += time.perf_counter() - tick
                test_loss, test_acc = evaluate(model, data.test_images, data.test_labels)
                n = interval["count"]
                values = torch.stack(
                    [
                        batch_loss.float(),
                        batch_correct.float() / len(y),
                        interval["loss"] / n,
                        interval["correct"].float() / (n * len(y)),
                        test_loss,
                        test_acc,
                    ]
                ).tolist()
                row = dict(zip(METRIC_COLUMNS, [iteration, *values, round(seconds, 3)], strict=True))
                rows.append(row)
                interval = {
                    "loss": torch.zeros_like(interval["loss"]),
                    "correct": torch.zeros_like(interval["correct"]),
                    "count": 0,
                }
                write_csv(rundir.metrics, METRIC_COLUMNS, rows)
                if writer is not None:
                    for key in METRIC_COLUMNS[1:-1]:
                        writer.add_scalar(key.replace("_", "/", 1), row[key], iteration)
                bar.set_postfix(test_acc=f"{row['test_acc']:.4f}", loss=f"{row['train_loss_mean']:.3f}")
                if not all(math.isfinite(v) for v in values[:5:2]):
                    status = "diverged"
                    message = (
                        f"loss became {values[2]} between iterations {iteration - n + 1} and {iteration} "
                        f"(lr {config.lr}); try a smaller --lr"
                    )
                    break
                if time.perf_counter() - last_checkpoint > checkpoint_seconds and iteration < config.iterations:
                    save_checkpoint()
                    summary("running")
                    if on_checkpoint is not None:
                        on_checkpoint()
                    last_checkpoint = time.perf_counter()
                tick = time.perf_counter()
    except BaseException:
        # A crash or a second Ctrl-C may strike mid-step, so the state in memory is not trusted:
        # the last checkpoint (written at an iteration boundary) stays what --resume continues from.
        try:
            summary("interrupted", "stopped by an error or a second Ctrl-C; --resume continues from the last checkpoint")
        except (NetsightError, OSError):
            pass  # the disk that failed may refuse this too; the original error is the one to report
        raise
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    if status == "interrupted":
        seconds += time.perf_counter() - tick
        save_checkpoint()
        result = summary("interrupted", f"stopped at iteration {iteration}; continue with --resume")
    elif status == "diverged":
        result = summary("diverged", message)
    else:
        # weights and curves first: "completed" is written only once everything it promises is on disk
        save_weights(model, model_config, rundir.weights)
        _plot_curves(rundir, title, rows)
        result = summary("completed")
        remove(rundir.checkpoint)
        return result
    _plot_curves(rundir, title, rows)
    return result


def _check_completed(rundir: RunDir) -> None:
    """A run that says it completed must have readable weights, or it is not complete."""
    try:
        load_weights(rundir.weights)
    except NetsightError as exc:
        raise NetsightError(
            f"{rundir.path}: marked completed, but {exc}. The run cannot be trusted: delete {rundir.path} and train it again"
        ) from None


def _torch_save(state: dict, path: Path) -> None:
    try:
        torch.save(state, path)
    except RuntimeError as exc:  # torch's writer reports a failed write (a full disk) as RuntimeError
        raise OSError(
            28 if "unexpected pos" in str(exc) else 5, f"torch.save failed: {str(exc).splitlines()[0]}", str(path)
        ) from None


def _progress_bar(config: TrainConfig, start: int, rundir: RunDir, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=config.iterations,
        initial=start,
        desc=rundir.path.name,
        unit="it",
        disable=not enabled,
        dynamic_ncols=True,
        leave=True,
    )
