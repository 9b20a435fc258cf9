"""Weight (and activation) precision of a linear or conv layer, through torchao.

A precision gene puts a :class:`PrecisionLayer` in the place of the layer. It has two forms:

- **training form** (the module itself). With ``training="qat"`` the forward fake-quantizes
  the weight (and, for the dynamic options, the input) with torchao's fake quantizers —
  straight-through gradients, the rounding of the real format (for int8 and fp8 weights the
  fake values equal torchao's real dequantized ones, tested) — so fine-tuning learns weights
  that survive the rounding. With ``training="ptq"`` the forward is the float layer's and
  the weights are quantized once, when deployed: a fast screen.
- **deployed form** (:meth:`PrecisionLayer.deploy`): the layer whose weight is torchao's real
  quantized tensor (``quantize_`` with the option's config). This is what is measured
  (accuracy, bytes, latency, memory) and what ``load_candidate`` returns.

The training form's state dict holds float weights. Deploying is deterministic, so a candidate
stored as float weights + genome is quantized again on load to the same outputs.

torchao (0.18) covers: linear layers in every format below; convolutions only with int8
weights (``IntxWeightOnlyConfig``: its int8 and fp8 linear configs refuse 4-d weights, its fp8
convolution needs the ``mslk`` package); fp8
with dynamic activations needs a CUDA GPU of compute capability >= 8.9; int4 weights need
CUDA (tinygemm's kernel; on CPU torchao needs the ``mslk`` package). Both of those compute
in bf16 (:attr:`Precision.compute_dtype`): the deployed layer casts its input and output.
:func:`unavailable` says which, for a layer kind and a device, by trying it.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

TRAININGS = ("qat", "ptq")
AMAX_FLOOR = 1e-12
"""Smallest absmax an fp8 scale is computed from. torchao's fp8 scale is absmax / 448, so an
all-zero row (a zero-initialised layer, a zero-padded token) would divide 0 by 0."""


@dataclass(frozen=True)
class Precision:
    """A stored weight format, and the format inputs are quantized to on the fly (dynamic
    activation quantization, per token for int8, per row for fp8), or None: weight-only."""

    weight: str  # "int8" | "fp8" | "int4" (number_formats)
    activation: str | None = None  # "int8" | "fp8" | None
    group_size: int = 32  # int4: one scale per group of this many input features

    def __post_init__(self) -> None:
        if self.weight not in ("int8", "fp8", "int4"):
            raise ValueError(f"No weight format {self.weight!r}; known: int8, fp8, int4.")
        if self.activation not in (None, "int8", "fp8"):
            raise ValueError(f"No activation format {self.activation!r}; known: int8, fp8.")

    @property
    def compute_dtype(self) -> torch.dtype | None:
        """The dtype the real kernel takes (None: the layer's own): tinygemm's int4 and
        torchao's per-row fp8 matmul take bf16 inputs and weights."""
        return torch.bfloat16 if self.weight == "int4" or self.activation == "fp8" else None

    def describe(self) -> str:
        act = f"{self.activation} dynamic activations" if self.activation else "float activations"
        group = f" (groups of {self.group_size})" if self.weight == "int4" else ""
        return f"{self.weight} weights{group}, {act}"


def _is_conv(layer: nn.Module) -> bool:
    return isinstance(layer, nn.modules.conv._ConvNd)


def torchao_config(precision: Precision, conv: bool):
    """The torchao config that quantizes the layer for real, or None where torchao has none."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
    )
    from torchao.quantization.granularity import PerAxis, PerRow

    key = (precision.weight, precision.activation)
    if conv:  # torchao's int8 tensor has no convolution; its intx tensor has (per out-channel)
        if key == ("int8", None):
            return IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
        return None
    return {
        ("int8", None): lambda: Int8WeightOnlyConfig(),
        ("int8", "int8"): lambda: Int8DynamicActivationInt8WeightConfig(),
        ("fp8", None): lambda: Float8WeightOnlyConfig(),
        ("fp8", "fp8"): lambda: Float8DynamicActivationFloat8WeightConfig(
            granularity=PerRow(), activation_value_lb=AMAX_FLOOR),
        ("int4", None): lambda: Int4WeightOnlyConfig(group_size=precision.group_size,
                                                     int4_packing_format="tile_packed_to_4d"),
    }.get(key, lambda: None)()


def fake_quantizers(precision: Precision) -> tuple[nn.Module | None, nn.Module]:
    """torchao's fake quantizers (activation or None, weight) for QAT, matching the real
    config's rounding: int8 weights (per output channel; for a conv per output channel and
    kernel position) and fp8 weights (per row) are equal to the real ones; int8 activations
    (per token) and int4 weights (per group) round slightly differently from the real kernels
    (asymmetric vs symmetric): close, not equal."""
    from torchao.quantization.granularity import PerRow
    from torchao.quantization.qat import (
        FakeQuantizerBase,
        Float8FakeQuantizeConfig,
        IntxFakeQuantizeConfig,
    )

    def make(fmt: str, activation: bool) -> nn.Module:
        if fmt == "fp8":  # absmax floored: an all-zero row scales to 0 and gives NaN
            config = Float8FakeQuantizeConfig(torch.float8_e4m3fn, PerRow(),
                                              hp_value_lb=AMAX_FLOOR)
        elif fmt == "int8":
            # torchao fakes int8 activations per token asymmetrically only (its int8 dynamic
            # config rounds them symmetrically: close, not equal)
            config = IntxFakeQuantizeConfig(torch.int8, "per_token" if activation
                                            else "per_channel", is_symmetric=not activation)
        else:
            config = IntxFakeQuantizeConfig(torch.int4, group_size=precision.group_size,
                                            is_symmetric=True)
        return FakeQuantizerBase.from_config(config)

    act = make(precision.activation, True) if precision.activation else None
    return act, make(precision.weight, False)


class _ComputeIn(nn.Module):
    """Run ``layer`` in ``dtype`` (tinygemm's int4 kernel takes bf16) and give the input's
    dtype back."""

    def __init__(self, layer: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.layer, self.dtype = layer, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.to(self.dtype)).to(x.dtype)


class PrecisionLayer(nn.Module):
    """The training form of a linear/conv layer with a precision option (module docstring)."""

    def __init__(self, layer: nn.Module, precision: Precision, training: str = "qat"):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
            raise TypeError(f"A precision option applies to nn.Linear and convolutions, not "
                            f"{type(layer).__name__}.")
        if training not in TRAININGS:
            raise ValueError(f"`training` must be one of {TRAININGS}, but got {training!r}.")
        self.layer, self.precision, self.training_mode = layer, precision, training
        act, weight = fake_quantizers(precision) if training == "qat" else (None, None)
        self.act_quantizer, self.weight_quantizer = act, weight

    def extra_repr(self) -> str:
        return f"{self.precision.describe()}, training={self.training_mode}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_quantizer is None:  # ptq: float until deployed
            return self.layer(x)
        w = self.layer.weight
        if _is_conv(self.layer):
            # torchao's int8 conv (intx layout) scales each (output channel, kernel position)
            # over the input channels: (out, in, *k) -> rows (out * prod(k), in), fake-quantized
            # per row, back to (out, in, *k) -- the real rounding, exactly (tested)
            rows = w.movedim(1, -1)
            w = self.weight_quantizer(rows.reshape(-1, w.shape[1])).view_as(rows).movedim(-1, 1)
        else:
            w = self.weight_quantizer(w)  # (out, in): per output channel
        if self.act_quantizer is not None:
            x = self.act_quantizer(x)
        if _is_conv(self.layer):
            return self.layer._conv_forward(x, w, self.layer.bias)
        return F.linear(x, w, self.layer.bias)

    def deploy(self) -> nn.Module:
        """The layer with torchao's real quantized weight (a new module; self is unchanged)."""
        return quantized(self.layer, self.precision)

    def unavailable_on(self, device: torch.device | str) -> str | None:
        return unavailable(self.precision, _is_conv(self.layer), device)


def quantized(layer: nn.Module, precision: Precision) -> nn.Module:
    """A copy of ``layer`` quantized for real by torchao; raises ``RuntimeError`` naming why
    when torchao cannot do it here (no config for this layer, no kernel on this device)."""
    from torchao.quantization import quantize_

    config = torchao_config(precision, _is_conv(layer))
    what = f"{precision.describe()} on {type(layer).__name__}"
    if config is None:
        raise RuntimeError(f"torchao has no quantized form for {what}.")
    layer = copy.deepcopy(layer)
    if precision.weight == "fp8":  # Float8WeightOnlyConfig has no absmax floor: give each
        with torch.no_grad():  # all-zero row one AMAX_FLOOR entry (dequantized: ~1e-12)
            rows = layer.weight.flatten(1)
            rows[rows.abs().amax(1) == 0, 0] = AMAX_FLOOR
    wrap = precision.compute_dtype
    if wrap is not None:
        layer = layer.to(wrap)
    holder = nn.Sequential(layer)  # quantize_ replaces children; give the layer a parent
    quantize_(holder, config, filter_fn=lambda module, fqn: module is layer)
    if type(holder[0].weight) in (nn.Parameter, torch.Tensor):  # torchao skipped it silently
        raise RuntimeError(f"torchao left the weight in float for {what} (shape "
                           f"{tuple(layer.weight.shape)}: e.g. not a multiple of the group "
                           f"size).")
    return _ComputeIn(holder[0], wrap) if wrap is not None else holder[0]


@functools.cache
def _probe(precision: Precision, conv: bool, device: str) -> str | None:
    if precision.weight == "int4" and not device.startswith("cuda"):
        return ("int4 weights need CUDA in torchao 0.18 (tinygemm's kernel; on CPU it needs "
                "the mslk package)")
    if precision.activation == "fp8" and not (
            device.startswith("cuda")
            and torch.cuda.get_device_capability(torch.device(device)) >= (8, 9)):
        return "fp8 dynamic activations need a CUDA GPU of compute capability >= 8.9"
    width = max(64, 2 * precision.group_size)
    layer = (nn.Conv2d(16, 32, 3, padding=1) if conv else nn.Linear(width, 32)).to(device)
    x = torch.randn((2, 16, 8, 8) if conv else (4, width), device=device)
    try:
        with torch.no_grad():
            quantized(layer, precision)(x)
    except Exception as err:  # noqa: BLE001 - any failure is the reason, said as torchao says it
        return f"torchao cannot run it here ({type(err).__name__}: {str(err).splitlines()[0]})"
    return None


def unavailable(precision: Precision, conv: bool, device: torch.device | str) -> str | None:
    """Why ``precision`` cannot run on a linear (``conv=False``) or conv layer on ``device``,
    or None when it can: the known hardware rules first, then a real try on a small layer."""
    return _probe(precision, conv, str(torch.device(device)))
