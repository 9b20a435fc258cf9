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


# -- the user's own code failing, and data-format surprises (tests/cli/test_bad_inputs.py) ----

def broken_model(**kwargs) -> nn.Module:
    """A model factory with a bug of its own."""
    raise ValueError("depth must be even, got 3")


def type_error_model() -> nn.Module:
    """Raises a TypeError inside: not to be mistaken for a wrong argument."""
    return nn.Linear(64, "10")


def broken_dataset(**kwargs):
    """A dataset function whose own file is missing."""
    raise FileNotFoundError("no such file: /data/train.npz")


class BrokenItems:
    """A dataset whose ``__getitem__`` fails on one item."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int):
        if i == 3:
            raise KeyError(f"no record {i}")
        return torch.rand(1, 6, 6), i % 2


def broken_items_dataset():
    return BrokenItems()


def one_class_dataset(n: int = 40):
    """Every image labelled 0."""
    x, _ = pair_dataset(n)
    return x, torch.zeros(n, dtype=torch.int64)


def mixed_size_dataset():
    """Items of two sizes: item 5 is 7x6, the others 6x6."""
    return [(torch.rand(1, 7 if i == 5 else 6, 6), i % 2) for i in range(20)]


def string_label_dataset():
    return [(torch.rand(1, 6, 6), "cat" if i % 2 else "dog") for i in range(20)]


def negative_label_dataset():
    x, y = pair_dataset(40)
    return x, y - 1


def one_hot_dataset():
    x, y = pair_dataset(40)
    return x, torch.nn.functional.one_hot(y)


def multiline_error_model() -> nn.Module:
    """Raises with a message of several lines, as torch's often are."""
    raise RuntimeError("shapes do not match:\n  weight (10, 64)\n  input (2, 192)")


class TinyCNN(nn.Module):
    """A conv, a 2x2 pooling and a linear head: sees where in an RGB image things are."""

    def __init__(self, classes: int = 4, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                 nn.Linear(4 * width, classes))

    def forward(self, x):
        return self.net(x)


def tiny_cnn(**kwargs) -> nn.Module:
    return TinyCNN(**kwargs)
