"""``find_sites``: every standard component of a model, with the options that apply to it."""

from __future__ import annotations

import dataclasses

import torch
import torch.fx as fx
from torch import nn

from minsearch.catalog.registry import options_at
from minsearch.sites.context import DiscoveryContext
from minsearch.sites.graph_ops import GraphFacts
from minsearch.sites.kind import all_kinds
from minsearch.sites.parts import capture
from minsearch.sites.site import Discovery, Unavailable
from minsearch.sites.trace import Trace


def find_sites(model: nn.Module, example_input: torch.Tensor | tuple[int, ...] | None = None
               ) -> Discovery:
    """Find every site in ``model``: each registered kind (:mod:`minsearch.sites.kind`)
    discovers its own, and the catalog says which options apply at each.

    Module sites (norms, activations, attention, linear, conv) come from the module tree and
    are always found. Graph sites (residual adds, functional norms/activations, modules that
    compute attention by hand) come from an FX trace; where it fails they are reported in
    ``Discovery.unavailable`` with the reason. ``example_input`` (a tensor or a shape) lets
    shapes be propagated (on the meta device): residual sites then know their channel count.
    The model itself is never modified.
    """
    traced = capture(model)
    facts = GraphFacts(traced.graph, traced.root) if traced.ok else None
    shape_error = None
    if facts is not None and example_input is not None:
        shape_error = ("shapes are not propagated through a model captured layer by layer; "
                       "residual channels come from their norms") if traced.stitched else \
            _propagate_shapes(traced, example_input)
    ctx = DiscoveryContext(model, traced, facts)
    for kind in all_kinds():
        ctx.sites.extend(kind.discover(ctx))
    ordered = sorted(ctx.sites, key=lambda s: ctx.position.get(s.name, (3, 0)))
    sites = [dataclasses.replace(s, options=options_at(s)) for s in ordered]
    return Discovery(sites, _unavailable(traced), traced.leaves, shape_error)


class _ShapeRecorder(fx.Interpreter):
    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta["shape"] = tuple(result.shape)
        return result


def _propagate_shapes(traced: Trace, example_input) -> str | None:
    """Run the traced copy on a meta tensor shaped like the example input, recording every
    node's output shape in ``node.meta["shape"]``. Returns why it failed, or None."""
    shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else tuple(
        example_input)
    dtype = example_input.dtype if isinstance(example_input, torch.Tensor) else torch.float32
    try:
        # the structural copy's buffers are real; move everything to meta (the copy is ours)
        _ShapeRecorder(fx.GraphModule(traced.root, traced.graph).to("meta")).run(
            torch.empty(shape, dtype=dtype, device="meta"))
    except Exception as err:  # noqa: BLE001 - shapes are optional facts; sites stand without
        for node in traced.graph.nodes:
            node.meta.pop("shape", None)
        return f"input shape {shape} does not fit the model ({type(err).__name__}: " \
               f"{str(err).splitlines()[0] if str(err) else ''})"
    return None


def _unavailable(traced: Trace) -> list[Unavailable]:
    if not traced.ok:
        reason = f"{traced.error}; module sites are still listed"
        return [Unavailable("residual", "<model>", reason)]
    if traced.stitched:
        return [Unavailable("residual", path, f"{cls}'s own forward could not be traced "
                            f"({error}); its layers were captured on their own, so only adds "
                            f"in {cls}'s own forward are not seen")
                for path, cls, error in traced.failures]
    return [Unavailable("residual", path, f"{cls} could not be traced ({error}); residuals "
                        f"inside {cls} are not visible")
            for path, cls, error in traced.failures]
