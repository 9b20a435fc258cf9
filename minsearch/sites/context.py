"""What a site kind sees while it discovers its sites: the model, its trace and graph facts,
the modules no other kind has claimed, the graph ops by category, and the sites found so far.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch.fx as fx
from torch import nn

from minsearch.sites.graph_ops import GraphFacts, op_category, owner_of
from minsearch.sites.site import OpRef, Site
from minsearch.sites.trace import Trace


@dataclass(frozen=True)
class GraphOp:
    """One op of a graph-site category, located in its owner's forward."""

    node: fx.Node
    owner: str
    category: str
    ordinal: int  # among the ops of its category in one call of the owner
    count: int  # ops of its category in that call

    @property
    def target(self) -> str:
        return self.node.target if isinstance(self.node.target, str) else \
            self.node.target.__name__

    def ref(self, operands: tuple[tuple[str, int], ...] = (("input", 0),)) -> OpRef:
        return OpRef(self.category, self.ordinal, self.count, operands)


@dataclass
class DiscoveryContext:
    model: nn.Module
    trace: Trace
    facts: GraphFacts | None
    """Data-flow facts of the traced graph; None when the model could not be traced."""
    sites: list[Site] = field(default_factory=list)
    """Sites found by the kinds that ran before, in discovery order."""
    position: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Where each site is listed: module sites in module order, then graph sites in graph
    order, then sites built from other sites."""
    _claimed: set[str] = field(default_factory=set)
    _counters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self.module_index = {name: i for i, (name, _) in enumerate(self.model.named_modules())}
        self.attention_owners: dict[str, str] = (self.facts.attention_owners()
                                                 if self.facts else {})
        self._ops = self._graph_ops() if self.facts else []

    # -- modules ---------------------------------------------------------------------------

    def modules(self) -> Iterator[tuple[str, nn.Module]]:
        """``(name, module)`` of every non-root module no kind has claimed yet."""
        for name, module in self.model.named_modules():
            if name and name not in self._claimed:
                yield name, module

    def claim(self, name: str) -> None:
        self._claimed.add(name)

    def module_site(self, kind: str, name: str, module: nn.Module, detail: object) -> Site:
        """Claim the module ``name`` and make it a site of ``kind``."""
        self.claim(name)
        self.position[name] = (0, self.module_index[name])
        return Site(name, kind, (), type(module).__name__, name, None, detail)

    def graph_site(self, kind: str, op: GraphOp, op_name: str, detail: object,
                   operands: tuple[tuple[str, int], ...] = (("input", 0),)) -> Site:
        """A site of ``kind`` at a graph op, named ``owner.<op_name>_<i>``."""
        name = self.graph_name(op.owner, op_name)
        self.position[name] = (1, self.facts.index[op.node])
        return Site(name, kind, (), op.target, op.owner, op.ref(operands), detail)

    def derived_site(self, site: Site) -> Site:
        """A site built from other sites (listed after every module and graph site)."""
        self.position[site.name] = (2, len(self.position))
        return site

    # -- graph ops -------------------------------------------------------------------------

    def graph_ops(self, prefix: str) -> list[GraphOp]:
        """Ops whose category starts with ``prefix`` (``add``, ``norm:``, ``act:``), in graph
        order. Ops inside attention modules are the attention's own business and are left
        out; a module called several times (shared weights) yields its ops once."""
        return [op for op in self._ops if op.category.startswith(prefix)]

    def graph_name(self, owner: str, op: str) -> str:
        """The next free ``owner.<op>_<i>`` name (``<op>_<i>`` at the root)."""
        index = self._counters[(owner, op)]
        self._counters[(owner, op)] += 1
        return f"{owner}.{op}_{index}" if owner else f"{op}_{index}"

    def _graph_ops(self) -> list[GraphOp]:
        by_call: dict[tuple[str, str], list[fx.Node]] = defaultdict(list)
        for node in self.facts.nodes:
            category = op_category(node)
            if category is not None:
                by_call[(owner_of(node)[1], category)].append(node)
        ops, seen = [], set()
        for node in self.facts.nodes:
            category = op_category(node)
            if category is None:
                continue
            owner, key = owner_of(node)
            if any(owner == a or owner.startswith(a + ".") for a in self.attention_owners if a):
                continue
            nodes = by_call[(key, category)]
            ordinal = nodes.index(node)
            if (owner, category, ordinal) in seen:
                continue
            seen.add((owner, category, ordinal))
            ops.append(GraphOp(node, owner, category, ordinal, len(nodes)))
        return ops
