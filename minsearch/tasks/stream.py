"""Streamed image data: a :class:`DataKind` that reads its images through a ``DataLoader``.

An image folder, a ``torchvision:NAME`` dataset or a function's dataset object is never held
in memory: a split is an index list into its source plus the labels (``(N,)`` int64), drawn
by :func:`~minsearch.tasks.data.split_indices` from ``data_seed`` exactly like in-memory data.
A batch is read by ``num_workers`` worker processes (``0``: in this process), pinned when the
batch goes to CUDA:

- a training epoch (``batches`` with a generator) reads the split in an order drawn from that
  generator, through the train transform (augmentation); the workers' random streams are
  seeded from it too, so an epoch is the same for the same seed and ``num_workers``;
- evaluation reads in order through the eval transform; ``examples`` reads a few items here.

Images arrive as uint8 (or the source's float) ``(B, C, H, W)`` tensors; corruptions act on
them in [0, 1], then minsearch normalises with the pipeline's ``mean``/``std`` (measured on up
to :data:`STAT_IMAGES` training images when neither the task nor timm gives them).

Workers start per pass and end with it (``persistent_workers`` off: nothing outlives a Ray
trial), each with one torch thread. A problem in a worker (a file that does not decode, the
user's ``__getitem__`` raising, images of two sizes in one batch) comes back as a
:class:`Problem` and is raised here as the same one-line :class:`UserError` as at load.
"""

from __future__ import annotations

import contextlib
import gc
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from minsearch.errors import UserError
from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import Corrupt, check_classes, pixel_noise, split_indices
from minsearch.tasks.image_sources import Source, check_sizes, describe
from minsearch.tasks.transforms import Pipeline, resolve_pipeline

STAT_IMAGES = 1000  # training images that measure mean/std when nobody gives them


@dataclass
class StreamSplit:
    """Items ``index`` of ``source``, with their labels ``y`` (N,)."""

    source: Source
    index: torch.Tensor  # (N,) int64 into the source
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Problem:
    """What went wrong reading an item in a worker: raised as a UserError in the main
    process (a worker's exception would come back with its traceback in the message)."""

    message: str


class _Items(Dataset):
    """Position ``i`` of a split -> ``(image tensor, label)`` through ``transform``, or a
    :class:`Problem`."""

    def __init__(self, split: StreamSplit, transform: Any) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | Problem:
        source, index = self.split.source, int(self.split.index[i])
        try:
            return self.transform(source.read(index)), int(self.split.y[i])
        except UserError as err:
            return Problem(str(err))


class _Collate:
    """Stack items into ``(x (B, C, H, W), y (B,))``, or pass on the first :class:`Problem`
    (images of two sizes are one, naming them)."""

    def __init__(self, split: StreamSplit, what: str) -> None:
        self.split, self.what = split, what

    def __call__(self, items: list) -> tuple[torch.Tensor, torch.Tensor] | Problem:
        for item in items:
            if isinstance(item, Problem):
                return item
        shapes = [tuple(x.shape) for x, _ in items]
        if len(set(shapes)) > 1:
            odd = next(i for i, s in enumerate(shapes) if s != shapes[0])
            return Problem(f"Images of {self.what} come out of the transforms in different "
                           f"sizes, {shapes[0]} and {shapes[odd]} (channels, height, width); "
                           f"{self.split.source.hint or 'resize them to one size'}.")
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def _one_thread(worker_id: int) -> None:
    torch.set_num_threads(1)  # workers decode; the trial's threads compute


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the transforms of an in-process pass (``num_workers: 0``) on seeded random
    streams, leaving the process's own untouched."""
    if seed is None:
        yield
        return
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)


@dataclass
class StreamData:
    """Image data read through a ``DataLoader`` (see the module docstring)."""

    train: StreamSplit
    val: StreamSplit
    test: StreamSplit
    num_classes: int
    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    pipeline: Pipeline
    num_workers: int
    what: str  # how messages name the dataset
    input_shape: tuple[int, int, int] = (0, 0, 0)
    kind: ClassVar[str] = "image"
    input_dtype: ClassVar[torch.dtype] = torch.float32
    output_arg: ClassVar[str] = "num_classes"

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [0, 1] -> model inputs."""
        mean = self.mean.to(x01.device).view(1, -1, 1, 1)
        std = self.std.to(x01.device).view(1, -1, 1, 1)
        return (x01 - mean) / std

    def raw_batches(self, split: StreamSplit, batch_size: int, order: list[int], *,
                    train: bool, seed: int | None = None, pin: bool = False,
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x in [0, 1] float, y)`` of the split's positions ``order``, read by the
        workers through the train or eval transform."""
        transform = self.pipeline.train if train else self.pipeline.eval
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        loader = DataLoader(_Items(split, transform), batch_size=batch_size, sampler=order,
                            num_workers=self.num_workers, collate_fn=_Collate(split, self.what),
                            pin_memory=pin, worker_init_fn=_one_thread,
                            persistent_workers=False, generator=generator)
        gc.freeze()  # workers fork from here: their gc leaves the inherited objects alone,
        try:  # so it does not copy the pages that hold them (copy-on-write)
            batches = iter(loader)
        finally:
            gc.unfreeze()
        with _seeded(seed if self.num_workers == 0 else None):
            for batch in batches:
                if isinstance(batch, Problem):
                    raise UserError(batch.message)
                x, y = batch
                yield (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()), y

    def batches(self, split: StreamSplit, batch_size: int, *,
                device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                corrupt: Corrupt | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised ``(inputs, labels)`` on ``device``; with a generator, one shuffled
        training epoch through the train transform. ``corrupt`` maps [0, 1] images to
        corrupted [0, 1] images before normalisation."""
        n = len(split)
        train = generator is not None
        order = torch.randperm(n, generator=generator).tolist() if train else list(range(n))
        seed = int(torch.randint(2**62, (1,), generator=generator)) if train else None
        pin = torch.device(device).type == "cuda"
        for x, y in self.raw_batches(split, batch_size, order, train=train, seed=seed, pin=pin):
            if corrupt is not None:
                x = corrupt(x).clamp(0.0, 1.0)
            x = x.to(device, non_blocking=pin)
            yield self.normalize(x), y.to(device, non_blocking=pin)

    def examples(self, split: StreamSplit, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` items of ``split`` (cycled), read here through the eval transform."""
        items = _Items(split, self.pipeline.eval)
        batch = _Collate(split, self.what)([items[i % len(split)] for i in range(n)])
        if isinstance(batch, Problem):
            raise UserError(batch.message)
        x, y = batch
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return self.normalize(x), y

    def noise(self, rate: float, generator: torch.Generator) -> Corrupt:
        return pixel_noise(rate, generator)


def stream_data(parts: dict[str, Any], cfg: DataConfig, model: str | None) -> StreamData:
    """Split streamed ``parts`` (sources; tensor parts were wrapped as datasets by the
    reader), resolve the transforms for ``model``, read one item for the input shape and
    measure mean/std if needed."""
    pipeline = resolve_pipeline(cfg, model)
    what = describe(cfg)
    if not pipeline.sized:
        for source in parts.values():
            check_sizes(source, what, pipeline.channels)
    chosen = split_indices({k: len(v) for k, v in parts.items()}, cfg)
    train, val, test = (StreamSplit(parts[part], index, parts[part].labels[index])
                        for part, index in chosen)
    num_classes = check_classes(torch.cat([train.y, val.y, test.y]), cfg)
    ones = torch.ones(pipeline.channels)
    data = StreamData(train, val, test, num_classes, ones * 0, ones, pipeline,
                      cfg.num_workers, what)
    x, _ = data.examples(train, 1)  # the first item decodes: the input shape, and a check
    data.input_shape = tuple(x.shape[1:])  # type: ignore[assignment]
    if pipeline.mean is not None and pipeline.std is not None:
        data.mean, data.std = torch.tensor(pipeline.mean), torch.tensor(pipeline.std)
    else:
        data.mean, data.std = _statistics(data)
    if len(data.mean) != data.input_shape[0]:
        raise UserError(f"`mean`/`std` have {len(data.mean)} values but the images of {what} "
                        f"have {data.input_shape[0]} channel(s); give one per channel.")
    return data


def _statistics(data: StreamData) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of up to :data:`STAT_IMAGES` training images (eval
    transform), as in-memory data measures its whole training split."""
    order = list(range(min(len(data.train), STAT_IMAGES)))
    count, sums, squares = 0, 0.0, 0.0
    for x, _ in data.raw_batches(data.train, 256, order, train=False):
        x = x.double()
        sums = sums + x.sum(dim=(0, 2, 3))
        squares = squares + (x * x).sum(dim=(0, 2, 3))
        count += x.numel() // x.shape[1]
    mean = sums / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt()
    return mean.float(), std.float().clamp_min(1e-6)
