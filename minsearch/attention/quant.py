"""Quantizers for attention: real (int8/fp8 tensors plus scales) and fake (straight-through).

The fake quantizers return a float tensor holding exactly the values the real format can hold,
with straight-through gradients (the backward pass treats rounding as the identity), so a model
can be trained or fine-tuned with a precision gene switched on. Dynamic scales (absmax of the
current tensor) are detached, as in FlashAttention-3 FP8 and SageAttention; the one learned
scale is that of binary/ternary P (:func:`quantize_levels`, LSQ).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# One vocabulary with the weight-precision genes; re-exported for the attention modules.
from minsearch.number_formats import FP8_MAX as FP8_MAX
from minsearch.number_formats import INT8_MAX as INT8_MAX

_TINY = 1e-12  # floor on absmax so that an all-zero block gets a finite scale


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward ``q``, backward the identity to ``x`` (straight-through estimator)."""
    return x + (q - x).detach()


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return ste(x, torch.round(x))


def absmax_scale(x: torch.Tensor, qmax: float, granularity: str, block: int) -> torch.Tensor:
    """Scale mapping ``x``'s absmax to ``qmax``, per head or per block of tokens.

    ``x``: (B, nh, T, hs). Returns (B, nh, 1, 1) for ``head`` and (B, nh, T, 1) for ``block``
    (each token carries its block's scale, so kernels need not know the block size).
    """
    a = x.detach().abs()
    if granularity == "head":
        amax = a.amax(dim=(-2, -1), keepdim=True)
    elif granularity == "block":
        T = x.shape[-2]
        nb = math.ceil(T / block)
        a = F.pad(a, (0, 0, 0, nb * block - T))  # (B, nh, nb*block, hs), zero rows are neutral
        amax = a.unflatten(-2, (nb, block)).amax(dim=(-2, -1))  # (B, nh, nb)
        amax = amax.repeat_interleave(block, dim=-1)[..., :T, None]  # (B, nh, T, 1)
    else:
        raise ValueError(f"Scale granularity must be 'head' or 'block', but got {granularity!r}.")
    return amax.clamp_min(_TINY) / qmax


def channel_scale(v: torch.Tensor, qmax: float) -> torch.Tensor:
    """Per-channel absmax scale of V over tokens: (B, nh, T, hs) -> (B, nh, 1, hs)."""
    return v.detach().abs().amax(dim=-2, keepdim=True).clamp_min(_TINY) / qmax


def to_int8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Round ``x / scale`` to int8 in [-127, 127] (symmetric: no zero point)."""
    return torch.round(x / scale).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)


def to_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x / scale`` as float8 e4m3; clamped first because e4m3fn has no inf (overflow is NaN)."""
    return (x / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def fake_bf16(x: torch.Tensor) -> torch.Tensor:
    return ste(x, x.to(torch.bfloat16).to(x.dtype))


def fake_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return ste(x, to_fp8(x, scale).to(x.dtype) * scale)


def fake_int8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return ste(x, to_int8(x, scale).to(x.dtype) * scale)


def fake_quant(x: torch.Tensor, fmt: str, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Fake-quantize ``x`` to ``fmt`` (fp32, bf16, fp8, int8); fp8/int8 need ``scale``."""
    if fmt == "fp32":
        return x
    if fmt == "bf16":
        return fake_bf16(x)
    if fmt == "fp8":
        return fake_fp8(x, scale)
    if fmt == "int8":
        return fake_int8(x, scale)
    raise ValueError(f"Unknown attention format {fmt!r}; known: fp32, bf16, fp8, int8.")


def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """Forward ``x``, backward ``g * grad`` (LSQ's step-size gradient scale)."""
    return (x - x * g).detach() + x * g


def quantize_levels(p: torch.Tensor, alpha: torch.Tensor, levels: int) -> torch.Tensor:
    """Round ``p`` >= 0 to the nearest of {0, a, ..., (levels-1)·a}, ``a = alpha`` learned (LSQ).

    ``p``: (B, nh, Tq, Tk); ``alpha``: (nh, 1, 1) or broadcastable. Gradients: straight-through
    to ``p`` inside the range, LSQ's to ``alpha`` (Esser et al., 2020), scaled by
    1/sqrt(elements per scale · top level) for a stable step size.
    """
    g = 1.0 / math.sqrt(max(1.0, p.numel() / alpha.numel() * (levels - 1)))
    a = grad_scale(alpha, g)
    return round_ste((p / a).clamp(0, levels - 1)) * a
