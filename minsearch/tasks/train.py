"""Training entry points: fit a model for a budget, a few steps, evaluate, check outputs.

The loop itself, with the recipe's schedule, accumulation, precision and distillation, is
:class:`~minsearch.tasks.trainer.Trainer`; everything is deterministic from the recipe's seed.

Every data kind (:class:`~minsearch.tasks.data.DataKind`) gives logits ``(*y.shape, classes)``:
one label per image, one next character per position of a text window. The loss and the
accuracy treat every target alike, over the last dim.

A loss that stops being finite raises :class:`Diverged` with where it happened; the search
records that trial as FAILED with this message instead of ever reporting NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.errors import UserError, one_line
from minsearch.tasks.config import RecipeConfig
from minsearch.tasks.data import DataKind
from minsearch.tasks.schedule import Budget
from minsearch.tasks.trainer import Diverged, Trainer, make_optimizer

__all__ = ["Diverged", "check_outputs", "evaluate", "fit", "make_optimizer", "optimize",
           "resolve_device", "train_step", "train_steps"]


def _density_loop(data: DataKind):
    """Density data (flows) trains by likelihood, in :mod:`minsearch.tasks.density_train`;
    None for labelled data."""
    if data.kind != "density":
        return None
    from minsearch.tasks import density_train

    return density_train


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("`device: cuda` was asked for but no CUDA device is visible; use "
                        "`device: auto` or `device: cpu`.")
    return torch.device(name)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, recipe: RecipeConfig) -> torch.Tensor:
    """One plain fp32 optimisation step (what the train-step objectives time and measure);
    returns the (detached) loss."""
    logits = model(x)  # (*y.shape, classes)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                           label_smoothing=recipe.label_smoothing)
    return optimize(model, optimizer, loss, recipe)


def optimize(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
             recipe: RecipeConfig) -> torch.Tensor:
    """Backward ``loss``, clip the gradients (``grad_clip``), step; the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if recipe.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    optimizer.step()
    return loss.detach()


def train_steps(model: nn.Module, data: DataKind, recipe: RecipeConfig, steps: int,
                generator: torch.Generator, device: torch.device | str = "cpu",
                teacher: nn.Module | None = None) -> None:
    """``steps`` optimisation steps with a fresh optimiser and schedule (over these steps), on
    training batches drawn with ``generator``, a new pass starting whenever one ends (a step
    budget rather than epochs: what :func:`minsearch.surgery.ln_free.remove_norms_` gives
    after each frozen norm). ``teacher``: the parent, for ``distill``."""
    trainer = Trainer(model, data, recipe, device=device, budget=Budget(steps, 1, False),
                      teacher=teacher)

    def passes():
        while True:
            yield from data.batches(data.train, recipe.batch_size, device=device,
                                    generator=generator)

    trainer.run(passes(), steps=steps)


@torch.no_grad()
def evaluate(model: nn.Module, data: DataKind, split, *, batch_size: int = 256,
             device: torch.device | str = "cpu",
             corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    """Top-1 accuracy over every target of ``split`` (optionally on corrupted inputs): of the
    labels of images, of the next characters of text windows."""
    if (density := _density_loop(data)) is not None:  # minus bits/dim: higher is better
        return density.evaluate(model, data, split, device=device, batch_size=batch_size)
    model.eval()
    correct = total = 0
    for x, y in data.batches(split, batch_size, device=device, corrupt=corrupt):
        logits = model(x)
        if not torch.isfinite(logits).all():
            raise Diverged("the model produced non-finite outputs at evaluation.")
        correct += int((logits.argmax(dim=-1) == y).sum())
        total += y.numel()
    return correct / max(total, 1)


def fit(model: nn.Module, data: DataKind, recipe: RecipeConfig, *, epochs: int | None = None,
        device: torch.device | str = "cpu", teacher: nn.Module | None = None,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train for the recipe's budget (``epochs`` overrides it: the parent's
    ``parent_epochs``); after each round (an epoch, or a tenth of a ``steps`` budget),
    ``on_epoch(round, curve)`` with the training loss and validation accuracy. ``teacher``:
    the parent, for ``distill``. Returns the per-round curves."""
    budget = Budget.of(recipe, data, epochs)
    if budget.total == 0:
        return []
    trainer = Trainer(model, data, recipe, device=device, budget=budget, teacher=teacher)
    curves = []
    for r in range(budget.rounds):
        loss = trainer.train_round(r)
        split = data.val if len(data.val) else data.test
        point = {"train_loss": loss, "val_accuracy": evaluate(model, data, split, device=device)}
        curves.append(point)
        if on_epoch is not None:
            on_epoch(r, point)
    return curves


def check_outputs(model: nn.Module, data: DataKind, device: torch.device | str = "cpu") -> None:
    """Raise a clear error when the model's output does not fit the data's classes (or it
    fails on a batch of the data: its error is chained, for ``--debug``)."""
    if (density := _density_loop(data)) is not None:
        return density.check_outputs(model, data, device)
    model.eval()
    arg, n = data.output_arg, data.num_classes
    if n < 2:  # load_data refuses such data; never advise building a one-class model
        raise UserError(f"The data has {n} class(es); a classifier needs at least two: use "
                        f"data with several classes.")
    with torch.no_grad():
        x, y = next(data.batches(data.train, 2, device=device))
        try:
            out = model(x)
        except Exception as err:  # the model's forward (timm's or the user's own code)
            raise UserError(f"The model fails on a batch of 2 inputs of shape {tuple(x.shape)} "
                            f"({x.dtype}): {one_line(err)}. Build it for the "
                            f"data's inputs and {n} classes (e.g. '?{arg}={n}' in the model "
                            f"spec); run with --debug for its traceback.") from err
    if not isinstance(out, torch.Tensor):
        raise UserError(f"The model returns a {type(out).__name__} for a batch of 2, but it "
                        f"must return one tensor of logits of shape {(*y.shape, n)}.")
    if tuple(out.shape) != (*y.shape, data.num_classes):
        raise UserError(f"The model returns shape {tuple(out.shape)} for a batch of 2, but the "
                        f"data needs {(*y.shape, n)} ({n} classes); build it with "
                        f"{arg}={n} (e.g. '?{arg}={n}' in the model spec).")
