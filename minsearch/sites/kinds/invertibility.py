"""``invertibility``: each transform of a flow step — an exact coupling (triangular Jacobian)
or a residual block (inverse by fixed-point iteration, log-det by a series, an estimator or
a brute-force Jacobian): the gene that relaxes exact invertibility."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.flows.coupling import Coupling
from minsearch.flows.residual import ResidualFlowBlock
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.kinds.actnorm import FLOW_ORDER
from minsearch.sites.site import Site


@dataclass(frozen=True)
class InvertibilityDetail:
    impl: str  # coupling | residual
    shape: tuple[int, ...]  # one example's shape at this step
    hidden: int  # width of the transform's network
    exactness: str  # what the transform computes exactly and what it estimates


@register_kind
class InvertibilityKind(SiteKind):
    name = "invertibility"
    detail = InvertibilityDetail
    order = FLOW_ORDER

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        return [ctx.module_site(self.name, name, m, InvertibilityDetail(
                    "coupling" if isinstance(m, Coupling) else "residual", m.shape, m.hidden,
                    m.exactness))
                for name, m in ctx.modules() if isinstance(m, Coupling | ResidualFlowBlock)]

    def describe(self, site: Site) -> str:
        return f"{site.detail.impl}: {site.detail.exactness}"
