"""A site is one standard component of a model that a gene can keep, remove or replace.

Module sites are modules (a norm, an activation, an attention block, a linear or conv layer):
their name is the module's fully qualified name. Graph sites are operations inside some
module's ``forward`` (a residual add, a functional norm or activation call): their name is the
owning module's name plus ``<op>_<i>``, the i-th such op in that forward, e.g.
``blocks.0.residual_1``, and their :class:`OpRef` says which op it is. After surgery a graph
site's replacement module lives at that name. A site's ``detail`` is the frozen dataclass its
kind declares (see :mod:`minsearch.sites.kind`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

_INDEX = re.compile(r"^\d+$")


@dataclass(frozen=True)
class OpRef:
    """Where a graph site's op is in its owner's traced ``forward``.

    Attributes:
        category: the op's category (``add``, ``norm:layer_norm``, ``act:gelu``; see
            :func:`minsearch.sites.graph_ops.op_category`).
        ordinal: its index among the ops of that category in one call of the owner.
        count: how many ops of that category one call of the owner holds (a forward traced
            alone must hold as many, or the op cannot be found again).
        operands: ``(role, argument index)`` of the op's operands, in the order a
            replacement module is called with them; a rewire names one role.
    """

    category: str
    ordinal: int
    count: int
    operands: tuple[tuple[str, int], ...] = (("input", 0),)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, _ in self.operands)


@dataclass(frozen=True)
class Site:
    """One gene location.

    Attributes:
        name: fully qualified name (module path, or ``owner.<op>_<i>`` for graph sites).
        kind: the name of a registered :class:`~minsearch.sites.kind.SiteKind`.
        options: names of the catalog options that apply here (``keep`` first).
        target: the module class name, or the function/method name of a graph op.
        owner: the module whose ``forward`` holds a graph site ("" is the root); for a module
            site, the module's own name.
        op: for graph sites, which op of the owner's forward it is; None for module sites.
        detail: the kind's typed facts (e.g. :class:`~minsearch.sites.kinds.residual.
            ResidualDetail`: shortcut, branch ops, shape).
    """

    name: str
    kind: str
    options: tuple[str, ...]
    target: str
    owner: str
    op: OpRef | None = None
    detail: Any = field(default=None, compare=False, hash=False)

    @property
    def graph(self) -> bool:
        """True for graph sites (rewritten in the owner's traced graph)."""
        return self.op is not None

    @property
    def block(self) -> str:
        """The innermost repeated unit holding the site: its path up to the last numeric part
        before the site's own name.

        ``layer1.0.bn1`` -> ``layer1.0``; ``layer1.0.downsample.1`` -> ``layer1.0``;
        ``stages.0.blocks.1.norm`` -> ``stages.0.blocks.1``; a site outside any indexed
        container is its own block.
        """
        parts = self.name.split(".")
        for i in range(len(parts) - 2, -1, -1):
            if _INDEX.match(parts[i]):
                return ".".join(parts[: i + 1])
        return self.name

    @property
    def stage(self) -> str:
        """The container of :attr:`block`: ``layer1.0`` -> ``layer1``;
        ``stages.0.blocks.1`` -> ``stages.0``; ``blocks.3`` -> ``blocks``."""
        block = self.block
        if block == self.name:
            return self.name
        parts = block.split(".")[:-1]
        if len(parts) >= 2 and not _INDEX.match(parts[-1]) and _INDEX.match(parts[-2]):
            parts = parts[:-1]
        return ".".join(parts)

    def to_json(self) -> dict[str, Any]:
        detail = dataclasses.asdict(self.detail) if dataclasses.is_dataclass(self.detail) else {}
        return {
            "name": self.name,
            "kind": self.kind,
            "options": list(self.options),
            "target": self.target,
            "owner": self.owner,
            "graph": self.graph,
            "block": self.block,
            "stage": self.stage,
            "detail": detail,
        }


@dataclass(frozen=True)
class Unavailable:
    """A kind of site that could not be searched for in part of a model, and why."""

    kind: str
    where: str
    reason: str


@dataclass
class Discovery:
    """What :func:`minsearch.sites.find_sites` found: the sites, plus what it could not see."""

    sites: list[Site]
    unavailable: list[Unavailable] = field(default_factory=list)
    leaf_types: frozenset[type] = frozenset()
    """Classes the tracer had to treat as opaque after they failed to trace (their inner
    residuals are not visible)."""

    shape_error: str | None = None
    """Why shapes could not be propagated from the example input (None: they were, or no
    example input was given)."""

    @property
    def leaf_classes(self) -> tuple[str, ...]:
        return tuple(sorted(c.__name__ for c in self.leaf_types))

    def __iter__(self):
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)

    def __getitem__(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"No site named {name!r}; known sites start with: "
                       f"{', '.join(s.name for s in self.sites[:5])} …")

    def of_kind(self, kind: str) -> list[Site]:
        return [s for s in self.sites if s.kind == kind]

    def counts(self) -> dict[str, int]:
        """Sites per registered kind (every kind listed, zeros included)."""
        from minsearch.sites.kind import kind_names

        return {k: len(self.of_kind(k)) for k in kind_names()}
