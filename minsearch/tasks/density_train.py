"""The training loop of density tasks (flows): maximum likelihood, deterministic from the
recipe's seed.

A density model maps a batch ``x`` to ``log p(x)`` per example, ``(B,)`` in nats
(:class:`minsearch.flows.model.DensityFlow`); it may also have ``penalty()`` (a soft Lipschitz
penalty) that joins the loss. :func:`minsearch.tasks.train.train_epoch`, ``evaluate`` and
``check_outputs`` hand density data to the functions here, so the search's trainable trains
flows unchanged.

Where a classifier reports validation *accuracy*, a density task reports **minus the
validation bits per dimension** (higher is better, so curves and ASHA read it the same way).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minsearch.errors import UserError, one_line
from minsearch.tasks.config import RecipeConfig
from minsearch.tasks.density_data import DensityData, DensitySplit
from minsearch.tasks.train import Diverged, optimize


def density_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``-mean log p(x)`` in nats per example, plus the model's penalty if it has one."""
    loss = -model(x).mean()
    penalty = model.penalty() if hasattr(model, "penalty") else None
    return loss if penalty is None else loss + penalty


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               recipe: RecipeConfig) -> torch.Tensor:
    return optimize(model, optimizer, density_loss(model, x), recipe)


def train_epoch(model: nn.Module, data: DensityData, recipe: RecipeConfig,
                optimizer: torch.optim.Optimizer, *, epoch: int,
                device: torch.device | str = "cpu") -> float:
    """One shuffled pass over the training split; returns the mean training loss in bits
    per dimension (the penalty included)."""
    model.train()
    generator = torch.Generator().manual_seed(recipe.seed * 10_007 + epoch)
    total, count = 0.0, 0
    for step, (x, _) in enumerate(data.batches(data.train, recipe.batch_size, device=device,
                                               generator=generator)):
        loss = float(train_step(model, optimizer, x, recipe))
        if not math.isfinite(loss):
            raise Diverged(f"training loss became {loss} at epoch {epoch}, step {step} "
                           f"(lr={recipe.lr}); the flow diverged.")
        total += loss * len(x)
        count += len(x)
    nats = total / max(count, 1)
    return float(data.bits_per_dim(torch.tensor(-nats)))


def example_bits_per_dim(model: nn.Module, data: DensityData, split: DensitySplit, *,
                         device: torch.device | str = "cpu", batch_size: int = 256
                         ) -> torch.Tensor:
    """Each example's bits per dimension, ``(len(split),)``, from the exact log-likelihood:
    in eval mode residual blocks use the brute-force Jacobian log-det (up to
    :data:`~minsearch.flows.residual.EXACT_LOGDET_DIMS` dims per example; above, their own
    estimator with fixed noise), unless :func:`~minsearch.flows.residual.logdet_mode` says
    otherwise."""
    model.eval()
    out = []
    with torch.no_grad():
        for x, _ in data.batches(split, batch_size, device=device):
            log_prob = model(x)
            if not torch.isfinite(log_prob).all():
                raise Diverged("the flow gave a non-finite log-likelihood at evaluation.")
            out.append(data.bits_per_dim(log_prob.cpu()))
    return torch.cat(out)


def evaluate(model: nn.Module, data: DensityData, split: DensitySplit, *,
             device: torch.device | str = "cpu", batch_size: int = 256) -> float:
    """Minus the mean bits per dimension on ``split`` (higher is better, as accuracy)."""
    return -float(example_bits_per_dim(model, data, split, device=device,
                                       batch_size=batch_size).mean())


def check_outputs(model: nn.Module, data: DensityData, device: torch.device | str = "cpu"
                  ) -> None:
    """A density model must return one finite log-likelihood per example."""
    model.eval()
    x, _ = next(data.batches(data.train, 2, device=device))
    with torch.no_grad():
        try:
            out = model(x)
        except Exception as err:  # the model's forward (ours or the user's)
            raise UserError(f"The density model fails on a batch of 2 inputs of shape "
                            f"{tuple(x.shape)}: {one_line(err)}. Build it for "
                            f"{data.dims}-dim examples of shape {data.input_shape}; run with "
                            f"--debug for its traceback.") from err
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2,):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"A density model returns log p(x), one value per example: shape "
                        f"(2,) for a batch of 2, but got {shape}; see "
                        f"minsearch.flows.model.DensityFlow.")
