"""The training loop of density tasks (flows): maximum likelihood, deterministic from the
recipe's seed.

A density model maps a batch ``x`` to ``log p(x)`` per example, ``(B,)`` in nats
(:class:`minsearch.flows.model.DensityFlow`); it may also have ``penalty()`` (a soft Lipschitz
penalty) that joins the loss. The trainer (:class:`minsearch.tasks.trainer.Trainer`) trains
density data with :func:`density_loss` (the schedule, accumulation and precision keys apply;
``precision: auto`` stays fp32 for flows, and ``distill`` is refused), and
:func:`minsearch.tasks.train.evaluate` and ``check_outputs`` hand it to the functions here, so
the search's trainable trains flows unchanged.

Where a classifier reports validation *accuracy*, a density task reports **minus the
validation bits per dimension** (higher is better, so curves and ASHA read it the same way).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from minsearch.errors import UserError, one_line
from minsearch.tasks.config import RecipeConfig
from minsearch.tasks.density_data import DensityData, DensitySplit
from minsearch.tasks.train import Diverged, optimize


def density_loss(model: nn.Module, x: torch.Tensor, forward: Callable | None = None
                 ) -> torch.Tensor:
    """``-mean log p(x)`` in nats per example, plus the model's penalty if it has one.
    ``forward``: the model's compiled forward, if any (``compile: true``)."""
    loss = -(forward or model)(x).mean()
    penalty = model.penalty() if hasattr(model, "penalty") else None
    return loss if penalty is None else loss + penalty


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               recipe: RecipeConfig) -> torch.Tensor:
    return optimize(model, optimizer, density_loss(model, x), recipe)


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
