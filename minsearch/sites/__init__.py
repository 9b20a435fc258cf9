"""Site discovery: where the genes of a model are."""

from minsearch.sites.find import find_sites
from minsearch.sites.site import KINDS, Discovery, Site, Unavailable

__all__ = ["KINDS", "Discovery", "Site", "Unavailable", "find_sites"]
