"""Coupling options: keep · additive (NICE: volume-preserving, ``log_scale = 0``) · affine
(RealNVP: a learned, soft-clamped log-scale). Both exact; the conditioner network is kept
(the additive head leaves the scale half of its output unused)."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, Swap
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.flows.coupling import AdditiveHead, AffineHead

KeepCoupling = keep_option("coupling")


@dataclass(frozen=True)
class AdditiveCoupling(OptionConfig):
    """Additive coupling: ``y2 = x2 + t(x1)``."""

    kind = "coupling"
    name = "additive"


@dataclass(frozen=True)
class AffineCoupling(OptionConfig):
    """Affine coupling: ``y2 = x2 * exp(s(x1)) + t(x1)``."""

    kind = "coupling"
    name = "affine"


@register_option(AdditiveCoupling, applies=lambda s: s.detail.head == "affine")
def _additive(config: AdditiveCoupling, site, old) -> list[Edit]:
    return [Swap(site.name, AdditiveHead())]


@register_option(AffineCoupling, applies=lambda s: s.detail.head == "additive")
def _affine(config: AffineCoupling, site, old) -> list[Edit]:
    return [Swap(site.name, AffineHead())]
