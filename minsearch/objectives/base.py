"""The objective contract: a name, a direction, and one measurement of a trained candidate.

An objective is a small class registered under its name. :meth:`Objective.measure` is called
once per seed of a trial, after training (a ``cost_only`` objective: once, before training),
with the model in eval mode on the trial's device; it returns a finite float. It may use
:attr:`MeasureContext.cache` to share work with other objectives (robustness reuses the clean
accuracy). A non-finite value is a failed measurement: the trial
ends FAILED with the objective's name in its reason, never with a NaN.

``kinds`` names the data kinds an objective can measure (``image``, ``text``: see
:class:`~minsearch.tasks.data.DataKind`); :func:`check_task` refuses a task that asks for one
on other data (the search runs it before it starts, :func:`measure_all` before it measures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from minsearch.errors import UserError, did_you_mean
from minsearch.tasks.config import TaskConfig
from minsearch.tasks.data import DataKind


@dataclass
class MeasureContext:
    model: nn.Module
    data: DataKind
    task: TaskConfig
    device: torch.device
    cache: dict[str, Any] = field(default_factory=dict)


class Objective:
    """Base class: subclasses set ``name``, ``direction`` ("max" or "min"), ``unit`` (and
    ``kinds`` when not every data kind fits) and implement :meth:`measure`."""

    name: ClassVar[str] = ""
    direction: ClassVar[str] = "min"
    unit: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ("image", "text")
    # A cost: depends on the candidate's structure, not on its trained weights or the seed
    # (bytes, FLOPs, peak memory). Measured once, before training, where budgets apply.
    cost_only: ClassVar[bool] = False

    def measure(self, ctx: MeasureContext) -> float:
        raise NotImplementedError


_OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    if cls.direction not in ("max", "min"):
        raise ValueError(f"Objective {cls.name!r} has direction {cls.direction!r}; it must be "
                         f"'max' or 'min'.")
    if cls.name in _OBJECTIVES:
        raise ValueError(f"Objective {cls.name!r} is registered twice.")
    _OBJECTIVES[cls.name] = cls
    return cls


def _load() -> None:
    from minsearch.objectives import (  # noqa: F401  (modules register on import)
        accuracy,
        bits_per_dim,
        flow_cost,
        inversion,
        latency,
        loss,
        memory,
        robustness,
        size,
    )


def objective_names() -> tuple[str, ...]:
    _load()
    return tuple(sorted(_OBJECTIVES))


def get_objective(name: str) -> Objective:
    """A fresh instance of the objective registered as ``name``."""
    _load()
    cls = _OBJECTIVES.get(name)
    if cls is None:
        raise UserError(f"Unknown objective {name!r}; known: "
                        f"{', '.join(sorted(_OBJECTIVES))}.{did_you_mean(name, _OBJECTIVES)}")
    return cls()


def check_task(task: TaskConfig) -> None:
    """Check a task's names against the registries: every objective and corruption exists,
    and every objective measures the task's kind of data. Raises :class:`UserError`."""
    from minsearch.objectives.corruptions import get_corruption

    objectives = {name: get_objective(name) for name in task.measure.objectives}
    kind = task.data.kind
    wrong = [name for name, objective in objectives.items() if kind not in objective.kinds]
    if wrong:
        raise UserError(f"Objective(s) {wrong} do not measure {kind} data (`dataset: "
                        f"{task.data.dataset}`); remove them (for text: loss, loss_p99, "
                        f"noisy_loss).")
    for name in task.measure.corruptions:
        get_corruption(name)


def measure_batch(ctx: MeasureContext, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` test examples (cycled) as model inputs and targets on the trial's device."""
    x, y = ctx.data.examples(ctx.data.test, size)
    return x.to(ctx.device), y.to(ctx.device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
