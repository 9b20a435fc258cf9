"""The task models (``package.module:factory`` specs): an MLP flow for 2-D data and a
multi-scale Glow/RealNVP flow for 8x8 digits. Each step is ``norm`` (ActNorm) -> ``mix``
-> ``transform`` (a coupling, or a residual block when ``transform`` says so), the names the
flow site kinds find."""

from __future__ import annotations

from minsearch.errors import UserError
from minsearch.flows.actnorm import ActNorm
from minsearch.flows.base import FlowLayer, FlowSequence
from minsearch.flows.coupling import Coupling
from minsearch.flows.mixing import InvertibleLinear, Reverse
from minsearch.flows.model import DensityFlow
from minsearch.flows.residual import ResidualFlowBlock
from minsearch.flows.squeeze import Scale

TRANSFORMS = ("affine", "additive", "residual-sn")
MIXINGS = ("linear", "reverse")


def _transform(kind: str, shape: tuple[int, ...], hidden: int) -> FlowLayer:
    if kind == "residual-sn":
        return ResidualFlowBlock(shape, hidden)
    return Coupling(shape, hidden, additive=kind == "additive")


def _steps(n: int, shape: tuple[int, ...], hidden: int, transform: str | list[str],
           mixing: str, seed: int) -> FlowSequence:
    """``n`` steps; ``transform`` is one kind for all, or a list cycled over the steps."""
    kinds = [transform] if isinstance(transform, str) else list(transform)
    unknown = [k for k in kinds if k not in TRANSFORMS]
    if unknown or not kinds:
        raise UserError(f"`transform` must be one of {', '.join(TRANSFORMS)} or a list of "
                        f"them, but got {transform!r}.")
    if mixing not in MIXINGS:
        raise UserError(f"`mixing` must be one of {', '.join(MIXINGS)}, but got {mixing!r}.")
    channels, steps = shape[0], []
    for i in range(n):
        mix = InvertibleLinear(channels, seed=seed + i) if mixing == "linear" else Reverse()
        steps.append(FlowSequence({"norm": ActNorm(channels), "mix": mix,
                                   "transform": _transform(kinds[i % len(kinds)], shape,
                                                           hidden)}))
    return FlowSequence(steps)


def mlp_flow(dims: int = 2, steps: int = 4, hidden: int = 32,
             transform: str | list[str] = "affine",
             mixing: str = "linear", seed: int = 0) -> DensityFlow:
    """A flow for vectors ``(B, dims)``: ``steps`` x (ActNorm, mixing, coupling)."""
    if dims < 2:
        raise UserError(f"`dims` must be >= 2 for a coupling flow, but got {dims}.")
    body = FlowSequence({"steps": _steps(steps, (dims,), hidden, transform, mixing, seed)})
    return DensityFlow(body, (dims,))


def glow_digits(steps: int = 3, hidden: int = 32, transform: str | list[str] = "affine",
                mixing: str = "linear", seed: int = 0) -> DensityFlow:
    """A two-scale flow for ``(B, 1, 8, 8)``: squeeze to 4 x 4 x 4, ``steps`` steps, factor
    out 2 channels, squeeze the other 2 to 8 x 2 x 2, ``steps`` steps (64 dims)."""
    inner = Scale(_steps(steps, (8, 2, 2), hidden, transform, mixing, seed + 100))
    outer = Scale(_steps(steps, (4, 4, 4), hidden, transform, mixing, seed), inner)
    return DensityFlow(FlowSequence({"scale": outer}), (1, 8, 8))
