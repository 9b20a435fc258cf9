"""The flow-layer contract, the chain of layers, and the record of an iterative inverse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.fx
from torch import nn


@dataclass
class InverseTrack:
    """What the iterative inverses of one ``inverse`` call did, per example.

    ``converged`` starts all True; a layer whose iteration stopped before its tolerance was
    met clears the examples it failed on. ``iterations`` is the most any layer used."""

    converged: torch.Tensor | None = None  # (B,) bool
    iterations: int = 0
    layers: list[str] = field(default_factory=list)  # class names of the iterative layers

    def update(self, converged: torch.Tensor, iterations: int, layer: str) -> None:
        self.converged = converged if self.converged is None else self.converged & converged
        self.iterations = max(self.iterations, iterations)
        self.layers.append(layer)


class FlowLayer(nn.Module):
    """One invertible (or approximately invertible) map.

    ``forward(x)`` returns ``(y, logdet)`` where ``logdet`` is ``log |det dy/dx|`` per
    example, ``(B,)`` in nats; ``inverse(y, track)`` returns ``x``. Shapes are kept (a squeeze
    reshapes but keeps the number of dimensions per example). ``exactness`` states, in one
    line, what is exact and what is estimated.
    """

    exactness: ClassVar[str] = "exact inverse, exact log-det"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self) -> torch.Tensor | None:
        """A term added to the training loss (a soft Lipschitz penalty), or None."""
        return None


def zero_logdet(x: torch.Tensor) -> torch.Tensor:
    return x.new_zeros(x.shape[0])


class IdentityFlow(FlowLayer):
    """``y = x``: what a removed norm or mixing leaves."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, zero_logdet(x)

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        return y


class FlowSequence(FlowLayer):
    """Layers applied in order (named children: ``norm``, ``mix``, ``transform`` in a step;
    ``0``, ``1``, ... in a list of steps)."""

    def __init__(self, layers: dict[str, FlowLayer] | list[FlowLayer]):
        super().__init__()
        items = layers.items() if isinstance(layers, dict) else (
            (str(i), layer) for i, layer in enumerate(layers))
        for name, layer in items:
            self.add_module(name, layer)

    @property
    def exactness(self) -> str:  # type: ignore[override]
        return "; ".join(dict.fromkeys(child.exactness for child in self.children()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(x, torch.fx.Proxy):
            # Graph rewrites change a forward, never its inverse: a flow is an atom for them
            # (the site tracer makes this class a leaf; module swaps still reach inside).
            raise torch.fx.proxy.TraceError("flow layers are opaque to graph rewrites, which "
                                            "would change forward but not inverse")
        logdet = zero_logdet(x)
        for layer in self.children():
            x, step = layer(x)
            logdet = logdet + step
        return x, logdet

    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        for layer in reversed(list(self.children())):
            y = layer.inverse(y, track)
        return y

    def penalty(self) -> torch.Tensor | None:
        terms = [p for layer in self.children() if (p := layer.penalty()) is not None]
        return torch.stack(terms).sum() if terms else None


def channel_dims(x: torch.Tensor) -> tuple[int, int]:
    """``(channels, positions)`` of a batch: ``(D, 1)`` for vectors ``(B, D)``, ``(C, H*W)``
    for maps ``(B, C, H, W)``; per-channel maps repeat over the positions."""
    return x.shape[1], int(x[0, 0].numel())


def per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``(C,)`` vector shaped to broadcast over ``x``'s channel dim 1."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))
