"""``apply_``: rewrite a model in place according to a genome, and report every change."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.registry import get_option
from minsearch.sites import Discovery, Site, find_sites
from minsearch.surgery.genome import Genome
from minsearch.surgery.rewrite import GraphEdit, rewrite_owner


@dataclass(frozen=True)
class Change:
    site: Site
    config: OptionConfig
    before: str  # what was there: a class name, or the op ("add", "gelu")
    after: str  # what is there now: a class name, or "shortcut"/"branch" for a rewired add

    def __str__(self) -> str:
        return f"{self.site.name}: {self.before} -> {self.after} ({self.config})"


@dataclass
class SurgeryReport:
    changes: list[Change] = field(default_factory=list)

    @property
    def genome(self) -> dict[str, dict[str, Any]]:
        """The resolved genome, one exact site name per change: log it, and rebuild the same
        model with ``apply_(fresh_model, Genome.from_json(report.genome))``."""
        return {c.site.name: c.config.to_json() for c in self.changes}

    def __len__(self) -> int:
        return len(self.changes)

    def __str__(self) -> str:
        return "\n".join(map(str, self.changes)) or "no changes"


def apply_(model: nn.Module, genome: Genome | dict, example_input: torch.Tensor |
           tuple[int, ...] | None = None, discovery: Discovery | None = None) -> SurgeryReport:
    """Rewrite ``model`` in place so that each site selected by ``genome`` gets its option.

    Sites the genome does not select are kept. Module sites are swapped deepest first; graph
    sites (residual adds, functional calls) are rewritten owner by owner. ``example_input``
    (tensor or shape) is needed by options that must know shapes (``layerscale``). Errors in
    the genome raise ``ValueError`` before the model is touched.
    """
    genome = Genome.from_json(genome)
    discovery = discovery or find_sites(model, example_input)
    resolved = genome.resolve(discovery)
    by_name = {s.name: s for s in discovery.sites}
    chosen = [(by_name[name], config) for name, config in resolved.items()
              if config.name != "keep"]
    _check_pairs(chosen, by_name)
    report = SurgeryReport()
    edits: dict[str, list[GraphEdit]] = defaultdict(list)
    module_sites = sorted((sc for sc in chosen if not sc[0].graph),
                          key=lambda sc: -sc[0].name.count("."))
    for site, config in module_sites:
        old = model.get_submodule(site.name)
        new = get_option(site.kind, config.name).handler(config, site, old)
        if new is not old:
            model.set_submodule(site.name, new)
        report.changes.append(Change(site, config, type(old).__name__, type(new).__name__))
    for site, config in chosen:
        if site.kind == "pair":
            norm = model.get_submodule(site.detail["norm"])
            squash, gate = get_option(site.kind, config.name).handler(config, site, norm)
            model.set_submodule(site.detail["norm"], squash)
            edits[site.owner].append(GraphEdit(by_name[site.detail["residual"]], gate))
            after = f"{type(squash).__name__}+{type(gate).__name__}"
            report.changes.append(Change(site, config, site.target, after))
        elif site.graph:
            owner = model.get_submodule(site.owner) if site.owner else model
            old = _lifted(site, owner, discovery)
            result = get_option(site.kind, config.name).handler(config, site, old)
            edits[site.owner].append(GraphEdit(site, result))
            after = result if isinstance(result, str) else type(result).__name__
            report.changes.append(Change(site, config, site.target, after))
    leaves = discovery.leaf_types
    for owner_name, owner_edits in edits.items():
        owner = model.get_submodule(owner_name) if owner_name else model
        rewrite_owner(owner, owner_edits, leaves)
    order = {s.name: i for i, s in enumerate(discovery.sites)}
    report.changes.sort(key=lambda c: order[c.site.name])
    return report


def _check_pairs(chosen: list, by_name: dict[str, Site]) -> None:
    """A pair rewrites its norm and its residual: neither may be changed on its own too."""
    changed = {site.name for site, _ in chosen}
    for site, config in chosen:
        if site.kind == "pair":
            for part in (site.detail["norm"], site.detail["residual"]):
                if part in changed:
                    raise ValueError(f"{part} is changed twice: on its own and by {config.name} "
                                     f"at {site.name}; keep one of the two rules.")


def _lifted(site: Site, owner: nn.Module, discovery: Discovery) -> nn.Module | None:
    """The module a functional norm site stands for (None for residuals and activations)."""
    if site.kind != "norm":
        return None
    from minsearch.sites.graph_ops import op_category, owner_of
    from minsearch.sites.trace import trace
    from minsearch.surgery.lift import lift_norm

    traced = trace(owner, discovery.leaf_types)
    nodes = [n for n in traced.graph.nodes
             if op_category(n) == site.detail["category"] and owner_of(n)[0] == ""]
    return lift_norm(nodes[site.detail["ordinal"]], owner)
