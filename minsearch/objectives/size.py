"""Static costs: parameter bytes (dtype-aware) and FLOPs of one example."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from minsearch.objectives.base import MeasureContext, Objective, register_objective


def stored_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors that hold ``tensor``'s data: itself, or for a wrapper subclass (a
    torchao quantized weight: int8 data + scales + zero points) its inner tensors, found with
    the subclass protocol ``__tensor_flatten__``, recursively."""
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if not is_traceable_wrapper_subclass(tensor):
        return [tensor]
    names, _ = tensor.__tensor_flatten__()
    return [inner for name in names for inner in stored_tensors(getattr(tensor, name))]


def state_bytes(module: torch.nn.Module) -> int:
    """Bytes of the state dict (parameters and buffers) as stored: each tensor at its own
    dtype, a quantized tensor as its data, scales and zero points; tensors sharing storage
    (tied weights) count once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for value in module.state_dict(keep_vars=True).values():
        for tensor in stored_tensors(value):
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
    cost_only = True
    direction = "min"
    unit = "bytes"

    def measure(self, ctx: MeasureContext) -> float:
        return float(state_bytes(ctx.model))


def _count_int_mm() -> None:
    """``aten._int_mm`` (int8 x int8 -> int32, what torchao's int8 dynamic linear runs) has no
    formula in ``torch.utils.flop_counter``; it is a matmul and counts as one, so that an
    int8 model does not report zero FLOPs."""
    from torch.utils.flop_counter import flop_registry

    aten = torch.ops.aten
    flop_registry.setdefault(aten._int_mm, flop_registry[aten.mm])


@register_objective
class Flops(Objective):
    """FLOPs of one forward pass on one example, counted by ``torch.utils.flop_counter``
    (matmuls and convolutions, at any precision; elementwise ops are free in its model)."""

    name = "flops"
    cost_only = True
    direction = "min"
    unit = "flop"

    def measure(self, ctx: MeasureContext) -> float:
        x = ctx.data.examples(ctx.data.test, 1)[0].to(ctx.device)
        ctx.model.eval()
        _count_int_mm()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            ctx.model(x)
        return float(counter.get_total_flops())
