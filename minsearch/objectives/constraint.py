"""The constraint on the first objective: how much worse than the baseline it may get.

One concept, one object. A task's first objective (``accuracy`` for classifiers, ``loss`` for
language models, ...) may worsen by at most ``max_worsening`` relative to the baseline (the
unmodified model) for a candidate to be *feasible*: a drop for a maximised objective
(``max_accuracy_drop``), a rise for a minimised one (``max_loss_increase``). Built once from
the task (:meth:`Constraint.from_task`) and used by the searcher, the results table, the live
view, the plot and the report alike.

With several training seeds, :meth:`Constraint.judge` decides on the paired interval of the
worsening at ``confidence`` (two-sided; the task's ``confidence``, default 0.9, so that each
of "feasible" and "infeasible" is wrong in at most 5% of cases): ``feasible``,
``infeasible`` or ``uncertain`` (:func:`minsearch.stats.feasibility`). With one seed there is
no interval and the point value decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from minsearch.pareto import worsening
from minsearch.stats import Verdict, feasibility, mean_interval

if TYPE_CHECKING:
    from minsearch.tasks.config import TaskConfig

TOLERANCE = 1e-12  # a candidate exactly at the limit is feasible despite float rounding


def directions(objectives: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``{objective: "max" | "min"}`` in the given order, from the objective registry."""
    from minsearch.objectives.base import get_objective

    return {name: get_objective(name).direction for name in objectives}


@dataclass(frozen=True)
class Judgement:
    """A candidate's ``worsening`` from the baseline (the mean of the paired differences, or
    the point difference with one seed), its interval ``[lo, hi]`` (NaN without one) and the
    ``verdict``."""

    worsening: float
    lo: float
    hi: float
    verdict: Verdict


@dataclass(frozen=True)
class Constraint:
    """``objective`` (the first one) may be at most ``max_worsening`` worse than the
    baseline's; ``max_worsening=None`` leaves every completed candidate feasible. Intervals
    are judged at ``confidence``."""

    objective: str
    direction: str
    max_worsening: float | None = None
    confidence: float = 0.9

    @classmethod
    def from_task(cls, task: TaskConfig) -> Constraint:
        measure = task.measure
        first = measure.objectives[0]
        limit = measure.max_accuracy_drop
        if limit is None:
            limit = measure.max_loss_increase
        return cls(first, directions([first])[first], None if limit is None else float(limit),
                   float(measure.confidence))

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

    def judge(self, value: float, baseline: float | None,
              per_seed: Mapping[int, float] | None = None,
              baseline_per_seed: Mapping[int, float] | None = None) -> Judgement:
        """The verdict on a candidate whose objective is ``value`` (its mean), measured per
        seed as ``per_seed`` ({seed: value}), against the baseline's. Paired on the seeds both
        measured when there are at least two; otherwise the point decides. Without a baseline
        yet, or without a limit, every candidate is feasible."""
        if baseline is None:
            return Judgement(math.nan, math.nan, math.nan, "feasible")
        point = float(self.worsening(value, baseline))
        common = sorted(set(per_seed or {}) & set(baseline_per_seed or {}))
        if len(common) < 2:
            verdict = "feasible" if bool(self.feasible(value, baseline)) else "infeasible"
            return Judgement(point, math.nan, math.nan, verdict)
        interval = mean_interval([self.worsening(per_seed[s], baseline_per_seed[s])
                                  for s in common], self.confidence)
        verdict = ("feasible" if self.max_worsening is None
                   else feasibility(interval, self.max_worsening))
        return Judgement(interval.mean, interval.lo, interval.hi, verdict)

    def describe(self) -> str:
        """``accuracy drop <= 0.02`` / ``loss increase <= 0.05`` / ``accuracy: unconstrained``."""
        if self.max_worsening is None:
            return f"{self.objective}: unconstrained"
        return f"{self.objective} {self.change} <= {self.max_worsening:g}"

    def to_json(self) -> dict[str, Any]:
        return {"objective": self.objective, "direction": self.direction,
                "max_worsening": self.max_worsening, "confidence": self.confidence}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Constraint:
        return cls(str(data["objective"]), str(data["direction"]), data.get("max_worsening"),
                   float(data.get("confidence", 0.9)))
