"""Pair options: a norm and the residual whose branch it starts, replaced together.

``agu`` (adaptive gating unit) removes the norm and gates the residual: the norm's place gets
a bounded squash ``w ⊙ tanh(α·x) + b`` and the add becomes ``x + g ⊙ f(u)`` (see
:mod:`minsearch.layers.agu`). Presets name the gate variants for search spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, ReplaceOp, Swap
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.errors import UserError
from minsearch.layers.agu import GATE_MODES, GateAdd, GateSquash

KeepPair = keep_option("pair")


@dataclass(frozen=True)
class AGU(OptionConfig):
    """Adaptive gating unit: norm -> tanh squash, add -> gated add (per-channel gate)."""

    kind = "pair"
    name = "agu"
    mode: str = "channel"
    init: float = 0.0
    alpha_init: float = 0.5

    def __post_init__(self):
        if self.mode not in GATE_MODES:
            raise UserError(f"Gate mode {self.mode!r} is not one of {', '.join(GATE_MODES)}.")
        if not self.alpha_init > 0:
            raise UserError(f"`alpha_init > 0` must hold for {self.name}, but got "
                            f"alpha_init={self.alpha_init}.")


@dataclass(frozen=True)
class AGUScalar(AGU):
    """Adaptive gating unit with one scalar gate."""

    name = "agu-scalar"
    mode: str = "scalar"


@dataclass(frozen=True)
class AGUInput(AGU):
    """Adaptive gating unit with an input-dependent gate."""

    name = "agu-input"
    mode: str = "input"


def _build(config: AGU, site, norm: nn.Module) -> list[Edit]:
    """The norm's place gets the squash, the residual's add the gated add."""
    squash = GateSquash.from_module(norm, alpha_init=config.alpha_init)
    add_dim = site.detail.add_channel_dim
    gate = GateAdd(config.mode, site.detail.channels, -1 if add_dim is None else add_dim,
                   init=config.init)
    return [Swap(site.detail.norm, squash), ReplaceOp(site.detail.residual, gate)]


def _has_channels(site) -> bool:
    return isinstance(site.detail.channels, int)


for _cls in (AGU, AGUScalar, AGUInput):
    register_option(_cls, applies=_has_channels)(_build)
