"""Loss on the held-out test split: its mean, its tail, and under input noise (all minimised).

The accuracy-like objective of a language model: for ``dataset: text`` the loss is in nats per
character (each window's next-character cross-entropy); for images, in nats per image.

- ``loss``: mean over every target of the test split;
- ``loss_p99``: 99th percentile over test examples (text windows, images) of each example's
  mean loss. "Transformers Don't Need LayerNorm at Inference Time" found norm-free GPT-2 close
  in mean loss but with a long tail of sequences it handles badly: the tail shows that;
- ``noisy_loss``: mean loss when a fraction ``noise_rate`` of the input elements is replaced by
  random valid values (``DataKind.noise``: printable characters, uniform pixels), with a fixed
  seed so every candidate sees the same noise. Only inputs are noised; the targets stay the
  clean text, so the number is the cost of noisy context alone (as ``lm_metrics`` in
  :mod:`minsearch.text.metrics` does for the gates study).
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from minsearch.objectives.base import MeasureContext, Objective, register_objective
from minsearch.tasks.data import Corrupt, DataKind
from minsearch.text.metrics import example_cross_entropy

NOISE_SEED = zlib.crc32(b"noisy_loss")


@torch.no_grad()
def example_losses(model: nn.Module, data: DataKind, split, *, device: torch.device | str,
                   corrupt: Corrupt | None = None, batch_size: int = 256) -> torch.Tensor:
    """Each example's mean cross-entropy over its targets, ``(len(split),)`` in nats."""
    model.eval()
    out = []
    for x, y in data.batches(split, batch_size, device=device, corrupt=corrupt):
        out.append(example_cross_entropy(model(x), y).cpu())
    return torch.cat(out)


def clean_losses(ctx: MeasureContext) -> torch.Tensor:
    if "losses" not in ctx.cache:
        ctx.cache["losses"] = example_losses(ctx.model, ctx.data, ctx.data.test,
                                             device=ctx.device)
    return ctx.cache["losses"]


@register_objective
class Loss(Objective):
    name = "loss"
    direction = "min"
    unit = "nats"

    def measure(self, ctx: MeasureContext) -> float:
        return float(clean_losses(ctx).mean())


@register_objective
class LossP99(Objective):
    name = "loss_p99"
    direction = "min"
    unit = "nats"

    def measure(self, ctx: MeasureContext) -> float:
        return float(clean_losses(ctx).quantile(0.99))


@register_objective
class NoisyLoss(Objective):
    name = "noisy_loss"
    direction = "min"
    unit = "nats"

    def measure(self, ctx: MeasureContext) -> float:
        noise = ctx.data.noise(ctx.task.measure.noise_rate,
                               torch.Generator().manual_seed(NOISE_SEED))
        losses = example_losses(ctx.model, ctx.data, ctx.data.test, device=ctx.device,
                                corrupt=noise)
        return float(losses.mean())
