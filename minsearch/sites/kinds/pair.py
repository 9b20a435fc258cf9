"""``pair``: a norm and the residual whose branch it starts (pre-norm, ``x + f(norm(x))``) or
whose sum it normalizes (post-norm, ``norm(x + f(x))``: BERT), seen as one site (the
gated-unit options replace both at once). Named ``owner.pair_<i>`` after its residual
``owner.residual_<i>``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Discovery, Site


@dataclass(frozen=True)
class PairDetail:
    norm: str  # the norm site
    residual: str  # the residual site
    family: str
    channels: int | None = None
    channel_dim: int | None = None
    add_channel_dim: int | None = None  # the add may see another layout (ConvNeXt: NHWC norm)
    position: str = "pre"  # pre: the norm starts the branch; post: it follows the add


@register_kind
class PairKind(SiteKind):
    name = "pair"
    detail = PairDetail
    order = 90  # after norms and residuals

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        norms = {s.name: s for s in ctx.sites if s.kind == "norm" and not s.graph}
        pairs = []
        for site in ctx.sites:
            if site.kind != "residual":
                continue
            position = "pre" if site.detail.pair_norm in norms else "post"
            norm = norms.get(site.detail.pair_norm) or norms.get(site.detail.post_norm)
            if norm is None:
                continue
            channel_dim = norm.detail.channel_dim
            add_dim = site.detail.channel_dim if site.detail.channel_dim is not None \
                else channel_dim
            detail = PairDetail(norm.name, site.name, norm.detail.family, norm.detail.channels,
                                channel_dim, add_dim, position)
            name = "pair_".join(site.name.rsplit("residual_", 1))
            pairs.append(ctx.derived_site(Site(name, self.name, (), f"{norm.target}+add",
                                               site.owner, None, detail)))
        return pairs

    def current(self, site: Site, model: nn.Module, discovery: Discovery) -> nn.Module:
        """The pair's norm module (its residual is an add: no module)."""
        return model.get_submodule(site.detail.norm)

    def parts(self, site: Site) -> tuple[str, ...]:
        return (site.name, site.detail.norm, site.detail.residual)

    def describe(self, site: Site) -> str:
        d = site.detail
        return f"{d.position}-norm {d.norm} + {d.residual.rsplit('.', 1)[-1]}"
