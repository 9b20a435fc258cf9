"""Graph surgery on one owner module: its ``forward`` is replaced by a rewritten FX graph.

The owner keeps its class, its children and its parameters, so state_dict keys of untouched
parts stay the same, and the root model can be rewritten in place like any submodule. New
modules (gates, lifted norms) are added as children named after their site
(``blocks.0.residual_1``). The graph is linted and dead code (a dropped branch) is removed,
and so are the children and attributes that only the removed code used: a candidate holds
only what its forward can reach (``param_bytes`` counts what it holds).

Written by hand because no library does it: ``torch.fx.replace_pattern`` matches patterns, not
data-flow roles (which operand of an add is the shortcut), and returns a new GraphModule rather
than changing a module inside a model.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from minsearch.catalog.edits import Edit, ReplaceOp, Rewire
from minsearch.errors import UserError
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


def rewrite_owner(owner: nn.Module, edits: list[tuple[Site, Edit]],
                  leaves: frozenset[type] = frozenset()) -> None:
    """Carry out ``edits`` (:class:`ReplaceOp`/:class:`Rewire` at graph sites whose owner is
    ``owner``) on ``owner``, in place."""
    traced = trace(owner, leaves)
    if not traced.ok:
        raise UserError(f"Cannot rewrite {type(owner).__name__}: {traced.error}.")
    graph = traced.graph
    used_before = _used_attributes(graph)
    local: dict[str, list[fx.Node]] = defaultdict(list)
    for node in graph.nodes:
        category = op_category(node)
        if category is not None and owner_of(node)[0] == "":
            local[category].append(node)
    for site, edit in edits:
        op = site.op
        found = local[op.category]
        if len(found) != op.count:
            raise UserError(f"Cannot rewrite {site.name}: {site.owner or 'the model'}'s forward "
                            f"traced alone has {len(found)} {op.category} ops, {op.count} in "
                            f"the whole model (it depends on how it is called).")
        node = found[op.ordinal]
        operands = [node.args[index] for _, index in op.operands]
        if isinstance(edit, Rewire):
            _rewire(graph, owner, node, operands[op.roles.index(edit.role)])
        elif isinstance(edit, ReplaceOp):
            _replace(graph, owner, node, site, edit.module, tuple(operands))
        else:
            raise TypeError(f"A graph site takes ReplaceOp or Rewire edits, not {edit!r}.")
    _copy_constants(graph, traced.root, owner)
    graph.owning_module = fx.GraphModule(owner, graph)  # purity checks need the modules
    graph.eliminate_dead_code()
    graph.lint()
    _delete_unused(owner, used_before - _used_attributes(graph))
    owner.__dict__["forward"] = GraphForward(owner, graph)


def _used_attributes(graph: fx.Graph) -> set[str]:
    """Names of the owner's own attributes (children, parameters, buffers) the graph uses."""
    return {str(node.target).split(".", 1)[0] for node in graph.nodes
            if node.op in ("call_module", "get_attr")}


def _delete_unused(owner: nn.Module, names: set[str]) -> None:
    """Drop the children and tensors the rewrite left unused (a dropped branch's MLP), as
    ``GraphModule.delete_all_unused_submodules`` does; what the original forward never used
    (it may be called from elsewhere) stays."""
    for name in names:
        if name in owner._modules or name in owner._parameters or name in owner._buffers:
            delattr(owner, name)


def local_name(site: Site) -> str:
    return site.name[len(site.owner) + 1:] if site.owner else site.name


def _rewire(graph: fx.Graph, owner: nn.Module, node: fx.Node, kept: fx.Node) -> None:
    users = list(node.users)
    node.replace_all_uses_with(kept)
    graph.erase_node(node)
    _not_in_place(users, owner)


def _replace(graph: fx.Graph, owner: nn.Module, node: fx.Node, site: Site, module: nn.Module,
             operands: tuple[Any, ...]) -> None:
    name = local_name(site)
    if name in owner._modules and not isinstance(owner._modules[name], type(module)):
        raise UserError(f"{site.owner or 'The model'} already has a child named {name!r}; "
                        f"it was rewritten before. Apply genomes to a fresh model.")
    owner.add_module(name, _on_device_of(module, owner))
    with graph.inserting_before(node):
        new = graph.call_module(name, operands)
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
