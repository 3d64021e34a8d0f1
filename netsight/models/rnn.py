"""Recurrent classifiers that read an image row by row (the assignment's section 3).

An image [N,C,H,W] becomes a sequence of H steps, each step one row: all W pixels of all C
channels (28 steps of 28 values for MNIST). The last hidden state goes through a linear
layer to the class scores. The recurrence is PyTorch's fused `nn.RNN`/`nn.LSTM`/`nn.GRU`
(cuDNN on GPU, oneDNN/ATen kernels on CPU), never a Python loop over time steps.
"""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RowSequenceClassifier(nn.Module):
    def __init__(self, cell: str, input_shape: tuple[int, int, int], num_classes: int = 10, hidden: int = 128):
        super().__init__()
        channels, _, width = input_shape
        self.cell = cell
        self.rnn = CELLS[cell](input_size=channels * width, hidden_size=hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    @staticmethod
    def rows(images: torch.Tensor) -> torch.Tensor:
        """[N,C,H,W] -> [N,H,W*C]: step t is row t, its pixels with their channels interleaved."""
        n, c, h, w = images.shape
        return images.permute(0, 2, 3, 1).reshape(n, h, w * c)

    def hidden_states(self, images: torch.Tensor) -> torch.Tensor:
        """The hidden state after every row: [N,H,hidden]."""
        out, _ = self.rnn(self.rows(images))
        return out

    def forward_steps(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores from the hidden state after each row: [N,H,classes] (reading only the first k rows)."""
        return self.fc(self.hidden_states(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.hidden_states(images)[:, -1])
