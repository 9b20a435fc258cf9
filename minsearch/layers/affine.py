"""Affine-only norm: ``weight * x + bias`` per channel, the norm's statistics dropped."""

from __future__ import annotations

import torch
from torch import nn

from minsearch.layers.norm_info import build_like, channel_view, norm_info, with_tail


class Affine(nn.Module):
    def __init__(self, channels: int, channel_dim: int = -1):
        super().__init__()
        self.channel_dim = channel_dim
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @classmethod
    def from_module(cls, old: nn.Module) -> nn.Module:
        info = norm_info(old)
        return with_tail(build_like(cls, info, info.channels, info.channel_dim), info)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = channel_view(self.weight, x, self.channel_dim)
        return x * w + channel_view(self.bias, x, self.channel_dim)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, channel_dim={self.channel_dim}"
