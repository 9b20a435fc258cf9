"""Speed: median latency of warmed, synchronised inference runs, and of a training step."""

from __future__ import annotations

import copy
import statistics
import time

import torch

from minsearch.objectives.base import (
    MeasureContext,
    Objective,
    measure_batch,
    register_objective,
    synchronize,
)
from minsearch.tasks.train import make_optimizer, train_step


def median_ms(fn, runs: int, warmup: int, device: torch.device) -> float:
    """Median milliseconds of ``runs`` synchronised calls of ``fn``, after ``warmup`` untimed
    calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@register_objective
class Latency(Objective):
    """Median milliseconds of a forward pass on ``latency_batch`` examples (``torch.no_grad``,
    eval mode), after ``latency_warmup`` untimed runs."""

    name = "latency_ms"
    direction = "min"
    unit = "ms"

    def measure(self, ctx: MeasureContext) -> float:
        cfg = ctx.task.measure
        x, _ = measure_batch(ctx, cfg.latency_batch)
        ctx.model.eval()
        with torch.no_grad():
            return median_ms(lambda: ctx.model(x), cfg.latency_runs, cfg.latency_warmup,
                              ctx.device)


@register_objective
class TrainStep(Objective):
    """Median milliseconds of one training step (forward, backward, optimiser) on a batch of
    ``batch_size``, on a copy of the model so the trained weights stay untouched."""

    name = "train_step_ms"
    direction = "min"
    unit = "ms"

    def measure(self, ctx: MeasureContext) -> float:
        model = copy.deepcopy(ctx.model).train()
        optimizer = make_optimizer(model, ctx.task.recipe)
        x, y = measure_batch(ctx, ctx.task.recipe.batch_size)
        runs = max(3, ctx.task.measure.latency_runs // 4)
        return median_ms(lambda: train_step(model, optimizer, x, y, ctx.task.recipe), runs,
                          max(1, ctx.task.measure.latency_warmup // 2), ctx.device)
