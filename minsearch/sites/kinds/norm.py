"""``norm``: normalization layers — module classes (torch, timm, look-alikes) and functional
calls (``F.layer_norm``, ...) in the traced graph."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from minsearch.sites.classify import is_norm
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Discovery, Site


@dataclass(frozen=True)
class NormDetail:
    family: str  # batch | layer | rms | group | functional | unknown
    channels: int | None = None
    channel_dim: int | None = None


@register_kind
class NormKind(SiteKind):
    name = "norm"
    detail = NormDetail
    order = 10

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        from minsearch.layers.norm_info import norm_info

        sites = []
        for name, module in ctx.modules():
            if not is_norm(module):
                continue
            try:
                info = norm_info(module)
                detail = NormDetail(info.family, info.channels, info.channel_dim)
            except ValueError:
                detail = NormDetail("unknown")
            sites.append(ctx.module_site(self.name, name, module, detail))
        for op in ctx.graph_ops("norm:"):
            sites.append(ctx.graph_site(self.name, op, op.category.split(":", 1)[1],
                                        NormDetail("functional")))
        return sites

    def current(self, site: Site, model: nn.Module, discovery: Discovery) -> nn.Module:
        """A functional norm stands for the module it computes (lifted with its weights), so
        the norm options, written for modules, apply to it too."""
        if not site.graph:
            return model.get_submodule(site.name)
        from minsearch.sites.graph_ops import op_category, owner_of
        from minsearch.sites.lift import lift_norm
        from minsearch.sites.trace import trace

        owner = model.get_submodule(site.owner) if site.owner else model
        traced = trace(owner, discovery.leaf_types)
        nodes = [n for n in traced.graph.nodes
                 if op_category(n) == site.op.category and owner_of(n)[0] == ""]
        return lift_norm(nodes[site.op.ordinal], owner)

    def describe(self, site: Site) -> str:
        return f"{site.target} ({site.detail.family})"
