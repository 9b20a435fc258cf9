"""``keep``: the option every site has. It leaves the site exactly as it is."""

from __future__ import annotations

from dataclasses import dataclass

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.registry import register_option


def keep_option(kind: str) -> type[OptionConfig]:
    """Create and register the ``keep`` config class for ``kind``."""
    cls = dataclass(frozen=True)(
        type(f"Keep{kind.capitalize()}", (OptionConfig,), {"kind": kind, "name": "keep",
                                                           "__doc__": "Leave the site as it is."})
    )

    @register_option(cls, identity=True)
    def keep(config, site, current):
        return []

    return cls
