"""Fused low-precision attention forward in Triton (FlashAttention-style, forward only).

One program computes a BLOCK_M tile of queries of one (batch, head): it streams K/V tiles,
computes the score tile with an fp8 or int8 ``tl.dot`` (fp32/int32 accumulators) scaled by the
per-token Q and K scales, and keeps an online softmax (running max ``m``, running sum ``l``),
so S and P never reach memory. Q, K and V are quantized beforehand by a torch pre-pass (the same
quantizers as the reference, :mod:`minsearch.attention.quant`), as SageAttention does.

P·V formats: fp32/bf16/fp8/int8 P~ is formed against the *running* max, as in FlashAttention-3
FP8 and SageAttention (the quantization grid then differs slightly from the reference's, which
uses the final max; the error is no larger). Binary/ternary P~ needs the final row max, since
its levels are set relative to it: those formats take two passes over K (pass 1: ``m`` and
``l``; pass 2: quantize and accumulate), computing Q·K^T twice.

Runs on CUDA GPUs (fp8 ``tl.dot`` needs compute capability >= 8.9) and on CPU under
``TRITON_INTERPRET=1`` (for correctness tests only: the interpreter is slow).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from minsearch.attention import quant
from minsearch.attention.spec import LEVELS, AttnSpec
from minsearch.errors import UserError

_QK_MODE = {"fp32": 0, "bf16": 1, "fp8": 2, "int8": 3}
_PV_MODE = {"fp32": 0, "bf16": 1, "fp8": 2, "int8": 3, "binary": 4, "ternary": 4}
_LOG2E = 1.4426950408889634  # the kernel works with exp2: exp(x) = exp2(x * log2(e))


@triton.jit
def _dot_bf16(a, b, INTERPRETER: tl.constexpr):
    """bf16 x bf16 -> fp32. The interpreter's bf16 ``tl.dot`` multiplies the raw bit patterns
    (triton-lang/triton#11584), so there the bf16 values are multiplied in fp32: bf16 products
    are exact in fp32 and the sum accumulates in fp32, as on tensor cores."""
    if INTERPRETER:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _round_float(x, MANT: tl.constexpr, EMIN: tl.constexpr):
    """x >= 0 rounded to the nearest value of a float format with MANT mantissa bits and
    smallest normal exponent EMIN (ties up; values are exact in fp32)."""
    e = tl.maximum(tl.floor(tl.log2(tl.maximum(x, tl.exp2(EMIN * 1.0)))), EMIN * 1.0)
    step = tl.exp2(e - MANT)
    return tl.floor(x / step + 0.5) * step


@triton.jit
def _to_fp8(x, INTERPRETER: tl.constexpr):
    """x in [0, 448] -> e4m3. The interpreter's fp32 -> fp8 cast drops the carry when rounding
    overflows the mantissa (126.4 -> 64; triton-lang/triton#11897), so there x is rounded to
    the e4m3 grid in fp32 first, after which the cast is exact."""
    if INTERPRETER:
        x = tl.minimum(_round_float(x, 3, -6), 448.0)
    return x.to(tl.float8e4nv)


@triton.jit
def _to_bf16(x, INTERPRETER: tl.constexpr):
    """x >= 0 -> bf16. The interpreter truncates instead of rounding to nearest as GPUs do."""
    if INTERPRETER:
        x = _round_float(x, 7, -126)
    return x.to(tl.bfloat16)


@triton.jit
def _score_tile(q, qs, K, KS, kv_base, start_n, offs_m, offs_n, offs_d, T_K, D, qk_scale,
                QK_MODE: tl.constexpr, IS_CAUSAL: tl.constexpr, INTERPRETER: tl.constexpr):
    """Scores of one key tile in the exp2 domain: (BLOCK_M, BLOCK_N) fp32, -inf where masked."""
    kn = start_n + offs_n
    k = tl.load(K + kv_base * D + kn[:, None] * D + offs_d[None, :],
                mask=(kn[:, None] < T_K) & (offs_d[None, :] < D), other=0.0)
    ks = tl.load(KS + kv_base + kn, mask=kn < T_K, other=0.0)
    if QK_MODE == 3:
        s = tl.dot(q, tl.trans(k), out_dtype=tl.int32).to(tl.float32)  # exact int32 sums
    elif QK_MODE == 0:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")  # no tf32 for the fp32 format
    elif QK_MODE == 1:
        s = _dot_bf16(q, tl.trans(k), INTERPRETER)
    else:
        s = tl.dot(q, tl.trans(k))  # fp8 inputs, fp32 accumulator
    s = s * (qs[:, None] * ks[None, :] * qk_scale)
    valid = kn[None, :] < T_K
    if IS_CAUSAL:
        valid = valid & (kn[None, :] <= offs_m[:, None])
    return tl.where(valid, s, float("-inf"))


@triton.jit
def _attn_fwd(Q, K, V, QS, KS, VS, ALPHA, Out, qk_scale, T_Q, T_K, D, H,
              QK_MODE: tl.constexpr, PV_MODE: tl.constexpr, N_LEVELS: tl.constexpr,
              P_NORM_QUANTIZED: tl.constexpr, IS_CAUSAL: tl.constexpr, INTERPRETER: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)  # flattened (batch, head); Q/K/V/O are contiguous (B*H, T, D)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    q_mask = (offs_m[:, None] < T_Q) & (offs_d[None, :] < D)
    q = tl.load(Q + bh * T_Q * D + offs_m[:, None] * D + offs_d[None, :], mask=q_mask, other=0.0)
    qs = tl.load(QS + bh * T_Q + offs_m, mask=offs_m < T_Q, other=0.0)
    kv_base = bh * T_K
    hi = T_K
    if IS_CAUSAL:
        hi = tl.minimum(T_K, (pid_m + 1) * BLOCK_M)  # later key tiles are fully masked
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    if PV_MODE == 4:
        # Binary/ternary P: pass 1 finds the final row max m and sum l.
        for start_n in range(0, hi, BLOCK_N):
            s = _score_tile(q, qs, K, KS, kv_base, start_n, offs_m, offs_n, offs_d, T_K, D,
                            qk_scale, QK_MODE, IS_CAUSAL, INTERPRETER)
            m_new = tl.maximum(m_i, tl.max(s, 1))
            l_i = l_i * tl.exp2(m_i - m_new) + tl.sum(tl.exp2(s - m_new[:, None]), 1)
            m_i = m_new
        # Pass 2: P~ = exp(S - m) rounded to integer levels 0..N_LEVELS-1 of the learned step a.
        alpha = tl.load(ALPHA + bh % H)
        lq = tl.zeros([BLOCK_M], tl.float32)
        for start_n in range(0, hi, BLOCK_N):
            s = _score_tile(q, qs, K, KS, kv_base, start_n, offs_m, offs_n, offs_d, T_K, D,
                            qk_scale, QK_MODE, IS_CAUSAL, INTERPRETER)
            p = tl.exp2(s - m_i[:, None])
            lev = tl.minimum(tl.maximum(tl.floor(p / alpha + 0.5), 0.0), N_LEVELS - 1.0)
            lq += tl.sum(lev, 1)
            kn = start_n + offs_n
            v = tl.load(V + kv_base * D + kn[:, None] * D + offs_d[None, :],
                        mask=(kn[:, None] < T_K) & (offs_d[None, :] < D), other=0.0)
            acc += _dot_bf16(lev.to(tl.bfloat16), v, INTERPRETER)  # levels exact in bf16
        if P_NORM_QUANTIZED:
            out = acc / lq[:, None]
        else:
            out = acc * (alpha / l_i)[:, None]
    else:
        for start_n in range(0, hi, BLOCK_N):
            s = _score_tile(q, qs, K, KS, kv_base, start_n, offs_m, offs_n, offs_d, T_K, D,
                            qk_scale, QK_MODE, IS_CAUSAL, INTERPRETER)
            m_new = tl.maximum(m_i, tl.max(s, 1))
            corr = tl.exp2(m_i - m_new)  # rescales what was accumulated against the old max
            p = tl.exp2(s - m_new[:, None])  # P~ against the running max, in (0, 1]
            l_i = l_i * corr + tl.sum(p, 1)
            kn = start_n + offs_n
            v = tl.load(V + kv_base * D + kn[:, None] * D + offs_d[None, :],
                        mask=(kn[:, None] < T_K) & (offs_d[None, :] < D), other=0.0)
            if PV_MODE == 0:
                pv = tl.dot(p, v, input_precision="ieee")
            elif PV_MODE == 1:
                pv = _dot_bf16(_to_bf16(p, INTERPRETER), v, INTERPRETER)
            elif PV_MODE == 2:
                pv = tl.dot(_to_fp8(p * 448.0, INTERPRETER), v)  # static scale: P~ <= 1
            else:
                p8 = tl.floor(p * 127.0 + 0.5).to(tl.int8)
                pv = tl.dot(p8, v, out_dtype=tl.int32).to(tl.float32)
            acc = acc * corr[:, None] + pv
            m_i = m_new
        vs = tl.load(VS + bh * D + offs_d, mask=offs_d < D, other=0.0)  # V and P dequant scale
        out = acc * vs[None, :] / l_i[:, None]
    tl.store(Out + bh * T_Q * D + offs_m[:, None] * D + offs_d[None, :], out, mask=q_mask)


def _rows(scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-token scales (B*H, T) fp32 from an absmax scale (B, H, T|1, 1)."""
    return scale.expand(*x.shape[:-1], 1).reshape(-1, x.shape[-2]).float().contiguous()


def _prepare_qk(q: torch.Tensor, k: torch.Tensor, spec: AttnSpec):
    """Q, K in the kernel's input format, with per-token scales (ones for fp32/bf16)."""
    if spec.qk in ("fp8", "int8"):
        if spec.smooth_k:
            k = k - k.mean(dim=-2, keepdim=True)
        qmax, cast = ((quant.FP8_MAX, quant.to_fp8) if spec.qk == "fp8"
                      else (quant.INT8_MAX, quant.to_int8))
        qs = quant.absmax_scale(q, qmax, spec.scale, spec.block)
        ks = quant.absmax_scale(k, qmax, spec.scale, spec.block)
        return cast(q, qs), _rows(qs, q), cast(k, ks), _rows(ks, k)
    dtype = torch.float32 if spec.qk == "fp32" else torch.bfloat16
    ones_q = torch.ones(q.shape[:-1], device=q.device).reshape(-1, q.shape[-2])
    ones_k = torch.ones(k.shape[:-1], device=k.device).reshape(-1, k.shape[-2])
    return q.to(dtype), ones_q, k.to(dtype), ones_k


def _prepare_v(v: torch.Tensor, spec: AttnSpec):
    """V in the kernel's format and the per-channel factor applied to the output (B*H, D)."""
    ones = torch.ones(v.shape[:-2] + v.shape[-1:], device=v.device)
    if spec.pv in ("fp8", "int8"):
        qmax, cast = ((quant.FP8_MAX, quant.to_fp8) if spec.pv == "fp8"
                      else (quant.INT8_MAX, quant.to_int8))
        vs = quant.channel_scale(v, qmax)  # (B, H, 1, D)
        return cast(v, vs), (vs.squeeze(-2) / qmax).float()  # P~ was scaled by qmax too
    dtype = torch.float32 if spec.pv == "fp32" else torch.bfloat16
    return v.to(dtype), ones


def fp8_supported(device: torch.device) -> bool:
    """fp8 ``tl.dot`` needs an Ada/Hopper GPU (sm_89+); the interpreter emulates it."""
    if device.type != "cuda":
        return True
    return torch.cuda.get_device_capability(device) >= (8, 9)


@torch.no_grad()
def triton_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spec: AttnSpec,
                     alpha: torch.Tensor | None = None, *, is_causal: bool = False,
                     scale: float | None = None, block_m: int = 64,
                     block_n: int = 64) -> torch.Tensor:
    """Fused attention at ``spec``'s precision. ``q``: (B, H, Tq, D); ``k``, ``v``: (B, H, Tk, D)
    with the same heads (expand GQA first). ``alpha``: the learned scale of binary/ternary P,
    (H,) or one value. Returns (B, H, Tq, D) in ``q``'s dtype."""
    B, H, Tq, D = q.shape
    Tk = k.shape[-2]
    if k.shape[:2] != (B, H) or v.shape != k.shape:
        raise ValueError(f"triton_attention needs K and V of shape (B, H, Tk, D) matching Q's "
                         f"(B, H) = {(B, H)}, but got k={tuple(k.shape)}, v={tuple(v.shape)}; "
                         f"repeat K/V heads for grouped-query attention first.")
    if "fp8" in (spec.qk, spec.pv) and not fp8_supported(q.device):
        raise UserError(f"fp8 attention needs a GPU of compute capability >= 8.9 (Ada/Hopper), "
                        f"but {torch.cuda.get_device_name(q.device)} is older; use int8.")
    scale = D ** -0.5 if scale is None else scale
    dtype = q.dtype
    q, k, v = (t.float() for t in (q, k, v))  # quantizers read fp32
    qq, qs, kq, ks = _prepare_qk(q, k, spec)
    vq, vs = _prepare_v(v, spec)
    if spec.pv in LEVELS:
        if alpha is None:
            raise ValueError(f"pv={spec.pv!r} needs its learned scale `alpha`, but got None.")
        alpha = alpha.detach().float().reshape(-1).expand(H).contiguous()
    else:
        alpha = torch.ones(H, device=q.device)
    out = torch.empty(B * H, Tq, D, device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(Tq, block_m), B * H)
    _attn_fwd[grid](
        qq.reshape(B * H, Tq, D).contiguous(), kq.reshape(B * H, Tk, D).contiguous(),
        vq.reshape(B * H, Tk, D).contiguous(), qs, ks, vs.reshape(B * H, D).contiguous(),
        alpha, out, scale * _LOG2E, Tq, Tk, D, H,
        QK_MODE=_QK_MODE[spec.qk], PV_MODE=_PV_MODE[spec.pv], N_LEVELS=LEVELS.get(spec.pv, 2),
        P_NORM_QUANTIZED=spec.p_norm == "quantized", IS_CAUSAL=is_causal,
        INTERPRETER=q.device.type == "cpu",  # on CPU, Triton runs only interpreted
        BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_D=max(32, triton.next_power_of_2(D)),  # int8/fp8 MMA needs K >= 32
    )
    return out.reshape(B, H, Tq, D).to(dtype)
