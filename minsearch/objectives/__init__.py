"""Objectives: what is measured on each trained candidate (see :mod:`.base` for the contract).

Registered: ``accuracy``, ``robustness`` (max); ``loss``, ``loss_p99``, ``noisy_loss``,
``param_bytes``, ``flops``, ``latency_ms``, ``train_step_ms``, ``peak_mem_infer_bytes``,
``peak_mem_train_bytes`` (min).

:func:`check_task` checks a task's objective and corruption names against the registries (and
that each objective fits the data); :func:`~minsearch.objectives.constraint.directions` gives
each objective's direction, :class:`~minsearch.objectives.constraint.Constraint` the allowed
worsening of the first.
"""

from minsearch.objectives.base import (
    MeasureContext,
    Objective,
    check_task,
    get_objective,
    objective_names,
    register_objective,
)
from minsearch.objectives.measure import measure_all, measure_costs, over_budget

__all__ = ["MeasureContext", "Objective", "check_task", "get_objective", "measure_all",
           "measure_costs", "objective_names", "over_budget", "register_objective"]
