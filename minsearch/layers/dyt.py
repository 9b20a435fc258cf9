"""Dynamic Tanh (DyT, Zhu et al., CVPR 2025): ``weight * tanh(alpha * x) + bias``.

A drop-in for a norm layer with no statistics: one learned scalar ``alpha`` squashes extreme
activations the way a norm would; the per-channel affine is copied from the replaced norm.
"""

from __future__ import annotations

import torch
from torch import nn

from minsearch.layers.norm_info import build_like, channel_view, norm_info, with_tail


class DyT(nn.Module):
    def __init__(self, channels: int, channel_dim: int = -1, alpha_init: float = 0.5):
        super().__init__()
        self.channel_dim = channel_dim
        self.alpha = nn.Parameter(torch.full((), float(alpha_init)))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @classmethod
    def from_module(cls, old: nn.Module, alpha_init: float = 0.5) -> nn.Module:
        info = norm_info(old)
        return with_tail(build_like(cls, info, info.channels, info.channel_dim, alpha_init), info)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = channel_view(self.weight, x, self.channel_dim)
        b = channel_view(self.bias, x, self.channel_dim)
        return w * torch.tanh(self.alpha * x) + b

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, channel_dim={self.channel_dim}"
