"""Objectives: what is measured on each trained candidate (see :mod:`.base` for the contract).

Registered: ``accuracy``, ``robustness`` (max); ``loss``, ``loss_p99``, ``noisy_loss``,
``param_bytes``, ``flops``, ``latency_ms``, ``train_step_ms``, ``peak_mem_infer_bytes``,
``peak_mem_train_bytes`` (min).
"""

from minsearch.objectives.base import (
    MeasureContext,
    Objective,
    get_objective,
    objective_names,
    register_objective,
)
from minsearch.objectives.measure import measure_all

__all__ = ["MeasureContext", "Objective", "get_objective", "measure_all", "objective_names",
           "register_objective"]
