"""Which modules and graph ops are norms, activations, attention, linear or conv layers.

Module classes are matched by type where torch and timm give us the classes, and by name for
look-alikes from other libraries (``MyRMSNorm``). Functional calls are matched by target.
"""

from __future__ import annotations

import inspect
import operator
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

# Gates and output squashers (sigmoid in squeeze-excite, tanh heads, softmax) are not
# activations a gene should swap; neither are parameter-free wrappers.
_ACT_CLASSES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.LeakyReLU, nn.ELU,
    nn.SELU, nn.CELU, nn.PReLU, nn.Softplus,
)
_ACT_NAMES = ("GELU", "GELUTanh", "QuickGELU", "Swish", "SiLU", "Mish", "HardSwish", "HardMish",
              "StarReLU", "SquaredReLU", "ReLU", "PReLU", "ELU")

_NORM_BASES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm,
)
_NOT_NORMS = ("InstanceNorm", "WeightNorm", "SpectralNorm", "Normalize", "NormMlp",
              "NormFree", "Normalization")

_CONV = (nn.modules.conv._ConvNd,)
_LINEAR = (nn.Linear,)

FUNCTIONAL_NORMS = {
    F.layer_norm: "layer_norm",
    F.group_norm: "group_norm",
    F.batch_norm: "batch_norm",
    F.rms_norm: "rms_norm",
    torch.layer_norm: "layer_norm",
    torch.group_norm: "group_norm",
    torch.batch_norm: "batch_norm",
    torch.rms_norm: "rms_norm",
}
FUNCTIONAL_ACTS = {
    F.relu: "relu", F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.hardswish: "hardswish",
    F.relu6: "relu6", F.leaky_relu: "leaky_relu", F.elu: "elu", torch.relu: "relu",
}
METHOD_ACTS = {"relu": "relu", "relu_": "relu"}
SDPA = {F.scaled_dot_product_attention}
SOFTMAX = {F.softmax, torch.softmax}
MATMULS = {torch.matmul, operator.matmul, torch.bmm, torch.einsum, torch.baddbmm}
METHOD_MATMULS = {"matmul", "bmm", "softmax"}


@cache
def _timm_functional_acts() -> dict:
    try:
        from timm.layers import activations as acts
    except ImportError:  # timm is a dependency, but classification must not need it
        return {}
    return {acts.gelu: "gelu", acts.gelu_tanh: "gelu_tanh", acts.swish: "swish",
            acts.mish: "mish", acts.hard_swish: "hard_swish", acts.quick_gelu: "quick_gelu"}


def functional_act_name(target) -> str | None:
    name = FUNCTIONAL_ACTS.get(target)
    return name if name is not None else _timm_functional_acts().get(target)


def is_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    if any(bad in name for bad in _NOT_NORMS):
        return False
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return False
    if isinstance(module, _NORM_BASES):
        return True
    # look-alikes: a class named like a norm holding a per-channel weight or normalized_shape
    has_shape = any(hasattr(module, a) for a in ("normalized_shape", "num_features",
                                                 "num_channels"))
    weight = getattr(module, "weight", None)
    per_channel = isinstance(weight, torch.Tensor) and weight.dim() == 1
    return "Norm" in name and (has_shape or per_channel)


def is_activation(module: nn.Module) -> bool:
    return isinstance(module, _ACT_CLASSES) or (
        (type(module).__name__ in _ACT_NAMES or _transformers_activation(module))
        and not list(module.children())
    )


def _transformers_activation(module: nn.Module) -> bool:
    """transformers' ``ACT2FN`` classes (``NewGELUActivation``, ``GELUTanh``, ...)."""
    return type(module).__module__ == "transformers.activations" and "Linear" not in type(
        module).__name__


def attention_impl(module: nn.Module) -> str | None:
    """How a known attention class computes attention: ``"mha"`` for
    ``nn.MultiheadAttention``, ``"timm"`` for timm's ``Attention`` (qkv -> sdpa -> proj),
    ``"hf"`` for transformers' attention modules (dispatched through its AttentionInterface).

    Other attention modules are found from their ops in the traced graph (see
    :mod:`minsearch.sites.graph_ops`); a module *named* like attention that could not be traced
    is reported as ``"other"`` by :func:`named_like_attention`.
    """
    if isinstance(module, nn.MultiheadAttention):
        return "mha"
    for cls in type(module).__mro__:
        if cls.__name__ == "Attention" and cls.__module__ == "timm.layers.attention":
            return "timm"
    if dispatches_hf_attention(type(module)):
        return "hf"
    return None


@cache
def dispatches_hf_attention(cls: type) -> bool:
    """True for a transformers module whose forward picks its attention function from
    transformers' registry (``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]``): read
    from the names its code refers to, no source parsing."""
    if not cls.__module__.startswith("transformers."):
        return False
    fn = inspect.unwrap(getattr(cls, "forward", None))
    code = getattr(fn, "__code__", None)
    return code is not None and "ALL_ATTENTION_FUNCTIONS" in code.co_names


def named_like_attention(module: nn.Module) -> bool:
    name = type(module).__name__
    looks = "Attention" in name or "Attn" in name or name.endswith(
        ("MHSA", "GPSA", "XCA", "SHSA", "MLA"))
    return looks and "Pool" not in name and any(
        isinstance(m, nn.Linear | nn.Conv2d) for m in module.modules())


def is_conv(module: nn.Module) -> bool:
    return isinstance(module, _CONV)


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, _LINEAR)
