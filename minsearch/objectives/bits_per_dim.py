"""Bits per dimension on the held-out test split (flows; minimised).

From the exact log-likelihood: couplings, ActNorm and mixing have exact log-dets, and
residual blocks are evaluated with their brute-force Jacobian log-det (up to 256 dims per
example; digits have 64) rather than the estimator they train with. For discrete data (digits,
17 levels) the figure includes the dequantization term and is an upper bound on the
codelength (:mod:`minsearch.tasks.density_data`). A flow that is not invertible (a residual
block with ``Lip(g) >= 1``) still gets a number, but then it is not the log-likelihood of a
normalised density: read it beside ``inversion_error``.
"""

from __future__ import annotations

from minsearch.objectives.base import MeasureContext, Objective, register_objective
from minsearch.tasks.density_train import example_bits_per_dim


@register_objective
class BitsPerDim(Objective):
    name = "bits_per_dim"
    direction = "min"
    unit = "bits/dim"
    kinds = ("density",)

    def measure(self, ctx: MeasureContext) -> float:
        return float(example_bits_per_dim(ctx.model, ctx.data, ctx.data.test,
                                          device=ctx.device).mean())
