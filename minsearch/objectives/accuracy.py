"""Top-1 accuracy on the held-out test split (never seen in training or model selection)."""

from __future__ import annotations

from minsearch.objectives.base import MeasureContext, Objective, register_objective
from minsearch.tasks.train import evaluate


def clean_accuracy(ctx: MeasureContext) -> float:
    if "accuracy" not in ctx.cache:
        ctx.cache["accuracy"] = evaluate(ctx.model, ctx.data, ctx.data.test, device=ctx.device)
    return ctx.cache["accuracy"]


@register_objective
class Accuracy(Objective):
    name = "accuracy"
    direction = "max"
    unit = "fraction"

    def measure(self, ctx: MeasureContext) -> float:
        return clean_accuracy(ctx)
