"""``activation``: activation modules (ReLU, GELU, SiLU, ...) and functional calls."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.sites.classify import is_activation
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Site


@dataclass(frozen=True)
class ActivationDetail:
    functional: bool = False  # a call in the graph (F.gelu), not a module


@register_kind
class ActivationKind(SiteKind):
    name = "activation"
    detail = ActivationDetail
    order = 20

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        sites = [ctx.module_site(self.name, name, module, ActivationDetail())
                 for name, module in ctx.modules() if is_activation(module)]
        for op in ctx.graph_ops("act:"):
            sites.append(ctx.graph_site(self.name, op, op.category.split(":", 1)[1],
                                        ActivationDetail(functional=True)))
        return sites
