"""How the training forward runs: autocast precision, the fp16 grad scaler, memory layout.

``precision`` (:class:`~minsearch.tasks.config.RecipeConfig`): ``auto`` is bf16 autocast on
CUDA (same exponent range as fp32: no loss scaling needed) and fp32 on the CPU, where bf16
pays off only with bf16 matrix instructions; a density task (flows) stays fp32 under ``auto``:
its loss sums log-determinants over many layers, which bf16's 8-bit mantissa rounds coarsely.
``bf16`` on the CPU (or for flows) runs only when asked. ``fp16`` needs a
:class:`torch.amp.GradScaler` (its 5-bit exponent underflows small gradients): the loss is
scaled up before backward and the gradients unscaled before clipping, and a step whose
gradients overflowed is skipped.

Weights stay fp32 (autocast casts per op): checkpoints, the parent cache and the measured
model are fp32 whatever precision trained them.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from minsearch.tasks.config import RecipeConfig

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def autocast_dtype(recipe: RecipeConfig, device: torch.device, kind: str) -> torch.dtype | None:
    """The dtype autocast runs the forward in, or None for plain fp32."""
    name = recipe.precision
    if name == "auto":
        name = "bf16" if device.type == "cuda" and kind != "density" else "fp32"
    return DTYPES[name]


def wants_channels_last(recipe: RecipeConfig, model: nn.Module, device: torch.device) -> bool:
    """``channels_last: auto`` is on for a model with 2-D convolutions on CUDA (tensor-core
    convolutions want NHWC; on the CPU, and for transformers, it buys nothing)."""
    if recipe.channels_last != "auto":
        return bool(recipe.channels_last)
    return device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())


class MixedPrecision:
    """Autocast plus, for fp16, a grad scaler; :meth:`backward` and :meth:`step` replace
    ``loss.backward()`` and ``optimizer.step()``."""

    def __init__(self, dtype: torch.dtype | None, device: torch.device) -> None:
        self.dtype, self.device_type = dtype, device.type
        self.scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer, model: nn.Module,
             grad_clip: float | None) -> None:
        """Clip the (unscaled) gradients to ``grad_clip`` and step."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)  # skipped when the gradients overflowed
            self.scaler.update()
