"""Static costs: parameter bytes (dtype-aware) and FLOPs of one example."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from minsearch.objectives.base import MeasureContext, Objective, register_objective


def state_bytes(module: torch.nn.Module) -> int:
    """Bytes of the state dict (parameters and buffers) at their own dtypes; tensors sharing
    storage (tied weights) count once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for tensor in module.state_dict(keep_vars=True).values():
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key in seen and storage.data_ptr() != 0:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


@register_objective
class ParamBytes(Objective):
    name = "param_bytes"
    direction = "min"
    unit = "bytes"

    def measure(self, ctx: MeasureContext) -> float:
        return float(state_bytes(ctx.model))


@register_objective
class Flops(Objective):
    """FLOPs of one forward pass on one example, counted by ``torch.utils.flop_counter``
    (matmuls and convolutions; elementwise ops are free in its model)."""

    name = "flops"
    direction = "min"
    unit = "flop"

    def measure(self, ctx: MeasureContext) -> float:
        x = ctx.data.examples(ctx.data.test, 1)[0].to(ctx.device)
        ctx.model.eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            ctx.model(x)
        return float(counter.get_total_flops())
