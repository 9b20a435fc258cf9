"""Graph capture: an FX tracer that sees every residual, and never crashes discovery.

Design (measured on the timm zoo, see DESIGN.md):

- norm, activation and known attention modules are leaves (their insides are not genes), and
  so is every module without children (dropout, drop-path, layer-scale: they keep their
  train/eval behaviour at run time instead of being baked into the graph) and every module
  with a deployed form (``deploy()``: a precision layer, replaced whole when deployed);
- containers are traced through, including timm's own "no-trace" blocks whose leaf status
  would hide their residuals (NormFreeBlock, MobileVitBlock, ...);
- timm's autowrap functions (same-padding helpers, ...) are kept as opaque calls;
- optional ``forward`` arguments are fixed to their defaults;
- when tracing fails inside some class, that class alone becomes a leaf and tracing restarts
  on a fresh copy (tracing can mutate a model, e.g. LeViT's attention-bias cache).

Hugging Face transformers classes (:mod:`minsearch.sites.hf_trace`) are traced with every
``forward`` argument as a placeholder (a rewritten decoder layer must still take the masks,
caches and position embeddings its model passes at run time), through the decorators that
wrap their ``forward``, and with ``x.dtype`` read as the model's float dtype (fp16-only clamps
are not taken); a model whose own forward cannot be traced is captured part by part
(:mod:`minsearch.sites.parts`).

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

from minsearch.sites import hf_trace
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

    def __init__(self, extra_leaves: frozenset[type] = frozenset(),
                 float_dtype: torch.dtype | None = None):
        super().__init__(autowrap_functions=_autowrap_functions(), param_shapes_constant=True)
        self.extra_leaves = extra_leaves
        self.float_dtype = float_dtype
        """When set, ``proxy.dtype`` is this dtype, not a traced value (transformers' layers
        branch on ``hidden_states.dtype == torch.float16``)."""

    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        # trace the function a decorator wraps (transformers' deprecate_kwarg, gradient
        # checkpointing): FX cannot re-code a (*args, **kwargs) wrapper
        fn, args = super().create_args_for_root(inspect.unwrap(root_fn), is_module,
                                                concrete_args)
        if self.float_dtype is not None:  # a transformers class
            hf_trace.check_var_keyword(self)
        return fn, args

    def keys(self, obj):
        """In a transformers class, the ``**kwargs`` of the traced forward unpacks to one
        marker key, made a real unpacking after tracing
        (:func:`~minsearch.sites.hf_trace.splat_var_keyword`)."""
        node = getattr(obj, "node", None)
        if self.float_dtype is not None and node is not None and node.op == "placeholder" \
                and str(node.target).startswith("**"):
            return [hf_trace.MARKER]
        return super().keys(obj)

    def trace(self, root, concrete_args=None) -> fx.Graph:
        graph = super().trace(root, concrete_args)
        hf_trace.splat_var_keyword(graph)
        return graph

    def proxy(self, node: fx.Node) -> fx.Proxy:
        if self.float_dtype is None:
            return super().proxy(node)
        return hf_trace.DtypeProxy(node, self)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in self.extra_leaves or is_norm(m) or is_activation(m) or attention_impl(m):
            return True
        if next(m.children(), None) is None:
            return True
        # a module with a deployed form (a precision layer) is replaced whole when deployed:
        # a graph that reached inside it would name parts the deployed layer lacks
        return callable(getattr(m, "deploy", None))

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
    stitched: bool = False
    """True when the graph joins parts traced on their own (:mod:`minsearch.sites.parts`):
    ``root`` is then the model itself, and the graph cannot be run as a whole."""

    @property
    def ok(self) -> bool:
        return self.graph is not None


def trace(module: nn.Module, leaves: frozenset[type] = frozenset()) -> Trace:
    """Trace ``module`` (eval mode, on a structural copy), making failing classes leaves."""
    failures: list[tuple[str, str, str]] = []
    policies = hf_trace.argument_policies(module) if hf_trace.is_transformers(module) else [
        default_concrete_args]
    dtype = hf_trace.float_dtype(module) if hf_trace.is_transformers(module) else None
    for _ in itertools.repeat(None, MAX_LEAF_RETRIES):
        root = structural_copy(module).eval()
        try:
            graph, tracer = _trace_first(root, leaves, dtype, policies)
        except _Failed as failed:
            err, tracer = failed.err, failed.tracer
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            failing = tracer.failing_module()
            if failing is None or failing[1] in leaves or hf_trace.is_whole_model(failing[1]):
                # a transformers (sub)model inside: captured part by part instead (parts.py)
                return Trace(None, None, leaves, failures,
                             f"{type(module).__name__}.forward cannot be traced ({reason})")
            failures.append((failing[0], failing[1].__name__, reason))
            leaves = leaves | {failing[1]}
            continue
        return Trace(graph, root, leaves, failures)
    return Trace(None, None, leaves, failures,
                 f"gave up after making {MAX_LEAF_RETRIES} classes leaves")


class _Failed(Exception):
    def __init__(self, err: Exception, tracer: SiteTracer):
        self.err, self.tracer = err, tracer


def _trace_first(root: nn.Module, leaves: frozenset[type], dtype: torch.dtype | None,
                 policies: list) -> tuple[fx.Graph, SiteTracer]:
    """Trace with the first argument policy that works; the last one's error otherwise. A
    failure inside a child (not the root's own forward) is the child's: no other policy is
    tried, the caller makes the child a leaf."""
    for i, policy in enumerate(policies):
        tracer = SiteTracer(leaves, dtype)
        try:
            return tracer.trace(root, concrete_args=policy(root)), tracer
        except Exception as err:  # noqa: BLE001 - any trace error is recoverable here
            failing = tracer.failing_module()
            inside_child = failing is not None and failing[0] != ""
            if inside_child or i == len(policies) - 1:
                raise _Failed(err, tracer) from err
            # the next policy reuses the copy: transformers' forwards keep no traced state
    raise AssertionError("no argument policy")
