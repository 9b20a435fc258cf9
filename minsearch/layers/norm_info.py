"""Read what a norm module does, whatever library it comes from.

Replacement norms need the same few facts from any norm: how many channels, on which axis,
its affine weight and bias, its epsilon and, for timm's fused ``*Act`` norms, the activation
that follows. :func:`norm_info` reads them from torch and timm norms and from look-alikes;
for a channels-last layer/RMS norm of another library (transformers' ``LlamaRMSNorm``,
``GemmaRMSNorm``, ``T5LayerNorm``) the family and the effective affine are measured
(:mod:`minsearch.layers.norm_probe`), so Gemma's ``1 + weight`` scale is read as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minsearch.layers.norm_probe import probe_norm

FAMILIES = ("batch", "layer", "group", "rms")
_TORCH_NORMS = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


@dataclass
class NormInfo:
    family: str  # one of FAMILIES
    channels: int
    channel_dim: int  # 1 for channels-first layouts (N, C, ...), -1 for channels-last (..., C)
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float
    tail: nn.Module | None  # timm *Act norms: the drop + activation applied after the norm
    device: torch.device
    dtype: torch.dtype


def _family(module: nn.Module) -> str:
    if isinstance(module, nn.modules.batchnorm._NormBase) and not isinstance(
        module, nn.modules.instancenorm._InstanceNorm
    ):
        return "batch"
    if isinstance(module, nn.GroupNorm):
        return "group"
    name = type(module).__name__.lower()
    if "rms" in name or isinstance(module, nn.RMSNorm):
        return "rms"
    if "batch" in name:
        return "batch"
    if "group" in name:
        return "group"
    return "layer"


def _channels_first(module: nn.Module, family: str) -> bool:
    if family in ("batch", "group"):
        return True
    name = type(module).__name__
    return name.endswith(("2d", "2dFp32", "3d")) or "2d" in name


def norm_info(module: nn.Module) -> NormInfo:
    """Facts about a norm module; ``ValueError`` when the channel count cannot be read."""
    family = _family(module)
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    weight = weight if isinstance(weight, torch.Tensor) else None
    bias = bias if isinstance(bias, torch.Tensor) else None
    channels = None
    for attr in ("num_features", "num_channels"):
        if isinstance(getattr(module, attr, None), int):
            channels = getattr(module, attr)
    shape = getattr(module, "normalized_shape", None)
    if channels is None and shape is not None:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        channels = int(shape[-1]) if len(shape) == 1 else None
    if channels is None and weight is not None and weight.dim() == 1:
        channels = weight.numel()
    if channels is None:
        raise ValueError(f"Cannot read the channel count of {type(module).__name__}; a "
                         f"replacement needs a norm over one channel axis.")
    eps = getattr(module, "eps", getattr(module, "variance_epsilon", None))
    eps = float(eps) if isinstance(eps, (int, float)) else 1e-5
    tail = None
    act, drop = getattr(module, "act", None), getattr(module, "drop", None)
    if isinstance(act, nn.Module) and not isinstance(act, nn.Identity):
        tail = nn.Sequential(drop, act) if isinstance(drop, nn.Module) else act
    channel_dim = 1 if _channels_first(module, family) else -1
    if channel_dim == -1 and family in ("layer", "rms") and not isinstance(module, _TORCH_NORMS):
        # a norm class of another library: measure what it computes (Gemma: 1 + weight)
        probed = probe_norm(module, channels, eps)
        if probed is not None:
            family, weight = probed.family, probed.weight
            bias = probed.bias if bias is not None or probed.bias.abs().max() > 0 else None
    ref = next(iter([*module.parameters(), *module.buffers()]), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    return NormInfo(family, channels, channel_dim, weight, bias, eps, tail, device, dtype)


def channel_view(param: torch.Tensor, x: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Reshape a per-channel ``(C,)`` tensor to broadcast against ``x`` on ``channel_dim``."""
    if channel_dim == -1 or channel_dim == x.dim() - 1:
        return param
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    return param.view(shape)


def build_like(cls: type[nn.Module], info: NormInfo, *args, **kwargs) -> nn.Module:
    """Construct ``cls(*args, **kwargs)`` on the old norm's device and dtype, then copy the old
    norm's affine ``weight``/``bias`` into the new module's, where both have them."""
    with torch.device(info.device):
        new = cls(*args, **kwargs).to(info.dtype)
    with torch.no_grad():
        for name in ("weight", "bias"):
            old, mine = getattr(info, name), getattr(new, name, None)
            if old is not None and isinstance(mine, torch.Tensor):
                mine.copy_(old.detach().reshape(mine.shape))
    return new


def with_tail(norm: nn.Module, info: NormInfo) -> nn.Module:
    """Put back the activation of a fused norm+act after its replacement."""
    return norm if info.tail is None else NormAct(norm, info.tail)


class NormAct(nn.Sequential):
    """A replacement norm followed by the (drop +) activation of the timm norm it replaced."""

    def __init__(self, norm: nn.Module, tail: nn.Module):
        super().__init__()
        self.norm = norm
        self.act = tail
