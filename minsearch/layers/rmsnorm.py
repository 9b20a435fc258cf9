"""RMSNorm on any channel axis: ``x / rms(x) * weight (+ bias)``; no mean subtraction.

The bias is kept (copied) when the replaced norm had one, so that swapping a LayerNorm for an
RMSNorm changes only the statistics, not the affine part.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.layers.norm_info import build_like, channel_view, norm_info, with_tail


class RMSNorm(nn.Module):
    def __init__(self, channels: int, channel_dim: int = -1, eps: float = 1e-6,
                 bias: bool = False):
        super().__init__()
        self.channel_dim = channel_dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    @classmethod
    def from_module(cls, old: nn.Module) -> nn.Module:
        info = norm_info(old)
        new = build_like(cls, info, info.channels, info.channel_dim, info.eps,
                         bias=info.bias is not None)
        return with_tail(new, info)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim in (-1, x.dim() - 1):
            y = F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        else:  # channels-first: (N, C, ...) normalised over C at each position
            y = x * torch.rsqrt(x.pow(2).mean(self.channel_dim, keepdim=True) + self.eps)
            y = y * channel_view(self.weight, x, self.channel_dim)
        if self.bias is not None:
            y = y + channel_view(self.bias, x, self.channel_dim)
        return y

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, channel_dim={self.channel_dim}, eps={self.eps}"
