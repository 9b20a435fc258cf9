"""Measure a task's objectives on one candidate: its costs before training, the rest after.

Cost-only objectives (:attr:`~minsearch.objectives.base.Objective.cost_only`: bytes, FLOPs,
peak memory) depend on the candidate's structure alone, so :func:`measure_costs` measures them
once, on the built candidate before it trains, and :func:`over_budget` turns a cost above the
task's budgets (``max_param_bytes``, ``max_flops``, ``max_peak_mem_infer_bytes``) into the
reason not to train it. :func:`measure_all` measures the others after each seed's training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minsearch.layers.deploy import deployed
from minsearch.objectives.base import MeasureContext, check_task, get_objective
from minsearch.tasks.config import BUDGETS, TaskConfig
from minsearch.tasks.data import DataKind
from minsearch.tasks.train import Diverged


def cost_names(task: TaskConfig) -> list[str]:
    """The task's cost-only objectives, then the budgeted costs it does not list."""
    names = [n for n in task.measure.objectives if get_objective(n).cost_only]
    return names + [n for n in task.measure.budgets if n not in names]


def _measure(model: nn.Module, data: DataKind, task: TaskConfig, device: torch.device,
             names: list[str]) -> tuple[dict[str, float], dict]:
    check_task(task)
    ctx = MeasureContext(model=deployed(model), data=data, task=task, device=device)
    values: dict[str, float] = {}
    for name in names:
        value = float(get_objective(name).measure(ctx))
        if not math.isfinite(value):
            raise Diverged(f"objective {name!r} measured {value}; the candidate is not usable.")
        values[name] = value
    extras = {f"corruption/{k}": v for k, v in ctx.cache.get("corruptions", {}).items()}
    return values, extras


def measure_costs(model: nn.Module, data: DataKind, task: TaskConfig,
                  device: torch.device) -> dict[str, float]:
    """``{cost: value}`` of :func:`cost_names`, measured on the candidate's deployed form
    (trained or not: costs do not depend on the weights)."""
    return _measure(model, data, task, device, cost_names(task))[0]


def over_budget(costs: dict[str, float], task: TaskConfig) -> str | None:
    """Why the candidate is not trained (each cost above its budget), or None."""
    keys = {name: key for key, name in BUDGETS.items()}
    over = [f"{name} {costs[name]:,.0f} > `{keys[name]}: {limit:,.0f}`"
            for name, limit in task.measure.budgets.items() if costs[name] > limit]
    return f"over budget, not trained: {'; '.join(over)}" if over else None


def measure_all(model: nn.Module, data: DataKind, task: TaskConfig, device: torch.device,
                skip: frozenset[str] | set[str] = frozenset()) -> tuple[dict[str, float], dict]:
    """``{objective: value}`` in the task's order (those in ``skip``, costs measured before,
    left out), plus extras (per-corruption accuracies), measured on the candidate's deployed
    form (quantized layers for real; ``model`` itself is left as it trains).

    Raises :class:`Diverged` naming the objective when a value is not finite, and
    :class:`~minsearch.errors.UserError` when the task names what is not registered."""
    names = [n for n in task.measure.objectives if n not in skip]
    return _measure(model, data, task, device, names)
