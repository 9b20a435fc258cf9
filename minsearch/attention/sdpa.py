"""``LowpSDPA``: a drop-in for ``F.scaled_dot_product_attention`` at a chosen precision.

It owns the learned per-head scale of binary/ternary P and picks the path:

- fp32 Q·K^T and P·V: ``F.scaled_dot_product_attention`` itself;
- training, or any call that needs gradients, masks the kernels lack, or dropout: the fake-quant
  reference (:mod:`minsearch.attention.reference`), with straight-through gradients;
- inference on CUDA: the fused Triton kernel (:mod:`minsearch.attention.triton_kernel`);
- inference on CPU with ``qk="int8"``: real int8 matmuls (:mod:`minsearch.attention.cpu_int8`).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from minsearch.attention import cpu_int8, reference
from minsearch.attention.spec import AttnSpec
from minsearch.errors import UserError


class LowpSDPA(nn.Module):
    """Called like ``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal,
    scale, enable_gqa)`` with ``q``: (B, nh, Tq, hs), ``k``/``v``: (B, nh, Tk, hs).

    Args:
        spec: the precision.
        num_heads: heads that get their own learned P scale; 1 shares one scale (use it when
            the head count is unknown, e.g. for a traced ``F.scaled_dot_product_attention``).
    """

    def __init__(self, spec: AttnSpec, num_heads: int = 1) -> None:
        super().__init__()
        self.spec = spec.spec()  # a plain AttnSpec, also when given a catalog config
        self.num_heads = num_heads
        self._triton_failed = False  # set when the kernel failed once on this device (auto)
        if self.spec.learned_p_scale:
            self.p_scale = nn.Parameter(torch.full((num_heads, 1, 1), self.spec.initial_p_scale))
        else:
            self.register_parameter("p_scale", None)

    def alpha(self) -> torch.Tensor | None:
        """The learned P step, kept positive. Not clamped from above: torch's clamp passes no
        gradient at the bound, which would freeze a scale initialised there (1.0 for binary)."""
        return None if self.p_scale is None else self.p_scale.clamp_min(1e-3)

    def path(self, q: torch.Tensor, attn_mask: torch.Tensor | None, dropout_p: float) -> str:
        """Which implementation a call takes: ``sdpa``, ``reference``, ``int8mm`` or ``triton``."""
        kernel = self.spec.kernel
        if kernel != "auto":
            return kernel
        if self.spec.is_exact:
            return "sdpa"  # nothing to quantize: PyTorch's own kernel, bit-identical to the old
        grad = torch.is_grad_enabled() and (q.requires_grad or self.training)
        if grad or dropout_p > 0.0:
            return "reference"
        if q.is_cuda and attn_mask is None and not self._triton_failed:
            from minsearch.attention.triton_kernel import fp8_supported

            if "fp8" not in (self.spec.qk, self.spec.pv) or fp8_supported(q.device):
                return "triton"
        if q.device.type == "cpu" and self.spec.qk == "int8":
            return "int8mm"
        return "reference"

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                is_causal: bool = False, scale: float | None = None,
                enable_gqa: bool = False) -> torch.Tensor:
        path = self.path(q, attn_mask, dropout_p)
        if path == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal,
                                                  scale=scale, enable_gqa=enable_gqa)
        if path == "int8mm":
            return cpu_int8.int8mm_attention(q, k, v, self.spec, self.alpha(), attn_mask,
                                             is_causal, scale, enable_gqa)
        if path == "triton":
            if attn_mask is not None or dropout_p > 0.0:
                raise UserError("The Triton attention kernel supports neither attn_mask nor "
                                "dropout; use kernel='auto', which falls back to the reference.")
            from minsearch.attention.triton_kernel import triton_attention

            k, v = reference.expand_kv(q, k, v, enable_gqa)
            try:
                return triton_attention(q, k, v, self.spec, self.alpha(), is_causal=is_causal,
                                        scale=scale)
            except Exception as e:  # compile errors differ per GPU and Triton version
                if self.spec.kernel != "auto":
                    raise
                warnings.warn(f"The Triton attention kernel failed on {q.device} "
                              f"({type(e).__name__}: {e}); using the fake-quant reference "
                              f"instead (same values, slower).", RuntimeWarning, stacklevel=2)
                self._triton_failed = True
        return reference.lowp_attention(q, k, v, self.spec, self.alpha(), attn_mask, dropout_p,
                                        is_causal, scale, enable_gqa)

    def extra_repr(self) -> str:
        s = self.spec
        return f"qk={s.qk}, pv={s.pv}, scale={s.scale}, block={s.block}, kernel={s.kernel}"
