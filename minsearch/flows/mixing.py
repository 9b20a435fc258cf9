"""Channel mixing between couplings: a learned invertible linear map (Glow's invertible 1x1
convolution; a dense ``D x D`` map for vectors), a fixed random permutation, or a reversal.
All exact: the permutations have log-det 0, the linear map ``positions * log|det W|``."""

from __future__ import annotations

import torch
from torch import nn

from minsearch.flows.base import FlowLayer, InverseTrack, channel_dims, zero_logdet


def _mix(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``w`` (C, C) applied to the channels of ``x`` (B, C, ...)."""
    return torch.einsum("ij,bj...->bi...", w, x)


class InvertibleLinear(FlowLayer):
    """``y = W x`` over channels (a 1x1 convolution on maps); ``W`` starts as a random
    rotation (``seed``), so the layer starts volume-preserving."""

    exactness = "exact inverse (linear solve), exact log-det (slogdet)"

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        self.weight = nn.Parameter(q)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, positions = channel_dims(x)
        logdet = torch.linalg.slogdet(self.weight)[1] * positions
        return _mix(x, self.weight), logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        return _mix(y, torch.linalg.inv(self.weight))


class Permutation(FlowLayer):
    """A fixed random permutation of the channels (RealNVP's alternation, generalised)."""

    exactness = "exact inverse, log-det 0"

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("perm", torch.randperm(channels, generator=generator))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, self.perm], zero_logdet(x)

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        return y[:, torch.argsort(self.perm)]


class Reverse(FlowLayer):
    """The channels in reverse order (NICE/RealNVP's swap of the two halves)."""

    exactness = "exact inverse, log-det 0"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flip(1), zero_logdet(x)

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        return y.flip(1)


def channels_of(module: nn.Module) -> int:
    """The channel count a mixing layer was built for (Reverse does not know it)."""
    if isinstance(module, InvertibleLinear):
        return module.weight.shape[0]
    if isinstance(module, Permutation):
        return len(module.perm)
    raise ValueError(f"{type(module).__name__} does not record its channel count.")
