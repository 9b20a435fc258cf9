"""``linear``: ``nn.Linear`` layers (the sites of weight-precision genes)."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.sites.classify import is_linear
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Site


@dataclass(frozen=True)
class LinearDetail:
    in_features: int
    out_features: int


@register_kind
class LinearKind(SiteKind):
    name = "linear"
    detail = LinearDetail
    order = 40

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        return [ctx.module_site(self.name, name, module,
                                LinearDetail(module.in_features, module.out_features))
                for name, module in ctx.modules() if is_linear(module)]

    def describe(self, site: Site) -> str:
        return f"{site.target} ({site.detail.in_features} -> {site.detail.out_features})"
