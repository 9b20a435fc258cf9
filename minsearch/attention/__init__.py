"""Low-precision attention: Q·K^T and P·V precisions chosen separately.

- :mod:`~minsearch.attention.spec`: ``AttnSpec``, the precision (what);
- :mod:`~minsearch.attention.quant`: real and fake (straight-through) quantizers;
- :mod:`~minsearch.attention.reference`: the fake-quant attention (training path, reference);
- :mod:`~minsearch.attention.cpu_int8`: real int8 inference on CPU (``torch._int_mm``);
- :mod:`~minsearch.attention.sdpa`: ``LowpSDPA``, the SDPA drop-in that picks the path;
- :mod:`~minsearch.attention.timm_attention`, :mod:`~minsearch.attention.mha`,
  :mod:`~minsearch.attention.fx_sdpa`: replacements for the three kinds of attention site;
- :mod:`~minsearch.attention.cost`: bytes of the attention working set per precision;
- :mod:`~minsearch.attention.triton_kernel`: the fused Triton kernel (imports triton: never
  imported here, only by ``LowpSDPA`` when it runs on CUDA).
"""

from minsearch.attention.mha import LowpMultiheadAttention
from minsearch.attention.reference import lowp_attention
from minsearch.attention.sdpa import LowpSDPA
from minsearch.attention.spec import PV_FORMATS, QK_FORMATS, AttnSpec
from minsearch.attention.timm_attention import LowpAttention, is_timm_attention

__all__ = [
    "PV_FORMATS",
    "QK_FORMATS",
    "AttnSpec",
    "LowpAttention",
    "LowpMultiheadAttention",
    "LowpSDPA",
    "is_timm_attention",
    "lowp_attention",
]
