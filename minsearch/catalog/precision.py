"""Precision options of linear and conv sites: int8/fp8/int4 weights, int8/fp8 dynamic inputs.

Each option puts a :class:`~minsearch.layers.precision.PrecisionLayer` at the site: trained
with fake quantization (``training: qat``, the default) or in float (``training: ptq``, a fast
screen), and measured in its deployed form, torchao's real quantized layer. Where torchao has
no kernel for the trial's device the option is refused before training, with torchao's reason
(:meth:`Option.unavailable_on`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, replace
from minsearch.catalog.registry import register_option
from minsearch.errors import UserError
from minsearch.layers.precision import TRAININGS, Precision, PrecisionLayer, unavailable

PRECISIONS = {
    "int8-weight": Precision("int8"),
    "int8-dynamic": Precision("int8", "int8"),
    "fp8-weight": Precision("fp8"),
    "fp8-dynamic": Precision("fp8", "fp8"),
    "int4-weight": Precision("int4"),
}
"""Option name -> what it stores and computes in (one vocabulary: number_formats)."""

CONV_PRECISIONS = ("int8-weight",)
"""The format torchao 0.18 quantizes convolutions to on every device (its int8 and fp8 linear
tensors refuse 4-d weights; its fp8 convolution needs the mslk package); the other names are
not offered on conv sites."""

INT4_GROUPS = (32, 64, 128, 256)  # tinygemm's group sizes


def _check(config: Any) -> None:
    if config.training not in TRAININGS:
        raise UserError(f"`training` of {config.kind}/{config.name} must be one of "
                        f"{', '.join(TRAININGS)} (qat: fake-quantized fine-tuning; ptq: float "
                        f"fine-tuning, quantized after), but got {config.training!r}.")
    group = getattr(config, "group_size", None)
    if group is not None and group not in INT4_GROUPS:
        raise UserError(f"`group_size` of {config.kind}/{config.name} must be one of "
                        f"{', '.join(map(str, INT4_GROUPS))}, but got {group!r}.")


def precision_of(config: Any) -> Precision:
    base = PRECISIONS[config.name]
    return dataclasses.replace(base, group_size=getattr(config, "group_size", base.group_size))


def _config_class(kind: str, name: str) -> type[OptionConfig]:
    fields: list[Any] = [("training", str, dataclasses.field(default="qat"))]
    if PRECISIONS[name].weight == "int4":
        fields.append(("group_size", int, dataclasses.field(default=32)))
    doc = f"Store {PRECISIONS[name].describe()} (torchao); training: qat | ptq."
    camel = "".join(part.capitalize() for part in name.split("-"))
    return dataclasses.make_dataclass(
        f"{kind.capitalize()}{camel}", fields, bases=(OptionConfig,), frozen=True,
        namespace={"kind": kind, "name": name, "__doc__": doc, "__post_init__": _check})


def _handler(config: Any, site: Any, current: Any) -> list[Edit]:
    return [replace(site, PrecisionLayer(current, precision_of(config), config.training))]


def _unavailable(config: Any, device: Any) -> str | None:
    return unavailable(precision_of(config), config.kind == "conv", device)


MIN_CONV_INPUTS = 16
"""torchao's int8 conv keeps one fp32 scale and an int8 zero point per output channel and
kernel position, shared by the input channels of a group: with fewer than 16 of them (a stem
on 1-3 image channels, a depthwise conv) the scales cost more than int8 saves, so the option
is not offered there."""


INT4_TILE = 1024
"""torchao 0.18 packs int4 weights for tinygemm in tiles that pad the input features to a
multiple of 1024 (measured on an H200: a 128 -> 384 linear, 196 KB in fp32, took 246 KB; so
did 384 -> 384), so int4 is offered only where no padding is needed."""


def _int4_tiles_fit(site: Any) -> bool:
    detail = site.detail
    return detail.in_features % INT4_TILE == 0 and detail.out_features % 8 == 0


def _fp8_matmul_fits(site: Any) -> bool:
    """torchao's fp8 dynamic matmul (``torch._scaled_mm``) takes dimensions in multiples of 16;
    it leaves other layers (a 1000-class head) in float, so the option is not offered there."""
    return site.detail.in_features % 16 == 0 and site.detail.out_features % 16 == 0


def _conv_scales_pay(site: Any) -> bool:
    return site.detail.in_channels // site.detail.groups >= MIN_CONV_INPUTS


def precision_options(kind: str, names: tuple[str, ...]) -> dict[str, type[OptionConfig]]:
    """Create and register the precision options ``names`` for site kind ``kind``."""
    classes = {}
    for name in names:
        cls = classes[name] = _config_class(kind, name)
        precision = PRECISIONS[name]
        applies = (_conv_scales_pay if kind == "conv" else
                   _int4_tiles_fit if precision.weight == "int4" else
                   _fp8_matmul_fits if precision.activation == "fp8" else None)
        register_option(cls, applies=applies, unavailable_on=_unavailable)(_handler)
    return classes
