"""Norms with frozen statistics: the data-dependent division becomes a constant.

- Batch norms keep their running mean and variance as fixed buffers, in training too: the norm
  is then a per-channel affine map, equal to the original's eval-mode output, and foldable into
  the neighbouring conv/linear.
- Layer and RMS norms (per-token statistics) keep their centering, which is linear, but divide
  by a fixed ``sigma`` instead of each token's standard deviation (as in "Transformers don't
  need LayerNorm at inference time"). ``sigma`` is calibrated from the first batch the module
  sees (mean over tokens of their std), then kept; with ``momentum > 0`` it keeps tracking an
  exponential average while the module is in training mode.
"""

from __future__ import annotations

import torch
from torch import nn

from minsearch.layers.norm_info import build_like, channel_view, norm_info, with_tail


class FrozenBatchNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    @classmethod
    def from_module(cls, old: nn.Module) -> nn.Module:
        info = norm_info(old)
        new = build_like(cls, info, info.channels, info.eps)
        mean, var = getattr(old, "running_mean", None), getattr(old, "running_var", None)
        if mean is None or var is None:
            raise ValueError(f"{type(old).__name__} tracks no running statistics "
                             f"(track_running_stats=False), so there is nothing to freeze.")
        with torch.no_grad():
            new.running_mean.copy_(mean)
            new.running_var.copy_(var)
        return with_tail(new, info)

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel affine map this norm is: ``y = x * scale + shift``."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift()
        return x * channel_view(scale, x, 1) + channel_view(shift, x, 1)


class FrozenScaleNorm(nn.Module):
    def __init__(self, channels: int, channel_dim: int = -1, center: bool = True,
                 eps: float = 1e-5, momentum: float = 0.0):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`0 <= momentum <= 1` must hold, but got {momentum=}.")
        self.channel_dim, self.center, self.eps, self.momentum = channel_dim, center, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if center else None
        self.register_buffer("sigma", torch.ones(()))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))

    @classmethod
    def from_module(cls, old: nn.Module, momentum: float = 0.0) -> nn.Module:
        info = norm_info(old)
        center = info.family != "rms"
        new = build_like(cls, info, info.channels, info.channel_dim, center, info.eps, momentum)
        if not center and info.bias is not None:  # an RMS norm with a bias keeps it
            new.bias = nn.Parameter(info.bias.detach().clone())
        return with_tail(new, info)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = self.channel_dim
        if self.center:
            x = x - x.mean(dim, keepdim=True)
        if not torch.jit.is_tracing() and (self.training or not bool(self.calibrated)):
            self._observe(x)
        y = x / self.sigma * channel_view(self.weight, x, dim)
        return y if self.bias is None else y + channel_view(self.bias, x, dim)

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        # x is already centred: its per-position RMS over channels is the std the norm used.
        std = (x.pow(2).mean(self.channel_dim) + self.eps).sqrt().mean()
        if not bool(self.calibrated):
            self.sigma.copy_(std)
            self.calibrated.fill_(True)
        elif self.momentum > 0:
            self.sigma.lerp_(std, self.momentum)
