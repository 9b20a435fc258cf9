"""Invertibility options, per flow step: keep · exact · residual-sn · residual-soft.

Each option states what is exact and what is estimated:

- ``exact``: an affine coupling (fresh weights, starting as the identity): exact inverse,
  exact log-det (triangular Jacobian). Applies where the step is a residual block.
- ``residual-sn`` (i-ResNet / Residual Flows): ``x + g(x)`` with spectrally normalised layers,
  ``Lip(g) <= coeff < 1``: invertible, by at most ``iters`` fixed-point iterations (fewer
  iterations: a cheaper, approximate inverse whose error is measured); training log-det by
  ``logdet`` = ``series`` (``terms`` terms: biased by truncation; fewer terms, faster and more
  biased), ``roulette`` (unbiased after ``terms`` terms) or ``exact`` (brute-force Jacobian).
- ``residual-soft``: the same block without the hard constraint, a penalty
  ``penalty * sum relu(||W||_2 - coeff)^2`` instead: nothing guarantees invertibility.

The residual block replaces a coupling with new weights (width ``hidden``, default the
coupling's). Evaluation (``bits_per_dim``) always uses the exact log-det where affordable.
"""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, Swap
from minsearch.catalog.keep import keep_option
from minsearch.catalog.registry import register_option
from minsearch.errors import UserError
from minsearch.flows.coupling import Coupling
from minsearch.flows.residual import LOGDETS, ResidualFlowBlock

KeepInvertibility = keep_option("invertibility")


@dataclass(frozen=True)
class ExactInvertibility(OptionConfig):
    """An exact affine coupling (fresh weights)."""

    kind = "invertibility"
    name = "exact"


@dataclass(frozen=True)
class _Residual(OptionConfig):
    coeff: float = 0.9
    logdet: str = "series"
    terms: int = 5
    iters: int = 50
    hidden: int | None = None

    def __post_init__(self):
        where = f"invertibility/{self.name}"
        if self.logdet not in LOGDETS:
            raise UserError(f"`logdet` of {where} must be one of {', '.join(LOGDETS)}, but got "
                            f"{self.logdet!r}.")
        for key in ("terms", "iters"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"`{key}` of {where} must be an int >= 1, but got {value!r}.")
        if self.hidden is not None and (not isinstance(self.hidden, int) or self.hidden < 1):
            raise UserError(f"`hidden` of {where} must be an int >= 1 or null, but got "
                            f"{self.hidden!r}.")

    def block(self, site, *, spectral: bool, penalty: float) -> ResidualFlowBlock:
        return ResidualFlowBlock(site.detail.shape, self.hidden or site.detail.hidden,
                                 spectral=spectral, coeff=self.coeff, penalty=penalty,
                                 logdet=self.logdet, terms=self.terms, iters=self.iters)


@dataclass(frozen=True)
class ResidualSN(_Residual):
    """A residual block with spectral normalisation: invertible (Lip(g) <= coeff < 1)."""

    kind = "invertibility"
    name = "residual-sn"

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.coeff < 1:
            raise UserError(f"`0 < coeff < 1` must hold for invertibility/residual-sn (the "
                            f"Lipschitz bound of g), but got coeff={self.coeff}; e.g. 0.9.")


@dataclass(frozen=True)
class ResidualSoft(_Residual):
    """A residual block with a soft Lipschitz penalty: invertibility not guaranteed."""

    kind = "invertibility"
    name = "residual-soft"
    penalty: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not (self.coeff > 0 and self.penalty >= 0):
            raise UserError(f"invertibility/residual-soft needs coeff > 0 and penalty >= 0, "
                            f"but got coeff={self.coeff}, penalty={self.penalty}.")


def _is_residual(site) -> bool:
    return site.detail.impl == "residual"


@register_option(ExactInvertibility, applies=_is_residual)
def _exact(config: ExactInvertibility, site, old) -> list[Edit]:
    return [Swap(site.name, Coupling(site.detail.shape, site.detail.hidden))]


@register_option(ResidualSN)
def _residual_sn(config: ResidualSN, site, old) -> list[Edit]:
    return [Swap(site.name, config.block(site, spectral=True, penalty=0.0))]


@register_option(ResidualSoft)
def _residual_soft(config: ResidualSoft, site, old) -> list[Edit]:
    return [Swap(site.name, config.block(site, spectral=False, penalty=config.penalty))]
