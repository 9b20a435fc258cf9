"""Site discovery: where the genes of a model are. Each kind of site is a plugin
(:mod:`minsearch.sites.kind`); the built-in kinds are in :mod:`minsearch.sites.kinds`."""

from minsearch.sites.find import find_sites
from minsearch.sites.kind import SiteKind, get_kind, kind_names, register_kind
from minsearch.sites.site import Discovery, OpRef, Site, Unavailable

__all__ = ["Discovery", "OpRef", "Site", "SiteKind", "Unavailable", "find_sites", "get_kind",
           "kind_names", "register_kind"]
