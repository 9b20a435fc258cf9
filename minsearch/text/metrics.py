"""Language-model objectives: loss in nats per character, its tail, and loss under noise.

The tail matters: "Transformers Don't Need LayerNorm at Inference Time" found norm-free GPT-2
close in mean loss but with a long tail of sequences it handles badly, so the 99th percentile
of per-sequence loss is reported beside the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.text.corpus import VOCAB_SIZE, char_noise


def example_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each example's mean cross-entropy over its targets, ``(len(y),)`` in nats: logits
    ``(*y.shape, classes)``, one next character per text position (a window's loss) or one
    label per image (the loss objectives use it for every data kind)."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                           reduction="none")
    return loss.view(len(y), -1).mean(1)


@torch.no_grad()
def sequence_losses(model: nn.Module, windows: torch.Tensor, inputs: torch.Tensor | None = None,
                    batch_size: int = 64) -> torch.Tensor:
    """Mean next-character loss of each window: (count,) in nats per character. The model
    reads ``inputs`` (default: the windows themselves) and is scored on the clean windows."""
    model.eval()
    device = next(model.parameters()).device
    inputs = windows if inputs is None else inputs
    out = []
    for chunk, seen in zip(windows.split(batch_size), inputs.split(batch_size), strict=True):
        logits = model(seen[:, :-1].to(device))  # (B, T, V)
        targets = chunk[:, 1:].to(device)  # always the clean next characters
        out.append(example_cross_entropy(logits, targets).cpu())
    return torch.cat(out)


def add_char_noise(windows: torch.Tensor, rate: float, seed: int = 0) -> torch.Tensor:
    """Replace a fraction ``rate`` of the input characters (all but the last column) by random
    printable ones. Pass the result as ``inputs`` to :func:`sequence_losses`, which scores
    against the clean windows, so the loss measures only the cost of noisy context."""
    noisy = windows.clone()
    noisy[:, :-1] = char_noise(windows[:, :-1], rate, torch.Generator().manual_seed(seed))
    return noisy


def lm_metrics(model: nn.Module, windows: torch.Tensor, noise_rate: float = 0.05
               ) -> dict[str, float]:
    """``loss`` (mean, nats/char), ``loss_p99`` (99th percentile of per-window loss) and
    ``noisy_loss`` (mean loss with ``noise_rate`` of the input characters randomised)."""
    if windows.max() >= VOCAB_SIZE:
        raise ValueError(f"Character codes must be < {VOCAB_SIZE}.")
    clean = sequence_losses(model, windows)
    noisy = sequence_losses(model, windows, inputs=add_char_noise(windows, noise_rate))
    return {"loss": clean.mean().item(), "loss_p99": clean.quantile(0.99).item(),
            "noisy_loss": noisy.mean().item()}
