"""Capture a transformers model part by part, and stitch the parts into one graph.

A transformers model cannot be traced whole (see :mod:`minsearch.sites.hf_trace`), but its
layers can. :func:`capture` traces the model; where a transformers class fails (the model
itself, its ``LlamaModel``, T5's ``T5Stack``...), each instance of that class is traced on its
own, and where an instance fails too, each of its children, down to the layers that hold the
residual adds. The parts' graphs are stitched into one graph whose nodes carry full module
paths (``model.layers.3.mlp.down_proj``), so the residual rule, the pair rule and graph-site
names work as on a model traced whole. A residual whose fork lies outside its part cannot be
seen; none does in the 18 families measured (docs/huggingface.md).

Each part is later rewritten on its own (:func:`minsearch.surgery.rewrite.rewrite_owner`
traces the owner alone), so a part's op counts are those of its owner traced alone.
"""

from __future__ import annotations

import torch.fx as fx
from torch import nn

from minsearch.sites.hf_trace import is_transformers
from minsearch.sites.trace import Trace, trace


def capture(model: nn.Module, leaves: frozenset[type] = frozenset()) -> Trace:
    """The model's trace, or for a transformers model that does not trace whole, the stitched
    trace of its parts (``Trace.root`` is then the model itself: read, never changed)."""
    whole = trace(model, leaves)
    if not is_transformers(model):
        return whole
    parts: list[tuple[str, Trace]] = []
    failures: list[tuple[str, str, str]] = []
    if whole.ok:
        parts.append(("", whole))
        pending = _instances(model, whole)
        leaves = whole.leaves
    else:
        pending = _children(model, "")
    while pending:
        path = pending.pop(0)
        module = model.get_submodule(path)
        part = trace(module, leaves)
        if part.ok:
            parts.append((path, part))
            leaves = part.leaves
            pending.extend(f"{path}.{p}" for p in _instances(module, part))
        else:
            failures.append((path, type(module).__name__, part.error or ""))
            pending.extend(_children(model, path))
    if not parts:
        return whole
    if len(parts) == 1 and parts[0][0] == "":
        return whole
    graph = stitch(model, parts)
    lost = [(p, c, e) for p, c, e in failures if _has_own_ops(model.get_submodule(p))]
    return Trace(graph, model, leaves, lost, stitched=True)


def _instances(module: nn.Module, traced: Trace) -> list[str]:
    """Paths (relative to ``module``) of the modules of transformers classes that became
    leaves while tracing ``module`` (each is then traced on its own)."""
    failed = {cls for cls in traced.leaves if cls.__module__.startswith("transformers.")}
    return [name for name, m in module.named_modules()
            if name and type(m) in failed and next(m.children(), None) is not None
            and not any(name.startswith(o + ".") for o in _outer(module, failed, name))]


def _outer(module: nn.Module, failed: set[type], name: str) -> list[str]:
    parts = name.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
    return [p for p in prefixes if type(module.get_submodule(p)) in failed]


def _children(model: nn.Module, path: str) -> list[str]:
    """Children of ``path`` worth tracing: containers are looked through (a ``ModuleList`` is
    not callable), modules without children hold no residual."""
    module = model.get_submodule(path) if path else model
    out = []
    for name, child in module.named_children():
        full = f"{path}.{name}" if path else name
        if next(child.children(), None) is None:
            continue
        if isinstance(child, nn.ModuleList | nn.ModuleDict):
            out.extend(_children(model, full))
        else:
            out.append(full)
    return out


def _has_own_ops(module: nn.Module) -> bool:
    return not isinstance(module, nn.ModuleList | nn.ModuleDict | nn.Sequential)


def stitch(model: nn.Module, parts: list[tuple[str, Trace]]) -> fx.Graph:
    """One graph holding every part's nodes, with module paths made absolute (targets and
    ``nn_module_stack``); each part's placeholders stay its own inputs."""
    out = fx.Graph()
    results = []
    for path, part in parts:
        env: dict[fx.Node, fx.Node] = {}
        cls = type(model.get_submodule(path)) if path else type(model)
        for node in part.graph.nodes:
            if node.op == "output":
                results.append(fx.map_arg(node.args[0], env.__getitem__))
                continue
            new = out.node_copy(node, env.__getitem__)
            new.meta = dict(node.meta)
            if path:
                if node.op in ("call_module", "get_attr"):
                    new.target = f"{path}.{node.target}"
                stack = node.meta.get("nn_module_stack") or {}
                new.meta["nn_module_stack"] = {path: (path, cls), **{
                    f"{path}.{key}": (f"{path}.{p}", c) for key, (p, c) in stack.items()}}
            env[node] = new
    out.output(tuple(results))
    return out
