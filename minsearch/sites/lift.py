"""Lift a functional norm call (``F.layer_norm(x, shape, self.w, self.b)``) into the
equivalent module, so that the norm options, written for modules, apply to it too."""

from __future__ import annotations

import inspect

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

_SIGNATURES = {
    "layer_norm": F.layer_norm,
    "rms_norm": F.rms_norm,
    "group_norm": F.group_norm,
    "batch_norm": F.batch_norm,
}


def lift_norm(node: fx.Node, owner: nn.Module) -> nn.Module:
    """The module computing what ``node`` computes, with copies of its weights."""
    op = node.target.__name__ if callable(node.target) else str(node.target)
    fn = _SIGNATURES.get(op)
    if fn is None:
        raise ValueError(f"Cannot lift the functional norm {op!r}; known: "
                         f"{', '.join(_SIGNATURES)}.")
    bound = inspect.signature(fn).bind(*node.args, **node.kwargs)
    bound.apply_defaults()
    args = {k: _value(v, owner, op) for k, v in bound.arguments.items() if k != "input"}
    weight, bias = args.get("weight"), args.get("bias")
    eps = args.get("eps") or 1e-5
    if op in ("layer_norm", "rms_norm"):
        shape = tuple(args["normalized_shape"])
        cls = nn.LayerNorm if op == "layer_norm" else nn.RMSNorm
        extra = {"bias": bias is not None} if op == "layer_norm" else {}
        module = cls(shape, eps=eps, elementwise_affine=weight is not None, **extra)
    elif op == "group_norm":
        channels = weight.numel() if weight is not None else None
        if channels is None:
            raise ValueError("Cannot lift F.group_norm without a weight: its channel count is "
                             "unknown.")
        module = nn.GroupNorm(args["num_groups"], channels, eps=eps, affine=True)
    else:
        mean, var = args["running_mean"], args["running_var"]
        module = nn.BatchNorm1d(mean.numel(), eps=eps, affine=weight is not None)
        module.running_mean, module.running_var = mean.clone(), var.clone()
    ref = weight if weight is not None else next(owner.parameters(), None)
    if ref is not None:
        module = module.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        if weight is not None:
            module.weight.copy_(weight)
        if bias is not None and getattr(module, "bias", None) is not None:
            module.bias.copy_(bias)
    return module


def _value(arg, owner: nn.Module, op: str):
    if not isinstance(arg, fx.Node):
        return arg
    if arg.op == "get_attr":
        return owner.get_parameter(arg.target) if _is_param(owner, arg.target) else \
            owner.get_buffer(arg.target)
    raise ValueError(f"Cannot lift F.{op}: its argument {arg.name} is computed in forward, "
                     f"not a parameter or buffer; only 'keep' applies to this site.")


def _is_param(owner: nn.Module, target: str) -> bool:
    try:
        owner.get_parameter(target)
    except AttributeError:
        return False
    return True
