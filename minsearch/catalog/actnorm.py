"""ActNorm options: keep · identity (removed: the flow loses its data-dependent scaling) ·
frozen (its first-batch statistics, never trained). Both exact."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, Swap
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.flows.actnorm import ActNorm, FrozenActNorm
from minsearch.flows.base import IdentityFlow

KeepActNorm = keep_option("actnorm")


@dataclass(frozen=True)
class IdentityActNorm(OptionConfig):
    """Remove the ActNorm (identity map, log-det 0)."""

    kind = "actnorm"
    name = "identity"


@dataclass(frozen=True)
class FrozenActNormConfig(OptionConfig):
    """Freeze the ActNorm: scale and bias keep their values (the first training batch's
    statistics when it has not run yet) and never train."""

    kind = "actnorm"
    name = "frozen"


@register_option(IdentityActNorm)
def _identity(config: IdentityActNorm, site, old: ActNorm) -> list[Edit]:
    return [Swap(site.name, IdentityFlow())]


@register_option(FrozenActNormConfig, identity=True, applies=lambda s: not s.detail.frozen)
def _frozen(config: FrozenActNormConfig, site, old: ActNorm) -> list[Edit]:
    return [Swap(site.name, FrozenActNorm.from_module(old))]
