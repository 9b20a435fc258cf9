"""``LowpMultiheadAttention``: ``nn.MultiheadAttention`` with a low-precision core."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.attention import reference
from minsearch.attention.sdpa import LowpSDPA
from minsearch.attention.spec import AttnSpec
from minsearch.errors import UserError


def _additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """MHA masks (bool True = *blocked*, or float added) as an additive float mask."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, -torch.inf)


class LowpMultiheadAttention(nn.Module):
    """The forward of ``nn.MultiheadAttention`` (batched input; key_padding_mask, attn_mask,
    is_causal, need_weights, dropout) computed by :class:`LowpSDPA`. Parameter names match
    MHA's, so state_dict keys are unchanged (plus ``sdpa.p_scale`` for binary/ternary P)."""

    _qkv_same_embed_dim = False
    """Always False: ``nn.TransformerEncoderLayer`` runs a fused fp32 kernel on MHA's weights in
    eval mode (bypassing ``forward``) unless this flag is False. The projections themselves are
    described by ``packed`` below."""

    def __init__(self, spec: AttnSpec, old: nn.MultiheadAttention) -> None:
        super().__init__()
        if old.bias_k is not None or old.add_zero_attn:
            raise UserError(f"LowpMultiheadAttention does not support add_bias_kv or "
                            f"add_zero_attn, but the module has bias_k="
                            f"{old.bias_k is not None}, add_zero_attn={old.add_zero_attn}; keep "
                            f"this site (option 'keep').")
        self.embed_dim, self.num_heads, self.head_dim = old.embed_dim, old.num_heads, old.head_dim
        self.batch_first = old.batch_first
        self.dropout = old.dropout
        self.packed = old._qkv_same_embed_dim
        if self.packed:
            self.in_proj_weight = old.in_proj_weight  # (3E, E), shared with the old module
        else:
            self.q_proj_weight = old.q_proj_weight  # (E, E), (E, kdim), (E, vdim)
            self.k_proj_weight = old.k_proj_weight
            self.v_proj_weight = old.v_proj_weight
        self.in_proj_bias = old.in_proj_bias  # (3E,) or None
        self.bias_k = self.bias_v = None
        self.out_proj = old.out_proj
        self.sdpa = LowpSDPA(spec, old.num_heads)

    @classmethod
    def from_module(cls, old: nn.MultiheadAttention, spec: AttnSpec) -> LowpMultiheadAttention:
        if not isinstance(old, nn.MultiheadAttention):
            raise TypeError(f"LowpMultiheadAttention replaces nn.MultiheadAttention, but got "
                            f"{type(old).__name__}.")
        return cls(spec, old).train(old.training)

    def _project(self, query, key, value):
        """In-projections, split into heads: each (N, nh, L|S, hs)."""
        E = self.embed_dim
        b = self.in_proj_bias if self.in_proj_bias is not None else [None] * 3
        if self.packed:
            w = self.in_proj_weight
            ws = (w[:E], w[E:2 * E], w[2 * E:])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        bs = (b[:E], b[E:2 * E], b[2 * E:]) if self.in_proj_bias is not None else b
        out = []
        for x, w_, b_ in zip((query, key, value), ws, bs, strict=True):
            y = F.linear(x, w_, b_)  # (N, L, E)
            out.append(y.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2))
        return out

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if query.dim() != 3:
            raise ValueError(f"LowpMultiheadAttention takes batched 3-D input, but got "
                             f"query of shape {tuple(query.shape)}; add a batch dimension.")
        if not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        N, L, _ = query.shape
        q, k, v = self._project(query, key, value)  # (N, nh, L|S, hs)
        S = k.shape[-2]
        mask = _additive(attn_mask, q.dtype)
        if mask is not None:  # (L, S) or (N*nh, L, S) -> broadcastable to (N, nh, L, S)
            mask = mask.reshape(N, self.num_heads, L, S) if mask.dim() == 3 else mask
        kpm = _additive(key_padding_mask, q.dtype)
        if kpm is not None:
            kpm = kpm.reshape(N, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        causal = is_causal and mask is None  # with a mask, is_causal is only MHA's hint
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            out, weights = reference.lowp_attention(q, k, v, self.sdpa.spec, self.sdpa.alpha(),
                                                    mask, dropout_p, causal, need_weights=True)
            weights = weights.mean(dim=1) if average_attn_weights else weights
        else:
            out = self.sdpa(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)
        out = self.out_proj(out.transpose(1, 2).reshape(N, L, self.embed_dim))  # (N, L, E)
        return (out if self.batch_first else out.transpose(0, 1)), weights
