"""Task data, split deterministically from a seed: the :class:`DataKind` protocol, and image
data held in memory as tensors.

In memory (:class:`TaskData`): ``digits`` (scikit-learn's bundled 8x8 digits) and a
``package.module:function`` returning a pair of tensors (or ``train``/``test`` [``val``]
pairs): images ``x`` of shape ``(N, C, H, W)`` (uint8 in 0..255, or float in [0, 1]) and
labels ``y`` of shape ``(N,)``. Streamed (:class:`~minsearch.tasks.stream.StreamData`, never
all in memory): ``imagefolder``, ``torchvision:NAME`` and a function returning a dataset
(:mod:`minsearch.tasks.image_sources`). Both are split by :func:`split_indices` (index
lists). Corruptions act on the [0, 1] images; the model sees them normalised (in memory: with
the training split's per-channel mean and std). Data with fewer than two classes is refused.

``dataset: text`` is the other kind of task data (:mod:`minsearch.tasks.text_data`); both
kinds implement :class:`DataKind`, which is all the training loop and the objectives use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from minsearch.errors import UserError
from minsearch.tasks.config import STREAM_KEYS, DataConfig, TaskConfig

Corrupt = Callable[[torch.Tensor], torch.Tensor]


class DataKind(Protocol):
    """What the training loop, candidates and objectives ask of a task's data. Implemented by
    :class:`TaskData` (images in memory, one label each), :class:`~minsearch.tasks.stream.
    StreamData` (images read through a DataLoader) and :class:`~minsearch.tasks.text_data.
    TextData` (characters, each next one a target).

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
        return pixel_noise(rate, generator)


def pixel_noise(rate: float, generator: torch.Generator) -> Corrupt:
    """Replace a fraction ``rate`` of the [0, 1] pixels by uniform random values."""

    def corrupt(x01: torch.Tensor) -> torch.Tensor:
        hit = torch.rand(x01.shape, generator=generator).to(x01.device) < rate
        return torch.where(hit, torch.rand(x01.shape, generator=generator).to(x01), x01)

    return corrupt


def load_task_data(task: TaskConfig) -> DataKind:
    """The task's data, with the transforms its model resolves (streamed image data)."""
    return load_data(task.data, task.model)


def load_data(cfg: DataConfig, model: str | None = None) -> DataKind:
    """Load ``cfg.dataset`` and split it with ``cfg.data_seed``. Image files and datasets are
    streamed (:mod:`minsearch.tasks.stream`, transforms resolved for the spec ``model``);
    digits, tensor pairs, text and density data are held in memory."""
    if cfg.kind == "text":
        from minsearch.tasks.text_data import load_text_data

        return load_text_data(cfg)
    if cfg.kind == "density":
        from minsearch.tasks.density_data import load_density_data

        return load_density_data(cfg)
    from minsearch.tasks.image_sources import read_sources

    parts = read_sources(cfg)
    if not all(isinstance(part, Split) for part in parts.values()):
        from minsearch.tasks.stream import stream_data

        return stream_data(parts, cfg, model)
    given = [k for k in STREAM_KEYS if getattr(cfg, k) is not None]
    if given:
        raise UserError(f"{', '.join(f'`{k}`' for k in given)} apply to streamed image data "
                        f"(imagefolder, torchvision:NAME, a function returning a dataset), but "
                        f"`dataset: {cfg.dataset}` is held in memory as tensors; remove them.")
    chosen = split_indices({k: len(v) for k, v in parts.items()}, cfg)
    train, val, test = (Split(parts[part].x[index], parts[part].y[index])
                        for part, index in chosen)
    num_classes = check_classes(torch.cat([train.y, val.y, test.y]), cfg)
    images = train.images(slice(None))
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return TaskData(train, val, test, num_classes, mean, std)


def check_classes(y: torch.Tensor, cfg: DataConfig) -> int:
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


def split_indices(sizes: dict[str, int], cfg: DataConfig
                  ) -> list[tuple[str, torch.Tensor]]:
    """Train, val and test as ``(part, indices into that part)``, from the parts' sizes
    (``all``, or ``train`` + ``test`` [+ ``val``]): shuffled with ``data_seed``, at most
    ``max_samples`` taken per part, ``split`` fractions cut from ``all`` (or val from train),
    val and test cut to ``eval_samples``. Index lists only: no example is read here."""
    generator = torch.Generator().manual_seed(cfg.data_seed)

    def take(part: str) -> torch.Tensor:
        order = torch.randperm(sizes[part], generator=generator)
        return order[:cfg.max_samples] if cfg.max_samples is not None else order

    f_train, f_val, f_test = cfg.split
    if "all" in sizes:
        pool = take("all")
        n = len(pool)
        n_test = max(1, round(n * f_test))
        n_val = round(n * f_val)
        n_train = n - n_val - n_test
        if n_train < 1:
            raise UserError(f"Split {list(cfg.split)} of {n} samples leaves no training data.")
        chosen = [("all", pool[:n_train]), ("all", pool[n_train:n_train + n_val]),
                  ("all", pool[n_train + n_val:])]
    else:
        test = take("test")
        if "val" in sizes:
            chosen = [("train", take("train")), ("val", take("val")), ("test", test)]
        else:
            pool = take("train")
            n_val = round(len(pool) * f_val / (f_train + f_val))
            chosen = [("train", pool[n_val:]), ("train", pool[:n_val]), ("test", test)]
    if cfg.eval_samples is not None:  # quick screens: the first of the shuffled val and test
        chosen[1:] = [(part, index[:cfg.eval_samples]) for part, index in chosen[1:]]
    return chosen
