"""A toy site kind registered from the tests alone: every ``nn.Dropout`` is a ``dropout`` site
with the options keep / identity. One kind module's worth plus one catalog module's worth,
and no core file knows about it: a space names this module under ``plugins:``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from minsearch.catalog import OptionConfig, Swap, register_option
from minsearch.catalog.keep import keep_option
from minsearch.sites import SiteKind, register_kind


@dataclass(frozen=True)
class DropoutDetail:
    p: float


@register_kind
class DropoutKind(SiteKind):
    name = "dropout"
    detail = DropoutDetail
    order = 70

    def discover(self, ctx):
        # An attention module may read its dropout's `p` (timm passes it to sdpa): those
        # dropouts belong to the attention site found before.
        inside = tuple(f"{s.name}." for s in ctx.sites if s.kind == "attention")
        return [ctx.module_site(self.name, name, module, DropoutDetail(module.p))
                for name, module in ctx.modules()
                if isinstance(module, nn.Dropout) and not name.startswith(inside)]

    def describe(self, site):
        return f"{site.target} (p={site.detail.p})"


KeepDropout = keep_option("dropout")


@dataclass(frozen=True)
class IdentityDropout(OptionConfig):
    """Remove the dropout."""

    kind = "dropout"
    name = "identity"


@register_option(IdentityDropout, identity=True)  # dropout is the identity in eval mode
def _identity(config, site, current):
    return [Swap(site.name, nn.Identity())]
