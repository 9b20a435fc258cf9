"""``coupling``: the head of a flow's coupling layer, affine (RealNVP) or additive (NICE)
(:mod:`minsearch.flows.coupling`). The coupling module itself is an ``invertibility`` site."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.flows.coupling import AdditiveHead, AffineHead
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.kinds.actnorm import FLOW_ORDER
from minsearch.sites.site import Site


@dataclass(frozen=True)
class CouplingDetail:
    head: str  # affine | additive


@register_kind
class CouplingKind(SiteKind):
    name = "coupling"
    detail = CouplingDetail
    order = FLOW_ORDER

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        return [ctx.module_site(self.name, name, m, CouplingDetail(
                    "affine" if isinstance(m, AffineHead) else "additive"))
                for name, m in ctx.modules() if isinstance(m, AffineHead | AdditiveHead)]

    def describe(self, site: Site) -> str:
        return f"{site.detail.head} coupling"
