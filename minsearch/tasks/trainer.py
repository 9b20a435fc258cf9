"""One model's training run: what changes while it trains, other than the weights.

A :class:`Trainer` holds the optimiser, the lr scheduler (:mod:`minsearch.tasks.schedule`),
the autocast settings and fp16 grad scaler (:mod:`minsearch.tasks.amp`), the teacher of
``distill`` (:mod:`minsearch.tasks.distill`) and the count of optimiser steps taken. Its
:meth:`state_dict` is what a trial's checkpoint needs besides the model's weights to continue
exactly where it stopped, the schedule included.

Batches: one optimiser step takes ``accumulate`` batches of ``batch_size``. Each batch's loss
is weighted by its share of the step's targets, so N batches of b are one batch of N*b (the
last, shorter batch of an epoch included); the step's batches are drawn before the first
backward, to know that share (their inputs are held, not their activations). Round ``r`` of a
budget (:class:`~minsearch.tasks.schedule.Budget`) draws passes over the training data with
generators seeded from ``(seed, r, pass)``: the epochs of the old loop exactly, and for a
``steps`` budget a round that may span several passes, so a trial restored at a round's end
continues with the very batches it would have seen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.tasks.amp import MixedPrecision, autocast_dtype, wants_channels_last
from minsearch.tasks.config import RecipeConfig
from minsearch.tasks.schedule import Budget, make_scheduler

Batch = tuple[torch.Tensor, torch.Tensor]


class Diverged(RuntimeError):
    """Training produced a non-finite loss (or a measurement a non-finite value)."""


def make_optimizer(model: nn.Module, recipe: RecipeConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


class Trainer:
    """Trains ``model`` in place on ``data`` with ``recipe`` for ``budget`` (the recipe's own
    by default): :meth:`train_round` per round, or :meth:`run` on any stream of batches.

    ``teacher`` (the unmodified parent, :func:`~minsearch.tasks.distill.build_teacher`) is
    used when the recipe has ``distill`` with a weight above 0. With ``compile`` the training
    forward goes through ``torch.compile``; :attr:`model` stays the plain module, so its state
    dict keys are the uncompiled ones."""

    def __init__(self, model: nn.Module, data, recipe: RecipeConfig, *,
                 device: torch.device | str = "cpu", budget: Budget | None = None,
                 teacher: nn.Module | None = None) -> None:
        self.model, self.data, self.recipe = model, data, recipe
        self.device = torch.device(device)
        self.budget = budget or Budget.of(recipe, data)
        self.channels_last = wants_channels_last(recipe, model, self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(model) if recipe.compile else model
        self.distill = recipe.distill if recipe.distill and recipe.distill.weight > 0 else None
        self.teacher = teacher if self.distill else None
        if self.teacher is not None and self.channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        self.amp = MixedPrecision(autocast_dtype(recipe, self.device, data.kind), self.device)
        self.optimizer = make_optimizer(model, recipe)
        self.scheduler = make_scheduler(self.optimizer, recipe, self.budget.total)
        self.step = 0  # optimiser steps taken
        self.density = data.kind == "density"  # flows: trained by likelihood

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Optimiser, scheduler, grad scaler and step count (not the weights)."""
        state = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": self.step}
        if self.amp.scaler is not None:
            state["scaler"] = self.amp.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`; a checkpoint from before the scheduler existed
        (a constant lr) restores the optimiser alone."""
        self.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state and self.amp.scaler is not None:
            self.amp.scaler.load_state_dict(state["scaler"])
        self.step = int(state.get("step", 0))

    # -- training ---------------------------------------------------------------------------

    def train_round(self, r: int) -> float:
        """Round ``r`` of the budget (an epoch, or a share of a ``steps`` budget); the mean
        training loss (bits per dim for a density model)."""
        if self.budget.per_epoch:
            loss = self.run(self.passes(r, 1), where=f"epoch {r}")
        else:
            left = self.budget.round_end(r) - self.step
            loss = self.run(self.passes(r), steps=max(0, left), where=f"round {r}")
        return float(self.data.bits_per_dim(torch.tensor(-loss))) if self.density else loss

    def passes(self, r: int, count: int | None = None) -> Iterator[Batch]:
        """Training batches of round ``r``: ``count`` passes (None: endless), pass ``j``
        shuffled by a generator seeded from ``(seed, r, j)``."""
        for j in itertools.count() if count is None else range(count):
            seed = self.recipe.seed * 10_007 + r + 100_003 * j
            yield from self.data.batches(self.data.train, self.recipe.batch_size,
                                         device=self.device,
                                         generator=torch.Generator().manual_seed(seed))

    def run(self, batches: Iterable[Batch], steps: int | None = None,
            where: str = "training") -> float:
        """Optimiser steps on ``batches`` (``accumulate`` per step) until ``steps`` steps or
        the batches end; the mean loss, weighted by examples."""
        self.model.train()
        batches = iter(batches)
        total = count = 0.0
        for k in itertools.count():
            group = list(itertools.islice(batches, self.recipe.accumulate)) if (
                steps is None or k < steps) else []
            if not group:
                break
            loss = self._step(group)
            if not math.isfinite(loss):
                noun = "flow" if self.density else "candidate"
                raise Diverged(f"training loss became {loss} at {where}, step {k} "
                               f"(lr={self.recipe.lr}); the {noun} diverged.")
            examples = sum(len(y) for _, y in group)
            total, count = total + loss * examples, count + examples
        return total / max(count, 1)

    def _step(self, group: list[Batch]) -> float:
        """One optimiser step on the batches of ``group``; the step's mean loss."""
        targets = sum(y.numel() for _, y in group)
        self.optimizer.zero_grad(set_to_none=True)
        mean = 0.0
        for x, y in group:
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.amp.autocast():
                loss = self.loss(x, y)
            share = y.numel() / targets
            self.amp.backward(loss * share)
            mean += float(loss.detach()) * share
        self.amp.step(self.optimizer, self.model, self.recipe.grad_clip)
        if self.step < self.budget.total:  # past the planned end the lr stays where it ended
            self.scheduler.step()
        self.step += 1
        return mean

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch, averaged over its targets."""
        if self.density:
            from minsearch.tasks.density_train import density_loss

            return density_loss(self.model, x, self.forward)
        logits = self.forward(x)  # (*y.shape, classes)
        hard = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               label_smoothing=self.recipe.label_smoothing)
        if self.teacher is None:
            return hard
        from minsearch.tasks.distill import distill_loss

        with torch.no_grad():
            soft = self.teacher(x)
        return distill_loss(logits, soft, hard, self.distill)
