"""Datasets as in-memory tensors, split deterministically from a seed.

Every source is turned into images ``x`` of shape ``(N, C, H, W)`` (uint8 in 0..255, or float
in [0, 1]) and labels ``y`` of shape ``(N,)``. Corruptions act on the [0, 1] images; the model
sees them normalised with the training split's per-channel mean and std.

Sources: ``digits`` (scikit-learn's bundled 8x8 digits), ``imagefolder`` (a class-per-folder
tree), ``torchvision:NAME`` with a local ``data_root`` (``download=False`` always), and
``package.module:function`` returning a dataset, a pair of tensors, or a mapping with
``train``/``test`` (and optionally ``val``) entries.

``dataset: text`` is the other kind of task data (:mod:`minsearch.tasks.text_data`); both
kinds implement :class:`DataKind`, which is all the training loop and the objectives use.
"""

from __future__ import annotations

import importlib
import inspect
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
    if cfg.dataset == "digits":
        parts = {"all": _digits()}
    elif cfg.dataset == "imagefolder":
        parts = {"all": _imagefolder(cfg)}
    elif cfg.dataset.startswith("torchvision:"):
        parts = _torchvision(cfg)
    else:
        parts = _factory(cfg)
    train, val, test = _split(parts, cfg)
    num_classes = int(max(int(s.y.max()) for s in (train, val, test) if len(s)) + 1)
    images = train.images(slice(None))
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return TaskData(train, val, test, num_classes, mean, std)


def _digits() -> Split:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    return Split(x, torch.tensor(bunch.target, dtype=torch.int64))


def _to_tensor_transform(image_size: int | None):
    from torchvision import transforms

    steps = [transforms.Resize((image_size, image_size))] if image_size else []
    return transforms.Compose([*steps, transforms.PILToTensor()])


def _imagefolder(cfg: DataConfig) -> Split:
    from torchvision.datasets import ImageFolder

    try:
        dataset = ImageFolder(str(cfg.data_root), transform=_to_tensor_transform(cfg.image_size))
    except (FileNotFoundError, RuntimeError) as err:
        raise UserError(f"Cannot read an ImageFolder tree at {cfg.data_root!r} ({err}); "
                        f"it needs one sub-folder of images per class.") from None
    return _materialize(dataset, cfg)


def _torchvision(cfg: DataConfig) -> dict[str, Split]:
    import torchvision.datasets

    name = cfg.dataset.split(":", 1)[1]
    cls = getattr(torchvision.datasets, name, None)
    if not isinstance(cls, type):
        raise UserError(f"torchvision.datasets has no dataset {name!r}; e.g. "
                        f"'torchvision:CIFAR10' or 'torchvision:MNIST'.")
    kwargs = dict(cfg.data_kwargs, download=False,
                  transform=_to_tensor_transform(cfg.image_size))

    def make(**extra):
        try:
            return cls(str(cfg.data_root), **kwargs, **extra)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. ..."
            raise UserError(f"{name} is not under {cfg.data_root!r} ({err}). "
                            f"minsearch never downloads: put it in that folder "
                            f"yourself.") from None

    if "train" in inspect.signature(cls).parameters:
        return {"train": _materialize(make(train=True), cfg),
                "test": _materialize(make(train=False), cfg)}
    return {"all": _materialize(make(), cfg)}


def _factory(cfg: DataConfig) -> dict[str, Split]:
    module_name, _, func_name = cfg.dataset.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as err:
        raise UserError(f"Cannot load dataset function {cfg.dataset!r} ({err}); it must be "
                        f"'package.module:function' importable from PYTHONPATH.") from None
    result = func(**cfg.data_kwargs)
    if isinstance(result, dict):
        unknown = set(result) - {"train", "val", "test"}
        if unknown or not {"train", "test"} <= set(result):
            raise UserError(f"Dataset function {cfg.dataset} returned keys {sorted(result)}; "
                            f"expected 'train' and 'test' (and optionally 'val').")
        return {k: _materialize(v, cfg) for k, v in result.items()}
    return {"all": _materialize(result, cfg)}


def _materialize(source, cfg: DataConfig) -> Split:
    """A dataset of (image, label) items, or an (x, y) pair of tensors -> :class:`Split`."""
    if isinstance(source, (tuple, list)) and len(source) == 2 and all(
            isinstance(t, torch.Tensor) for t in source):
        x, y = source
    else:
        if not hasattr(source, "__len__") or not hasattr(source, "__getitem__"):
            raise UserError(f"A dataset must be indexable with a length, or an (x, y) pair of "
                            f"tensors, but got {type(source).__name__}.")
        indices: list[int] | range = range(len(source))
        if cfg.max_samples is not None and len(source) > cfg.max_samples:
            # Read only the samples that will be used (a seeded subset), not the whole set.
            generator = torch.Generator().manual_seed(cfg.data_seed)
            indices = torch.randperm(len(source), generator=generator)[:cfg.max_samples].tolist()
        items = [source[i] for i in indices]
        x = torch.stack([_image_tensor(item[0]) for item in items])
        y = torch.tensor([int(item[1]) for item in items])
    if x.ndim == 3:
        x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    if x.ndim != 4 or len(x) != len(y):
        raise UserError(f"Images must be (N, C, H, W) with one label each, but got images "
                        f"{tuple(x.shape)} and labels {tuple(y.shape)}.")
    if x.dtype != torch.uint8 and x.is_floating_point() and (x.min() < 0 or x.max() > 1):
        raise UserError(f"Float images must lie in [0, 1] (normalisation is done by minsearch), "
                        f"but got values in [{float(x.min()):.3g}, {float(x.max()):.3g}].")
    return Split(x, y.long())


def _image_tensor(image) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image
    from torchvision.transforms.functional import pil_to_tensor

    return pil_to_tensor(image)


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
