"""The constraint on the first objective: how much worse than the baseline it may get.

One concept, one object. A task's first objective (``accuracy`` for classifiers, ``loss`` for
language models, ...) may worsen by at most ``max_worsening`` relative to the baseline (the
unmodified model) for a candidate to be *feasible*: a drop for a maximised objective
(``max_accuracy_drop``), a rise for a minimised one (``max_loss_increase``). Built once from
the task (:meth:`Constraint.from_task`) and used by the searcher, the results table, the live
view, the plot and the report alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from minsearch.pareto import worsening

if TYPE_CHECKING:
    from minsearch.tasks.config import TaskConfig

TOLERANCE = 1e-12  # a candidate exactly at the limit is feasible despite float rounding


def directions(objectives: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``{objective: "max" | "min"}`` in the given order, from the objective registry."""
    from minsearch.objectives.base import get_objective

    return {name: get_objective(name).direction for name in objectives}


@dataclass(frozen=True)
class Constraint:
    """``objective`` (the first one) may be at most ``max_worsening`` worse than the
    baseline's; ``max_worsening=None`` leaves every completed candidate feasible."""

    objective: str
    direction: str
    max_worsening: float | None = None

    @classmethod
    def from_task(cls, task: TaskConfig) -> Constraint:
        measure = task.measure
        first = measure.objectives[0]
        limit = measure.max_accuracy_drop
        if limit is None:
            limit = measure.max_loss_increase
        return cls(first, directions([first])[first], None if limit is None else float(limit))

    @property
    def change(self) -> str:
        """The word for worsening: ``drop`` (maximised) or ``increase`` (minimised)."""
        return "drop" if self.direction == "max" else "increase"

    def worsening(self, value: Any, baseline: float) -> Any:
        """How much worse ``value`` (a float or an array/Series) is than ``baseline``."""
        return worsening(value, baseline, self.direction)

    def feasible(self, value: Any, baseline: float) -> Any:
        """Whether ``value`` (float or array/Series) is within the allowed worsening."""
        if self.max_worsening is None:
            return self.worsening(value, baseline) == self.worsening(value, baseline)  # not NaN
        return self.worsening(value, baseline) <= self.max_worsening + TOLERANCE

    def describe(self) -> str:
        """``accuracy drop <= 0.02`` / ``loss increase <= 0.05`` / ``accuracy: unconstrained``."""
        if self.max_worsening is None:
            return f"{self.objective}: unconstrained"
        return f"{self.objective} {self.change} <= {self.max_worsening:g}"

    def to_json(self) -> dict[str, Any]:
        return {"objective": self.objective, "direction": self.direction,
                "max_worsening": self.max_worsening}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Constraint:
        return cls(str(data["objective"]), str(data["direction"]), data.get("max_worsening"))
