"""Deployment: modules that train in one form and run in another.

A module with a deployed form has ``deploy() -> nn.Module`` (and may have
``unavailable_on(device) -> str | None``, why that form cannot run on a device).
:class:`~minsearch.layers.precision.PrecisionLayer` is one: fake-quantized while training,
torchao's quantized layer when deployed. Objectives are measured on the deployed form, and
``load_candidate`` returns it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _deployable(module: nn.Module) -> bool:
    return callable(getattr(module, "deploy", None))


def deploy_(model: nn.Module) -> nn.Module:
    """Replace, in place, every module that has a deployed form by it; returns ``model`` (or
    its deployed form, when ``model`` itself has one)."""
    if _deployable(model):
        return model.deploy()
    for name, child in list(model.named_children()):
        setattr(model, name, deploy_(child))
    return model


def deployed(model: nn.Module) -> nn.Module:
    """``model`` in its deployed form: a deployed copy when any module has one (``model`` is
    left as it trains), else ``model`` itself."""
    if not any(_deployable(m) for m in model.modules()):
        return model
    return deploy_(copy.deepcopy(model))


def deploy_problems(model: nn.Module, device: torch.device | str) -> list[str]:
    """``"<module>: <why>"`` for every module whose deployed form cannot run on ``device``."""
    problems = []
    for name, module in model.named_modules():
        check = getattr(module, "unavailable_on", None)
        why = check(device) if callable(check) else None
        if why:
            problems.append(f"{name}: {why}")
    return problems
