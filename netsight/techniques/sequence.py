"""Recurrent runs read row by row, and why gated cells win: the accuracy after reading only the first k
rows (the hidden state at step k through the trained classifier), and the norm of the loss gradient
reaching each input row, per image, at initialisation and after training: a plain RNN's fades towards
the early rows, LSTM and GRU gates keep it alive (vanishing gradients: Bengio, Simard & Frasconi 1994;
Hochreiter & Schmidhuber 1997). Needs a netsight run (the same seed rebuilds the very initial weights)."""

from __future__ import annotations

from typing import Optional
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset
from ..errors import NetsightError
from ..models.rnn import RowSequenceClassifier
from .base import Technique, register
from .target import Target, spread


def _check(model: nn.Module) -> RowSequenceClassifier:
    if not isinstance(model, RowSequenceClassifier):
        name = getattr(getattr(model, "netsight_config", None), "name", type(model).__name__)
        raise NetsightError(f"model {name} is not a recurrent row reader; this analysis needs rnn, lstm or gru")
    return model


@torch.no_grad()
def accuracy_by_rows_read(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """[H] accuracy when classifying from the hidden state after row k (k = 1..H)."""
    model = _check(model).eval()
    device = next(model.parameters()).device
    correct: Optional[torch.Tensor] = None
    for s in range(0, len(images), batch_size):
        logits = model.forward_steps(Dataset.normalise(images[s : s + batch_size].to(device)))  # [B, H, classes]
        hit = (logits.argmax(2) == labels[s : s + batch_size].to(device)[:, None]).sum(0)
        correct = hit if correct is None else correct + hit
    if correct is None:
        raise NetsightError("rows read: no images")
    return (correct.double() / len(images)).cpu()


def gradient_by_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[N, H]: ||dLoss_i/dx_{i,t}|| for each image i and input row t (one batch, train-mode free)."""
    model = _check(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.enable_grad():
            rows = model.rows(Dataset.normalise(images.to(device))).requires_grad_(True)
            out, _ = model.rnn(rows)
            loss = F.cross_entropy(model.fc(out[:, -1]), labels.to(device), reduction="sum")  # per-image gradients
            (grad,) = torch.autograd.grad(loss, rows)
    finally:
        model.train(was_training)
    return grad.norm(dim=2).detach().cpu()


IMAGES = 512  # test images whose per-row gradients are measured


def sequence(initial, final, images: torch.Tensor, labels: torch.Tensor, count: int = IMAGES) -> tuple[torch.Tensor, list[dict]]:
    """(accuracy after k rows [H], per-step quartiles and means of the gradient norm at `initial`
    and `final` weights over `count` images spread over the set)."""
    by_rows = accuracy_by_rows_read(final, images, labels)
    idx = spread(len(images), count)
    grads = {name: gradient_by_step(m, images[idx], labels[idx]) for name, m in (("init", initial), ("final", final))}
    rows = []
    for t in range(by_rows.shape[0]):
        row: dict = {"step": t + 1}
        for name, g in grads.items():
            q = torch.quantile(g[:, t].double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
            row.update(
                {
                    f"{name}_q25": q[0].item(),
                    f"{name}_median": q[1].item(),
                    f"{name}_q75": q[2].item(),
                    f"{name}_mean": g[:, t].double().mean().item(),
                }
            )
        rows.append(row)
    return by_rows, rows


def _initial_model(t: Target):
    from ..models import ModelConfig, build_model

    torch.manual_seed(t.run.config.seed)  # what the trainer did before building the model
    return build_model(ModelConfig.from_dict(t.run.info["model"])).to(t.device)


@register
class SequenceTechnique(Technique):
    name = "sequence"
    summary = "recurrent runs: accuracy after k rows, gradient reaching each row (run directories)"
    applies_to = "recurrent"
    needs_run = True
    # no report items of its own: the recurrent section draws rows_read.csv and gradient_by_step.csv of every run together
    compute = staticmethod(sequence)

    def prepare(self, t: Target) -> dict:
        return {}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return ["tables/rows_read.csv", "tables/gradient_by_step.csv"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv

        labels = t.images.labels
        if labels is None:  # a run's split always has its labels
            raise NetsightError(f"sequence: {t.images.description} carry no labels")
        by_rows, rows = sequence(_initial_model(t), t.model, t.run_pixels(), labels)
        rows_read, gradients = (t.folder / p for p in self.outputs(t, o))
        return [
            write_csv(
                rows_read, ["rows_read", "test_acc"], [{"rows_read": k + 1, "test_acc": float(a)} for k, a in enumerate(by_rows)]
            ),
            write_csv(gradients, list(rows[0]), rows),
        ]
