"""Robustness: accuracy under the corruption suite, as a ratio to clean accuracy.

Measured above chance: ``mean_c max(0, acc_c - chance) / (clean - chance)`` with
``chance = 1 / num_classes``. 1.0 means the corruptions cost nothing; 0.5 means the candidate
keeps half of what it knows. Without the chance correction a broken candidate (chance-level
clean accuracy, unchanged by noise) would score a perfect 1.0 and sit on the front; with it,
a candidate at or below chance scores 0. Each (corruption, severity) pair uses its own fixed
seed, so every candidate sees the same corrupted images.
"""

from __future__ import annotations

import zlib

import torch

from minsearch.objectives.accuracy import clean_accuracy
from minsearch.objectives.base import MeasureContext, Objective, register_objective
from minsearch.objectives.corruptions import get_corruption
from minsearch.tasks.train import evaluate


def corrupted_accuracies(ctx: MeasureContext) -> dict[str, float]:
    """Accuracy on the test split for every ``corruption@severity`` in the task."""
    results = {}
    for name in ctx.task.measure.corruptions:
        fn = get_corruption(name)
        for severity in ctx.task.measure.severities:
            seed = zlib.crc32(f"{name}@{severity}".encode())
            gen = torch.Generator().manual_seed(seed)
            results[f"{name}@{severity}"] = evaluate(
                ctx.model, ctx.data, ctx.data.test, device=ctx.device,
                corrupt=lambda x, fn=fn, s=severity, g=gen: fn(x, s, g))
    return results


@register_objective
class Robustness(Objective):
    name = "robustness"
    direction = "max"
    unit = "ratio"
    kinds = ("image",)  # the corruptions act on images; text has noisy_loss

    def measure(self, ctx: MeasureContext) -> float:
        clean = clean_accuracy(ctx)
        per = corrupted_accuracies(ctx)
        ctx.cache["corruptions"] = per
        return robustness_ratio(clean, list(per.values()), ctx.data.num_classes)


def robustness_ratio(clean: float, corrupted: list[float], num_classes: int) -> float:
    chance = 1.0 / num_classes
    if clean <= chance or not corrupted:
        return 0.0
    return sum(max(0.0, a - chance) for a in corrupted) / len(corrupted) / (clean - chance)
