"""Read what a norm class computes by running it, not by trusting its attribute names.

Norm classes outside torch store their affine their own way: Gemma's RMSNorm scales by
``1 + weight`` (weight initialised to 0), T5's ``T5LayerNorm`` is an RMS norm, Llama's keeps
its epsilon in ``variance_epsilon``. A replacement that copied ``weight`` as the scale would
make Gemma's output constant. :func:`probe_norm` measures instead:

- the family: a layer norm ignores a constant shift of its input, an RMS norm does not;
- the effective per-channel scale and shift: with ``n`` the normalized input,
  ``y(x) = n·w + b`` and ``y(-x) = -n·w + b`` give ``w = (y(x) - y(-x)) / 2n`` and
  ``b = (y(x) + y(-x)) / 2``;
- then checks the result on a random input; a module that is not an affine-after-normalize
  (a fused activation, say) gives None, and its attributes are read as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

TOLERANCE = 1e-4


@dataclass(frozen=True)
class Probed:
    family: str  # layer | rms
    weight: torch.Tensor  # (C,) the effective scale
    bias: torch.Tensor  # (C,) the effective shift (zeros for an RMS norm without one)


def _normalized(x: torch.Tensor, family: str, eps: float) -> torch.Tensor:
    if family == "layer":
        return (x - x.mean(-1, keepdim=True)) * torch.rsqrt(x.var(-1, keepdim=True,
                                                                  unbiased=False) + eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


@torch.no_grad()
def probe_norm(module: nn.Module, channels: int, eps: float) -> Probed | None:
    """The family and effective affine of a channels-last norm, or None when the module does
    not behave as one (or has no real weights: on the meta device)."""
    ref = next(iter([*module.parameters(), *module.buffers()]), None)
    if ref is None or ref.device.type == "meta" or not ref.is_floating_point():
        return None
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, channels, generator=g, dtype=torch.float64)
    try:
        run = lambda t: module(t.to(ref.device, ref.dtype)).to(torch.float64)  # noqa: E731
        y = run(x)
        family = "layer" if torch.allclose(run(x + 3.0), y, atol=1e-3, rtol=1e-3) else "rms"
        unit = torch.where(torch.arange(channels) % 2 == 0, 1.0, -1.0).to(torch.float64)[None]
        n = _normalized(unit, family, eps)
        plus, minus = run(unit), run(-unit)
    except (RuntimeError, TypeError, ValueError):  # not callable on a (N, C) tensor
        return None
    weight = ((plus - minus) / (2 * n))[0]
    bias = ((plus + minus) / 2)[0]
    predicted = _normalized(x, family, eps) * weight + bias
    if (predicted - y).abs().max() > TOLERANCE * (1.0 + y.abs().max()):
        return None
    return Probed(family, weight.to(ref.dtype), bias.to(ref.dtype))
