"""A corruption suite for images in [0, 1], in the spirit of ImageNet-C, at 3 severities.

Each corruption is a function ``(images (B, C, H, W) in [0, 1], severity 1..3, generator) ->
images``; randomness comes from the generator, so a suite is the same for every candidate.
Parameters are chosen to hurt but not erase small images (8x8 digits to 32x32 CIFAR).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from minsearch.errors import UserError, did_you_mean

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
_CORRUPTIONS: dict[str, Corruption] = {}


def _register(name: str):
    def wrap(fn: Corruption) -> Corruption:
        _CORRUPTIONS[name] = fn
        return fn

    return wrap


def _pick(severity: int, levels: tuple[float, float, float]) -> float:
    return levels[severity - 1]


@_register("gaussian_noise")
def gaussian_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    sigma = _pick(severity, (0.08, 0.16, 0.28))
    return x + sigma * torch.randn(x.shape, generator=gen).to(x.device)


@_register("impulse_noise")
def impulse_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    amount = _pick(severity, (0.03, 0.08, 0.15))  # fraction of pixels set to 0 or 1
    u = torch.rand(x.shape, generator=gen).to(x.device)
    salt = torch.rand(x.shape, generator=gen).to(x.device) < 0.5
    return torch.where(u < amount, salt.to(x.dtype), x)


@_register("blur")
def blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    sigma = _pick(severity, (0.5, 0.9, 1.4))
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # horizontal
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # vertical


@_register("contrast")
def contrast(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    factor = _pick(severity, (0.6, 0.4, 0.25))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor + mean


@_register("brightness")
def brightness(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    return x + _pick(severity, (0.15, 0.3, 0.45))


@_register("pixelate")
def pixelate(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    """Average over k x k blocks (k = 2, 3, 4), each block one flat colour."""
    k = severity + 1
    h, w = x.shape[-2:]
    pooled = F.avg_pool2d(x, k, stride=k, ceil_mode=True, count_include_pad=False)
    return pooled.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)[..., :h, :w]


def corruption_names() -> tuple[str, ...]:
    return tuple(_CORRUPTIONS)


def get_corruption(name: str) -> Corruption:
    fn = _CORRUPTIONS.get(name)
    if fn is None:
        raise UserError(f"Unknown corruption {name!r}; known: "
                        f"{', '.join(_CORRUPTIONS)}.{did_you_mean(name, _CORRUPTIONS)}")
    return fn
