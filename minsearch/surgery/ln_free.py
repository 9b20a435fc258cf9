"""Norm-free inference: freeze norms one at a time while fine-tuning, then fold them away.

After "Transformers Don't Need LayerNorm at Inference Time" (GPT-2 with every LayerNorm
removed after fine-tuning: +0.03 loss on GPT-2 XL). Freezing all norms at once shocks the
network; freezing one, fine-tuning a few steps, then the next lets the weights adapt to each
fixed scale in turn. The frozen norms are then affine maps, folded into the following linear
layers (:func:`minsearch.surgery.fold.fold_norms_`), leaving no normalization at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from minsearch.sites import find_sites
from minsearch.surgery.apply import apply_
from minsearch.surgery.fold import Fold, fold_norms_

TrainSteps = Callable[[nn.Module, int], None]
"""``train_steps(model, n)``: run n optimizer steps on the model (in training mode). The
optimizer must pick up new parameters: build it inside, from ``model.parameters()``."""


@dataclass
class NormFreeReport:
    frozen: list[str] = field(default_factory=list)  # in the order they were frozen
    folds: list[Fold] = field(default_factory=list)

    @property
    def remaining(self) -> list[str]:
        return [f.norm for f in self.folds if not f.folded]


def freezable_norms(model: nn.Module, example_input=None) -> list[str]:
    """The norms :func:`remove_norms_` freezes, in forward order."""
    return [s.name for s in find_sites(model, example_input).of_kind("norm")
            if "frozen" in s.options]


def remove_norms_(model: nn.Module, train_steps: TrainSteps, steps_per_norm: int = 10,
                  example_input=None, fold: bool = True) -> NormFreeReport:
    """Freeze each freezable norm in turn (forward order), fine-tuning ``steps_per_norm`` steps
    after each; then fold them (``fold=True``). In place."""
    if steps_per_norm < 0:
        raise ValueError(f"`steps_per_norm >= 0` must hold, but got {steps_per_norm=}.")
    report = NormFreeReport()
    for name in freezable_norms(model, example_input):
        apply_(model, {name: "frozen"}, example_input)
        model.train()
        train_steps(model, max(1, steps_per_norm))  # the first batch also calibrates sigma
        report.frozen.append(name)
    if fold:
        report.folds = fold_norms_(model.eval())
    return report
