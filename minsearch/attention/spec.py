"""What precision an attention computes in: the Q·K^T and P·V formats and their scales.

``AttnSpec`` is the *what* shared by every low-precision attention path (the fake-quant training
path, the CPU int8 path and the Triton kernel). The catalog's option configs are this dataclass
plus a registry name (see :mod:`minsearch.catalog.attention`).

Formats
-------
``qk`` (the inputs of Q·K^T; the product accumulates in fp32 or int32):

- ``fp32`` exact; ``bf16`` Q and K rounded to bfloat16;
- ``fp8``  Q and K in float8 e4m3 with an absmax scale per head or per block of tokens;
- ``int8`` Q and K in int8 with an absmax scale per head or per block (SageAttention).

``pv`` (the unnormalised probabilities P~ = exp(S - rowmax) in (0, 1], and V):

- ``fp32`` / ``bf16``: P~ and V in that format;
- ``fp8``  P~ * 448 in e4m3 (a static scale, P~ <= 1), V in e4m3 with a scale per channel;
- ``int8`` round(127 * P~) in int8, V in int8 with a scale per channel;
- ``binary`` / ``ternary``: P~ rounded to the levels {0, a} / {0, a, 2a}, with ``a`` a learned
  scale per head (LSQ); V is kept in bf16 (with P in {0, a}, P·V is a masked sum of V rows).

The output is divided by the exact row sum l = sum(P~) (as FlashAttention and SageAttention do),
or, with ``p_norm="quantized"``, by the sum of the quantized P~, which keeps each row a convex
combination of V.
"""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.errors import UserError

QK_FORMATS = ("fp32", "bf16", "fp8", "int8")
PV_FORMATS = ("fp32", "bf16", "fp8", "int8", "binary", "ternary")
SCALES = ("head", "block")
P_NORMS = ("exact", "quantized")
KERNELS = ("auto", "reference", "int8mm", "triton")

LEVELS = {"binary": 2, "ternary": 3}
"""Number of quantization levels of P~ for the learned-scale formats."""

P_SCALE_INIT = {"binary": 1.0, "ternary": 0.5}
"""Default initial learned scale ``a``: the top level is 1 = P~ at the row max."""


def _choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"Attention precision `{field}` must be one of {', '.join(allowed)}, "
                        f"but got {field}={value!r}.")


@dataclass(frozen=True)
class AttnSpec:
    """Precision of one attention computation. Validated on construction.

    Attributes:
        qk: format of Q and K in Q·K^T (see module docstring).
        pv: format of P~ (and V) in P·V.
        scale: granularity of the fp8/int8 Q and K scales: ``head`` (one per batch item and head)
            or ``block`` (one per ``block`` consecutive tokens).
        block: tokens per scale block when ``scale == "block"``.
        smooth_k: subtract K's mean over tokens before quantizing K (fp8/int8 only). Softmax is
            unchanged by it (each row of S moves by a constant) but K's range shrinks.
        p_norm: divide P·V by the ``exact`` row sum of P~ or by the ``quantized`` one.
        p_scale_init: initial learned scale of binary/ternary P (None: per-format default).
        kernel: ``auto`` picks the real low-precision kernel in inference (Triton on CUDA, the
            ``torch._int_mm`` path on CPU for int8 Q·K^T) and the fake-quant path otherwise;
            ``reference``, ``int8mm`` and ``triton`` force one path.
    """

    qk: str = "fp32"
    pv: str = "fp32"
    scale: str = "block"
    block: int = 64
    smooth_k: bool = True
    p_norm: str = "exact"
    p_scale_init: float | None = None
    kernel: str = "auto"

    def __post_init__(self) -> None:
        _choice("qk", self.qk, QK_FORMATS)
        _choice("pv", self.pv, PV_FORMATS)
        _choice("scale", self.scale, SCALES)
        _choice("p_norm", self.p_norm, P_NORMS)
        _choice("kernel", self.kernel, KERNELS)
        if isinstance(self.block, bool) or not isinstance(self.block, int) or self.block < 1:
            raise UserError(f"Attention `block` (tokens per scale block) must be a positive "
                            f"integer, but got block={self.block!r}; 64 or 128 are usual.")
        if not isinstance(self.smooth_k, bool):
            raise UserError(f"Attention `smooth_k` must be true or false, but got "
                            f"smooth_k={self.smooth_k!r}.")
        if self.p_scale_init is not None:
            if isinstance(self.p_scale_init, bool) or not isinstance(self.p_scale_init,
                                                                      (int, float)):
                raise UserError(f"`p_scale_init` must be a number in (0, 1], but got "
                                f"p_scale_init={self.p_scale_init!r}.")
            if self.pv not in LEVELS:
                raise UserError(f"`p_scale_init` sets the learned scale of binary/ternary P, but "
                                f"pv={self.pv!r}; drop p_scale_init or use pv='binary'.")
            if not 0.0 < float(self.p_scale_init) <= 1.0:
                raise UserError(f"`p_scale_init` must lie in (0, 1] (P~ <= 1), but got "
                                f"p_scale_init={self.p_scale_init!r}.")
        if self.p_norm == "quantized" and self.pv not in LEVELS:
            raise UserError(f"p_norm='quantized' applies to binary/ternary P only, but "
                            f"pv={self.pv!r}; use p_norm='exact'.")
        if self.kernel == "int8mm" and self.qk != "int8":
            raise UserError(f"kernel='int8mm' runs Q·K^T with torch._int_mm and needs qk='int8', "
                            f"but got qk={self.qk!r}; use kernel='auto'.")

    @property
    def learned_p_scale(self) -> bool:
        """True when P has a learned per-head scale (binary/ternary)."""
        return self.pv in LEVELS

    @property
    def initial_p_scale(self) -> float:
        return float(self.p_scale_init or P_SCALE_INIT.get(self.pv, 1.0))

    @property
    def is_exact(self) -> bool:
        """True when nothing is quantized (fp32 Q·K^T and P·V)."""
        return self.qk == "fp32" and self.pv == "fp32"

    def spec(self) -> AttnSpec:
        """This precision as a plain :class:`AttnSpec` (configs that subclass it add a name)."""
        return AttnSpec(self.qk, self.pv, self.scale, self.block, self.smooth_k, self.p_norm,
                        self.p_scale_init, self.kernel)
