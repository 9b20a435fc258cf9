"""Find graph sites in a traced model: residual adds, functional norms and activations, and
the modules that compute attention.

Residual rule (DESIGN.md, agreed with ``torch.export`` on 98% of the timm zoo): an add is a
residual when its two operands have a latest common ancestor (the fork), the longer path from
the fork holds a weighted op (a module or op with parameters), and the shorter path is at most
:data:`MAX_SHORTCUT_OPS` ops (identity, or a projection such as conv1x1+BN). Only *data* counts:
parameters, buffers, constants and shape queries are not data, so ``x + pos_embed``,
``scores + bias_table[idx]`` and ``x + 1`` are not residuals; neither are adds of independent
inputs (``scores + mask``), RoPE's ``q*cos + rot(q)*sin`` (no weighted op) or multi-branch sums
of equal length.

Ancestor sets are Python ints used as bitsets over node positions: a 3,000-node graph needs
about a megabyte, and a fork is the highest set bit of an intersection.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from minsearch.sites.classify import (
    FUNCTIONAL_NORMS,
    MATMULS,
    METHOD_ACTS,
    SDPA,
    SOFTMAX,
    attention_impl,
    functional_act_name,
    is_norm,
    named_like_attention,
)

MAX_SHORTCUT_OPS = 4

ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
ADD_METHODS = {"add", "add_", "__add__", "__iadd__"}
_SHAPE_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda", "layout", "requires_grad"}
_SHAPE_METHODS = {"size", "dim", "numel", "type", "get_device", "new_zeros", "new_ones",
                  "new_empty", "new_full", "new_tensor"}
_CONST_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.empty_like, torch.full_like,
                    torch.rand_like, torch.randn_like, torch.arange, torch.zeros, torch.ones,
                    torch.empty, torch.full}


def owner_of(node: fx.Node) -> tuple[str, str]:
    """(module path, call key) of the innermost module whose forward created ``node``.
    The root is ``("", "")``; a module's second call has key ``"path@1"``."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    key, (path, _cls) = next(reversed(stack.items()))
    return path, key


def is_add(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in ADD_FUNCTIONS) or (
        node.op == "call_method" and node.target in ADD_METHODS)


def op_category(node: fx.Node) -> str | None:
    """The graph-site category of a node: ``add``, ``norm:<fn>``, ``act:<fn>`` or None."""
    if is_add(node):
        return "add"
    if node.op == "call_function":
        if node.target in FUNCTIONAL_NORMS:
            return f"norm:{FUNCTIONAL_NORMS[node.target]}"
        name = functional_act_name(node.target)
        if name is not None:
            return f"act:{name}"
    if node.op == "call_method" and node.target in METHOD_ACTS:
        return f"act:{METHOD_ACTS[node.target]}"
    return None


@dataclass(frozen=True)
class Residual:
    node: fx.Node
    shortcut_arg: int  # which add operand (0 or 1) is the shortcut
    shortcut: str  # "identity" or "projection"
    branch_ops: int
    shortcut_ops: int
    branch: tuple[fx.Node, ...] = ()  # the branch's ops, in graph order


class GraphFacts:
    """Data-flow facts about one traced graph (with the structural copy it refers to)."""

    def __init__(self, graph: fx.Graph, root: nn.Module):
        self.graph, self.root = graph, root
        self._attention_paths: tuple[str, ...] | None = None
        self.nodes = list(graph.nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.data: dict[fx.Node, bool] = {}
        self.ancestors: dict[fx.Node, int] = {}
        self.weighted: dict[fx.Node, bool] = {}
        for n in self.nodes:
            parents = [p for p in n.all_input_nodes if self.data[p]]
            self.data[n] = self._is_data(n, parents)
            bits = 0
            for p in parents:
                bits |= self.ancestors[p] | (1 << self.index[p])
            self.ancestors[n] = bits
            self.weighted[n] = self._is_weighted(n)

    def _is_data(self, n: fx.Node, data_parents: list[fx.Node]) -> bool:
        if n.op == "placeholder":
            return True
        if n.op in ("get_attr", "output"):
            return False
        if n.op == "call_function" and n.target is getattr and n.args[1] in _SHAPE_ATTRS:
            return False
        if n.op == "call_method" and n.target in _SHAPE_METHODS:
            return False
        if n.op == "call_function" and n.target in _CONST_FUNCTIONS:
            return False
        return bool(data_parents)

    def _is_weighted(self, n: fx.Node) -> bool:
        if n.op == "call_module":
            module = self.root.get_submodule(n.target)
            return next(module.parameters(), None) is not None
        if n.op in ("call_function", "call_method"):
            for p in n.all_input_nodes:
                if p.op != "get_attr":
                    continue
                value = _resolve(self.root, p.target)
                if isinstance(value, nn.Parameter) or (  # a module called with **kwargs
                        isinstance(value, nn.Module) and next(value.parameters(), None)
                        is not None):
                    return True
        return False

    def path(self, start: int, end: fx.Node) -> list[fx.Node]:
        """Data nodes after node ``start`` (exclusive) up to ``end`` (inclusive) that descend
        from ``start``: the ops of one side of a fork."""
        if self.index[end] == start:
            return []
        bits = (self.ancestors[end] | (1 << self.index[end])) >> (start + 1)
        out, i = [], start + 1
        while bits:
            if bits & 1 and (self.ancestors[self.nodes[i]] >> start) & 1:
                out.append(self.nodes[i])
            bits >>= 1
            i += 1
        return out

    def residual(self, node: fx.Node) -> Residual | None:
        """Classify an add node (see the module docstring)."""
        if not is_add(node) or len(node.args) < 2:
            return None
        a, b = node.args[0], node.args[1]
        if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
            return None
        if not (self.data[a] and self.data[b]):
            return None
        common = (self.ancestors[a] | 1 << self.index[a]) & (self.ancestors[b] | 1 << self.index[b])
        if not common:
            return None
        fork = common.bit_length() - 1
        path_a, path_b = self.path(fork, a), self.path(fork, b)
        if len(path_a) == len(path_b):
            return None
        shortcut_arg = 0 if len(path_a) < len(path_b) else 1
        short, long = (path_a, path_b) if shortcut_arg == 0 else (path_b, path_a)
        if len(short) > MAX_SHORTCUT_OPS or not any(self.weighted[n] for n in long):
            return None
        if self._embeds(short) or self._embeds(long):
            return None  # the fork is token ids: a sum of embeddings (RoBERTa), not a residual
        if any(self._attends(n) for n in short):
            return None  # attn(x) + mlp(x) of a parallel block: two branches, no shortcut
        kind = "projection" if any(self.weighted[n] for n in short) else "identity"
        return Residual(node, shortcut_arg, kind, len(long), len(short), tuple(long))

    def _attends(self, n: fx.Node) -> bool:
        """A call of an attention module, or an op inside one (a shortcut never holds one)."""
        if self._attention_paths is None:
            self._attention_paths = tuple(p for p in self.attention_owners() if p)
        owner = owner_of(n)[0]
        if any(owner == p or owner.startswith(p + ".") for p in self._attention_paths):
            return True
        if n.op == "call_module":
            return attention_impl(self.root.get_submodule(n.target)) is not None
        return n.op == "call_function" and any(  # a module called with **kwargs
            p.op == "get_attr" and isinstance(m := _resolve(self.root, p.target), nn.Module)
            and attention_impl(m) is not None for p in n.all_input_nodes)

    def _embeds(self, path: list[fx.Node]) -> bool:
        first = path[0] if path else None
        return first is not None and first.op == "call_module" and isinstance(
            self.root.get_submodule(first.target), nn.Embedding)

    def post_norm(self, residual: Residual) -> str | None:
        """The norm module a post-norm residual feeds, ``norm(x + f(x))`` in the same forward
        (BERT's ``LayerNorm(hidden_states + input_tensor)``): the add's only data user. A norm
        in another module (the final norm after the last block) is not the add's."""
        users = [u for u in residual.node.users if self.data[u]]
        if len(users) != 1 or users[0].op != "call_module":
            return None
        norm = users[0]
        parent = norm.target.rpartition(".")[0]
        if parent != owner_of(residual.node)[0]:
            return None
        return norm.target if is_norm(self.root.get_submodule(norm.target)) else None

    def pair_norm(self, residual: Residual) -> str | None:
        """The norm module that pairs with a residual: the first norm on its branch whose
        output feeds only that branch (pre-norm transformer blocks: the norm at the fork;
        ConvNeXt: the norm after the depthwise conv; ResNet: the branch's first BN)."""
        branch = set(residual.branch) | {residual.node}
        for n in residual.branch:
            if n.op == "call_module" and is_norm(self.root.get_submodule(n.target)):
                data_users = {u for u in n.users if self.data[u]}  # x.size() is no use
                return n.target if data_users <= branch else None
        return None

    def attention_owners(self) -> dict[str, str]:
        """Modules whose own forward computes attention: ``{path: "sdpa" | "matmul"}``.

        An sdpa call marks its owner; so does a softmax whose input comes from a matmul within
        a few ops and whose output feeds a matmul (a classifier's softmax does neither)."""
        owners: dict[str, str] = {}
        for n in self.nodes:
            path, _ = owner_of(n)
            if n.op == "call_function" and n.target in SDPA:
                owners[path] = "sdpa"
            elif self._is_softmax(n) and path and (
                    (_near(n, _is_matmul, up=True) and _near(n, _is_matmul))
                    or named_like_attention(self.root.get_submodule(path))):
                owners.setdefault(path, "matmul")
        return owners

    def _is_softmax(self, n: fx.Node) -> bool:
        if n.op == "call_module":
            return isinstance(self.root.get_submodule(n.target), nn.Softmax)
        return (n.op == "call_function" and n.target in SOFTMAX) or (
            n.op == "call_method" and n.target == "softmax")


def _is_matmul(n: fx.Node) -> bool:
    return (n.op == "call_function" and n.target in MATMULS) or (
        n.op == "call_method" and n.target in ("matmul", "bmm"))


def _near(n: fx.Node, pred, up: bool = False, hops: int = 6) -> bool:
    frontier = [n]
    for _ in range(hops):
        frontier = [m for f in frontier for m in (f.all_input_nodes if up else f.users)]
        if any(pred(m) for m in frontier):
            return True
    return False


def _resolve(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj
