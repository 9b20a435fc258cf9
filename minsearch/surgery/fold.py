"""Fold frozen norms into their neighbouring linear layers: norm-free inference.

A frozen norm (see :mod:`minsearch.layers.frozen_norm`) is an affine map:

- ``FrozenScaleNorm`` (a frozen LayerNorm/RMSNorm) on the last axis:
  ``u = (x - mean_c(x)) / sigma * gamma + beta``, i.e. ``u = A x + beta`` with
  ``A = diag(gamma / sigma) (I - 11^T / C)`` (centering is linear; RMS norms have no centering).
  Followed by ``Linear(W, b)``: ``W u + b = (W A) x + (W beta + b)``.
- ``FrozenBatchNorm``: ``u = x * scale + shift`` per channel. After a conv ``y = conv(x)``:
  the conv's output channels absorb ``scale`` and its bias absorbs ``shift``.

The norm becomes ``nn.Identity``. Between a frozen norm and its linear layer, ops that act on
tokens and commute with a per-token affine map are allowed (token selection ``x[:, 0]``, token
means, eval-time dropout, identity): ViT's final norm folds into the head through its pooling.
Folding is for inference: do it after training, on a model in eval mode.

Written by hand: torch's ``fuse_conv_bn_eval`` covers only conv+BN, not a norm folded forward
into the layers it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from minsearch.layers.frozen_norm import FrozenBatchNorm, FrozenScaleNorm
from minsearch.sites.classify import attention_impl
from minsearch.sites.hf_trace import call_with_kwargs
from minsearch.sites.parts import capture

_TOKEN_OPS = {"getitem", "mean"}


@dataclass(frozen=True)
class Fold:
    norm: str
    into: tuple[str, ...]  # the linear/conv layers that absorbed it ("" when not folded)
    reason: str = ""  # why it was not folded

    @property
    def folded(self) -> bool:
        return bool(self.into)


@torch.no_grad()
def fold_norms_(model: nn.Module) -> list[Fold]:
    """Fold every frozen norm of ``model`` that can be folded, in place; report each one."""
    traced = capture(model)  # a transformers model: its layers, captured one by one
    if not traced.ok:
        raise ValueError(f"Cannot fold norms: {traced.error}.")
    calls: dict[str, int] = {}
    for node in traced.graph.nodes:
        called = _called_module(node)
        if called is not None:
            calls[called] = calls.get(called, 0) + 1
    folds = []
    for node in traced.graph.nodes:
        if node.op != "call_module":
            continue
        norm = model.get_submodule(node.target)
        if isinstance(norm, FrozenScaleNorm):
            folds.append(_fold_forward(model, node, norm, calls))
        elif isinstance(norm, FrozenBatchNorm):
            folds.append(_fold_into_conv(model, node, norm, calls))
    seen = {fold.norm for fold in folds}
    folds += [Fold(name, (), "not in the traced graph (inside a part that could not be traced)")
              for name, module in model.named_modules()
              if isinstance(module, FrozenScaleNorm | FrozenBatchNorm) and name not in seen]
    for fold in folds:
        if fold.folded:
            model.set_submodule(fold.norm, nn.Identity())
    return folds


def _fold_forward(model: nn.Module, node: fx.Node, norm: FrozenScaleNorm,
                  calls: dict[str, int]) -> Fold:
    if norm.channel_dim != -1:
        return Fold(node.target, (), "channels-first frozen norm (fold into 1x1 conv: todo)")
    if not bool(norm.calibrated):
        return Fold(node.target, (), "never calibrated: run data through it first")
    targets = []
    for user in node.users:
        if _shape_query(user):
            continue
        found = _linear_after(model, user)
        if found is None:
            return Fold(node.target, (), f"its output reaches {user.name}, not only linears")
        linears, called = found
        if calls.get(called, 0) != 1:
            return Fold(node.target, (), f"{called} is called more than once")
        targets.extend(linears)
    if not targets:
        return Fold(node.target, (), "output unused")
    channels = norm.weight.numel()
    matrix = torch.diag(norm.weight / norm.sigma)  # (C, C)
    if norm.center:
        matrix = matrix @ (torch.eye(channels, device=matrix.device, dtype=matrix.dtype)
                           - 1.0 / channels)
    shift = norm.bias if norm.bias is not None else torch.zeros_like(norm.weight)
    for target in targets:
        linear = model.get_submodule(target)
        bias = linear.bias if linear.bias is not None else torch.zeros(
            linear.out_features, device=linear.weight.device, dtype=linear.weight.dtype)
        new_bias = linear.weight @ shift + bias
        linear.weight.copy_(linear.weight @ matrix)
        if linear.bias is None:
            linear.bias = nn.Parameter(new_bias)
        else:
            linear.bias.copy_(new_bias)
    return Fold(node.target, tuple(targets))


def _shape_query(node: fx.Node) -> bool:
    return (node.op == "call_method" and node.target in ("size", "dim")) or (
        node.op == "call_function" and node.target is getattr)


def _called_module(node: fx.Node) -> str | None:
    """The module a node calls: ``call_module``, or a module called with ``**kwargs``."""
    if node.op == "call_module":
        return node.target
    if node.op == "call_function" and node.target is call_with_kwargs and isinstance(
            node.args[0], fx.Node) and node.args[0].op == "get_attr":
        return node.args[0].target
    return None


_QKV = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("q", "k", "v"))


def _cross_attention(node: fx.Node) -> bool:
    kwargs = node.args[2] if node.op == "call_function" else node.kwargs
    return any(isinstance(kwargs.get(k), fx.Node)
               for k in ("key_value_states", "encoder_hidden_states"))


def _linear_after(model: nn.Module, node: fx.Node) -> tuple[tuple[str, ...], str] | None:
    """(the Linears a norm output reaches through token-wise ops, the module call that must
    happen once for the fold to be valid), or None."""
    while True:
        called = _called_module(node)
        if called is not None:
            module = model.get_submodule(called)
            if isinstance(module, nn.Linear):
                return (called,), called
            if attention_impl(module) == "timm" and getattr(module, "gate", None) is None:
                return (f"{called}.qkv",), called  # timm Attention: input only to qkv
            if attention_impl(module) == "hf":  # transformers: input only to q, k, v
                if _cross_attention(node):
                    return None  # k and v read the encoder's states, not this norm's output
                for names in _QKV:
                    if all(isinstance(getattr(module, n, None), nn.Linear) for n in names):
                        return tuple(f"{called}.{n}" for n in names), called
                return None
            if not isinstance(module, nn.Dropout | nn.Identity):
                return None
        elif not (node.op in ("call_function", "call_method")
                  and getattr(node.target, "__name__", node.target) in _TOKEN_OPS
                  and _keeps_channels(node)):
            return None
        if len(node.users) != 1:
            return None
        node = next(iter(node.users))


def _keeps_channels(node: fx.Node) -> bool:
    """A token op must leave the last (channel) axis alone."""
    name = getattr(node.target, "__name__", node.target)
    if name == "getitem":
        index = node.args[1]
        if not isinstance(index, tuple):
            return False
        if Ellipsis in index or len(index) >= 3:  # tokens are (B, N, C): C must be untouched
            return index[-1] == slice(None)
        return True
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    return None not in dims and all(d not in (-1,) for d in dims)


def _fold_into_conv(model: nn.Module, node: fx.Node, norm: FrozenBatchNorm,
                    calls: dict[str, int]) -> Fold:
    producer = node.args[0]
    if not (isinstance(producer, fx.Node) and producer.op == "call_module"):
        return Fold(node.target, (), "not right after a conv")
    conv = model.get_submodule(producer.target)
    if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed:
        return Fold(node.target, (), "not right after a conv")
    if len(producer.users) != 1 or calls.get(producer.target, 0) != 1:
        return Fold(node.target, (), f"{producer.target} output is used elsewhere too")
    scale, shift = norm.scale_shift()
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    conv.weight.mul_(scale.view(-1, *[1] * (conv.weight.dim() - 1)))
    new_bias = bias * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)
    return Fold(node.target, (producer.target,))


def add_folded_biases(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """A fold gives bias-free linear/conv layers a bias; make room for it before
    ``load_state_dict`` of a folded model into a freshly built one."""
    own = model.state_dict()
    for key, value in state_dict.items():
        if key.endswith(".bias") and key not in own:
            module = model.get_submodule(key[: -len(".bias")])
            if isinstance(module, nn.Linear | nn.modules.conv._ConvNd) and module.bias is None:
                module.bias = nn.Parameter(torch.zeros_like(value))
