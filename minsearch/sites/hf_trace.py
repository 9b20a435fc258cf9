"""How the site tracer reads transformers' code (its layers' ``forward`` conventions).

Measured on 18 families of transformers 5.24: FX fails on a whole model (the forward takes a
dozen keyword arguments, builds masks with data-dependent control flow and returns a
``ModelOutput``) but traces each decoder/encoder layer once

- the decorators on ``forward`` are looked through (``deprecate_kwarg`` and gradient
  checkpointing wrap it in ``(*args, **kwargs)``, which FX cannot re-code);
- every named argument is a placeholder (a rewritten layer must still accept the masks,
  caches and position embeddings its model passes); the attention module that takes them is a
  leaf, so they flow through untouched;
- ``**kwargs`` is passed on: a call that unpacks it (``self.self_attn(x, **kwargs)``) becomes
  ``call_with_kwargs(self.self_attn, args, kwargs, extra)``, so a rewritten layer hands
  ``position_ids``, ``use_cache``... to its attention as the original did; where the forward
  never unpacks it, a run-time check refuses extra keywords rather than dropping them;
- ``hidden_states.dtype`` is the model's float dtype (T5 and Whisper clamp only in fp16);
- GPT-2's block branches on ``encoder_hidden_states is not None`` (always true for a proxy):
  when every-placeholder tracing fails, cross-attention inputs (``encoder_*``) are fixed to
  None, then all optional arguments to their defaults (FX asserts them at run time).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.fx as fx
from torch import nn

_CROSS = ("encoder_", "cross_")


def is_transformers(module: nn.Module) -> bool:
    return type(module).__module__.startswith("transformers.")


def is_whole_model(cls: type) -> bool:
    """A transformers ``PreTrainedModel`` (``LlamaModel``, ``T5Stack``): when one fails inside
    a trace, its parent is not retried with it as a leaf; it is captured part by part."""
    return cls.__module__.startswith("transformers.") and any(
        base.__name__ == "PreTrainedModel" for base in cls.__mro__)


def float_dtype(module: nn.Module) -> torch.dtype:
    ref = next((p for p in module.parameters() if p.is_floating_point()), None)
    return ref.dtype if ref is not None else torch.float32


def _forward_params(module: nn.Module) -> list[inspect.Parameter]:
    fn = inspect.unwrap(type(module).forward)
    return list(inspect.signature(fn).parameters.values())[1:]  # without self


def _optional(module: nn.Module, pick: Callable[[inspect.Parameter], bool]) -> dict:
    return {p.name: p.default for p in _forward_params(module)
            if p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and pick(p)}


def all_placeholders(module: nn.Module) -> dict:
    return {}


def cross_inputs_none(module: nn.Module) -> dict:
    return _optional(module, lambda p: p.default is None and p.name.startswith(_CROSS))


def all_defaults(module: nn.Module) -> dict:
    return _optional(module, lambda p: True)


def argument_policies(module: nn.Module) -> list[Callable[[nn.Module], dict]]:
    """Concrete-argument choices, tried in order until one traces."""
    return [all_placeholders, cross_inputs_none, all_defaults]


MARKER = "__minsearch_var_keyword__"
"""What ``**kwargs`` unpacks to while tracing: one key, replaced after tracing."""


def call_with_kwargs(fn, args: tuple, kwargs: dict, extra: dict):
    """``fn(*args, **kwargs, **extra)``: a call that unpacked the traced ``**kwargs``."""
    return fn(*args, **kwargs, **extra)


def splat_var_keyword(graph: fx.Graph) -> None:
    """Calls that unpacked ``**kwargs`` (traced as one ``MARKER`` keyword) call
    :func:`call_with_kwargs` instead; the run-time check stays only where none did."""
    var_kw = next((n for n in graph.nodes if n.op == "placeholder"
                   and str(n.target).startswith("**")), None)
    if var_kw is None:
        return
    forwarded = False
    for node in list(graph.nodes):
        marker = node.kwargs.get(MARKER) if node.op in ("call_module", "call_function") \
            else None
        if marker is None:
            continue
        kwargs = {k: v for k, v in node.kwargs.items() if k != MARKER}
        with graph.inserting_before(node):
            callee = graph.get_attr(node.target) if node.op == "call_module" else node.target
            new = graph.call_function(call_with_kwargs, (callee, node.args, kwargs, var_kw))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        if isinstance(marker, fx.Node) and not marker.users:
            graph.erase_node(marker)
        forwarded = True
    if forwarded:
        for node in list(graph.nodes):
            if node.op == "call_function" and node.target is no_extra_kwargs:
                graph.erase_node(node)


@torch.fx.node.has_side_effect
def no_extra_kwargs(kwargs: dict) -> None:
    """Run-time check of a rewritten transformers forward: its ``**kwargs`` were traced empty."""
    if kwargs:
        raise TypeError(f"This layer's forward was rewritten by minsearch and does not pass "
                        f"extra keyword arguments on to its submodules, but got "
                        f"{', '.join(sorted(kwargs))}; call the model without them (or keep "
                        f"the genes of this layer).")


def check_var_keyword(tracer: fx.Tracer) -> None:
    """After the root's placeholders exist: a ``**kwargs`` placeholder gets its run-time check."""
    for node in list(tracer.graph.nodes):
        if node.op == "placeholder" and str(node.target).startswith("**"):
            tracer.create_node("call_function", no_extra_kwargs, (node,), {})


class DtypeProxy(fx.Proxy):
    """A proxy whose ``.dtype`` is the tracer's float dtype, not a traced attribute."""

    def __getattr__(self, k: str):
        if k == "dtype":
            return self.tracer.float_dtype
        return super().__getattr__(k)
