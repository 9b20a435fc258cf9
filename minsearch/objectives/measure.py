"""Measure every objective of a task on one trained candidate."""

from __future__ import annotations

import math

import torch
from torch import nn

from minsearch.layers.deploy import deployed
from minsearch.objectives.base import MeasureContext, check_task, get_objective
from minsearch.tasks.config import TaskConfig
from minsearch.tasks.data import DataKind
from minsearch.tasks.train import Diverged


def measure_all(model: nn.Module, data: DataKind, task: TaskConfig,
                device: torch.device) -> tuple[dict[str, float], dict]:
    """``{objective: value}`` in the task's order, plus extras (per-corruption accuracies),
    measured on the candidate's deployed form (quantized layers for real; ``model`` itself is
    left as it trains).

    Raises :class:`Diverged` naming the objective when a value is not finite, and
    :class:`~minsearch.errors.UserError` when the task names what is not registered."""
    check_task(task)
    ctx = MeasureContext(model=deployed(model), data=data, task=task, device=device)
    values: dict[str, float] = {}
    for name in task.measure.objectives:
        value = float(get_objective(name).measure(ctx))
        if not math.isfinite(value):
            raise Diverged(f"objective {name!r} measured {value}; the candidate is not usable.")
        values[name] = value
    extras = {f"corruption/{k}": v for k, v in ctx.cache.get("corruptions", {}).items()}
    return values, extras
