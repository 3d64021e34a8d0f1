"""The steps every trainer takes around its own forward and backward: Ctrl-C, the metrics of an
interval, the row at an evaluation point, divergence, checkpoints, the summary, the end of a run.

`loop.train` (one run) and `fleet.train_fleet` (K runs as one batched program) both call these,
so a run directory is written by one piece of code whichever trainer made it. What stays with
each trainer is its own: building the model, the training step, evaluation, and (the fleet) how
the batched state splits into each run's checkpoint.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import nn

from ..errors import NetsightError
from ..fileio import atomic_write, remove, write_csv, write_json
from ..models import ModelConfig
from .config import TrainConfig
from .rundir import METRIC_COLUMNS, RunDir, save_weights

CRASH_MESSAGE = "stopped by an error or a second Ctrl-C; --resume continues from the last checkpoint"


@contextmanager
def stop_on_sigint() -> Iterator[dict[str, bool]]:
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


@contextmanager
def summaries_on_crash(records: Iterable[RunRecord], iteration: Callable[[], int]) -> Iterator[None]:
    """A crash or a second Ctrl-C may strike mid-step, so the state in memory is not trusted: each
    running run's summary says "interrupted", and its last checkpoint (written at an iteration
    boundary) stays what --resume continues from."""
    try:
        yield
    except BaseException:
        try:
            for record in records:
                if record.status == "running":
                    record.summary("interrupted", iteration(), CRASH_MESSAGE)
        except (NetsightError, OSError):
            pass  # the disk that failed may refuse this too; the original error is the one to report
        raise


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    """Training's bar (netsight.progress: with its ETA, and the estimate of a long run first)."""
    from ..progress import bar

    return bar(total, desc, enabled, "it", leave=True, initial=initial)


# Training images the train accuracy is measured on at each evaluation point, in eval mode like the test
# set (dropout off, batch norm's running statistics), so the train-test gap compares like with like: the
# same images every time (evenly spread over the training set), as many as the assignment's test set.
TRAIN_EVAL_IMAGES = 1000


def train_eval_subset(n_train: int, device: torch.device, n: int = TRAIN_EVAL_IMAGES) -> torch.Tensor:
    """The indices of the fixed training subset (all the images when there are at most `n`)."""
    return torch.linspace(0, n_train - 1, min(n, n_train), device=device).round().long().unique()


def is_evaluation_point(iteration: int, config: TrainConfig) -> bool:
    return iteration % config.eval_every == 0 or iteration == config.iterations


class Interval:
    """The training metrics since the last evaluation point, kept on the device so a step never
    waits for it: the last minibatch's loss and correct count, and their sums. Shape () for one
    run, [K] for a fleet of K."""

    def __init__(self, shape: tuple[int, ...], device: torch.device):
        self.loss = torch.zeros(shape, device=device)
        self.correct = torch.zeros(shape, device=device, dtype=torch.long)
        self.count = 0
        self.last_loss, self.last_correct = self.loss, self.correct

    def add(self, loss: torch.Tensor, correct: torch.Tensor) -> None:
        self.last_loss, self.last_correct = loss, correct
        self.loss += loss
        self.correct += correct
        self.count += 1

    def values(
        self, test_loss: torch.Tensor, test_acc: torch.Tensor, batch_size: int, train_eval: tuple[torch.Tensor, torch.Tensor]
    ) -> list:
        """The eight metrics of an evaluation point (METRIC_COLUMNS without iteration and seconds), read
        back in one host sync: a list of eight floats, or one such list per member of a fleet.
        `train_eval`: loss and accuracy on the fixed training subset in eval mode (`train_eval_subset`)."""
        n = self.count
        return torch.stack(
            [
                self.last_loss.float(),
                self.last_correct.float() / batch_size,
                self.loss / n,
                self.correct.float() / (n * batch_size),
                test_loss,
                test_acc,
                *train_eval,
            ],
            -1,
        ).tolist()

    def reset(self) -> None:
        self.loss.zero_()
        self.correct.zero_()
        self.count = 0

    def state(self, member: Optional[int] = None) -> dict[str, Any]:
        """What a checkpoint keeps (one run's part of a fleet's with `member`)."""
        loss, correct = (self.loss, self.correct) if member is None else (self.loss[member], self.correct[member])
        return {"loss": loss.detach().cpu(), "correct": correct.detach().cpu(), "count": self.count}

    def load(self, states: list[dict[str, Any]]) -> None:
        """From checkpoints' interval states: one for a run, one per member (in order) for a fleet."""
        device = self.loss.device
        if self.loss.dim() == 0:
            (state,) = states
            self.loss, self.correct = state["loss"].to(device), state["correct"].to(device)
        else:
            self.loss = torch.stack([s["loss"].to(device).reshape(()) for s in states])
            self.correct = torch.stack([s["correct"].to(device).reshape(()) for s in states])
        self.count = int(states[0]["count"])


def divergence(values: list[float], iteration: int, count: int, lr: float) -> str:
    """Why a run stops at this evaluation point ("" when its losses are finite)."""
    if all(math.isfinite(v) for v in values[:5:2]):  # train_loss, train_loss_mean, test_loss
        return ""
    return f"loss became {values[2]} between iterations {iteration - count + 1} and {iteration} (lr {lr}); try a smaller --lr"


class CheckpointClock:
    """Checkpoint at an evaluation point at most every `every` seconds (never at the last
    iteration: the run's end writes its own files); `on_checkpoint` runs after each."""

    def __init__(self, every: float, on_checkpoint: Optional[Callable[[], None]]):
        self.every, self.on_checkpoint = every, on_checkpoint
        self.last = time.perf_counter()

    def due(self, iteration: int, iterations: int) -> bool:
        return time.perf_counter() - self.last > self.every and iteration < iterations

    def done(self) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint()
        self.last = time.perf_counter()


class RunRecord:
    """One run's directory as training writes it: config.json, metrics.csv (a row per evaluation
    point), snapshots, checkpoint.pt, summary.json, model.safetensors, curves.png."""

    def __init__(self, config: TrainConfig, out: str | Path):
        self.config, self.dir = config, RunDir(Path(out))
        self.rows: list[dict[str, float]] = []
        self.seconds = 0.0  # training wall time so far, evaluation excluded
        self.status = "running"
        self.info: dict[str, Any] = {}  # what config.json and summary.json record beside the config
        self._model_config: Optional[ModelConfig] = None

    @property
    def model_config(self) -> ModelConfig:
        if self._model_config is None:
            raise RuntimeError(f"{self.dir.path}: the model config is read before the data set it")
        return self._model_config

    @model_config.setter
    def model_config(self, value: ModelConfig) -> None:
        self._model_config = value

    @property
    def title(self) -> str:
        return f"{self.config.model} on {self.config.data} (seed {self.config.seed})"

    def resume(self, state: dict[str, Any], sampler) -> int:
        """Take the metrics, time and sampler from a loaded checkpoint; returns its iteration."""
        sampler.load(state["sampler"])
        start, self.seconds, self.rows = int(state["iteration"]), float(state["seconds"]), list(state["metrics"])
        if not 0 <= start <= self.config.iterations or len(self.rows) > start:
            raise ValueError(f"iteration {start} and {len(self.rows)} metric rows do not fit a run of {self.config.iterations}")
        return start

    def begin(self, info: dict[str, Any]) -> None:
        self.info = info
        write_json(self.dir.config, {"train": self.config.to_dict(), **info})
        write_csv(self.dir.metrics, METRIC_COLUMNS, self.rows)

    def add_row(self, iteration: int, values: list[float], seconds: float) -> dict[str, float]:
        self.seconds = seconds
        row = dict(zip(METRIC_COLUMNS, [iteration, *values, round(seconds, 3)], strict=True))
        self.rows.append(row)
        write_csv(self.dir.metrics, METRIC_COLUMNS, self.rows)
        return row

    def save_weights(self, model: nn.Module, snapshot: Optional[int] = None) -> None:
        if snapshot is None:
            save_weights(model, self.model_config, self.dir.weights)
        else:
            save_weights(model, self.model_config, self.dir.snapshot(snapshot), {"iteration": str(snapshot)})

    def save_checkpoint(
        self, iteration: int, model: dict, optimizer: dict, sampler: dict, interval: dict, device: torch.device
    ) -> None:
        state = {
            "iteration": iteration,
            "seconds": self.seconds,
            "metrics": self.rows,
            "model": model,
            "optimizer": optimizer,
            "sampler": sampler,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "interval": interval,
        }
        atomic_write(self.dir.checkpoint, partial(_torch_save, state))

    def summary(self, status: str, iterations_done: int, message: str = "") -> dict[str, Any]:
        rows = self.rows
        best = max(rows, key=lambda r: r["test_acc"]) if rows else None
        s = {
            "status": status,
            "message": message,
            "iterations_done": iterations_done,
            "final_test_acc": rows[-1]["test_acc"] if rows else None,
            "final_train_acc_mean": rows[-1]["train_acc_mean"] if rows else None,
            "best_test_acc": best["test_acc"] if best else None,
            "best_iteration": best["iteration"] if best else None,
            "seconds": round(self.seconds, 3),
            **self.info,
            "config_key": self.config.key(),
        }
        write_json(self.dir.summary, s)
        self.status = status
        return s

    def finish(self, status: str, iterations_done: int, message: str = "", model: Optional[nn.Module] = None) -> dict[str, Any]:
        """The run's last files: a completed run its weights, curves, summary (written last: "completed"
        only once everything it promises is on disk) and no checkpoint; an interrupted or diverged
        one its summary and curves."""
        if status == "completed":
            if model is None:
                raise ValueError("a completed run needs its model")
            self.save_weights(model)
            self.plot_curves()
            result = self.summary("completed", iterations_done)
            remove(self.dir.checkpoint)
            return result
        if status == "interrupted":
            message = f"stopped at iteration {iterations_done}; continue with --resume"
        result = self.summary(status, iterations_done, message)
        self.plot_curves()
        return result

    def plot_curves(self) -> None:
        from .curves import write_curves  # matplotlib loads with a run's first figure, not with netsight

        write_curves(self.dir.curves, self.title, self.rows)


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"], device)


def _torch_save(state: dict, path: Path) -> None:
    try:
        torch.save(state, path)
    except RuntimeError as exc:  # torch's writer reports a failed write (a full disk) as RuntimeError
        raise OSError(
            28 if "unexpected pos" in str(exc) else 5, f"torch.save failed: {str(exc).splitlines()[0]}", str(path)
        ) from None
