"""The site-kind contract: a kind of site is a plugin.

One module per kind (``minsearch/sites/kinds/<kind>.py``) subclasses :class:`SiteKind`,
declares the kind's ``name``, its typed, frozen ``detail`` dataclass and how its sites are
found, and registers an instance with :func:`register_kind`. The options of a kind live in
one catalog module (``minsearch/catalog/<kind>.py``). Nothing else names a kind: discovery,
surgery, genomes and search spaces all go through this registry, so a kind added by a plugin
module (a space file's ``plugins:``) is discovered, applied and searched like a built-in one.

When each method is called:

- :meth:`SiteKind.discover` once per :func:`~minsearch.sites.find_sites` call, kinds in
  ascending ``order``; it sees the model, its trace and every site found by earlier kinds
  (:class:`~minsearch.sites.context.DiscoveryContext`), and returns its own sites with empty
  ``options`` (the catalog fills them in). A module can belong to one module kind only:
  :meth:`~minsearch.sites.context.DiscoveryContext.modules` yields unclaimed modules and
  :meth:`~minsearch.sites.context.DiscoveryContext.claim` takes one.
- :meth:`SiteKind.current` by surgery, before any change is made: the module an option's
  handler starts from (the handler returns the edits; see :mod:`minsearch.catalog.edits`).
- :meth:`SiteKind.parts` by search spaces: every site a change at this site may touch, so
  that two genes never change the same site.
- :meth:`SiteKind.describe` by ``minsearch genes``: one short line about a site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from minsearch.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from torch import nn

    from minsearch.sites.context import DiscoveryContext
    from minsearch.sites.site import Discovery, Site


class SiteKind:
    """Base class of site kinds (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    detail: ClassVar[type] = object
    """The frozen dataclass held in ``Site.detail`` for sites of this kind."""
    order: ClassVar[int] = 100
    """Discovery order: module kinds that claim modules first, kinds built from other kinds'
    sites (``pair``) last."""

    def discover(self, ctx: DiscoveryContext) -> list[Site]:
        raise NotImplementedError

    def current(self, site: Site, model: nn.Module, discovery: Discovery) -> nn.Module | None:
        """The module an option at ``site`` replaces: the module itself for module sites,
        None for graph ops (kinds whose graph ops stand for a module override this)."""
        return None if site.graph else model.get_submodule(site.name)

    def parts(self, site: Site) -> tuple[str, ...]:
        return (site.name,)

    def describe(self, site: Site) -> str:
        return site.target


_KINDS: dict[str, SiteKind] = {}


def register_kind(kind: SiteKind | type[SiteKind]) -> SiteKind | type[SiteKind]:
    """Register a kind (an instance, or a class used as a decorator and instantiated)."""
    instance = kind() if isinstance(kind, type) else kind
    if not instance.name:
        raise TypeError(f"{type(instance).__name__} must set `name`.")
    if instance.name in _KINDS and type(_KINDS[instance.name]) is not type(instance):
        raise ValueError(f"Site kind {instance.name!r} is registered twice "
                         f"({type(_KINDS[instance.name]).__name__} and "
                         f"{type(instance).__name__}).")
    _KINDS[instance.name] = instance
    return kind


def _load_builtin() -> None:
    # The built-in kinds register themselves on import; loaded lazily so that
    # `import minsearch` stays light.
    import minsearch.sites.kinds  # noqa: F401


def all_kinds() -> list[SiteKind]:
    """Every registered kind, in discovery order."""
    _load_builtin()
    return sorted(_KINDS.values(), key=lambda k: k.order)


def kind_names() -> tuple[str, ...]:
    return tuple(k.name for k in all_kinds())


def get_kind(name: str) -> SiteKind:
    _load_builtin()
    kind = _KINDS.get(name)
    if kind is None:
        hint = did_you_mean(name, _KINDS)
        raise UserError(f"{name!r} is not a site kind; known: {', '.join(kind_names())}.{hint} "
                        f"A kind from a plugin module needs that module in the space's "
                        f"`plugins:`.")
    return kind


def describe(site: Site) -> str:
    return get_kind(site.kind).describe(site)


def parts(site: Site) -> tuple[str, ...]:
    return get_kind(site.kind).parts(site)

