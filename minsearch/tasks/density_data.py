"""Density data (``dataset: density:NAME``): examples without labels, for flows.

- ``density:digits``: scikit-learn's 8x8 digits as images ``(1, 8, 8)`` of **17 grey levels**
  (0..16). A flow needs a continuous density, so each level ``k`` is *uniformly dequantized*:
  ``x = (k + u) / 17`` with ``u ~ U[0, 1)`` per pixel, fresh noise every training batch, one
  fixed draw per split for evaluation (the same for every candidate). Then
  ``-log P(k) <= -log p(x) + D log 17`` (Theis et al. 2016), so the **bits per dimension**
  reported are ``(-log p(x) + D log 17) / (D ln 2)``: an upper bound on the discrete
  codelength, over the 17 levels, ``D = 64``. A model that ignores the data scores
  ``log2(17) = 4.09`` bits/dim.
- ``density:moons | circles | 8gaussians | checkerboard``: continuous 2-D points made in
  code (``max_samples`` points, default 3000, from ``data_seed``); bits per dimension are
  ``-log p(x) / (D ln 2)`` with ``D = 2``, a differential entropy: it can be negative.

The model sees ``x - 0.5`` for digits (a shift: it changes no density). Batches yield
``(x, y)`` like every :class:`~minsearch.tasks.data.DataKind`; ``y`` is an all-zero
placeholder (there are no targets: a density model scores its inputs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch

from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import Corrupt

DIGIT_LEVELS = 17
POINTS = 3000  # default size of a 2-D set


@dataclass
class DensitySplit:
    x: torch.Tensor  # (N, *event): uint8 levels (digits) or float32 points (2-D)
    u: torch.Tensor | None  # (N, *event) fixed dequantization noise for evaluation

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class DensityData:
    train: DensitySplit
    val: DensitySplit
    test: DensitySplit
    name: str
    levels: int | None  # discrete levels per dimension (17), None for continuous data
    num_classes: int = 0
    kind: ClassVar[str] = "density"
    input_dtype: ClassVar[torch.dtype] = torch.float32
    output_arg: ClassVar[str] = "dims"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def dims(self) -> int:
        return math.prod(self.input_shape)

    def inputs(self, split: DensitySplit, index, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Model inputs at ``index``: dequantized with fresh noise from ``generator``, or the
        split's fixed noise; continuous points as they are."""
        x = split.x[index]
        if self.levels is None:
            return x.float()
        u = torch.rand(x.shape, generator=generator) if generator is not None else split.u[index]
        return (x.float() + u) / self.levels - 0.5

    def bits_per_dim(self, log_prob: torch.Tensor) -> torch.Tensor:
        """Bits per dimension of each example from ``log p(x)`` in nats (see the module
        docstring for the dequantization term)."""
        nats = -log_prob + (self.dims * math.log(self.levels) if self.levels else 0.0)
        return nats / (self.dims * math.log(2))

    def batches(self, split: DensitySplit, batch_size: int, *, device: torch.device | str = "cpu",
                generator: torch.Generator | None = None, corrupt: Corrupt | None = None,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(split)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size] if order is not None else slice(
                start, start + batch_size)
            x = self.inputs(split, index, generator)
            if corrupt is not None:
                x = corrupt(x)
            yield x.to(device), torch.zeros(len(x), dtype=torch.int64, device=device)

    def examples(self, split: DensitySplit, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(n) % len(split)
        return self.inputs(split, index), torch.zeros(n, dtype=torch.int64)

    def noise(self, rate: float, generator: torch.Generator) -> Corrupt:
        """Replace a fraction ``rate`` of the input elements by standard normal values."""
        def corrupt(x: torch.Tensor) -> torch.Tensor:
            hit = torch.rand(x.shape, generator=generator).to(x.device) < rate
            return torch.where(hit, torch.randn(x.shape, generator=generator).to(x), x)

        return corrupt


def two_d(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points of a 2-D toy density, ``(n, 2)`` float32, roughly within [-4, 4]."""
    if name in ("moons", "circles"):
        from sklearn.datasets import make_circles, make_moons

        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        if name == "moons":
            points = make_moons(n, noise=0.05, random_state=seed)[0] * 2 - [1.0, 0.5]
        else:
            points = make_circles(n, noise=0.05, factor=0.5, random_state=seed)[0] * 3
        return torch.tensor(points, dtype=torch.float32)
    if name == "8gaussians":
        angles = torch.randint(0, 8, (n,), generator=generator) * (math.pi / 4)
        centres = 3.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
        return centres + 0.3 * torch.randn(n, 2, generator=generator)
    # checkerboard: 8 unit squares of a 4 x 4 board, x in [-2, 2)^2
    x1 = torch.rand(n, generator=generator) * 4 - 2
    x2 = torch.rand(n, generator=generator) - torch.randint(0, 2, (n,), generator=generator) * 2
    return torch.stack([x1, x2 + (x1.floor() % 2)], dim=1)


def load_density_data(cfg: DataConfig) -> DensityData:
    name = cfg.dataset.partition(":")[2]
    generator = torch.Generator().manual_seed(cfg.data_seed)
    if name == "digits":
        from sklearn.datasets import load_digits

        levels = torch.tensor(load_digits().images, dtype=torch.uint8).unsqueeze(1)  # 0..16
        x, n_levels = levels[torch.randperm(len(levels), generator=generator)], DIGIT_LEVELS
        if cfg.max_samples is not None:
            x = x[:cfg.max_samples]
    else:
        x, n_levels = two_d(name, cfg.max_samples or POINTS, generator), None
    n = len(x)
    n_test = max(1, round(n * cfg.split[2]))
    n_val = round(n * cfg.split[1])
    n_train = n - n_val - n_test
    cuts = [(0, n_train), (n_train, n_train + n_val), (n_train + n_val, n)]
    splits = []
    for a, b in cuts:
        u = torch.rand(x[a:b].shape, generator=generator) if n_levels else None
        splits.append(DensitySplit(x[a:b], u))
    return DensityData(*splits, name=name, levels=n_levels)
