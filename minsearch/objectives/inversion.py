"""Inversion error of a flow on the test split: how far ``f^-1(f(x))`` lands from ``x``.

Exact blocks invert to rounding error; residual blocks invert by fixed-point iteration, which
converges only when ``Lip(g) < 1`` and within the iterations the option allows. Measured on
every test example (evaluation dequantization):

- ``inversion_error``: max over examples and dims of ``|x - f^-1(f(x))|``;
- ``inversion_error_mean``: its mean over examples and dims;
- ``inversion_failures``: the share of examples where an iterative inverse stopped before
  its tolerance was met (0 for flows without iterative inverses).

An inverse that blew up (non-finite values) fails the trial, with how many examples did. A
task's ``max_inversion_error`` is a constraint: a candidate above it fails with the value
and the limit in its reason (the search's feasibility constraint covers the first objective
only), so it never reaches the front.
"""

from __future__ import annotations

import torch

from minsearch.errors import UserError
from minsearch.flows.base import InverseTrack
from minsearch.objectives.base import MeasureContext, Objective, register_objective
from minsearch.tasks.train import Diverged


@torch.no_grad()
def inversion_stats(ctx: MeasureContext, batch_size: int = 256) -> dict[str, float]:
    if "inversion" in ctx.cache:
        return ctx.cache["inversion"]
    model = ctx.model.eval()
    if not (hasattr(model, "transform") and hasattr(model, "invert")):
        raise UserError(f"Inversion objectives need a flow with `transform(x) -> (z, logdet)` "
                        f"and `invert(z, track)` (minsearch.flows.model.DensityFlow); "
                        f"{type(model).__name__} has not.")
    errors, converged = [], []
    for x, _ in ctx.data.batches(ctx.data.test, batch_size, device=ctx.device):
        track = InverseTrack()
        x_back = model.invert(model.transform(x)[0], track)
        errors.append((x - x_back).abs().flatten(1).cpu())  # (B, D)
        ok = torch.ones(len(x), dtype=torch.bool) if track.converged is None else \
            track.converged.cpu()
        converged.append(ok)
    error, ok = torch.cat(errors), torch.cat(converged)
    blown = ~torch.isfinite(error).all(dim=1)
    if blown.any():
        raise Diverged(f"the inverse diverged (non-finite) on {int(blown.sum())} of "
                       f"{len(error)} test examples; the flow is not invertible there.")
    ctx.cache["inversion"] = {"max": float(error.max()), "mean": float(error.mean()),
                              "failures": float((~ok).float().mean())}
    return ctx.cache["inversion"]


@register_objective
class InversionError(Objective):
    name = "inversion_error"
    direction = "min"
    unit = "abs"
    kinds = ("density",)

    def measure(self, ctx: MeasureContext) -> float:
        value = inversion_stats(ctx)["max"]
        limit = ctx.task.measure.max_inversion_error
        if limit is not None and value > limit:
            raise Diverged(f"inversion error {value:.3g} exceeds max_inversion_error "
                           f"{limit:g} (inversion failures "
                           f"{inversion_stats(ctx)['failures']:.1%}); infeasible.")
        return value


@register_objective
class InversionErrorMean(Objective):
    name = "inversion_error_mean"
    direction = "min"
    unit = "abs"
    kinds = ("density",)

    def measure(self, ctx: MeasureContext) -> float:
        return inversion_stats(ctx)["mean"]


@register_objective
class InversionFailures(Objective):
    name = "inversion_failures"
    direction = "min"
    unit = "fraction"
    kinds = ("density",)

    def measure(self, ctx: MeasureContext) -> float:
        return inversion_stats(ctx)["failures"]
