"""``LowpAttention``: timm's ``Attention`` (ViT, DeiT, ...) with a low-precision core."""

from __future__ import annotations

import torch
from torch import nn

from minsearch.attention.sdpa import LowpSDPA
from minsearch.attention.spec import AttnSpec


def is_timm_attention(module: nn.Module) -> bool:
    """True for ``timm.layers.Attention`` and subclasses that keep its ``forward``."""
    try:
        from timm.layers import Attention
    except ImportError:  # timm is a dependency, but this check must not need it
        return False
    return isinstance(module, Attention) and type(module).forward is Attention.forward


class LowpAttention(nn.Module):
    """timm ``Attention``'s forward with ``F.scaled_dot_product_attention`` replaced by
    :class:`LowpSDPA`. Submodule names match timm's, so state_dict keys are unchanged (plus
    ``sdpa.p_scale`` for binary/ternary P)."""

    def __init__(self, spec: AttnSpec, num_heads: int, head_dim: int, qkv: nn.Linear,
                 proj: nn.Module, q_norm: nn.Module | None = None, k_norm: nn.Module | None = None,
                 attn_drop: nn.Module | None = None, norm: nn.Module | None = None,
                 proj_drop: nn.Module | None = None, gate: nn.Module | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.attn_dim = num_heads * head_dim
        self.scale = head_dim ** -0.5
        self.qkv = qkv
        self.q_norm = q_norm or nn.Identity()
        self.k_norm = k_norm or nn.Identity()
        self.attn_drop = attn_drop or nn.Dropout(0.0)
        self.norm = norm or nn.Identity()
        self.gate = gate
        self.proj = proj
        self.proj_drop = proj_drop or nn.Dropout(0.0)
        self.sdpa = LowpSDPA(spec, num_heads)

    @classmethod
    def from_module(cls, old: nn.Module, spec: AttnSpec) -> LowpAttention:
        """Wrap a timm ``Attention``'s own submodules (shared, not copied: surgery works on a
        copy of the model)."""
        if not is_timm_attention(old):
            raise TypeError(f"LowpAttention replaces timm.layers.Attention, but got "
                            f"{type(old).__name__}; use the sdpa (FX) route for other modules.")
        new = cls(spec, old.num_heads, old.head_dim, old.qkv, old.proj, old.q_norm, old.k_norm,
                  old.attn_drop, getattr(old, "norm", None), old.proj_drop,
                  getattr(old, "gate", None))
        new.scale = old.scale
        return new.train(old.training)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                is_causal: bool = False) -> torch.Tensor:
        B, N, C = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, nh, N, hs) each
        q, k = self.q_norm(q), self.k_norm(k)
        x = self.sdpa(q, k, v, attn_mask=attn_mask,
                      dropout_p=self.attn_drop.p if self.training else 0.0,
                      is_causal=is_causal, scale=self.scale)  # (B, nh, N, hs)
        x = self.norm(x.transpose(1, 2).reshape(B, N, self.attn_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))
