"""Image sources: each ``dataset`` of an image task, as in-memory :class:`Split` s or as
streamed :class:`Source` s (read item by item by :mod:`minsearch.tasks.stream`).

In memory: ``digits`` (scikit-learn's bundled 8x8 digits) and a ``package.module:function``
returning a pair of tensors. Streamed, never all in memory: ``imagefolder`` (a class-per-folder
tree, or ``train/`` and ``val/`` or ``test/`` trees of them; each file read with PIL as RGB, or
as L when it is single-channel), ``torchvision:NAME`` with a local ``data_root``
(``download=False`` always), and a function returning a dataset. A mapping with ``train`` /
``test`` (and optionally ``val``) entries gives the parts. A source's labels are read without
its images when it has them as ``targets`` (torchvision's convention; ImageFolder has); a
dataset without them is read once, item by item, at load (nothing kept but the labels).

What can be wrong with the data is a one-line :class:`~minsearch.errors.UserError` naming the
culprit and the fix: a file PIL cannot open (its path under ``data_root``; every file's header
is opened at load, a file that only fails to decode is named when it is read), images of
different sizes (two of them, with their shapes), a class folder without images, a label
that is not a class index; the user's own dataset function or ``__getitem__`` raising is one
line naming the spec and the step, its traceback chained for ``--debug``.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minsearch.errors import UserError, one_line, user_code_error
from minsearch.models import check_arguments
from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import Split

SINGLE_CHANNEL = ("1", "L", "I", "I;16", "F")  # PIL modes read as one channel (L)


@dataclass
class Source:
    """A dataset read item by item: ``dataset[i]`` is ``(image, label)``, ``labels`` (N,)
    int64 all its labels. ``user`` names the user's own dataset object in messages (its
    ``__getitem__`` raising is then one line); ``names[i]`` names item ``i`` (a file)."""

    dataset: Any
    labels: Any  # torch.Tensor (N,)
    user: str | None = None
    names: Any = None  # (N,) numpy bytes: each item's file, relative to data_root
    sizes: Any = None  # of each raw item, when known (a list or an (N, 2) array): (H, W) of a
    # PIL image (its channels are the pipeline's), (C, H, W) of a tensor
    hint: str = ""  # how to make images of different sizes one size

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, i: int) -> Any:
        """Item ``i``'s image (PIL or tensor); a UserError naming it when it cannot be read."""
        return _read_item(self.dataset, i, self.user)[0]

    def name(self, i: int) -> str:
        return os.fsdecode(self.names[i]) if self.names is not None else _item_name(i)


def read_sources(cfg: DataConfig) -> dict[str, Split | Source]:
    """The image dataset ``cfg`` names, unsplit: ``{"all": ...}``, or its own ``train`` and
    ``test`` (and ``val``) parts; in memory (:class:`Split`) or streamed (:class:`Source`)."""
    if cfg.dataset == "digits":
        return {"all": _digits()}
    if cfg.dataset == "imagefolder":
        return _imagefolder_parts(cfg)
    if cfg.dataset.startswith("torchvision:"):
        return _torchvision(cfg)
    return _factory(cfg)


def _digits() -> Split:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    return Split(x, torch.tensor(bunch.target, dtype=torch.int64))


def _imagefolder_parts(cfg: DataConfig) -> dict[str, Source]:
    """``data_root`` as one class-per-folder tree (``all``), or as ``train/`` plus ``val/``
    and/or ``test/`` trees (the parts a user trained and held out with)."""
    root = Path(str(cfg.data_root)).expanduser()
    if not root.is_dir():
        state = "is a file" if root.exists() else "does not exist"
        raise UserError(f"`data_root` {str(root)!r} {state}; `dataset: imagefolder` needs a "
                        f"folder with one sub-folder of images per class.")
    parts = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if "train" in parts and len(parts) > 1 and all(
            any(p.is_dir() for p in folder.iterdir()) for folder in parts.values()):
        if "test" not in parts:  # a held-out `val/` tree measures the candidates
            parts["test"] = parts.pop("val")
        return {name: _imagefolder(folder) for name, folder in parts.items()}
    return {"all": _imagefolder(root)}


def _imagefolder(root: Path) -> Source:
    """A class-per-folder tree, streamed; every file's header opened once here (a file PIL
    cannot open is a one-line error), a class folder without images, or a tree of fewer than
    two classes is a one-line error."""
    from torchvision.datasets import ImageFolder

    try:
        dataset = ImageFolder(str(root), loader=partial(_read_image, root), allow_empty=True)
    except FileNotFoundError:  # torchvision: "Couldn't find any class folder in ..."
        raise UserError(f"`data_root` {str(root)!r} holds no class folders; `dataset: "
                        f"imagefolder` needs one sub-folder of images per class, e.g. "
                        f"{root / 'cat' / '1.png'} and {root / 'dog' / '1.png'}.") from None
    counts = Counter(dataset.targets)
    empty = [name for i, name in enumerate(dataset.classes) if not counts[i]]
    if empty:
        from torchvision.datasets.folder import IMG_EXTENSIONS

        raise UserError(f"Class folder(s) {', '.join(map(repr, empty))} under `data_root` "
                        f"{str(root)!r} hold no images ({', '.join(IMG_EXTENSIONS)}); add "
                        f"images or remove the folder(s).")
    if len(dataset.classes) < 2:
        raise UserError(f"`data_root` {str(root)!r} holds {len(dataset.classes)} class folder "
                        f"({dataset.classes[0]!r}, {len(dataset)} images); a classifier needs "
                        f"at least two classes: add one sub-folder of images per class.")
    names = np.array([os.fsencode(_relative(path, root)) for path, _ in dataset.samples])
    sizes = np.array([_header_size(root, path) for path, _ in dataset.samples], dtype=np.int32)
    labels = torch.tensor(dataset.targets, dtype=torch.int64)
    return Source(Files(root, names, labels), labels, names=names, sizes=sizes,
                  hint=RESIZE_HINT)


class Files:
    """Image files under ``root``, read by name: item ``i`` is (the decoded image, its label).
    Names are one numpy array of bytes, not a Python object per file: a DataLoader worker
    that touched a million refcounts would copy the pages that hold them (what torchvision's
    ImageFolder, a list of tuples, costs per worker)."""

    def __init__(self, root: Path, names: np.ndarray, labels: torch.Tensor) -> None:
        self.root, self.names, self.labels = root, names, labels

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path = self.root / os.fsdecode(self.names[i])
        return _read_image(self.root, str(path)), int(self.labels[i])


def _header_size(root: Path, path: str) -> tuple[int, int]:
    """(height, width) from the file's header (PIL opens lazily: no decoding)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return (image.height, image.width)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise _unreadable(root, path, err) from err


def _unreadable(root: Path, path: str, err: BaseException) -> UserError:
    return UserError(f"Image {_relative(path, root)!r} under `data_root` {str(root)!r} cannot "
                     f"be read ({one_line(err)}); remove or replace it.")


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` when it lies under it (how messages name a file)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _read_image(root: Path, path: str):
    """ImageFolder's loader (the file as an RGB PIL image, or L when it has one channel,
    fully decoded), with a one-line error that names a file PIL cannot read."""
    from PIL import Image

    try:
        with Image.open(path) as image:  # convert() decodes the whole file: a truncated one
            return image.convert("L" if image.mode in SINGLE_CHANNEL else "RGB")  # fails here
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        # PIL's errors for a bad file: UnidentifiedImageError (an OSError), "image file is
        # truncated" (OSError), "broken PNG file" (SyntaxError)
        raise _unreadable(root, path, err) from err


def _torchvision(cfg: DataConfig) -> dict[str, Source]:
    import torchvision.datasets

    name = cfg.dataset.split(":", 1)[1]
    cls = getattr(torchvision.datasets, name, None)
    if not isinstance(cls, type):
        raise UserError(f"torchvision.datasets has no dataset {name!r}; e.g. "
                        f"'torchvision:CIFAR10' or 'torchvision:MNIST'.")
    kwargs = dict(cfg.data_kwargs, download=False)

    def make(**extra) -> Source:
        try:
            dataset = cls(str(cfg.data_root), **kwargs, **extra)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. ..."
            raise UserError(f"{name} is not under {cfg.data_root!r} ({err}). "
                            f"minsearch never downloads: put it in that folder "
                            f"yourself.") from None
        return _source(dataset, cfg, user=None, hint=RESIZE_HINT)

    if "train" in inspect.signature(cls).parameters:
        return {"train": make(train=True), "test": make(train=False)}
    return {"all": make()}


RESIZE_HINT = "set `image_size: N` to resize every image to N x N"


def _factory(cfg: DataConfig) -> dict[str, Split | Source]:
    """The parts a ``package.module:function`` returns: tensor pairs stay in memory; dataset
    objects are streamed (with tensor pairs beside them wrapped as datasets)."""
    from torch.utils.data import TensorDataset

    module_name, _, func_name = cfg.dataset.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as err:
        raise UserError(f"Cannot load dataset function {cfg.dataset!r} ({err}); it must be "
                        f"'package.module:function' importable from PYTHONPATH.") from None
    what = f"Dataset function {cfg.dataset!r}"
    check_arguments(func, cfg.data_kwargs, f"{what} (`data_kwargs`)")
    try:
        result = func(**cfg.data_kwargs)
    except Exception as err:  # the user's own code: one line, its traceback with --debug
        raise user_code_error(what, "while loading the data", err) from err
    hint = f"make {cfg.dataset} return images of one size"
    if isinstance(result, dict):
        unknown = set(result) - {"train", "val", "test"}
        if unknown or not {"train", "test"} <= set(result):
            raise UserError(f"Dataset function {cfg.dataset} returned keys {sorted(result)}; "
                            f"expected 'train' and 'test' (and optionally 'val').")
        parts = result
    else:
        parts = {"all": result}
    if all(_is_pair(v) for v in parts.values()):
        return {k: _pair_split(v, cfg) for k, v in parts.items()}
    named = {k: f"{what} ({k!r})" if k != "all" else what for k in parts}
    return {k: _source(TensorDataset(*v) if _is_pair(v) else v, cfg, user=named[k], hint=hint)
            for k, v in parts.items()}


def _is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(t, torch.Tensor) for t in value)


def _source(dataset: Any, cfg: DataConfig, *, user: str | None, hint: str) -> Source:
    """A dataset object as a :class:`Source`: its labels from ``targets`` when it has them,
    else from reading every item once (its image's size kept, the image dropped)."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise UserError(f"A dataset must be indexable with a length, or an (x, y) pair of "
                        f"tensors, but got {type(dataset).__name__}.")
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        labels = _label_tensor(list(targets), describe(cfg))
        return Source(dataset, _integer_labels(labels, describe(cfg)), user, hint=hint)
    sizes, labels = [], []
    for i in range(len(dataset)):
        image, label = _read_item(dataset, i, user)[:2]
        sizes.append(_size_of(image, cfg))
        labels.append(label)
    y = _label_tensor(labels, describe(cfg))
    return Source(dataset, _integer_labels(y, describe(cfg)), user, sizes=sizes, hint=hint)


def _size_of(image: Any, cfg: DataConfig) -> tuple[int, ...]:
    """(height, width) of a PIL image, (C, H, W) of a tensor (in [0, 1] when float)."""
    if isinstance(image, torch.Tensor):
        if image.is_floating_point() and image.numel() and (image.min() < 0 or image.max() > 1):
            raise UserError(f"Float images of {describe(cfg)} must lie in [0, 1] "
                            f"(normalisation is done by minsearch), but got values in "
                            f"[{float(image.min()):.3g}, {float(image.max()):.3g}].")
        return tuple(image.shape) if image.ndim == 3 else (1, *image.shape)
    return (image.height, image.width)


def _pair_split(pair: tuple[torch.Tensor, torch.Tensor], cfg: DataConfig) -> Split:
    """An (x, y) pair of tensors, already in memory -> :class:`Split`."""
    x, y = pair
    if x.ndim == 3:
        x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        one_hot = " (one-hot labels? pass y.argmax(1))" if y.ndim == 2 else ""
        raise UserError(f"Images of {describe(cfg)} must be (N, C, H, W) with one label each, "
                        f"but got images {tuple(x.shape)} and labels {tuple(y.shape)}{one_hot}.")
    if x.dtype != torch.uint8 and x.is_floating_point() and (x.min() < 0 or x.max() > 1):
        raise UserError(f"Float images of {describe(cfg)} must lie in [0, 1] (normalisation is "
                        f"done by minsearch), but got values in [{float(x.min()):.3g}, "
                        f"{float(x.max()):.3g}].")
    return Split(x, _integer_labels(y, describe(cfg)))


def _item_name(i: int) -> str:
    return f"item {i}"


def _read_item(source, i: int, user: str | None):
    if user is None:  # our own dataset objects (ImageFolder, torchvision): errors are ours
        return source[i]
    try:
        return source[i]
    except Exception as err:  # the user's own __getitem__
        raise user_code_error(user, f"while reading item {i}", err) from err


def check_sizes(source: Source, what: str, channels: int) -> None:
    """Items of one height and width, or a UserError naming two that differ and how to fix
    it (for a pipeline that does not resize: a batch must stack). PIL images are shown with
    the ``channels`` they are read as."""
    if source.sizes is None or not len(source.sizes):
        return
    sides = np.array([tuple(size)[-2:] for size in source.sizes])  # (N, 2): height, width
    odd = np.flatnonzero((sides != sides[0]).any(axis=1))
    if len(odd):
        shown = [tuple(int(v) for v in source.sizes[i]) for i in (0, int(odd[0]))]
        first, other = ((channels, *size) if len(size) == 2 else size for size in shown)
        raise UserError(f"Images of {what} differ in size: {source.name(0)} is {first} and "
                        f"{source.name(int(odd[0]))} is {other} (channels, height, width); "
                        f"{source.hint}.")


def describe(cfg: DataConfig) -> str:
    """How messages name the dataset: ``dataset: NAME`` and its ``data_root``, if any."""
    where = f" under `data_root` {cfg.data_root!r}" if cfg.data_root else ""
    return f"`dataset: {cfg.dataset}`{where}"


def _label_tensor(labels: list, what: str) -> torch.Tensor:
    values = []
    for label in labels:
        try:
            values.append(int(label))
        except (TypeError, ValueError):
            raise UserError(f"{what} has a label {label!r} ({type(label).__name__}); labels "
                            f"must be class indices 0, 1, ..., K-1.") from None
    return torch.tensor(values)


def _integer_labels(y: torch.Tensor, what: str) -> torch.Tensor:
    """``y`` as int64 class indices; a fractional or negative label is a UserError."""
    if y.is_floating_point() and not torch.equal(y, y.round()):
        bad = float(y[y != y.round()][0])
        raise UserError(f"{what} has a label {bad:g}; labels must be class indices 0, 1, ..., "
                        f"K-1.")
    y = y.long()
    if len(y) and int(y.min()) < 0:
        raise UserError(f"{what} has a label {int(y.min())}; labels must be class indices 0, "
                        f"1, ..., K-1.")
    return y
