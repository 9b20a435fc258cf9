"""Coupling layers (NICE, RealNVP): the first half of the channels passes unchanged and
conditions a map of the second half, so the Jacobian is triangular and the inverse exact.

``Coupling`` holds the conditioner ``net`` (first half -> ``2 x`` second half) and a
``head`` that turns the net's output into ``(log_scale, shift)``: :class:`AffineHead`
(RealNVP: ``y2 = x2 * exp(s) + t``) or :class:`AdditiveHead` (NICE: ``y2 = x2 + t``,
volume-preserving). The head is its own module so that the coupling gene swaps it alone.
"""

from __future__ import annotations

import torch
from torch import nn

from minsearch.flows.base import FlowLayer, InverseTrack

SCALE_BOUND = 2.0  # log-scales are soft-clamped to (-2, 2): a standard guard against blow-ups


class AffineHead(nn.Module):
    """``(B, 2C, ...) -> log_scale, shift``, the log-scale soft-clamped by a tanh."""

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, shift = h.chunk(2, dim=1)
        return SCALE_BOUND * torch.tanh(raw / SCALE_BOUND), shift


class AdditiveHead(nn.Module):
    """``(B, 2C, ...) -> 0, shift``: the scale half of the net's output is unused."""

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, shift = h.chunk(2, dim=1)
        return torch.zeros_like(shift), shift


def conditioner(in_channels: int, out_channels: int, hidden: int, image: bool) -> nn.Sequential:
    """A small MLP (vectors) or conv net (maps, 3x3 - 1x1 - 3x3) whose last layer starts at
    zero, so every coupling starts as the identity."""
    if image:
        layers = [nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
                  nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                  nn.Conv2d(hidden, out_channels, 3, padding=1)]
    else:
        layers = [nn.Linear(in_channels, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                  nn.ReLU(), nn.Linear(hidden, out_channels)]
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class Coupling(FlowLayer):
    exactness = "exact inverse, exact log-det (triangular Jacobian)"

    def __init__(self, shape: tuple[int, ...], hidden: int, additive: bool = False):
        super().__init__()
        self.shape = tuple(shape)  # one example's shape: (D,) vectors, (C, H, W) maps
        channels = self.shape[0]
        self.channels = channels
        self.hidden = hidden
        self.image = len(self.shape) == 3
        image = self.image
        self.split = channels // 2  # x1 = x[:, :split] conditions x2 = x[:, split:]
        self.net = conditioner(self.split, 2 * (channels - self.split), hidden, image)
        self.head = AdditiveHead() if additive else AffineHead()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = x[:, :self.split], x[:, self.split:]
        log_scale, shift = self.head(self.net(x1))
        y2 = x2 * log_scale.exp() + shift
        return torch.cat([x1, y2], dim=1), log_scale.flatten(1).sum(dim=1)

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        y1, y2 = y[:, :self.split], y[:, self.split:]
        log_scale, shift = self.head(self.net(y1))
        return torch.cat([y1, (y2 - shift) * (-log_scale).exp()], dim=1)
