"""Costs of a flow: sampling latency, training-step time and peak training memory.

- ``sample_ms``: median milliseconds to draw ``latency_batch`` samples (prior draw plus the
  inverse pass: fixed-point iterations for residual blocks), warmed as ``latency_ms``;
- ``flow_train_step_ms``: median milliseconds of one maximum-likelihood step (forward with the
  training log-det, backward, optimiser) on ``batch_size`` examples, on a copy of the model;
- ``flow_peak_mem_train_bytes``: peak bytes of such a step on ``memory_batch`` examples
  (counted as :mod:`minsearch.objectives.memory` counts them).
"""

from __future__ import annotations

import copy

import torch

from minsearch.objectives.base import (
    MeasureContext,
    Objective,
    measure_batch,
    register_objective,
)
from minsearch.objectives.latency import median_ms
from minsearch.objectives.memory import peak_bytes
from minsearch.objectives.size import state_bytes
from minsearch.tasks.density_train import train_step
from minsearch.tasks.train import make_optimizer


@register_objective
class SampleLatency(Objective):
    name = "sample_ms"
    direction = "min"
    unit = "ms"
    kinds = ("density",)

    def measure(self, ctx: MeasureContext) -> float:
        cfg = ctx.task.measure
        model = ctx.model.eval()
        generator = torch.Generator().manual_seed(0)
        return median_ms(lambda: model.sample(cfg.latency_batch, generator=generator),
                         cfg.latency_runs, cfg.latency_warmup, ctx.device)


def _training_copy(ctx: MeasureContext, batch: int):
    """A training-mode copy of the candidate (its weights stay untouched), a fresh
    optimiser, and ``batch`` test examples."""
    model = copy.deepcopy(ctx.model).train()
    x, _ = measure_batch(ctx, batch)
    return model, make_optimizer(model, ctx.task.recipe), x


@register_objective
class FlowTrainStep(Objective):
    name = "flow_train_step_ms"
    direction = "min"
    unit = "ms"
    kinds = ("density",)

    def measure(self, ctx: MeasureContext) -> float:
        model, optimizer, x = _training_copy(ctx, ctx.task.recipe.batch_size)
        runs = max(3, ctx.task.measure.latency_runs // 4)
        return median_ms(lambda: train_step(model, optimizer, x, ctx.task.recipe), runs,
                         max(1, ctx.task.measure.latency_warmup // 2), ctx.device)


@register_objective
class FlowPeakMemoryTrain(Objective):
    name = "flow_peak_mem_train_bytes"
    direction = "min"
    unit = "bytes"
    kinds = ("density",)

    def measure(self, ctx: MeasureContext) -> float:
        model, optimizer, x = _training_copy(ctx, ctx.task.measure.memory_batch)
        train_step(model, optimizer, x, ctx.task.recipe)  # the optimiser state exists now
        optimizer.zero_grad(set_to_none=True)
        optimizer_bytes = sum(v.numel() * v.element_size() for s in optimizer.state.values()
                              for v in s.values() if isinstance(v, torch.Tensor))
        held = state_bytes(model) + optimizer_bytes + x.numel() * x.element_size()
        return float(peak_bytes(lambda: train_step(model, optimizer, x, ctx.task.recipe),
                                ctx.device, held))
