"""The option registry: a (kind, name) string key selects a config class and its handler.

A handler is *how* an option is applied. It is called as ``handler(config, site, old)``:

- for module sites, ``old`` is the module at ``site.name`` and the handler returns the module
  that replaces it (or ``old`` itself to keep it);
- for residual sites, ``old`` is None and the handler returns either a module called as
  ``module(shortcut, branch)`` in place of the add, or one of :data:`SHORTCUT` / :data:`BRANCH`,
  which rewire the add's output to that operand (the other one becomes dead code and is
  removed from the graph);
- for graph activation/norm sites, ``old`` is an equivalent module lifted from the call
  (see :mod:`minsearch.surgery.lift`), and the handler returns its replacement;
- for pair sites, ``old`` is the pair's norm module and the handler returns
  ``(norm_replacement, add_replacement)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minsearch.catalog.config import OptionConfig

SHORTCUT = "shortcut"
BRANCH = "branch"

Handler = Callable[[OptionConfig, Any, Any], Any]


@dataclass(frozen=True)
class Option:
    kind: str
    name: str
    config_cls: type[OptionConfig]
    handler: Handler
    identity: bool
    """True when the default config reproduces the original output exactly (tested)."""
    doc: str
    applies: Callable[[Any], bool] | None = None
    """Whether the option can be used at a given site (None: at every site of its kind)."""

    def applies_to(self, site: Any) -> bool:
        return self.applies is None or bool(self.applies(site))

    def make_config(self, **fields: Any) -> OptionConfig:
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"Option '{self.kind}/{self.name}' has no parameter "
                             f"{', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(sorted(known)) or 'none'}.")
        return self.config_cls(**fields)


_OPTIONS: dict[tuple[str, str], Option] = {}


def register_option(config_cls: type[OptionConfig], *, identity: bool = False,
                    applies: Callable[[Any], bool] | None = None):
    """Decorator: register ``handler`` for ``config_cls`` under its ``kind``/``name``.

    ``identity`` declares that the default config reproduces the original output (the catalog
    tests hold it to that); ``applies(site)`` restricts the option to some sites of its kind.
    """

    def wrap(handler: Handler) -> Handler:
        key = (config_cls.kind, config_cls.name)
        if key in _OPTIONS:
            raise ValueError(f"Option '{key[0]}/{key[1]}' is registered twice.")
        doc = (handler.__doc__ or config_cls.__doc__ or "").strip().splitlines()
        _OPTIONS[key] = Option(config_cls.kind, config_cls.name, config_cls, handler, identity,
                               doc[0] if doc else "", applies)
        return handler

    return wrap


def _load_catalog() -> None:
    # The catalog modules register themselves on import; import them lazily so that
    # `import minsearch` stays light.
    from minsearch.catalog import (  # noqa: F401
        activation,
        attention,
        norm,
        pair,
        precision,
        residual,
    )


def kinds() -> tuple[str, ...]:
    _load_catalog()
    return tuple(dict.fromkeys(kind for kind, _ in _OPTIONS))


def options_for(kind: str) -> tuple[str, ...]:
    """Names of the options registered for ``kind``, ``keep`` first."""
    _load_catalog()
    names = [name for k, name in _OPTIONS if k == kind]
    return tuple(sorted(names, key=lambda n: (n != "keep", n)))


def options_at(site: Any) -> tuple[str, ...]:
    """Names of the options that apply at ``site``, ``keep`` first."""
    return tuple(n for n in options_for(site.kind) if get_option(site.kind, n).applies_to(site))


def all_options() -> list[Option]:
    _load_catalog()
    return list(_OPTIONS.values())


def get_option(kind: str, name: str) -> Option:
    _load_catalog()
    option = _OPTIONS.get((kind, name))
    if option is None:
        known_kinds = kinds()
        if kind not in known_kinds:
            raise ValueError(f"Unknown site kind {kind!r}; known: {', '.join(known_kinds)}.")
        raise ValueError(f"Unknown option {name!r} for {kind}; known: "
                         f"{', '.join(options_for(kind))}.")
    return option


def parse_option(kind: str, spec: str | dict[str, Any] | OptionConfig) -> OptionConfig:
    """Turn a user's option spec into a config.

    Accepted forms: ``"dyt"``; ``{"name": "dyt", "alpha_init": 1.0}``; a ``to_json`` mapping
    with a ``type`` tag; an :class:`OptionConfig` instance.
    """
    if isinstance(spec, OptionConfig):
        if spec.kind != kind:
            raise ValueError(f"Option {spec.type_tag!r} is for {spec.kind} sites, not {kind}.")
        return spec
    if isinstance(spec, str):
        return get_option(kind, spec).make_config()
    if isinstance(spec, dict):
        if "type" in spec:
            config = OptionConfig.from_json(spec)
            return parse_option(kind, config)
        if "name" in spec:
            fields = {k: v for k, v in spec.items() if k != "name"}
            return get_option(kind, str(spec["name"])).make_config(**fields)
    raise ValueError(f"An option must be a name such as 'keep' or a mapping with 'name' "
                     f"(and parameters), but got {spec!r}.")
