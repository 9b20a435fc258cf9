"""Log-determinants of ``I + J_g(x)`` for a residual block ``y = x + g(x)``.

With ``Lip(g) < 1``, ``log det(I + J) = sum_{k>=1} (-1)^(k+1) tr(J^k) / k`` (the series
converges). Three ways to compute it, per example, ``(B,)`` in nats:

- :func:`series_logdet` (i-ResNet, Behrmann et al. 2019): the first ``terms`` terms, each
  trace by Hutchinson's estimator ``v^T J^k v`` with one Gaussian ``v`` per example. The
  trace estimate is unbiased; the truncation is a bias that shrinks like ``Lip(g)^terms``.
- :func:`roulette_logdet` (Residual Flows, Chen et al. 2019): ``exact_terms`` terms always,
  then a geometric number of extra terms, each reweighted by the inverse probability of
  reaching it (the "Russian roulette"): an unbiased estimate of the whole series.
- :func:`exact_logdet`: the full Jacobian, one backward pass per dimension, and ``slogdet``.
  Exact (no series), valid for any ``g``; affordable for small inputs (2-D, 8x8 digits).

``gx`` must be ``g(x)`` computed from ``x`` with autograd on; ``create_graph`` keeps the
estimate differentiable for training.
"""

from __future__ import annotations

import torch


def _vjp(gx: torch.Tensor, x: torch.Tensor, w: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """``w^T J`` per example (``J = dg/dx``), shapes as ``x``."""
    return torch.autograd.grad(gx, x, w, retain_graph=True, create_graph=create_graph)[0]


def _terms(gx: torch.Tensor, x: torch.Tensor, n: int, create_graph: bool,
           generator: torch.Generator | None) -> list[torch.Tensor]:
    """``[(-1)^(k+1) v^T J^k v / k for k in 1..n]``, each ``(B,)``."""
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    w, out = v, []
    for k in range(1, n + 1):
        w = _vjp(gx, x, w, create_graph)  # v^T J^k
        out.append((-1) ** (k + 1) * (w * v).flatten(1).sum(dim=1) / k)
    return out


def series_logdet(gx: torch.Tensor, x: torch.Tensor, terms: int, *, create_graph: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.stack(_terms(gx, x, terms, create_graph, generator)).sum(dim=0)


def roulette_logdet(gx: torch.Tensor, x: torch.Tensor, exact_terms: int, *, p_stop: float = 0.5,
                    create_graph: bool = False, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """Unbiased: ``m ~ Geometric`` extra terms with ``P(m >= j) = (1 - p_stop)^j``; the term
    ``exact_terms + j`` is divided by that probability. One ``m`` per batch."""
    u = max(float(torch.rand((), generator=generator)), 1e-12)
    extra = int(torch.floor(torch.log(torch.tensor(u)) / torch.log(torch.tensor(1 - p_stop))))
    terms = _terms(gx, x, exact_terms + extra, create_graph, generator)
    weights = [1.0] * exact_terms + [(1 - p_stop) ** -j for j in range(1, extra + 1)]
    return torch.stack([w * t for w, t in zip(weights, terms, strict=True)]).sum(dim=0)


def exact_logdet(gx: torch.Tensor, x: torch.Tensor, *, create_graph: bool = False
                 ) -> torch.Tensor:
    """``log |det(I + J)|`` from the full Jacobian (``D`` backward passes, ``D`` = dims per
    example)."""
    flat = gx.flatten(1)  # (B, D)
    dims = flat.shape[1]
    rows = [torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True,
                                create_graph=create_graph)[0].flatten(1) for i in range(dims)]
    jac = torch.stack(rows, dim=1)  # (B, D, D): jac[b, i, j] = d g_i / d x_j
    eye = torch.eye(dims, dtype=jac.dtype, device=jac.device)
    return torch.linalg.slogdet(eye + jac)[1]
