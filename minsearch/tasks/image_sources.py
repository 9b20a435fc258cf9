"""Image sources: each ``dataset`` of an image task read into :class:`Split` s.

``digits`` (scikit-learn's bundled 8x8 digits), ``imagefolder`` (a class-per-folder tree,
each file read with PIL as RGB), ``torchvision:NAME`` with a local ``data_root``
(``download=False`` always), and ``package.module:function`` returning a dataset, a pair of
tensors, or a mapping with ``train``/``test`` (and optionally ``val``) entries.

What can be wrong with the data is a one-line :class:`~minsearch.errors.UserError` naming the
culprit and the fix: a file PIL cannot read (its path under ``data_root``), images of
different sizes (two of them, with their shapes), a class folder without images, a label
that is not a class index; the user's own dataset function or ``__getitem__`` raising is one
line naming the spec and the step, its traceback chained for ``--debug``.
"""

from __future__ import annotations

import importlib
import inspect
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from minsearch.errors import UserError, one_line, user_code_error
from minsearch.models import check_arguments
from minsearch.tasks.config import DataConfig
from minsearch.tasks.data import Split


def read_sources(cfg: DataConfig) -> dict[str, Split]:
    """The image dataset ``cfg`` names, unsplit: ``{"all": ...}``, or its own ``train`` and
    ``test`` (and ``val``) parts."""
    if cfg.dataset == "digits":
        return {"all": _digits()}
    if cfg.dataset == "imagefolder":
        return {"all": _imagefolder(cfg)}
    if cfg.dataset.startswith("torchvision:"):
        return _torchvision(cfg)
    return _factory(cfg)


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
    """A class-per-folder tree: every image read with PIL as RGB; a file PIL cannot read, a
    class folder without images, or a tree of fewer than two classes is a one-line error."""
    from torchvision.datasets import ImageFolder

    root = Path(str(cfg.data_root)).expanduser()
    if not root.is_dir():
        state = "is a file" if root.exists() else "does not exist"
        raise UserError(f"`data_root` {str(root)!r} {state}; `dataset: imagefolder` needs a "
                        f"folder with one sub-folder of images per class.")
    try:
        dataset = ImageFolder(str(root), transform=_to_tensor_transform(cfg.image_size),
                              loader=partial(_read_image, root), allow_empty=True)
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
    return _materialize(dataset, cfg, name=lambda i: _relative(dataset.samples[i][0], root),
                        resize_hint="set `image_size: N` to resize every image to N x N")


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` when it lies under it (how messages name a file)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _read_image(root: Path, path: str):
    """ImageFolder's loader (the file as an RGB PIL image, fully decoded), with a one-line
    error that names a file PIL cannot read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # decodes the whole file: a truncated one fails here
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        # PIL's errors for a bad file: UnidentifiedImageError (an OSError), "image file is
        # truncated" (OSError), "broken PNG file" (SyntaxError)
        raise UserError(f"Image {_relative(path, root)!r} under `data_root` "
                        f"{str(root)!r} cannot be read ({one_line(err)}); remove "
                        f"or replace it.") from err


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

    hint = "set `image_size: N` to resize every image to N x N"
    if "train" in inspect.signature(cls).parameters:
        return {"train": _materialize(make(train=True), cfg, resize_hint=hint),
                "test": _materialize(make(train=False), cfg, resize_hint=hint)}
    return {"all": _materialize(make(), cfg, resize_hint=hint)}


def _factory(cfg: DataConfig) -> dict[str, Split]:
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
        return {k: _materialize(v, cfg, user=f"{what} ({k!r})", resize_hint=hint)
                for k, v in result.items()}
    return {"all": _materialize(result, cfg, user=what, resize_hint=hint)}


def _materialize(source, cfg: DataConfig, *, name: Callable[[int], str] | None = None,
                 user: str | None = None, resize_hint: str = "") -> Split:
    """A dataset of (image, label) items, or an (x, y) pair of tensors -> :class:`Split`.

    ``name(i)`` names item ``i`` in messages (a file); ``user`` names the user's dataset
    object whose items are read (a failing ``__getitem__`` is then one line); ``resize_hint``
    says how to make images of different sizes one size."""
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
        items = [_read_item(source, i, user) for i in indices]
        images = [_image_tensor(item[0]) for item in items]
        _check_sizes(images, indices, name or _item_name, describe(cfg), resize_hint)
        x = torch.stack(images)
        y = _label_tensor([item[1] for item in items], describe(cfg))
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


def _check_sizes(images: list[torch.Tensor], indices: list[int] | range,
                 name: Callable[[int], str], what: str, hint: str) -> None:
    """Images of one shape, or a UserError naming two that differ and how to fix it."""
    for image, index in zip(images, indices, strict=True):
        if image.shape != images[0].shape:
            raise UserError(f"Images of {what} differ in size: {name(indices[0])} is "
                            f"{tuple(images[0].shape)} and {name(index)} is "
                            f"{tuple(image.shape)} (channels, height, width); {hint}.")


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


def _image_tensor(image) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image
    from torchvision.transforms.functional import pil_to_tensor

    return pil_to_tensor(image)
