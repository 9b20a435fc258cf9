"""Transforms of streamed image data: what turns one item (a PIL image or a tensor) into the
``(C, H, W)`` tensor a batch stacks, for training (augmentation) and for evaluation.

Resolved in this order (:func:`resolve_pipeline`):

1. the task's ``train_transform`` / ``eval_transform``: lists of ``torchvision.transforms``
   steps, each a name or ``{name: arguments}`` (a mapping of keyword arguments, a list of
   positional ones, or one value: ``{Resize: 36}``), built by name, never evaluated. One list
   alone serves both (a train list alone: evaluation only resizes to ``image_size`` if set);
2. a ``timm:`` model: timm's ``resolve_data_config`` (the model's pretrained config, at the
   spec's ``img_size`` / ``in_chans`` or ``image_size``) and ``create_transform`` with
   ``is_training`` True (timm's augmentation: random resized crop, flip, colour jitter) and
   False (resize + centre crop);
3. otherwise ``Resize((image_size, image_size))`` when ``image_size`` is set, else nothing.

Every pipeline first converts a PIL image to the model's channels (L for ``in_chans=1``, else
RGB) and ends with a uint8 tensor (from PIL) or the item's own tensor: the [0, 1] images that
corruptions act on. Normalisation is minsearch's, after the corruptions: ``mean``/``std``
from the task, else timm's config (averaged over RGB for a one-channel model), else measured
on training images (:mod:`minsearch.tasks.stream`). ``ToTensor``, ``Normalize`` and friends are
refused in the lists for that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from minsearch.errors import UserError, did_you_mean, one_line
from minsearch.models import default_input_shape, parse_model_spec
from minsearch.tasks.config import DataConfig

# Steps minsearch does itself: tensor conversion and normalisation (after the corruptions).
REFUSED = ("ToTensor", "PILToTensor", "ToPILImage", "ConvertImageDtype", "Normalize",
           "Compose", "Lambda")
# Steps whose output has one size whatever the input's (Resize only with a (h, w) pair).
SIZING = ("CenterCrop", "RandomCrop", "RandomResizedCrop")


@dataclass(frozen=True)
class Pipeline:
    """How items become tensors: ``train`` (with augmentation) and ``eval``; the PIL images'
    ``channels``; normalisation ``mean``/``std`` (None: to be measured); ``sized`` when the
    eval transform gives one size whatever the input's; ``origin`` names where it came from
    (``task``, ``timm``, ``plain``)."""

    train: Callable[[Any], torch.Tensor]
    eval: Callable[[Any], torch.Tensor]
    channels: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    sized: bool
    origin: str


class ItemTransform:
    """One item's image -> tensor: PIL converted to ``mode`` and through ``steps`` (then to a
    uint8 tensor), a tensor through ``steps`` as it is (or as PIL first when ``pil_only``:
    timm's steps)."""

    def __init__(self, steps: Callable[[Any], Any], mode: str, pil_only: bool = False) -> None:
        self.steps, self.mode, self.pil_only = steps, mode, pil_only

    def __call__(self, image: Any) -> torch.Tensor:
        from torchvision.transforms.functional import pil_to_tensor, to_pil_image

        if isinstance(image, torch.Tensor) and self.pil_only:
            image = to_pil_image(image)
        if not isinstance(image, torch.Tensor) and image.mode != self.mode:
            image = image.convert(self.mode)
        out = self.steps(image)
        return out if isinstance(out, torch.Tensor) else pil_to_tensor(out)


def model_channels(model: str | None) -> int | None:
    """The input channels a model spec tells without building it (timm ``in_chans`` or its
    pretrained config; a transformers config), or None (a factory)."""
    if model is None:
        return None
    shape = default_input_shape(model)
    return int(shape[1]) if shape is not None and len(shape) == 4 else None


def resolve_pipeline(cfg: DataConfig, model: str | None) -> Pipeline:
    """The pipeline for ``cfg``'s streamed data and the model spec ``model`` (see the module
    docstring)."""
    from torchvision import transforms

    channels = model_channels(model) or 3
    mode = "L" if channels == 1 else "RGB"
    resize = [transforms.Resize((cfg.image_size, cfg.image_size))] if cfg.image_size else []
    if cfg.train_transform is not None or cfg.eval_transform is not None:
        evals = build_steps(cfg.eval_transform, "eval_transform") if (
            cfg.eval_transform is not None) else resize
        trains = build_steps(cfg.train_transform, "train_transform") if (
            cfg.train_transform is not None) else evals
        sized = any(_sizing(step) for step in evals)
        return Pipeline(ItemTransform(transforms.Compose(trains), mode),
                        ItemTransform(transforms.Compose(evals), mode), channels,
                        *_task_stats(cfg, channels), sized, "task")
    if model is not None and parse_model_spec(model).source == "timm":
        return _timm_pipeline(cfg, model, channels, mode)
    steps = transforms.Compose(resize)
    return Pipeline(ItemTransform(steps, mode), ItemTransform(steps, mode), channels,
                    *_task_stats(cfg, channels), bool(resize), "plain")


def build_steps(steps: tuple[Any, ...], key: str) -> list[Any]:
    """``[{Name: arguments}]`` -> torchvision transform objects (looked up by name)."""
    from torchvision import transforms

    built = []
    for step in steps:
        name, args = (step, None) if isinstance(step, str) else next(iter(step.items()))
        cls = getattr(transforms, str(name), None)
        known = [n for n in dir(transforms) if n[:1].isupper() and n not in REFUSED]
        if name in REFUSED:
            raise UserError(f"`{key}` step {name!r}: minsearch converts images to tensors and "
                            f"normalises them itself (after the corruptions); remove it and "
                            f"set `mean`/`std` instead.")
        if not isinstance(cls, type):
            raise UserError(f"`{key}` step {name!r} is not a torchvision.transforms class."
                            f"{did_you_mean(name, known)}")
        try:
            if isinstance(args, dict):
                built.append(cls(**args))
            elif isinstance(args, list):
                built.append(cls(*args))
            else:
                built.append(cls() if args is None else cls(args))
        except (TypeError, ValueError) as err:
            raise UserError(f"`{key}` step {name} rejected its arguments {args!r}: "
                            f"{one_line(err)}.") from None
    return built


def _sizing(step: Any) -> bool:
    size = getattr(step, "size", None)
    return type(step).__name__ in SIZING or (
        type(step).__name__ == "Resize" and isinstance(size, (list, tuple)) and len(size) == 2)


def _task_stats(cfg: DataConfig, channels: int) -> tuple[tuple[float, ...] | None, ...]:
    if cfg.mean is None or cfg.std is None:
        return None, None
    return _per_channel(cfg.mean, channels, "mean"), _per_channel(cfg.std, channels, "std")


def _per_channel(values: tuple[float, ...], channels: int, key: str) -> tuple[float, ...]:
    if len(values) == channels:
        return tuple(float(v) for v in values)
    if len(values) == 1:
        return (float(values[0]),) * channels
    raise UserError(f"`{key}` has {len(values)} values but the images have {channels} "
                    f"channel(s); give one value per channel, or one for all.")


def _timm_pipeline(cfg: DataConfig, model: str, channels: int, mode: str) -> Pipeline:
    """timm's own transforms for the model's pretrained config (``normalize=False``: uint8
    tensors, normalised by minsearch after the corruptions)."""
    import timm
    from timm.data import create_transform, resolve_data_config

    spec = parse_model_spec(model)
    shape = default_input_shape(spec) or (1, channels, 224, 224)
    size = (cfg.image_size, cfg.image_size) if cfg.image_size else tuple(shape[2:])
    pretrained = timm.get_pretrained_cfg(spec.name)
    config = resolve_data_config({"input_size": (channels, *size)},
                                 pretrained_cfg=pretrained.to_dict() if pretrained else None)
    train = create_transform(**config, is_training=True, normalize=False)
    evals = create_transform(**config, is_training=False, normalize=False)
    mean, std = _task_stats(cfg, channels)
    if mean is None:
        mean = _timm_stat(config["mean"], channels)
        std = _timm_stat(config["std"], channels)
    return Pipeline(ItemTransform(train, mode, pil_only=True),
                    ItemTransform(evals, mode, pil_only=True), channels, mean, std, True, "timm")


def _timm_stat(values: tuple[float, ...], channels: int) -> tuple[float, ...] | None:
    """timm's per-channel value for ``channels``: as is, averaged over RGB for one channel,
    or None (measured on the data) for any other count."""
    if len(values) == channels:
        return tuple(float(v) for v in values)
    if channels == 1:
        return (float(sum(values)) / len(values),)
    return None
