"""The training budget in optimiser steps, and the learning-rate schedule over it.

A budget is ``epochs`` passes over the training data or ``steps`` optimiser steps
(:class:`~minsearch.tasks.config.RecipeConfig`); either way the schedule needs the total
number of optimiser steps up front, so an epoch is counted in optimiser steps here:
``ceil(batches per epoch / accumulate)``.

The schedule is torch's own: a linear warm-up (``LinearLR`` from ``1/(W+1)`` of the lr to
the full lr over ``W`` steps) followed by a constant lr (``ConstantLR`` with factor 1) or a
cosine decay to 0 over the remaining steps (``CosineAnnealingLR``), chained by
``SequentialLR``. Step ``k`` (0-based) of ``W`` warm-up steps runs at ``lr * (k+1)/(W+1)``;
step ``W + j`` of a cosine at ``lr * (1 + cos(pi * j / (T - W))) / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim import lr_scheduler

from minsearch.errors import UserError
from minsearch.tasks.config import RecipeConfig


def batches_per_epoch(data, batch_size: int) -> int:
    """Training batches in one epoch: ``epoch_batches`` for text (an epoch is that many random
    windows, :class:`~minsearch.tasks.text_data.TextData`), else one pass over the split."""
    fixed = getattr(data, "epoch_batches", None)
    return int(fixed) if fixed else math.ceil(len(data.train) / batch_size)


@dataclass(frozen=True)
class Budget:
    """How long a model trains: ``total`` optimiser steps in ``rounds`` rounds. With
    ``per_epoch`` a round is one pass over the training data; otherwise round ``r`` ends after
    :meth:`round_end` steps (a ``steps`` budget, cut into rounds to report progress)."""

    total: int
    rounds: int
    per_epoch: bool

    def round_end(self, r: int) -> int:
        """Optimiser steps done when round ``r`` (0-based) ends."""
        return round(self.total * (r + 1) / self.rounds)

    @classmethod
    def of(cls, recipe: RecipeConfig, data, epochs: int | None = None) -> Budget:
        """The recipe's budget on ``data``; ``epochs`` (the parent's ``parent_epochs``)
        overrides the recipe's own ``epochs``/``steps``."""
        if epochs is None and recipe.steps is not None:
            return cls(recipe.steps, recipe.rounds, per_epoch=False)
        epochs = recipe.epochs if epochs is None else epochs
        per_epoch = math.ceil(batches_per_epoch(data, recipe.batch_size) / recipe.accumulate)
        return cls(epochs * per_epoch, epochs, per_epoch=True)


def warmup_steps(recipe: RecipeConfig, total: int) -> int:
    """Warm-up length in optimiser steps for a budget of ``total`` steps."""
    return round(recipe.warmup * total) if recipe.warmup < 1 else int(recipe.warmup)


def check_warmup(recipe: RecipeConfig, total: int) -> int:
    """The warm-up's length in steps; a :class:`UserError` when it fills a budget of
    ``total`` steps. ``search`` and ``validate`` run it on the candidates' budget before
    anything trains (the steps of an epoch are known only with the data)."""
    warm = warmup_steps(recipe, total)
    if total > 0 and warm >= total:
        raise UserError(f"`warmup: {recipe.warmup}` is {warm} optimiser steps, but the whole "
                        f"budget is {total} steps; make it shorter (a fraction such as 0.05 "
                        f"scales with the budget).")
    return warm


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: RecipeConfig,
                   total: int) -> lr_scheduler.LRScheduler:
    """The recipe's lr schedule over ``total`` optimiser steps; call ``step()`` after each
    optimiser step."""
    warm = check_warmup(recipe, total)
    if recipe.schedule == "cosine":
        after = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warm))
    else:
        after = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warm == 0:
        return after
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / (warm + 1), end_factor=1.0,
                                 total_iters=warm)
    return lr_scheduler.SequentialLR(optimizer, [ramp, after], milestones=[warm])
