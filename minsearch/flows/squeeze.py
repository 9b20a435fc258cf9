"""Multi-scale structure (RealNVP): squeeze 2x2 pixels into channels, run steps, factor half
of the channels out to the prior and send the other half to the next scale. Exact, log-det 0
for the reshapes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minsearch.flows.base import FlowLayer, InverseTrack


class Scale(FlowLayer):
    """``(B, C, H, W) -> (B, C, H, W)``: squeeze to ``(B, 4C, H/2, W/2)``, apply ``steps``,
    then (with ``inner``) keep the first half of the channels as latents and pass the second
    half through ``inner``; unsqueeze, so every scale keeps its input's shape."""

    exactness = "exact inverse, exact log-det"

    def __init__(self, steps: FlowLayer, inner: FlowLayer | None = None):
        super().__init__()
        self.steps = steps
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, logdet = self.steps(F.pixel_unshuffle(x, 2))
        if self.inner is not None:
            kept, rest = h.chunk(2, dim=1)
            rest, inner_logdet = self.inner(rest)
            h, logdet = torch.cat([kept, rest], dim=1), logdet + inner_logdet
        return F.pixel_shuffle(h, 2), logdet

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        h = F.pixel_unshuffle(y, 2)
        if self.inner is not None:
            kept, rest = h.chunk(2, dim=1)
            h = torch.cat([kept, self.inner.inverse(rest, track)], dim=1)
        return F.pixel_shuffle(self.steps.inverse(h, track), 2)

    def penalty(self) -> torch.Tensor | None:
        terms = [p for part in (self.steps, self.inner)
                 if part is not None and (p := part.penalty()) is not None]
        return torch.stack(terms).sum() if terms else None
