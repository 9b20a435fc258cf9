"""``apply_``: rewrite a model in place according to a genome, and report every change."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, Swap
from minsearch.catalog.registry import edits_for
from minsearch.errors import UserError
from minsearch.sites import Discovery, Site, find_sites
from minsearch.sites.kind import get_kind
from minsearch.surgery.genome import Genome
from minsearch.surgery.rewrite import rewrite_owner


@dataclass(frozen=True)
class Change:
    site: Site
    config: OptionConfig
    edits: tuple[Edit, ...]

    @property
    def before(self) -> str:
        """What was there: a class name, or the op (``add``, ``gelu``)."""
        return self.site.target

    @property
    def after(self) -> str:
        """What is there now: class names, or the role of the operand an add now passes on."""
        return "+".join(edit.describe() for edit in self.edits)

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

    Sites the genome does not select are kept. Every selected option's handler is asked for
    its edits first, on the unchanged model; two genes whose edits touch the same site are a
    ``UserError``, raised before the model is touched (so are all errors in the genome). Then
    module swaps are made outermost first (a replaced block keeps its children's names, so a
    child's swap lands in it), and graph edits are rewritten owner by owner.
    ``example_input`` (tensor or shape) is needed by options that must know shapes
    (``layerscale``).
    """
    genome = Genome.from_json(genome)
    discovery = discovery or find_sites(model, example_input)
    by_name = {s.name: s for s in discovery.sites}
    changes = []
    for name, config in genome.resolve(discovery).items():
        if config.name == "keep":
            continue
        site = by_name[name]
        current = get_kind(site.kind).current(site, model, discovery)
        changes.append(Change(site, config, tuple(edits_for(config, site, current))))
    _check_overlaps(changes)
    swaps = [e for c in changes for e in c.edits if isinstance(e, Swap)]
    for swap in sorted(swaps, key=lambda e: e.target.count(".")):
        model.set_submodule(swap.target, swap.module)
    graph_edits: dict[str, list[tuple[Site, Edit]]] = defaultdict(list)
    for change in changes:
        for edit in change.edits:
            if not isinstance(edit, Swap):
                site = by_name[edit.target]
                graph_edits[site.owner].append((site, edit))
    for owner_name, edits in graph_edits.items():
        owner = model.get_submodule(owner_name) if owner_name else model
        rewrite_owner(owner, edits, discovery.leaf_types)
    order = {s.name: i for i, s in enumerate(discovery.sites)}
    return SurgeryReport(sorted(changes, key=lambda c: order[c.site.name]))


def _check_overlaps(changes: list[Change]) -> None:
    """Each site may be touched by one gene's edits only (a pair rewrites its norm and its
    residual: neither may also be changed on its own)."""
    touched: dict[str, Change] = {}
    for change in changes:
        for target in dict.fromkeys(edit.target for edit in change.edits):
            other = touched.setdefault(target, change)
            if other is not change:
                raise UserError(f"{target} is changed twice: by {other.config.name} at "
                                f"{other.site.name} and by {change.config.name} at "
                                f"{change.site.name}; keep one of the two rules.")
