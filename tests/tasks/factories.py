"""Model and dataset factories for the task tests (used as ``tests.tasks.factories:NAME``)."""

from __future__ import annotations

import torch
from torch import nn


class TinyMLP(nn.Module):
    def __init__(self, side: int = 8, classes: int = 10, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(side * side, width), nn.LayerNorm(width),
                                 nn.GELU(), nn.Linear(width, classes))

    def forward(self, x):
        return self.net(x)


class NaNModel(nn.Module):
    """Trains to NaN at once: its output is ``log`` of a negative number."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return torch.log(-self.fc(x.flatten(1)).abs() - 1.0)


def tiny_mlp(**kwargs) -> nn.Module:
    return TinyMLP(**kwargs)


def nan_model(**kwargs) -> nn.Module:
    return NaNModel(**kwargs)


def pair_dataset(n: int = 60):
    """Two classes of 6x6 images as an (x, y) pair of tensors in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, 6, 6, generator=g) * 0.5 + y.view(-1, 1, 1, 1) * 0.5
    return x, y


def split_dataset():
    x, y = pair_dataset(80)
    return {"train": (x[:60], y[:60]), "test": (x[60:], y[60:])}
