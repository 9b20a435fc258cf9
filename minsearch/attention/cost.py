"""Bytes of an attention computation per precision, counted, not measured.

Two implementations are counted for one (B, H, T, D) attention with T queries and T keys:

- ``unfused``: S = Q·K^T and P are written to memory (PyTorch's math path, and this package's
  fake-quant reference *if it stored values at their precision*; it actually stores fp32);
- ``fused``: S and P live in on-chip tiles (FlashAttention, the Triton kernel here); memory
  holds Q, K, V, the output, per-row softmax statistics (m, l) and the quantization scales.

S is the Q·K^T accumulator: 4 bytes (fp32, or int32 for int8) except for bf16, whose matmul
writes bf16. P is stored in the P·V format: 4, 2, 1, 1 byte(s), 1 bit (binary) or 2 bits
(ternary, packed; log2(3) = 1.58 is the floor). The output is fp32 (the model's dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.attention.spec import AttnSpec

BYTES = {"fp32": 4.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "binary": 1 / 8, "ternary": 2 / 8}
_V_FORMAT = {"binary": "bf16", "ternary": "bf16"}  # V stays bf16 beside 1-2 bit P


@dataclass(frozen=True)
class AttnBytes:
    scores: float  # S, (B, H, T, T), when materialised
    probs: float  # P, (B, H, T, T), when materialised
    unfused: float  # whole working set with S and P in memory
    fused: float  # whole working set of a fused kernel (S and P on chip)


def attention_bytes(spec: AttnSpec, B: int, H: int, T: int, D: int) -> AttnBytes:
    """Bytes of one attention at ``spec`` over (B, H, T, D) queries, keys and values."""
    n_tok, n_mat = B * H * T * D, B * H * T * T
    qk = 2 * n_tok * BYTES[spec.qk]
    v = n_tok * BYTES[_V_FORMAT.get(spec.pv, spec.pv)]
    out = n_tok * 4.0
    scales = 0.0
    if spec.qk in ("fp8", "int8"):
        per = -(-T // spec.block) if spec.scale == "block" else 1
        scales += 2 * B * H * per * 4.0
    if spec.pv in ("fp8", "int8"):
        scales += B * H * D * 4.0  # V per channel
    scores = n_mat * (2.0 if spec.qk == "bf16" else 4.0)
    probs = n_mat * BYTES[spec.pv]
    stats = B * H * T * 8.0  # running max m and sum l, fp32
    return AttnBytes(scores, probs, qk + v + scores + probs + out + scales,
                     qk + v + out + scales + stats)
