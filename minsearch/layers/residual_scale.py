"""A residual add with a scaled branch: ``shortcut + alpha * branch``.

One module covers the learned-gate family of residual options:

- ReZero / SkipInit: a learned scalar ``alpha`` starting at 0 (the block starts as identity);
- scalar gate: a learned scalar starting at 1 (reproduces the plain add exactly);
- LayerScale: a learned per-channel ``alpha`` starting small;
- fixed 1/sqrt(depth) scaling: a constant buffer, not learned.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualScale(nn.Module):
    def __init__(self, init: float, channels: int | None = None, channel_dim: int = -1,
                 learnable: bool = True):
        super().__init__()
        self.channel_dim = channel_dim
        alpha = torch.full((channels,) if channels else (), float(init))
        if learnable:
            self.alpha = nn.Parameter(alpha)
        else:
            self.register_buffer("alpha", alpha)

    def forward(self, shortcut: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha
        if alpha.dim() == 1 and self.channel_dim not in (-1, branch.dim() - 1):
            shape = [1] * branch.dim()
            shape[self.channel_dim] = -1
            alpha = alpha.view(shape)  # (C,) -> (1, C, 1, 1) for channels-first maps
        return shortcut + alpha * branch

    def extra_repr(self) -> str:
        kind = "per-channel" if self.alpha.dim() else "scalar"
        learned = "learned" if isinstance(self.alpha, nn.Parameter) else "fixed"
        return f"{kind}, {learned}, channel_dim={self.channel_dim}"
