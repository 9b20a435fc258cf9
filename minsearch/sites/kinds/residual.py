"""``residual``: residual adds ``shortcut + branch(x)``, found in the traced graph by the
data-flow rule of :mod:`minsearch.sites.graph_ops`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from minsearch.sites.context import DiscoveryContext
from minsearch.sites.graph_ops import Residual
from minsearch.sites.kind import SiteKind, register_kind
from minsearch.sites.site import Site

SHORTCUT = "shortcut"
BRANCH = "branch"


@dataclass(frozen=True)
class ResidualDetail:
    shortcut: str  # identity | projection
    shortcut_arg: int  # which operand of the add (0 or 1) is the shortcut
    branch_ops: int
    shortcut_ops: int
    depth: int = 0  # residual sites in the whole model
    pair_norm: str | None = None  # the norm that starts the branch (see the pair kind)
    post_norm: str | None = None  # post-norm: the norm of norm(x + f(x)) (BERT), same forward
    shape: tuple[int, ...] | None = None  # the add's output shape (with an example input)
    channels: int | None = None
    channel_dim: int | None = None  # 1 for (N, C, H, W) maps, -1 for (B, N, C) tokens


@register_kind
class ResidualKind(SiteKind):
    name = "residual"
    detail = ResidualDetail
    order = 60

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        found = []
        for op in ctx.graph_ops("add"):
            residual = ctx.facts.residual(op.node)
            if residual is None:
                continue
            k = residual.shortcut_arg
            found.append(ctx.graph_site(self.name, op, "residual", _detail(ctx, residual),
                                        operands=((SHORTCUT, k), (BRANCH, 1 - k))))
        found = [dataclasses.replace(s, detail=dataclasses.replace(s.detail, depth=len(found)))
                 for s in found]
        if not ctx.trace.stitched:
            return found
        norms = {s.name: s.detail for s in ctx.sites if s.kind == "norm" and not s.graph}
        return [dataclasses.replace(s, detail=_with_norm_channels(s.detail, norms))
                for s in found]

    def describe(self, site: Site) -> str:
        d = site.detail
        shape = f" {tuple(d.shape)}" if d.shape is not None else ""
        text = f"{d.shortcut} shortcut, {d.branch_ops}-op branch{shape}"
        if d.post_norm is not None:
            # what a rewire means here: the norm stays, it sees one operand
            text += (f"; post-norm {d.post_norm}(x + f(x)): drop-branch leaves "
                     f"{d.post_norm.rsplit('.', 1)[-1]}(x), drop-skip "
                     f"{d.post_norm.rsplit('.', 1)[-1]}(f(x))")
        return text


def _with_norm_channels(detail: ResidualDetail, norms: dict) -> ResidualDetail:
    """A model captured layer by layer has no propagated shapes: a residual's width is that of
    the norm it pairs with, the pre-norm of its branch or its post-norm."""
    if detail.channels is not None:
        return detail
    norm = norms.get(detail.pair_norm) or norms.get(detail.post_norm)
    if norm is None or norm.channels is None:
        return detail
    return dataclasses.replace(detail, channels=norm.channels, channel_dim=norm.channel_dim)


def _detail(ctx: DiscoveryContext, residual: Residual) -> ResidualDetail:
    detail = ResidualDetail(residual.shortcut, residual.shortcut_arg, residual.branch_ops,
                            residual.shortcut_ops, pair_norm=ctx.facts.pair_norm(residual),
                            post_norm=ctx.facts.post_norm(residual))
    shape = residual.node.meta.get("shape")
    if shape is None:
        return detail
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        return dataclasses.replace(detail, shape=shape)
    # channels-first for image-like maps (N, C, H, W), channels-last for tokens (B, N, C)
    channel_dim = 1 if len(shape) >= 4 else -1
    return dataclasses.replace(detail, shape=shape, channel_dim=channel_dim,
                               channels=shape[channel_dim])
