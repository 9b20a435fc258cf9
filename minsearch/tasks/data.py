"""Datasets as in-memory tensors, split deterministically from a seed.

Every source is turned into images ``x`` of shape ``(N, C, H, W)`` (uint8 in 0..255, or float
in [0, 1]) and labels ``y`` of shape ``(N,)``. Corruptions act on the [0, 1] images; the model
sees them normalised with the training split's per-channel mean and std.

Sources (:mod:`minsearch.tasks.image_sources`): ``digits`` (scikit-learn's bundled 8x8
digits), ``imagefolder`` (a class-per-folder tree), ``torchvision:NAME`` with a local
``data_root`` (``download=False`` always), and ``package.module:function`` returning a
dataset, a pair of tensors, or a mapping with ``train``/``test`` (and optionally ``val``)
entries. Data with fewer than two classes is refused.

``dataset: text`` is the other kind of task data (:mod:`minsearch.tasks.text_data`); both
kinds implement :class:`DataKind`, which is all the training loop and the objectives use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from minsearch.errors import UserError
from minsearch.tasks.config import DataConfig

Corrupt = Callable[[torch.Tensor], torch.Tensor]


class DataKind(Protocol):
    """What the training loop, candidates and objectives ask of a task's data. Implemented by
    :class:`TaskData` (images, one label each) and :class:`~minsearch.tasks.text_data.TextData`
    (characters, each next one a target).

    A model maps inputs ``x`` to logits of shape ``(*y.shape, num_classes)``, one prediction
    per target, so one cross-entropy over the last dim trains and evaluates every kind.
    """

    kind: ClassVar[str]  # "image" | "text" (DataConfig.kind)
    input_dtype: ClassVar[torch.dtype]  # of model inputs: float32 images, int64 char codes
    output_arg: ClassVar[str]  # the model argument that sets num_classes, for error messages
    train: Any  # splits; len(split) is the number of examples evaluated on it
    val: Any
    test: Any
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's input shape, without the batch dim."""

    def batches(self, split: Any, batch_size: int, *, device: torch.device | str = "cpu",
                generator: torch.Generator | None = None, corrupt: Corrupt | None = None,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(inputs, targets)`` on ``device``: with a generator, one training epoch; without,
        every example of ``split`` in order. ``corrupt`` changes raw inputs first."""

    def examples(self, split: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` examples of ``split`` (cycled when ``n > len(split)``) as model
        inputs and targets on the CPU: for tracing and for measuring speed and memory."""

    def noise(self, rate: float, generator: torch.Generator) -> Corrupt:
        """A ``corrupt`` function that replaces a fraction ``rate`` of the raw input elements
        by random valid values (pixels in [0, 1], printable characters)."""


@dataclass
class Split:
    x: torch.Tensor  # (N, C, H, W) uint8 0..255 or float 0..1
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)

    def images(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Images at ``index`` as float in [0, 1]."""
        x = self.x[index]
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


@dataclass
class TaskData:
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    kind: ClassVar[str] = "image"
    input_dtype: ClassVar[torch.dtype] = torch.float32
    output_arg: ClassVar[str] = "num_classes"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [0, 1] -> model inputs."""
        mean = self.mean.to(x01.device).view(1, -1, 1, 1)
        std = self.std.to(x01.device).view(1, -1, 1, 1)
        return (x01 - mean) / std

    def batches(self, split: Split, batch_size: int, *, device: torch.device | str = "cpu",
                generator: torch.Generator | None = None,
                corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised ``(inputs, labels)`` batches; shuffled when a generator is given.
        ``corrupt`` maps [0, 1] images to corrupted [0, 1] images before normalisation."""
        n = len(split)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size] if order is not None else slice(
                start, start + batch_size)
            x = split.images(index)
            if corrupt is not None:
                x = corrupt(x).clamp(0.0, 1.0)
            yield self.normalize(x).to(device), split.y[index].to(device)

    def examples(self, split: Split, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(n) % len(split)
        return self.normalize(split.images(index)), split.y[index]

    def noise(self, rate: float, generator: torch.Generator) -> Corrupt:
        def corrupt(x01: torch.Tensor) -> torch.Tensor:
            hit = torch.rand(x01.shape, generator=generator).to(x01.device) < rate
            return torch.where(hit, torch.rand(x01.shape, generator=generator).to(x01), x01)

        return corrupt


def load_data(cfg: DataConfig) -> DataKind:
    """Load ``cfg.dataset`` and split it with ``cfg.data_seed``."""
    if cfg.kind == "text":
        from minsearch.tasks.text_data import load_text_data

        return load_text_data(cfg)
    if cfg.kind == "density":
        from minsearch.tasks.density_data import load_density_data

        return load_density_data(cfg)
    from minsearch.tasks.image_sources import read_sources

    parts = read_sources(cfg)
    train, val, test = _split(parts, cfg)
    num_classes = _check_classes(torch.cat([train.y, val.y, test.y]), cfg)
    images = train.images(slice(None))
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return TaskData(train, val, test, num_classes, mean, std)


def _check_classes(y: torch.Tensor, cfg: DataConfig) -> int:
    """The number of classes (largest label + 1); fewer than two distinct labels is refused:
    a one-class model is always right, so every candidate would look perfect."""
    present = torch.unique(y).tolist()
    if len(present) < 2:
        from minsearch.tasks.image_sources import describe

        labels = f" (label {present[0]} in all {len(y)} examples)" if present else ""
        raise UserError(f"{describe(cfg)} has {len(present)} class{labels}; a "
                        f"classifier needs at least two: use data with several classes"
                        + (" (or a larger `max_samples`)." if cfg.max_samples else "."))
    return int(max(present)) + 1


def _split(parts: dict[str, Split], cfg: DataConfig) -> tuple[Split, Split, Split]:
    generator = torch.Generator().manual_seed(cfg.data_seed)

    def take(split: Split, limit: int | None) -> Split:
        order = torch.randperm(len(split), generator=generator)
        if limit is not None:
            order = order[:limit]
        return Split(split.x[order], split.y[order])

    f_train, f_val, f_test = cfg.split
    if "all" in parts:
        pool = take(parts["all"], cfg.max_samples)
        n = len(pool)
        n_test = max(1, round(n * f_test))
        n_val = round(n * f_val)
        n_train = n - n_val - n_test
        if n_train < 1:
            raise UserError(f"Split {list(cfg.split)} of {n} samples leaves no training data.")
        cut = lambda a, b: Split(pool.x[a:b], pool.y[a:b])
        return cut(0, n_train), cut(n_train, n_train + n_val), cut(n_train + n_val, n)
    test = take(parts["test"], cfg.max_samples)
    if "val" in parts:
        return take(parts["train"], cfg.max_samples), take(parts["val"], cfg.max_samples), test
    pool = take(parts["train"], cfg.max_samples)
    n_val = round(len(pool) * f_val / (f_train + f_val))
    return (Split(pool.x[n_val:], pool.y[n_val:]), Split(pool.x[:n_val], pool.y[:n_val]), test)
