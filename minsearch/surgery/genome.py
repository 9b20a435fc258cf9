"""A genome: which option each site gets, written compactly with selectors.

Selectors (the keys):

- an exact site name: ``"blocks.0.norm1"``, ``"layer1.0.residual_0"``;
- ``"KIND:PATTERN"``: every site of KIND whose name fully matches the regex PATTERN;
  ``"norm:*"`` selects all norms, ``"residual:blocks\\.[0-5]\\..*"`` the residuals of six
  blocks, ``"norm:stages\\.1\\..*"`` the norms of one stage.

Values are option specs: ``"dyt"``, ``{"name": "dyt", "alpha_init": 1.0}`` or a config's JSON.
Pattern rules apply in order (a later rule overrides an earlier one); exact names win over
patterns. Every option must apply at every site it selects: mistakes are caught before
anything is trained.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.registry import get_option, parse_option
from minsearch.errors import UserError
from minsearch.sites.kind import kind_names
from minsearch.sites.site import Discovery

OptionSpec = str | dict[str, Any] | OptionConfig


@dataclass
class Genome:
    rules: dict[str, OptionSpec] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, OptionSpec]) -> Genome:
        if isinstance(data, Genome):
            return data
        if not isinstance(data, Mapping):
            raise UserError(f"A genome must be a mapping of selectors to options, but got "
                            f"{type(data).__name__}.")
        return cls(dict(data))

    def to_json(self) -> dict[str, Any]:
        return {k: v.to_json() if isinstance(v, OptionConfig) else v
                for k, v in self.rules.items()}

    def resolve(self, discovery: Discovery) -> dict[str, OptionConfig]:
        """The option of every selected site: ``{site name: config}`` (unselected sites are
        kept and not listed)."""
        by_name = {s.name: s for s in discovery.sites}
        resolved: dict[str, OptionConfig] = {}
        exact = []
        kinds = kind_names()
        for selector, spec in self.rules.items():
            kind, sep, pattern = selector.partition(":")
            if sep and kind in kinds:
                matched = _match(discovery, kind, pattern, selector)
                config = parse_option(kind, spec)
                for site in matched:
                    resolved[site.name] = _checked(config, site)
            else:
                exact.append((selector, spec))
        for name, spec in exact:
            site = by_name.get(name)
            if site is None:
                raise UserError(f"Genome selector {name!r} is neither a site name nor "
                                f"'KIND:PATTERN' with KIND in {', '.join(kinds)}; "
                                f"`minsearch genes MODEL` lists the site names.")
            resolved[name] = _checked(parse_option(site.kind, spec), site)
        return resolved


def _match(discovery: Discovery, kind: str, pattern: str, selector: str) -> list:
    regex = ".*" if pattern in ("*", "") else pattern
    try:
        compiled = re.compile(regex)
    except re.error as err:
        raise UserError(f"Genome selector {selector!r} has an invalid regex ({err}).") from None
    matched = [s for s in discovery.of_kind(kind) if compiled.fullmatch(s.name)]
    if not matched and regex != ".*":  # "all norms" of a norm-free model is just empty
        names = [s.name for s in discovery.of_kind(kind)][:4]
        raise UserError(f"Genome selector {selector!r} matches no {kind} site; {kind} sites "
                        f"look like: {', '.join(names) or 'none in this model'}.")
    return matched


def _checked(config: OptionConfig, site) -> OptionConfig:
    if config.name not in site.options:
        option = get_option(site.kind, config.name)
        why = "" if option.applies_to(site) else " (it does not apply to this site)"
        raise UserError(f"Option {config.name!r} cannot be used at {site.name}{why}; options "
                        f"there: {', '.join(site.options)}.")
    return config
