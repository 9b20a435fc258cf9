"""Graph capture: an FX tracer that sees every residual, and never crashes discovery.

Design (measured on the timm zoo, see DESIGN.md):

- norm, activation and known attention modules are leaves (their insides are not genes), and
  so is every module without children (dropout, drop-path, layer-scale: they keep their
  train/eval behaviour at run time instead of being baked into the graph);
- containers are traced through, including timm's own "no-trace" blocks whose leaf status
  would hide their residuals (NormFreeBlock, MobileVitBlock, ...);
- timm's autowrap functions (same-padding helpers, ...) are kept as opaque calls;
- optional ``forward`` arguments are fixed to their defaults;
- when tracing fails inside some class, that class alone becomes a leaf and tracing restarts
  on a fresh copy (tracing can mutate a model, e.g. LeViT's attention-bias cache).

Tracing always runs on a *structural copy*: parameters replaced by meta tensors, so a
300M-parameter model is copied in milliseconds and no real weights are touched.
"""

from __future__ import annotations

import copy
import inspect
import itertools
from dataclasses import dataclass, field
from functools import cache

import torch
import torch.fx as fx
from torch import nn

from minsearch.sites.classify import attention_impl, is_activation, is_norm

MAX_LEAF_RETRIES = 64


@cache
def _autowrap_functions() -> tuple:
    try:
        from timm.layers import get_notrace_functions
    except ImportError:
        return ()
    return tuple(f for f in get_notrace_functions() if callable(f))


class SiteTracer(fx.Tracer):
    """``torch.fx.Tracer`` whose leaves are the units a gene treats as atoms."""

    def __init__(self, extra_leaves: frozenset[type] = frozenset()):
        super().__init__(autowrap_functions=_autowrap_functions(), param_shapes_constant=True)
        self.extra_leaves = extra_leaves

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in self.extra_leaves or is_norm(m) or is_activation(m) or attention_impl(m):
            return True
        if next(m.children(), None) is None:
            return True
        return False

    def failing_module(self) -> tuple[str, type] | None:
        """After a failed trace: the innermost module whose forward raised (the stack is not
        popped on an exception)."""
        if not self.module_stack:
            return None
        return next(reversed(self.module_stack.values()))


def structural_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters are meta tensors. Buffers (small: norm
    statistics, index tables) are copied for real, because a trace may capture them as
    constants that the rewritten forward then needs."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    return copy.deepcopy(model, memo)


def default_concrete_args(module: nn.Module) -> dict[str, object]:
    """Optional ``forward`` parameters fixed to their defaults."""
    params = inspect.signature(module.forward).parameters.values()
    return {p.name: p.default for p in params
            if p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


@dataclass
class Trace:
    """A traced graph with the structural copy it refers to, or why there is none."""

    graph: fx.Graph | None
    root: nn.Module | None
    leaves: frozenset[type] = frozenset()
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    """(module path, class name, error) for each class that had to become a leaf."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.graph is not None


def trace(module: nn.Module, leaves: frozenset[type] = frozenset()) -> Trace:
    """Trace ``module`` (eval mode, on a structural copy), making failing classes leaves."""
    failures: list[tuple[str, str, str]] = []
    for _ in itertools.repeat(None, MAX_LEAF_RETRIES):
        root = structural_copy(module).eval()
        tracer = SiteTracer(leaves)
        try:
            graph = tracer.trace(root, concrete_args=default_concrete_args(root))
        except Exception as err:  # noqa: BLE001 - any trace error is recoverable here
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            failing = tracer.failing_module()
            if failing is None or failing[1] in leaves:
                return Trace(None, None, leaves, failures,
                             f"{type(module).__name__}.forward cannot be traced ({reason})")
            failures.append((failing[0], failing[1].__name__, reason))
            leaves = leaves | {failing[1]}
            continue
        return Trace(graph, root, leaves, failures)
    return Trace(None, None, leaves, failures,
                 f"gave up after making {MAX_LEAF_RETRIES} classes leaves")
