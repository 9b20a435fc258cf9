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
    width = getattr(current, "in_features", None)
    precision = precision_of(config)
    if precision.weight == "int4" and width is not None and width % precision.group_size:
        raise UserError(f"{config.type_tag} at {site.name}: {width} input features are not a "
                        f"multiple of group_size {precision.group_size}; use a smaller "
                        f"group_size or leave this layer out with the gene's `exclude:`.")
    return [replace(site, PrecisionLayer(current, precision, config.training))]


def _unavailable(config: Any, device: Any) -> str | None:
    return unavailable(precision_of(config), config.kind == "conv", device)


def _groups_fit(site: Any) -> bool:
    """int4 needs the input features in whole groups (of the smallest group size)."""
    return getattr(site.detail, "in_features", 0) % INT4_GROUPS[0] == 0


def precision_options(kind: str, names: tuple[str, ...]) -> dict[str, type[OptionConfig]]:
    """Create and register the precision options ``names`` for site kind ``kind``."""
    classes = {}
    for name in names:
        cls = classes[name] = _config_class(kind, name)
        applies = _groups_fit if PRECISIONS[name].weight == "int4" else None
        register_option(cls, applies=applies, unavailable_on=_unavailable)(_handler)
    return classes
