"""Number formats: one vocabulary for every precision gene.

The attention options (:mod:`minsearch.attention.quant`) and the weight/activation options of
linear and conv layers (:mod:`minsearch.layers.precision`) say ``fp8`` and ``int8`` and mean
the same thing by them:

- ``fp8``: float8 e4m3fn (4 exponent bits, 3 mantissa bits, no inf), values scaled by their
  absmax so that it maps to ``FP8_MAX``;
- ``int8``: symmetric int8 in [-127, 127] (no zero point), absmax scaled to ``INT8_MAX``;
- ``int4``: 4-bit integers in groups along the input dimension, each group with its own scale
  (weights only; torchao's layout, unpacked or packed as its kernel wants);
- ``bf16``/``fp32``: the torch dtypes.

This module is deliberately free of torch imports: it names formats, it does not convert.
"""

from __future__ import annotations

FP8_MAX = 448.0  # largest finite float8_e4m3fn
INT8_MAX = 127.0  # symmetric int8: -127..127, so that -x is representable whenever x is
