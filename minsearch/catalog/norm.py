"""Norm options: keep · identity · rmsnorm · dyt · affine · frozen."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, replace
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.errors import UserError
from minsearch.layers.affine import Affine
from minsearch.layers.dyt import DyT
from minsearch.layers.frozen_norm import FrozenBatchNorm, FrozenScaleNorm
from minsearch.layers.norm_info import norm_info, with_tail
from minsearch.layers.rmsnorm import RMSNorm

KeepNorm = keep_option("norm")


@dataclass(frozen=True)
class IdentityNorm(OptionConfig):
    """Remove the norm (a fused activation after it stays)."""

    kind = "norm"
    name = "identity"


@dataclass(frozen=True)
class RMSNormConfig(OptionConfig):
    """Replace with RMSNorm: no mean subtraction, affine copied."""

    kind = "norm"
    name = "rmsnorm"


@dataclass(frozen=True)
class DyTConfig(OptionConfig):
    """Replace with Dynamic Tanh, ``weight * tanh(alpha * x) + bias``."""

    kind = "norm"
    name = "dyt"
    alpha_init: float = 0.5

    def __post_init__(self):
        if not self.alpha_init > 0:
            raise UserError(f"`alpha_init > 0` must hold for dyt, but got "
                            f"alpha_init={self.alpha_init}; the paper uses 0.5 to 1.0.")


@dataclass(frozen=True)
class AffineConfig(OptionConfig):
    """Keep only the per-channel affine of the norm."""

    kind = "norm"
    name = "affine"


@dataclass(frozen=True)
class FrozenConfig(OptionConfig):
    """Freeze the statistics: batch norms use their running stats; layer/RMS norms a fixed
    scale calibrated on the first batch (tracked with ``momentum`` > 0 while training)."""

    kind = "norm"
    name = "frozen"
    momentum: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.momentum <= 1.0:
            raise UserError(f"`0 <= momentum <= 1` must hold for frozen, but got "
                            f"momentum={self.momentum}.")


@register_option(IdentityNorm)
def _identity(config: IdentityNorm, site, old: nn.Module) -> list[Edit]:
    return [replace(site, with_tail(nn.Identity(), norm_info(old)))]


@register_option(RMSNormConfig)
def _rmsnorm(config: RMSNormConfig, site, old: nn.Module) -> list[Edit]:
    return [replace(site, RMSNorm.from_module(old))]


@register_option(DyTConfig)
def _dyt(config: DyTConfig, site, old: nn.Module) -> list[Edit]:
    return [replace(site, DyT.from_module(old, alpha_init=config.alpha_init))]


@register_option(AffineConfig)
def _affine(config: AffineConfig, site, old: nn.Module) -> list[Edit]:
    return [replace(site, Affine.from_module(old))]


def _freezable(site) -> bool:
    return site.detail.family in ("batch", "layer", "rms") and not site.graph


@register_option(FrozenConfig, applies=_freezable)
def _frozen(config: FrozenConfig, site, old: nn.Module) -> list[Edit]:
    if norm_info(old).family == "batch":
        return [replace(site, FrozenBatchNorm.from_module(old))]
    return [replace(site, FrozenScaleNorm.from_module(old, momentum=config.momentum))]
