"""Residual options: keep · drop-skip · drop-branch · rezero · gate · layerscale · scaled.

A residual site is an add ``shortcut + branch``. Handlers rewire the add to one operand (the
other side's ops become dead code and leave the graph), or replace it with a module called as
``module(shortcut, branch)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, ReplaceOp, Rewire
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.errors import UserError
from minsearch.layers.residual_scale import ResidualScale

KeepResidual = keep_option("residual")
SHORTCUT, BRANCH = "shortcut", "branch"  # the operand roles of a residual site


@dataclass(frozen=True)
class DropSkip(OptionConfig):
    """Drop the skip connection: the output is the branch f(x) alone."""

    kind = "residual"
    name = "drop-skip"


@dataclass(frozen=True)
class DropBranch(OptionConfig):
    """Drop the branch (depth pruning): the output is the shortcut x alone."""

    kind = "residual"
    name = "drop-branch"


@dataclass(frozen=True)
class ReZero(OptionConfig):
    """ReZero/SkipInit: x + alpha * f(x), alpha a learned scalar starting at 0."""

    kind = "residual"
    name = "rezero"


@dataclass(frozen=True)
class Gate(OptionConfig):
    """Scalar gate: x + alpha * f(x), alpha a learned scalar starting at ``init`` (1: exact)."""

    kind = "residual"
    name = "gate"
    init: float = 1.0


@dataclass(frozen=True)
class LayerScale(OptionConfig):
    """LayerScale: x + gamma * f(x), gamma a learned per-channel vector starting at ``init``."""

    kind = "residual"
    name = "layerscale"
    init: float = 1e-5

    def __post_init__(self):
        if not self.init > 0:
            raise UserError(f"`init > 0` must hold for layerscale, but got init={self.init}; "
                            f"use rezero for a zero start.")


@dataclass(frozen=True)
class Scaled(OptionConfig):
    """Fixed scaling: x + f(x) / sqrt(depth), depth = residual sites in the model (or given)."""

    kind = "residual"
    name = "scaled"
    depth: int | None = None

    def __post_init__(self):
        if self.depth is not None and self.depth < 1:
            raise UserError(f"`depth >= 1` must hold for scaled, but got depth={self.depth}.")


@register_option(DropSkip)
def _drop_skip(config, site, old) -> list[Edit]:
    return [Rewire(site.name, BRANCH)]


@register_option(DropBranch)
def _drop_branch(config, site, old) -> list[Edit]:
    return [Rewire(site.name, SHORTCUT)]


@register_option(ReZero)
def _rezero(config, site, old) -> list[Edit]:
    return [ReplaceOp(site.name, ResidualScale(0.0))]


@register_option(Gate, identity=True)
def _gate(config: Gate, site, old) -> list[Edit]:
    return [ReplaceOp(site.name, ResidualScale(config.init))]


def _has_channels(site) -> bool:
    return isinstance(site.detail.channels, int)


@register_option(LayerScale, applies=_has_channels)
def _layerscale(config: LayerScale, site, old) -> list[Edit]:
    if not _has_channels(site):
        raise UserError(f"layerscale at {site.name} needs the residual's channel count; pass "
                        f"an example input (--input-shape) so shapes can be propagated.")
    return [ReplaceOp(site.name, ResidualScale(config.init, site.detail.channels,
                                               site.detail.channel_dim))]


@register_option(Scaled)
def _scaled(config: Scaled, site, old) -> list[Edit]:
    depth = config.depth or max(1, site.detail.depth)
    return [ReplaceOp(site.name, ResidualScale(1.0 / math.sqrt(depth), learnable=False))]
