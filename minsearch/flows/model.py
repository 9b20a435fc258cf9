"""A density model: a flow to a standard normal prior. ``forward(x)`` is ``log p(x)`` per
example, in nats: what the density task trains (``-log p``) and measures."""

from __future__ import annotations

import math

import torch
from torch import nn

from minsearch.flows.base import FlowLayer, InverseTrack

LOG_2PI = math.log(2 * math.pi)


def normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` per example, ``(B,)``."""
    return -0.5 * (z.flatten(1) ** 2 + LOG_2PI).sum(dim=1)


class DensityFlow(nn.Module):
    """``body`` maps data ``x`` (one example: ``event_shape``) to latents ``z`` of the same
    shape; ``log p(x) = log N(z) + log |det dz/dx|``."""

    def __init__(self, body: FlowLayer, event_shape: tuple[int, ...]):
        super().__init__()
        self.body = body
        self.event_shape = tuple(event_shape)

    @property
    def dims(self) -> int:
        return math.prod(self.event_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, logdet = self.body(x)
        return normal_log_prob(z) + logdet  # (B,)

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.body(x)

    def invert(self, z: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        return self.body.inverse(z, track)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None,
               track: InverseTrack | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn((n, *self.event_shape), generator=generator).to(device)
        return self.invert(z, track)

    def penalty(self) -> torch.Tensor | None:
        """The soft penalties of the body's layers (``residual-soft``), or None."""
        return self.body.penalty()
