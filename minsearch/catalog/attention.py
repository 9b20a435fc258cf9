"""Attention options: keep, or run Q·K^T and P·V at chosen precisions.

``lowp`` takes every field of :class:`~minsearch.attention.spec.AttnSpec`; the other names are
presets of it, usable as plain strings in a search space (each still accepts field overrides,
e.g. ``{"name": "int8", "scale": "head"}``):

=========  =========  ============  ===================================================
option     Q·K^T      P·V           after
=========  =========  ============  ===================================================
fp32       fp32       fp32          the original (identity; PyTorch's SDPA)
bf16       bf16       bf16          bf16 tensor-core attention
fp8        fp8        fp8           FlashAttention-3 FP8 (per-block scales)
int8       int8       int8          SageAttention's int8 Q·K^T (smoothed K) + int8 P·V
sage       int8       fp8           SageAttention2-8b
qaas       fp8        binary        the QAAS claim: binary P with a learned scale
ternary    fp8        ternary       P in {0, a, 2a}, learned a
=========  =========  ============  ===================================================

Sites: transformers attention modules -> the same module running through minsearch's
function in transformers' ``AttentionInterface`` (:mod:`minsearch.attention.hf`, per layer);
timm ``Attention`` -> :class:`~minsearch.attention.LowpAttention`;
``nn.MultiheadAttention`` -> :class:`~minsearch.attention.LowpMultiheadAttention`; any other
module whose forward calls ``F.scaled_dot_product_attention`` -> a traced GraphModule with the
calls swapped (:func:`~minsearch.attention.fx_sdpa.swap_sdpa`). Attention computed by hand
(``softmax(q @ k^T)``, Swin/LeViT; site detail ``impl="matmul"``) supports only ``keep``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from minsearch.attention.spec import AttnSpec
from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, Swap
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.errors import UserError

KeepAttention = keep_option("attention")


@dataclass(frozen=True)
class LowpAttentionConfig(AttnSpec, OptionConfig):
    """Attention with Q·K^T and P·V precisions chosen separately (all AttnSpec fields)."""

    kind: ClassVar[str] = "attention"
    name: ClassVar[str] = "lowp"


@dataclass(frozen=True)
class Fp32Attention(LowpAttentionConfig):
    """fp32 Q·K^T and P·V: the original attention (the identity option)."""

    name: ClassVar[str] = "fp32"


@dataclass(frozen=True)
class Bf16Attention(LowpAttentionConfig):
    """bf16 Q, K, P and V with fp32 accumulation."""

    name: ClassVar[str] = "bf16"
    qk: str = "bf16"
    pv: str = "bf16"


@dataclass(frozen=True)
class Fp8Attention(LowpAttentionConfig):
    """fp8 e4m3 Q·K^T (per-block scales, smoothed K) and fp8 P·V (FlashAttention-3 FP8)."""

    name: ClassVar[str] = "fp8"
    qk: str = "fp8"
    pv: str = "fp8"


@dataclass(frozen=True)
class Int8Attention(LowpAttentionConfig):
    """int8 Q·K^T with K smoothed, per-block scales (SageAttention) and int8 P·V."""

    name: ClassVar[str] = "int8"
    qk: str = "int8"
    pv: str = "int8"


@dataclass(frozen=True)
class SageAttention(LowpAttentionConfig):
    """int8 Q·K^T with K smoothed and fp8 P·V (SageAttention2-8b)."""

    name: ClassVar[str] = "sage"
    qk: str = "int8"
    pv: str = "fp8"


@dataclass(frozen=True)
class QaasAttention(LowpAttentionConfig):
    """fp8 Q·K^T and binary P with a learned per-head scale (the QAAS claim)."""

    name: ClassVar[str] = "qaas"
    qk: str = "fp8"
    pv: str = "binary"


@dataclass(frozen=True)
class TernaryAttention(LowpAttentionConfig):
    """fp8 Q·K^T and ternary P {0, a, 2a} with a learned per-head scale."""

    name: ClassVar[str] = "ternary"
    qk: str = "fp8"
    pv: str = "ternary"


SUPPORTED_IMPLS = ("timm", "mha", "sdpa", "hf")
"""Site ``impl`` values the precision options handle; ``matmul``/``other`` sites keep."""


def supports(site: Any) -> bool:
    """Precision options apply where attention runs through SDPA, timm Attention, MHA or
    transformers' AttentionInterface, without soft-capped scores (Gemma 2: no SDPA form)."""
    return site.detail.impl in SUPPORTED_IMPLS and not getattr(site.detail, "softcap", None)


def replace_attention(config: AttnSpec, site: Any, old: nn.Module) -> list[Edit]:
    # No docstring on purpose: the registry takes each option's one-line doc from its config.
    return [Swap(site.name, lowp_attention(config, site, old))]


def lowp_attention(config: AttnSpec, site: Any, old: nn.Module) -> nn.Module:
    """The low-precision module that replaces the attention module ``old`` at ``site``."""
    from minsearch.attention import LowpAttention, LowpMultiheadAttention, is_timm_attention
    from minsearch.attention.fx_sdpa import swap_sdpa

    spec = config.spec()
    if site.detail.impl == "hf":
        from minsearch.attention.hf import lowp_hf_attention

        return lowp_hf_attention(old, spec)
    if isinstance(old, nn.MultiheadAttention):
        return LowpMultiheadAttention.from_module(old, spec)
    if is_timm_attention(old):
        return LowpAttention.from_module(old, spec)
    if site.detail.impl == "matmul":
        raise UserError(f"Attention site {site.name!r} computes softmax(q @ k^T) by hand "
                        f"(impl='matmul'); precision options need an SDPA call, timm Attention "
                        f"or nn.MultiheadAttention. Use 'keep' for this site.")
    return swap_sdpa(old, spec)[0]


for _cls in (LowpAttentionConfig, Fp32Attention, Bf16Attention, Fp8Attention, Int8Attention,
             SageAttention, QaasAttention, TernaryAttention):
    register_option(_cls, identity=_cls in (LowpAttentionConfig, Fp32Attention),
                    applies=supports)(replace_attention)
