"""Robustness: accuracy under the corruption suite, as a ratio to clean accuracy, above chance.

"Chance" is the **majority-class rate** ``m`` of the test split: what a model that always
predicts the most common test label scores (a one-class predictor, or an untrained model
whose outputs ignore the input, scores at most about that). A candidate counts as working only
when its clean accuracy is *clearly* above ``m``: by more than three binomial standard errors
of an accuracy ``m`` on the ``n`` test examples, ``margin = 3 * sqrt(a * (1 - a) / n)`` with
``a = min(m, 0.5)`` (the largest standard error a chance-level accuracy can have), e.g. 0.051
on the 359 digits test images (``m`` = 0.117), 0.098 on 120. Then

    robustness = mean_c max(0, acc_c - m) / (clean - m)

over every ``corruption@severity`` ``c``; otherwise robustness is 0. 1.0 means the corruptions
cost nothing; 0.5 means the candidate keeps half of what it knows above chance (a corruption
that helps can push a value past 1). A broken model never looks robust: without the
correction, a chance-level candidate (unchanged by noise) scores a perfect 1.0; with chance as
``1 / num_classes`` and no margin, a one-class predictor on a split whose largest class is a
little above ``1 / num_classes`` still did (0.117 vs 0.100 on digits). Each (corruption,
severity) pair uses its own fixed seed, so every candidate sees the same corrupted images.
"""

from __future__ import annotations

import math
import zlib

import torch

from minsearch.objectives.accuracy import clean_accuracy
from minsearch.objectives.base import MeasureContext, Objective, register_objective
from minsearch.objectives.corruptions import get_corruption
from minsearch.tasks.train import evaluate

MARGIN_SE = 3.0  # how many binomial standard errors above chance "clearly above" means


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
        per = corrupted_accuracies(ctx)  # measured for every candidate: the extras stay alike
        ctx.cache["corruptions"] = per
        labels = ctx.data.test.y
        return robustness_ratio(clean, list(per.values()), majority_rate(labels), len(labels))


def majority_rate(labels: torch.Tensor) -> float:
    """The share of the most common label: the accuracy of always predicting it."""
    if not labels.numel():
        return 0.0
    return float(torch.bincount(labels.flatten()).max()) / labels.numel()


def chance_margin(majority: float, n: int) -> float:
    """How far above ``majority`` a clean accuracy on ``n`` examples must be to count as
    working: :data:`MARGIN_SE` binomial standard errors of a chance-level accuracy."""
    a = min(majority, 0.5)
    return MARGIN_SE * math.sqrt(a * (1.0 - a) / max(n, 1))


def robustness_ratio(clean: float, corrupted: list[float], majority: float, n: int) -> float:
    """``mean_c max(0, acc_c - majority) / (clean - majority)``, or 0 when ``clean`` is not
    above ``majority`` by :func:`chance_margin` (or nothing was corrupted)."""
    if not corrupted or clean <= majority + chance_margin(majority, n):
        return 0.0
    return sum(max(0.0, a - majority) for a in corrupted) / len(corrupted) / (clean - majority)
