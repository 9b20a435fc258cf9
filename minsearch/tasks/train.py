"""The training loop: a plain classification recipe, deterministic from the recipe's seed.

Every data kind (:class:`~minsearch.tasks.data.DataKind`) gives logits ``(*y.shape, classes)``:
one label per image, one next character per position of a text window. The loss and the
accuracy treat every target alike, over the last dim.

A loss that stops being finite raises :class:`Diverged` with where it happened; the search
records that trial as FAILED with this message instead of ever reporting NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.errors import UserError, one_line
from minsearch.tasks.config import RecipeConfig
from minsearch.tasks.data import DataKind


class Diverged(RuntimeError):
    """Training produced a non-finite loss (or a measurement a non-finite value)."""


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


def make_optimizer(model: nn.Module, recipe: RecipeConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, recipe: RecipeConfig) -> torch.Tensor:
    """One optimisation step; returns the (detached) loss."""
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
                generator: torch.Generator, device: torch.device | str = "cpu") -> None:
    """``steps`` optimisation steps with a fresh optimiser, on training batches drawn with
    ``generator``, a new pass starting whenever one ends (a step budget rather than epochs:
    what :func:`minsearch.surgery.ln_free.remove_norms_` gives after each frozen norm)."""
    model.train()
    optimizer = make_optimizer(model, recipe)
    done = 0
    while done < steps:
        for x, y in data.batches(data.train, recipe.batch_size, device=device,
                                 generator=generator):
            train_step(model, optimizer, x, y, recipe)
            done += 1
            if done == steps:
                break


def train_epoch(model: nn.Module, data: DataKind, recipe: RecipeConfig,
                optimizer: torch.optim.Optimizer, *, epoch: int,
                device: torch.device | str = "cpu") -> float:
    """One epoch of the training split (``data.batches`` with a generator seeded from
    ``epoch``: a shuffled pass over images, random windows of text). Returns the mean loss."""
    if (density := _density_loop(data)) is not None:
        return density.train_epoch(model, data, recipe, optimizer, epoch=epoch, device=device)
    model.train()
    generator = torch.Generator().manual_seed(recipe.seed * 10_007 + epoch)
    total, count = 0.0, 0
    for step, (x, y) in enumerate(data.batches(data.train, recipe.batch_size, device=device,
                                               generator=generator)):
        loss = float(train_step(model, optimizer, x, y, recipe))
        if not math.isfinite(loss):
            raise Diverged(f"training loss became {loss} at epoch {epoch}, step {step} "
                           f"(lr={recipe.lr}); the candidate diverged.")
        total += loss * len(y)
        count += len(y)
    return total / max(count, 1)


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


def fit(model: nn.Module, data: DataKind, recipe: RecipeConfig, *, epochs: int,
        device: torch.device | str = "cpu", optimizer: torch.optim.Optimizer | None = None,
        start_epoch: int = 0,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train for ``epochs - start_epoch`` more epochs; after each, ``on_epoch(epoch, curve)``
    with the training loss and validation accuracy. Returns the per-epoch curves."""
    optimizer = optimizer or make_optimizer(model, recipe)
    curves = []
    for epoch in range(start_epoch, epochs):
        loss = train_epoch(model, data, recipe, optimizer, epoch=epoch, device=device)
        split = data.val if len(data.val) else data.test
        point = {"train_loss": loss, "val_accuracy": evaluate(model, data, split, device=device)}
        curves.append(point)
        if on_epoch is not None:
            on_epoch(epoch, point)
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
