"""The fake-quant attention: the training path and the reference every kernel is tested against.

It materialises S and P (so it costs more memory than fp32 SDPA, not less); its values are the
ones a real low-precision kernel computes, and its gradients are straight-through: quantized Q,
K and V pass gradients elementwise, quantized probabilities pass them to the softmax as a whole.
The steps are split so that the CPU int8 path can swap in real integer matmuls and reuse the
rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minsearch.attention import quant
from minsearch.attention.spec import LEVELS, AttnSpec


def quantize_qk(q: torch.Tensor, k: torch.Tensor,
                spec: AttnSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantize Q and K (``spec.qk``); K is smoothed first for fp8/int8. (B, nh, T, hs)."""
    if spec.qk in ("fp8", "int8"):
        if spec.smooth_k:
            k = k - k.mean(dim=-2, keepdim=True)  # S rows shift by a constant: softmax unchanged
        qmax = quant.FP8_MAX if spec.qk == "fp8" else quant.INT8_MAX
        q = quant.fake_quant(q, spec.qk, quant.absmax_scale(q, qmax, spec.scale, spec.block))
        k = quant.fake_quant(k, spec.qk, quant.absmax_scale(k, qmax, spec.scale, spec.block))
        return q, k
    return quant.fake_quant(q, spec.qk), quant.fake_quant(k, spec.qk)


def mask_scores(s: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
    """Apply SDPA's masks to scores ``s`` (B, nh, Tq, Tk): bool True = attend, float = added."""
    if is_causal:
        Tq, Tk = s.shape[-2:]
        keep = torch.ones(Tq, Tk, dtype=torch.bool, device=s.device).tril()  # top-left aligned
        s = s.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            s = s.masked_fill(~attn_mask, float("-inf"))
        else:
            s = s + attn_mask
    return s


def unnormalised_probs(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P~ = exp(S - rowmax) in (0, 1] and the row sums l; both (B, nh, Tq, Tk|1)."""
    m = s.amax(dim=-1, keepdim=True).detach()  # softmax is shift-invariant: no gradient needed
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # fully masked rows
    p = torch.exp(s - m)
    # a fully masked row (padding, a sliding window past the padding) sums to 0: its output is
    # 0, as PyTorch's SDPA gives, not 0 / 0
    return p, p.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)


def quantize_p(p: torch.Tensor, spec: AttnSpec, alpha: torch.Tensor | None) -> torch.Tensor:
    """Fake-quantize P~ (``spec.pv``); ``alpha`` is the learned scale of binary/ternary P."""
    if spec.pv in LEVELS:
        if alpha is None:
            raise ValueError(f"pv={spec.pv!r} needs its learned scale `alpha`, but got None; "
                             f"use LowpSDPA, which owns one per head.")
        return quant.quantize_levels(p, alpha, LEVELS[spec.pv])
    if spec.pv == "fp8":
        return quant.fake_fp8(p, torch.tensor(1.0 / quant.FP8_MAX, device=p.device))
    if spec.pv == "int8":
        return quant.fake_int8(p, torch.tensor(1.0 / quant.INT8_MAX, device=p.device))
    return quant.fake_quant(p, spec.pv)


def quantize_v(v: torch.Tensor, spec: AttnSpec) -> torch.Tensor:
    """Fake-quantize V: per-channel fp8/int8, bf16 for binary/ternary P, else ``spec.pv``."""
    if spec.pv == "fp8":
        return quant.fake_fp8(v, quant.channel_scale(v, quant.FP8_MAX))
    if spec.pv == "int8":
        return quant.fake_int8(v, quant.channel_scale(v, quant.INT8_MAX))
    if spec.pv in LEVELS:
        return quant.fake_bf16(v)
    return quant.fake_quant(v, spec.pv)


def normaliser(p_q: torch.Tensor, row_sum: torch.Tensor, spec: AttnSpec) -> torch.Tensor:
    """What P·V is divided by: the exact row sum l of P~, or the sum of the quantized P~."""
    if spec.p_norm == "quantized":
        return p_q.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(p_q.dtype).tiny)
    return row_sum


def expand_kv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              enable_gqa: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat K/V heads for grouped-query attention, as SDPA's ``enable_gqa`` does."""
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(rep, dim=-3), v.repeat_interleave(rep, dim=-3)
    return k, v


def lowp_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spec: AttnSpec,
                   alpha: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
                   dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                   enable_gqa: bool = False, need_weights: bool = False):
    """``F.scaled_dot_product_attention`` at ``spec``'s precision, fake-quantized.

    ``q``: (B, nh, Tq, hs); ``k``, ``v``: (B, nh, Tk, hs). Returns (B, nh, Tq, hs), and with
    ``need_weights`` also the effective probabilities (B, nh, Tq, Tk) after dropout.
    """
    k, v = expand_kv(q, k, v, enable_gqa)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    qf, kf = quantize_qk(q, k, spec)
    s = mask_scores((qf @ kf.transpose(-2, -1)) * scale, attn_mask, is_causal)  # (B, nh, Tq, Tk)
    p, row_sum = unnormalised_probs(s)  # (B, nh, Tq, Tk), (B, nh, Tq, 1)
    soft = p / row_sum
    # Forward: the kernel's probabilities Q(P~) / l. Backward: straight through to the softmax
    # P = P~ / l, so S gets softmax's own Jacobian. (An elementwise STE on P~ with the exact l
    # unbalances that Jacobian, and fine-tuning binary P then *raised* the training loss.)
    # ``alpha`` still gets its LSQ gradient through the quantized values.
    p_q = quantize_p(p.detach(), spec, alpha)
    probs = p_q / normaliser(p_q, row_sum.detach(), spec) + (soft - soft.detach())
    if dropout_p > 0.0:
        probs = F.dropout(probs, dropout_p)  # SDPA applies dropout whenever dropout_p > 0
    out = probs @ quantize_v(v, spec)  # (B, nh, Tq, hs)
    return (out, probs) if need_weights else out
