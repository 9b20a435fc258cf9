"""Swap the ``F.scaled_dot_product_attention`` calls inside any module's forward for
:class:`LowpSDPA` modules, by tracing that forward with ``torch.fx``.

The module is traced with its children as leaves (only its own forward is rewritten; child
attention modules are sites of their own) and with optional forward arguments fixed to their
defaults, so that ``if mask is not None`` does not branch on a proxy. The price: the rewritten
module accepts only those defaults (FX asserts it at call time), so a module that is called
with, say, a mask needs ``keep`` (timm ``Attention`` and ``nn.MultiheadAttention`` have their
own replacements, which take masks). It is traced in eval mode, and
``dropout_p=p if self.training else 0`` is recorded from a second, train-mode trace and applied
by the replacement only while training.
"""

from __future__ import annotations

import copy
import inspect

import torch.nn.functional as F
from torch import fx, nn

from minsearch.attention.sdpa import LowpSDPA
from minsearch.attention.spec import AttnSpec
from minsearch.errors import UserError

_HEAD_ATTRS = ("num_heads", "n_head", "n_heads", "heads", "num_attention_heads")


class TracedSDPA(LowpSDPA):
    """A :class:`LowpSDPA` standing in for one traced SDPA call; ``train_dropout`` is the
    ``dropout_p`` that call had in train mode."""

    def __init__(self, spec: AttnSpec, num_heads: int = 1, train_dropout: float = 0.0) -> None:
        super().__init__(spec, num_heads)
        self.train_dropout = train_dropout

    def forward(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False):
        dropout_p = self.train_dropout if self.training else 0.0
        return super().forward(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)


class _ChildrenAsLeaves(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _defaults(module: nn.Module) -> dict[str, object]:
    """Forward arguments with a default, fixed to it (``if mask is not None`` must not branch
    on a proxy)."""
    params = inspect.signature(module.forward).parameters.values()
    return {p.name: p.default for p in params
            if p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _trace(module: nn.Module, training: bool) -> fx.Graph:
    module = copy.deepcopy(module).train(training)  # tracing may mutate a module (LeViT caches)
    try:
        import timm.layers

        wrap = tuple(timm.layers.get_notrace_functions())
    except ImportError:
        wrap = ()
    return _ChildrenAsLeaves(autowrap_functions=wrap).trace(module, concrete_args=_defaults(module))


def _sdpa_nodes(graph: fx.Graph) -> list[fx.Node]:
    return [n for n in graph.nodes
            if n.op == "call_function" and n.target is F.scaled_dot_product_attention]


def _dropout_of(node: fx.Node) -> float:
    p = node.kwargs.get("dropout_p", node.args[4] if len(node.args) > 4 else 0.0)
    return float(p) if isinstance(p, (int, float)) else 0.0


def _num_heads(module: nn.Module) -> int:
    for attr in _HEAD_ATTRS:
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1  # unknown: one learned P scale shared by all heads


def swap_sdpa(old: nn.Module, spec: AttnSpec) -> tuple[fx.GraphModule, list[str]]:
    """A GraphModule computing ``old``'s forward with each SDPA call replaced by a
    :class:`TracedSDPA`; returns it and the names of the nodes it replaced (for audit).

    The GraphModule keeps ``old``'s state_dict keys (and adds ``lowp_sdpa*.p_scale`` for
    binary/ternary P).
    """
    try:
        graph, train_graph = _trace(old, training=False), _trace(old, training=True)
    except Exception as e:  # FX raises many types; say which module and why
        raise UserError(f"Could not trace {type(old).__name__} with torch.fx to find its "
                        f"scaled_dot_product_attention calls ({type(e).__name__}: {e}); keep "
                        f"this site (option 'keep').") from e
    nodes, train_nodes = _sdpa_nodes(graph), _sdpa_nodes(train_graph)
    if not nodes:
        raise UserError(f"{type(old).__name__}.forward has no F.scaled_dot_product_attention "
                        f"call (it may compute softmax(q @ k^T) by hand, as Swin and LeViT do); "
                        f"only 'keep' applies to this site.")
    gm = fx.GraphModule(old, graph, class_name=f"Lowp{type(old).__name__}")
    heads = _num_heads(old)
    replaced = []
    for i, node in enumerate(nodes):
        name = "lowp_sdpa" if len(nodes) == 1 else f"lowp_sdpa_{i}"
        train_p = _dropout_of(train_nodes[i]) if len(train_nodes) == len(nodes) else 0.0
        gm.add_submodule(name, TracedSDPA(spec, heads, train_p))
        with graph.inserting_after(node):
            new = graph.call_module(name, node.args, dict(node.kwargs))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        replaced.append(node.name)
    graph.lint()
    gm.recompile()
    for name, child in old.named_children():  # keep children the graph does not call
        if not hasattr(gm, name):
            gm.add_module(name, child)
    for name, tensor in [*old.named_parameters(recurse=False), *old.named_buffers(recurse=False)]:
        if hasattr(gm, name):
            continue
        if isinstance(tensor, nn.Parameter):
            gm.register_parameter(name, tensor)
        else:
            gm.register_buffer(name, tensor)
    return gm.train(old.training), replaced
