"""Inference with real int8 arithmetic on CPU: Q·K^T (and P·V for ``pv="int8"``) through
``torch._int_mm`` (int8 x int8 -> int32), one (batch, head) matrix at a time.

It computes the same values as the fake-quant reference: int8 products summed in int32 are
exact, and the reference's fp32 sums of the same integers are exact while they stay below 2^24
(127² · hs < 2^24 for hs <= 1040). Forward only.
"""

from __future__ import annotations

import torch

from minsearch.attention import quant, reference
from minsearch.attention.spec import AttnSpec


def int_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched int8 matmul: (..., M, K) x (..., K, N) -> int32 (..., M, N). Leading dims
    broadcast, as in SDPA (Falcon's one key/value head is shared by every query head)."""
    lead = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = a.expand(*lead, *a.shape[-2:]), b.expand(*lead, *b.shape[-2:])
    a2, b2 = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    out = [torch._int_mm(x.contiguous(), y.contiguous()) for x, y in zip(a2, b2, strict=True)]
    return torch.stack(out).reshape(*lead, a.shape[-2], b.shape[-1])


def int8_scores(q: torch.Tensor, k: torch.Tensor, spec: AttnSpec) -> torch.Tensor:
    """Q·K^T with int8 inputs and int32 accumulation, dequantized: (B, nh, Tq, Tk) fp32."""
    if spec.smooth_k:
        k = k - k.mean(dim=-2, keepdim=True)
    qs = quant.absmax_scale(q, quant.INT8_MAX, spec.scale, spec.block)  # (B, nh, Tq|1, 1)
    ks = quant.absmax_scale(k, quant.INT8_MAX, spec.scale, spec.block)  # (B, nh, Tk|1, 1)
    acc = int_bmm(quant.to_int8(q, qs), quant.to_int8(k, ks).transpose(-2, -1))  # int32
    return acc.to(q.dtype) * (qs * ks.transpose(-2, -1))


def int8_pv(p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """P~·V with P~ as round(127·P~) and V per-channel int8: (B, nh, Tq, hs) fp32."""
    vs = quant.channel_scale(v, quant.INT8_MAX)  # (B, nh, 1, hs)
    p_i8 = torch.round(p * quant.INT8_MAX).to(torch.int8)  # P~ in [0, 1] -> [0, 127]
    acc = int_bmm(p_i8, quant.to_int8(v, vs))  # int32 (B, nh, Tq, hs)
    return acc.to(v.dtype) * (vs / quant.INT8_MAX)


@torch.no_grad()
def int8mm_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spec: AttnSpec,
                     alpha: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
                     is_causal: bool = False, scale: float | None = None,
                     enable_gqa: bool = False) -> torch.Tensor:
    """Attention at ``spec`` (``qk`` must be int8) with real int8 matmuls; (B, nh, Tq, hs)."""
    if spec.qk != "int8":
        raise ValueError(f"The int8mm path needs qk='int8', but got qk={spec.qk!r}.")
    k, v = reference.expand_kv(q, k, v, enable_gqa)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = reference.mask_scores(int8_scores(q, k, spec) * scale, attn_mask, is_causal)
    p, row_sum = reference.unnormalised_probs(s)  # (B, nh, Tq, Tk), (B, nh, Tq, 1)
    if spec.pv == "int8":
        return int8_pv(p, v) / row_sum
    p_q = reference.quantize_p(p, spec, alpha)
    return (p_q / reference.normaliser(p_q, row_sum, spec)) @ reference.quantize_v(v, spec)
