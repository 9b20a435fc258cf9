"""Graph surgery on one owner module: its ``forward`` is replaced by a rewritten FX graph.

The owner keeps its class, its children and its parameters, so state_dict keys of untouched
parts stay the same, and the root model can be rewritten in place like any submodule. New
modules (gates, lifted norms) are added as children named after their site
(``blocks.0.residual_1``). The graph is linted and dead code (a dropped branch) is removed.

Written by hand because no library does it: ``torch.fx.replace_pattern`` matches patterns, not
data-flow roles (which operand of an add is the shortcut), and returns a new GraphModule rather
than changing a module inside a model.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from minsearch.catalog.registry import BRANCH, SHORTCUT
from minsearch.sites.graph_ops import op_category, owner_of
from minsearch.sites.site import Site
from minsearch.sites.trace import trace


class GraphForward:
    """A module's ``forward`` replaced by a graph, run with the module itself as ``self``.

    Installed as the instance attribute ``module.forward``. Deep copies follow the module; full
    pickling is refused (save the state_dict and the genome, and rebuild with ``apply_``).
    """

    def __init__(self, module: nn.Module, graph: fx.Graph):
        self.module = module
        self.graph = graph
        self._fn = None  # compiled on first call: during a deep copy the module is not built yet

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is None:
            self._fn = type(fx.GraphModule(self.module, copy.deepcopy(self.graph))).forward
        return self._fn(self.module, *args, **kwargs)

    def __deepcopy__(self, memo: dict) -> GraphForward:
        return GraphForward(copy.deepcopy(self.module, memo), self.graph)

    def __reduce__(self):
        raise TypeError("A model rewritten by minsearch cannot be pickled whole; save its "
                        "state_dict and genome, and rebuild it with minsearch.apply_.")

    def __repr__(self) -> str:
        return f"GraphForward({type(self.module).__name__}, {len(self.graph.nodes)} nodes)"


@dataclass
class GraphEdit:
    site: Site
    result: Any  # a module, SHORTCUT or BRANCH


def rewrite_owner(owner: nn.Module, edits: list[GraphEdit],
                  leaves: frozenset[type] = frozenset()) -> None:
    """Apply ``edits`` (graph sites whose owner is ``owner``) to ``owner`` in place."""
    traced = trace(owner, leaves)
    if not traced.ok:
        raise ValueError(f"Cannot rewrite {type(owner).__name__}: {traced.error}.")
    graph = traced.graph
    local: dict[str, list[fx.Node]] = defaultdict(list)
    for node in graph.nodes:
        category = op_category(node)
        if category is not None and owner_of(node)[0] == "":
            local[category].append(node)
    for edit in edits:
        site = edit.site
        expected = site.detail.get("owner_adds")
        if expected is not None and len(local["add"]) != expected:
            raise ValueError(f"Cannot rewrite {site.name}: {site.owner or 'the model'}'s forward "
                             f"traced alone has {len(local['add'])} adds, {expected} in the "
                             f"whole model (it depends on how it is called).")
        node = local[site.detail["category"]][site.detail["ordinal"]]
        _replace(graph, owner, node, site, edit.result, traced.root)
    _copy_constants(graph, traced.root, owner)
    graph.owning_module = fx.GraphModule(owner, graph)  # purity checks need the modules
    graph.eliminate_dead_code()
    graph.lint()
    owner.__dict__["forward"] = GraphForward(owner, graph)


def local_name(site: Site) -> str:
    return site.name[len(site.owner) + 1:] if site.owner else site.name


def _replace(graph: fx.Graph, owner: nn.Module, node: fx.Node, site: Site, result: Any,
             root: nn.Module) -> None:
    if site.kind == "residual":
        shortcut_arg = site.detail["shortcut_arg"]
        shortcut, branch = node.args[shortcut_arg], node.args[1 - shortcut_arg]
        if result == SHORTCUT or result == BRANCH:
            kept = shortcut if result == SHORTCUT else branch
            users = list(node.users)
            node.replace_all_uses_with(kept)
            graph.erase_node(node)
            _not_in_place(users, owner)
            return
        args = (shortcut, branch)
    else:
        args = (node.args[0],)
    name = local_name(site)
    if name in owner._modules and not isinstance(owner._modules[name], type(result)):
        raise ValueError(f"{site.owner or 'The model'} already has a child named {name!r}; "
                         f"it was rewritten before. Apply genomes to a fresh model.")
    owner.add_module(name, _on_device_of(result, owner))
    with graph.inserting_before(node):
        new = graph.call_module(name, args)
    node.replace_all_uses_with(new)
    graph.erase_node(node)


def _not_in_place(users: list[fx.Node], owner: nn.Module) -> None:
    """An add made a fresh tensor; its operand is shared with autograd and maybe other users.
    Consumers that worked in place on the add's output (ReLU(inplace=True)) must not now
    overwrite the operand."""
    for user in users:
        if user.op == "call_module":
            module = owner.get_submodule(user.target)
            if getattr(module, "inplace", False):
                module.inplace = False
        elif user.kwargs.get("inplace"):
            user.kwargs = {**user.kwargs, "inplace": False}
        elif user.op == "call_method" and user.target.endswith("_"):
            user.target = user.target[:-1]


def _on_device_of(module: nn.Module, owner: nn.Module) -> nn.Module:
    ref = next(iter([*owner.parameters(), *owner.buffers()]), None)
    if ref is None:
        return module
    module = module.to(device=ref.device)
    return module.to(ref.dtype) if ref.is_floating_point() else module


def _copy_constants(graph: fx.Graph, traced_root: nn.Module, owner: nn.Module) -> None:
    """Tensor constants the tracer stored on the traced copy must live on the owner too."""
    for node in graph.nodes:
        if node.op == "get_attr" and "." not in node.target and not hasattr(owner, node.target):
            value = getattr(traced_root, node.target)
            if isinstance(value, torch.Tensor):
                owner.register_buffer(node.target, value.clone(), persistent=False)
