"""``attention``: modules that compute attention — timm ``Attention``, ``nn.MultiheadAttention``,
and any module whose own forward calls sdpa or computes ``softmax(q @ k^T)``."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.sites.classify import attention_impl, named_like_attention
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Site


@dataclass(frozen=True)
class AttentionDetail:
    impl: str  # timm | mha | sdpa | hf (transformers' AttentionInterface) | matmul | other
    softcap: float | None = None  # scores soft-capped before softmax (Gemma 2): no SDPA form


@register_kind
class AttentionKind(SiteKind):
    name = "attention"
    detail = AttentionDetail
    order = 30

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        sites = []
        for name, module in ctx.modules():
            impl = attention_impl(module) or ctx.attention_owners.get(name)
            if impl is None and type(module) in ctx.trace.leaves and named_like_attention(module):
                impl = "other"
            if impl is not None:
                sites.append(ctx.module_site(self.name, name, module,
                                             AttentionDetail(impl, _softcap(module))))
        return sites

    def describe(self, site: Site) -> str:
        cap = f", soft-capped at {site.detail.softcap}" if site.detail.softcap else ""
        return f"{site.target} ({site.detail.impl}{cap})"


def _softcap(module) -> float | None:
    """transformers' attention soft-capping (``tanh(s / cap) * cap``), read from the module
    or its config."""
    for owner in (module, getattr(module, "config", None)):
        cap = getattr(owner, "attn_logit_softcapping", None)
        if isinstance(cap, (int, float)) and cap:
            return float(cap)
    return None
