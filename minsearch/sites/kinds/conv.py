"""``conv``: convolution layers (the sites of weight-precision genes)."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.sites.classify import is_conv
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Site


@dataclass(frozen=True)
class ConvDetail:
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    groups: int = 1


@register_kind
class ConvKind(SiteKind):
    name = "conv"
    detail = ConvDetail
    order = 50

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        return [ctx.module_site(self.name, name, module,
                                ConvDetail(module.in_channels, module.out_channels,
                                           tuple(module.kernel_size), module.groups))
                for name, module in ctx.modules() if is_conv(module)]

    def describe(self, site: Site) -> str:
        d = site.detail
        kernel = "x".join(map(str, d.kernel))
        groups = f", groups {d.groups}" if d.groups > 1 else ""
        return f"{site.target} ({d.in_channels} -> {d.out_channels}, {kernel}{groups})"
