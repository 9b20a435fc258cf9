"""Activation options: keep · relu · gelu-tanh · identity."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, replace
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option

KeepActivation = keep_option("activation")


@dataclass(frozen=True)
class ReLUConfig(OptionConfig):
    """Replace with ReLU."""

    kind = "activation"
    name = "relu"


@dataclass(frozen=True)
class GELUTanhConfig(OptionConfig):
    """Replace with the tanh approximation of GELU."""

    kind = "activation"
    name = "gelu-tanh"


@dataclass(frozen=True)
class IdentityActivation(OptionConfig):
    """Remove the activation (the layers around it become one linear map)."""

    kind = "activation"
    name = "identity"


@register_option(ReLUConfig)
def _relu(config, site, old: nn.Module) -> list[Edit]:
    return [replace(site, nn.ReLU())]


@register_option(GELUTanhConfig)
def _gelu_tanh(config, site, old: nn.Module) -> list[Edit]:
    return [replace(site, nn.GELU(approximate="tanh"))]


@register_option(IdentityActivation)
def _identity(config, site, old: nn.Module) -> list[Edit]:
    return [replace(site, nn.Identity())]
