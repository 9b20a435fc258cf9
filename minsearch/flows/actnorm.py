"""ActNorm (Glow, Kingma & Dhariwal 2018): a per-channel affine ``y = (x + bias) * exp(s)``,
initialised from the first training batch so that each channel starts at zero mean and unit
variance. Exact inverse and log-det (``sum(s)`` times the positions per channel)."""

from __future__ import annotations

import torch
from torch import nn

from minsearch.flows.base import FlowLayer, InverseTrack, channel_dims, per_channel


class ActNorm(FlowLayer):
    exactness = "exact inverse, exact log-det"

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _init_from(self, x: torch.Tensor) -> None:
        # (B, C, ...) -> (C, B * positions): statistics per channel
        flat = x.transpose(0, 1).reshape(self.channels, -1)
        self.bias.copy_(-flat.mean(dim=1))
        self.log_scale.copy_(-torch.log(flat.std(dim=1).clamp_min(1e-6)))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            self._init_from(x)
        _, positions = channel_dims(x)
        y = (x + per_channel(self.bias, x)) * per_channel(self.log_scale.exp(), x)
        return y, (self.log_scale.sum() * positions).expand(x.shape[0])

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        return y * per_channel((-self.log_scale).exp(), y) - per_channel(self.bias, y)

    @classmethod
    def from_module(cls, old: ActNorm) -> ActNorm:
        new = cls(old.channels)
        new.load_state_dict(old.state_dict())
        return new


class FrozenActNorm(ActNorm):
    """ActNorm whose scale and bias never train: the first batch's statistics (or the
    values it was copied with) stay. Exact."""

    @classmethod
    def from_module(cls, old: ActNorm) -> FrozenActNorm:
        new = super().from_module(old)
        new.bias.requires_grad_(False)
        new.log_scale.requires_grad_(False)
        return new
