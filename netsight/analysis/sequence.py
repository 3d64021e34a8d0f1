"""What the report did not show about recurrent nets, to see why gated cells win:

- accuracy after reading only the first k rows (k = 1..H): the hidden state at step k
  through the trained classifier;
- how much gradient reaches early time steps: the norm of dLoss/dx_t (the input row t)
  per image, at initialisation and after training. A vanilla RNN's gradient fades
  towards early rows (vanishing gradients); LSTM/GRU gates keep it alive.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset
from ..errors import NetsightError
from ..models.rnn import RowSequenceClassifier


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
