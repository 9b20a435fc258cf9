"""Channel-mixing options: keep · permutation (a fixed random one) · reverse · identity
(no mixing: the same half of the channels is transformed at every step). All exact."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, Swap
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.errors import UserError
from minsearch.flows.base import IdentityFlow
from minsearch.flows.mixing import Permutation, Reverse

KeepMixing = keep_option("mixing")


@dataclass(frozen=True)
class PermutationMixing(OptionConfig):
    """A fixed random permutation of the channels (drawn from ``seed``)."""

    kind = "mixing"
    name = "permutation"
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise UserError(f"`seed` of mixing/permutation must be an int, but got "
                            f"{self.seed!r}.")


@dataclass(frozen=True)
class ReverseMixing(OptionConfig):
    """Reverse the channel order (the two halves swap roles)."""

    kind = "mixing"
    name = "reverse"


@dataclass(frozen=True)
class IdentityMixing(OptionConfig):
    """No mixing."""

    kind = "mixing"
    name = "identity"


def _knows_channels(site) -> bool:
    return site.detail.channels is not None


@register_option(PermutationMixing, applies=_knows_channels)
def _permutation(config: PermutationMixing, site, old) -> list[Edit]:
    # one seed per site: steps do not share one permutation
    seed = config.seed * 1_000_003 + sum(map(ord, site.name))
    return [Swap(site.name, Permutation(site.detail.channels, seed=seed))]


@register_option(ReverseMixing, applies=lambda s: s.detail.impl != "reverse")
def _reverse(config: ReverseMixing, site, old) -> list[Edit]:
    return [Swap(site.name, Reverse())]


@register_option(IdentityMixing)
def _identity(config: IdentityMixing, site, old) -> list[Edit]:
    return [Swap(site.name, IdentityFlow())]
