"""``find_sites``: every standard component of a model, with the options that apply to it."""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.fx as fx
from torch import nn

from minsearch.sites.classify import (
    attention_impl,
    is_activation,
    is_conv,
    is_linear,
    is_norm,
    named_like_attention,
)
from minsearch.sites.graph_ops import GraphFacts, Residual, op_category, owner_of
from minsearch.sites.site import Discovery, Site, Unavailable
from minsearch.sites.trace import Trace, trace


def find_sites(model: nn.Module, example_input: torch.Tensor | tuple[int, ...] | None = None
               ) -> Discovery:
    """Find every site in ``model``.

    Module sites (norms, activations, attention, linear, conv) come from the module tree and
    are always found. Graph sites (residual adds, functional norms/activations, modules that
    compute attention by hand) come from an FX trace; where it fails they are reported in
    ``Discovery.unavailable`` with the reason. ``example_input`` (a tensor or a shape) lets
    shapes be propagated (on the meta device): residual sites then know their channel count.
    The model itself is never modified.
    """
    from minsearch.catalog.registry import options_at

    traced = trace(model)
    facts = GraphFacts(traced.graph, traced.root) if traced.ok else None
    attn_owners = facts.attention_owners() if facts else {}
    shape_error = None
    if facts is not None and example_input is not None:
        shape_error = _propagate_shapes(traced, example_input)

    drafts: list[Site] = []
    for name, module in model.named_modules():
        kind, detail = _module_kind(module, name, attn_owners, traced.leaves)
        if kind is not None and name:
            drafts.append(Site(name, kind, (), type(module).__name__, name, False, detail))
    if facts is not None:
        drafts.extend(_graph_sites(facts, attn_owners))
    drafts.extend(_pair_sites(drafts))
    depth = sum(s.kind == "residual" for s in drafts)
    sites = []
    for site in drafts:
        if site.kind == "residual":
            site.detail["depth"] = depth
        sites.append(Site(site.name, site.kind, options_at(site), site.target, site.owner,
                          site.graph, site.detail))
    return Discovery(sites, _unavailable(traced), traced.leaves, shape_error)


def _module_kind(module: nn.Module, name: str, attn_owners: dict[str, str],
                 failed_leaves: frozenset[type]) -> tuple[str | None, dict]:
    if is_norm(module):
        from minsearch.layers.norm_info import norm_info

        try:
            info = norm_info(module)
        except ValueError:
            return "norm", {"family": "unknown"}
        return "norm", {"family": info.family, "channels": info.channels,
                        "channel_dim": info.channel_dim}
    if is_activation(module):
        return "activation", {}
    impl = attention_impl(module) or attn_owners.get(name)
    if impl is None and type(module) in failed_leaves and named_like_attention(module):
        impl = "other"
    if impl is not None:
        return "attention", {"impl": impl}
    if is_linear(module):
        return "linear", {"in": module.in_features, "out": module.out_features}
    if is_conv(module):
        return "conv", {"in": module.in_channels, "out": module.out_channels,
                        "kernel": list(module.kernel_size)}
    return None, {}


def _graph_sites(facts: GraphFacts, attn_owners: dict[str, str]) -> list[Site]:
    """Residual adds and functional norm/activation calls, named ``owner.<op>_<i>``.

    Ordinals count ops of one category within one call of the owner's forward, which is how
    surgery finds the same op again in a trace of the owner alone. A module called several
    times (shared weights) yields its sites once."""
    by_call: dict[tuple[str, str], list] = defaultdict(list)
    for node in facts.nodes:
        category = op_category(node)
        if category is not None:
            by_call[(owner_of(node)[1], category)].append(node)
    adds_per_call = {key[0]: len(nodes) for key, nodes in by_call.items() if key[1] == "add"}
    found: dict[tuple[str, str, int], Site] = {}
    counters: dict[tuple[str, str], int] = defaultdict(int)
    for node in facts.nodes:
        category = op_category(node)
        if category is None:
            continue
        owner, key = owner_of(node)
        if any(owner == a or owner.startswith(a + ".") for a in attn_owners if a):
            continue  # adds and calls inside attention are the attention's own business
        ordinal = by_call[(key, category)].index(node)
        if (owner, category, ordinal) in found:
            continue
        if category == "add":
            residual = facts.residual(node)
            if residual is None:
                continue
            kind, op, detail = "residual", "residual", _residual_detail(residual)
            detail["owner_adds"] = adds_per_call[key]
            detail["pair_norm"] = facts.pair_norm(residual)
        else:
            kind = "norm" if category.startswith("norm:") else "activation"
            op = category.split(":", 1)[1]
            detail = {"family": "functional"} if kind == "norm" else {}
        detail.update(category=category, ordinal=ordinal)
        index = counters[(owner, op)]
        counters[(owner, op)] += 1
        name = f"{owner}.{op}_{index}" if owner else f"{op}_{index}"
        target = node.target if isinstance(node.target, str) else node.target.__name__
        found[(owner, category, ordinal)] = Site(name, kind, (), target, owner, True, detail)
    return list(found.values())


def _pair_sites(drafts: list[Site]) -> list[Site]:
    """One ``pair`` site per residual whose branch starts with a norm of its own, named
    ``owner.pair_<i>`` after its residual ``owner.residual_<i>``."""
    norms = {s.name: s for s in drafts if s.kind == "norm"}
    pairs = []
    for site in drafts:
        norm = norms.get(site.detail.get("pair_norm")) if site.kind == "residual" else None
        if norm is None:
            continue
        detail = {"norm": norm.name, "residual": site.name,
                  **{k: norm.detail[k] for k in ("family", "channels", "channel_dim")
                     if k in norm.detail}}
        # the add may see another layout than the norm (ConvNeXt: norm in NHWC, add in NCHW)
        detail["add_channel_dim"] = site.detail.get("channel_dim", detail.get("channel_dim"))
        name = site.name.rsplit("residual_", 1)
        pairs.append(Site("pair_".join(name), "pair", (), f"{norm.target}+add", site.owner,
                          True, detail))
    return pairs


def _residual_detail(residual: Residual) -> dict:
    detail = {"shortcut": residual.shortcut, "shortcut_arg": residual.shortcut_arg,
              "branch_ops": residual.branch_ops, "shortcut_ops": residual.shortcut_ops}
    shape = residual.node.meta.get("shape")
    if shape is not None:
        shape = list(shape)
        detail["shape"] = shape
        if len(shape) >= 2:
            # channels-first for image-like maps (N, C, H, W), channels-last for tokens (B, N, C)
            detail["channel_dim"] = 1 if len(shape) >= 4 else -1
            detail["channels"] = int(shape[detail["channel_dim"]])
    return detail


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
        return [Unavailable(kind, "<model>", reason) for kind in ("residual",)]
    return [Unavailable("residual", path, f"{cls} could not be traced ({error}); residuals "
                        f"inside {cls} are not visible")
            for path, cls, error in traced.failures]
