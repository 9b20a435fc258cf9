"""``mixing``: the channel mixing between a flow's couplings — an invertible 1x1
conv/linear map, a fixed permutation or a reversal (:mod:`minsearch.flows.mixing`)."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.flows.mixing import InvertibleLinear, Permutation, Reverse
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.kinds.actnorm import FLOW_ORDER
from minsearch.sites.site import Site

_IMPL = {InvertibleLinear: "linear", Permutation: "permutation", Reverse: "reverse"}


@dataclass(frozen=True)
class MixingDetail:
    impl: str  # linear | permutation | reverse
    channels: int | None  # None where the layer does not record it (reverse)


def _channels(module) -> int | None:
    if isinstance(module, InvertibleLinear):
        return module.weight.shape[0]
    return len(module.perm) if isinstance(module, Permutation) else None


@register_kind
class MixingKind(SiteKind):
    name = "mixing"
    detail = MixingDetail
    order = FLOW_ORDER

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        return [ctx.module_site(self.name, name, m, MixingDetail(_IMPL[type(m)], _channels(m)))
                for name, m in ctx.modules() if type(m) in _IMPL]

    def describe(self, site: Site) -> str:
        return site.detail.impl
