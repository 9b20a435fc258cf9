"""``actnorm``: ActNorm layers, a flow's norm (:mod:`minsearch.flows.actnorm`).

The flow kinds (``actnorm``, ``mixing``, ``coupling``, ``invertibility``) are module kinds
discovered first (``order`` 5), so no generic kind claims a flow's modules. Graph rewrites
never reach inside a flow (its layers are atoms for the tracer): a rewrite would change the
forward pass but not the inverse; module swaps change both."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.flows.actnorm import ActNorm
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Site

FLOW_ORDER = 5  # before every generic kind


@dataclass(frozen=True)
class ActNormDetail:
    channels: int
    frozen: bool


@register_kind
class ActNormKind(SiteKind):
    name = "actnorm"
    detail = ActNormDetail
    order = FLOW_ORDER

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        return [ctx.module_site(self.name, name, m, ActNormDetail(
                    m.channels, not m.log_scale.requires_grad))
                for name, m in ctx.modules() if isinstance(m, ActNorm)]

    def describe(self, site: Site) -> str:
        return f"ActNorm ({site.detail.channels} channels{', frozen' * site.detail.frozen})"
