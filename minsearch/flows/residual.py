"""Residual flow blocks ``y = x + g(x)`` (i-ResNet, Behrmann et al. 2019; Residual Flows,
Chen et al. 2019), the invertibility gene's non-coupling options.

``g`` is an MLP on the flattened example (``D -> hidden -> hidden -> D``, ELU between: ELU
is 1-Lipschitz). Two ways to keep it contractive:

- ``spectral=True`` (``residual-sn``): every linear layer is spectrally normalised
  (``torch.nn.utils.parametrizations.spectral_norm``, power iteration) and scaled by
  ``coeff < 1``, so ``Lip(g) <= coeff`` up to the power iteration's estimate: the block is
  invertible, by fixed-point iteration ``x <- y - g(x)``;
- ``spectral=False`` (``residual-soft``): plain layers and a training penalty
  ``penalty * sum relu(||W||_2 - coeff)^2`` (exact spectral norms): nothing guarantees
  ``Lip(g) < 1``, so the inverse may fail to converge and the log-det series may diverge.

While training, the log-det is ``logdet`` = ``series`` (``terms`` terms, biased),
``roulette`` (unbiased) or ``exact`` (brute-force Jacobian) (:mod:`minsearch.flows.logdet`).
In eval mode a block is deterministic: the exact log-det up to :data:`EXACT_LOGDET_DIMS`
dims per example (so evaluation measures the true log-likelihood of the map), above that its
own estimator with fixed noise. :func:`logdet_mode` forces one mode on every block for a
while. The inverse runs at most ``iters`` iterations and reports the examples that did not
get within ``tol``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from minsearch.flows.base import FlowLayer, InverseTrack
from minsearch.flows.logdet import exact_logdet, roulette_logdet, series_logdet

LOGDETS = ("series", "roulette", "exact")
EXACT_LOGDET_DIMS = 256  # eval mode: exact log-det up to this many dims (one backward each)


class ScaledLinear(nn.Module):
    """``coeff * linear(x)``: a spectrally normalised linear layer with Lipschitz ``coeff``."""

    def __init__(self, linear: nn.Linear, coeff: float):
        super().__init__()
        self.linear = linear
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.coeff * self.linear(x)


def lipschitz_net(dims: int, hidden: int, coeff: float, spectral: bool) -> nn.Sequential:
    sizes = [(dims, hidden), (hidden, hidden), (hidden, dims)]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(sizes):
        linear = nn.Linear(n_in, n_out)
        if spectral:
            layers.append(ScaledLinear(spectral_norm(linear, n_power_iterations=5), coeff))
        else:
            layers.append(linear)
        if i < len(sizes) - 1:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


class ResidualFlowBlock(FlowLayer):
    def __init__(self, shape: tuple[int, ...], hidden: int = 64, *, spectral: bool = True,
                 coeff: float = 0.9, penalty: float = 0.0, logdet: str = "series",
                 terms: int = 5, iters: int = 50, tol: float = 1e-5):
        super().__init__()
        self.shape = tuple(shape)  # one example's shape, e.g. (2,) or (4, 4, 4)
        self.dims = math.prod(self.shape)
        self.hidden, self.spectral, self.coeff, self.penalty_weight = (hidden, spectral, coeff,
                                                                       penalty)
        self.logdet, self.terms, self.iters, self.tol = logdet, terms, iters, tol
        self.net = lipschitz_net(self.dims, hidden, coeff, spectral)
        self.generator: torch.Generator | None = None  # Hutchinson/roulette noise (tests)
        self.forced: str | None = None  # a log-det mode set by logdet_mode()

    @property
    def exactness(self) -> str:  # type: ignore[override]
        inverse = (f"inverse by <= {self.iters} fixed-point iterations (Lip(g) <= {self.coeff} "
                   f"by spectral norm)" if self.spectral else
                   f"inverse by <= {self.iters} fixed-point iterations, NOT guaranteed "
                   f"(soft Lipschitz penalty)")
        logdet = {"series": f"log-det estimated: {self.terms}-term power series, Hutchinson "
                            f"trace (biased by truncation)",
                  "roulette": f"log-det estimated: Russian roulette after {self.terms} terms, "
                              f"Hutchinson trace (unbiased)",
                  "exact": "exact log-det (brute-force Jacobian)"}[self.logdet]
        return f"{inverse}; {logdet}"

    def g(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view_as(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        training = torch.is_grad_enabled() and self.training
        mode, generator = self.logdet, self.generator
        if not self.training and self.forced is None:
            mode = "exact" if self.dims <= EXACT_LOGDET_DIMS else self.logdet
            generator = generator or torch.Generator().manual_seed(0)
        mode = self.forced or mode
        with torch.enable_grad():  # the log-det needs d g / d x, even at evaluation
            x_in = x if x.requires_grad else x.detach().requires_grad_(True)
            gx = self.g(x_in)
            if mode == "exact":
                logdet = exact_logdet(gx, x_in, create_graph=training)
            elif mode == "roulette":
                logdet = roulette_logdet(gx, x_in, self.terms, create_graph=training,
                                         generator=generator)
            else:
                logdet = series_logdet(gx, x_in, self.terms, create_graph=training,
                                       generator=generator)
        y = x_in + gx
        if not training:
            y, logdet = y.detach(), logdet.detach()
        return y, logdet

    @torch.no_grad()
    def inverse(self, y: torch.Tensor, track: InverseTrack | None = None) -> torch.Tensor:
        """Fixed-point iteration ``x <- y - g(x)`` from ``x = y``; an example has converged
        when an iteration moves it by less than ``tol`` (max abs)."""
        x = y.clone()
        moved = torch.full((y.shape[0],), math.inf, dtype=y.dtype, device=y.device)
        done = 0
        for done in range(1, self.iters + 1):  # noqa: B007 - the count is reported
            new = y - self.g(x)
            moved = (new - x).flatten(1).abs().amax(dim=1)
            x = new
            if bool((moved < self.tol).all()):
                break
        converged = torch.isfinite(x).flatten(1).all(dim=1) & (moved < self.tol)
        if track is not None:
            track.update(converged, done, type(self).__name__)
        return x

    def penalty(self) -> torch.Tensor | None:
        if self.spectral or self.penalty_weight == 0:
            return None
        norms = [torch.linalg.matrix_norm(m.weight, ord=2) for m in self.net
                 if isinstance(m, nn.Linear)]
        excess = torch.relu(torch.stack(norms) - self.coeff)
        return self.penalty_weight * (excess ** 2).sum()

    def lipschitz_bound(self) -> float:
        """The product of the layers' exact spectral norms: an upper bound on ``Lip(g)``."""
        bound = 1.0
        for m in self.net:
            weight = m.linear.weight if isinstance(m, ScaledLinear) else getattr(m, "weight",
                                                                                 None)
            if weight is not None:
                scale = m.coeff if isinstance(m, ScaledLinear) else 1.0
                bound *= scale * float(torch.linalg.matrix_norm(weight.detach(), ord=2))
        return bound


def residual_blocks(model: nn.Module) -> Iterator[ResidualFlowBlock]:
    return (m for m in model.modules() if isinstance(m, ResidualFlowBlock))


@contextlib.contextmanager
def logdet_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Every residual block of ``model`` computes its log-det by ``mode`` (training or not)
    inside the block."""
    blocks = list(residual_blocks(model))
    for block in blocks:
        block.forced = mode
    try:
        yield
    finally:
        for block in blocks:
            block.forced = None
