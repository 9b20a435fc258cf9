"""The option registry: a (kind, name) string key selects a config class; the config's type
selects its handler.

A handler is *how* an option is applied. It has one shape for every kind:
``handler(config, site, current) -> list[Edit]``, where ``current`` is the module the site
stands for (the module at a module site, the module lifted from a functional norm, a pair's
norm; None for an add) and the edits (:mod:`minsearch.catalog.edits`) say what changes.
Handlers build new modules; they never change the model (surgery does, after checking that
no two genes touch the same site).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit
from minsearch.errors import UserError

Handler = Callable[[OptionConfig, Any, Any], list[Edit]]


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
    unavailable: Callable[[OptionConfig, Any], str | None] | None = None
    """Why a config of the option cannot run on a device (None: it runs everywhere)."""

    def applies_to(self, site: Any) -> bool:
        return self.applies is None or bool(self.applies(site))

    def unavailable_on(self, config: OptionConfig, device: Any) -> str | None:
        """Why ``config`` cannot run on ``device`` (a torch device), or None when it can."""
        return None if self.unavailable is None else self.unavailable(config, device)

    def make_config(self, **fields: Any) -> OptionConfig:
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise UserError(f"Option '{self.kind}/{self.name}' has no parameter "
                            f"{', '.join(map(repr, unknown))}; known: "
                            f"{', '.join(sorted(known)) or 'none'}.")
        return self.config_cls(**fields)


_OPTIONS: dict[tuple[str, str], Option] = {}
_BY_CONFIG: dict[type[OptionConfig], Option] = {}


def register_option(config_cls: type[OptionConfig], *, identity: bool = False,
                    applies: Callable[[Any], bool] | None = None,
                    unavailable_on: Callable[[OptionConfig, Any], str | None] | None = None):
    """Decorator: register ``handler`` for ``config_cls`` under its ``kind``/``name``.

    ``identity`` declares that the default config reproduces the original output (the catalog
    tests hold it to that); ``applies(site)`` restricts the option to some sites of its kind;
    ``unavailable_on(config, device)`` says why it cannot run on a device (checked before
    training).
    """

    def wrap(handler: Handler) -> Handler:
        key = (config_cls.kind, config_cls.name)
        if key in _OPTIONS:
            raise ValueError(f"Option '{key[0]}/{key[1]}' is registered twice.")
        doc = (handler.__doc__ or config_cls.__doc__ or "").strip().splitlines()
        option = Option(config_cls.kind, config_cls.name, config_cls, handler, identity,
                        doc[0] if doc else "", applies, unavailable_on)
        _OPTIONS[key] = _BY_CONFIG[config_cls] = option
        return handler

    return wrap


def _load_catalog() -> None:
    # The catalog modules register themselves on import; import them lazily so that
    # `import minsearch` stays light.
    from minsearch.catalog import (  # noqa: F401
        activation,
        actnorm,
        attention,
        conv,
        coupling,
        invertibility,
        linear,
        mixing,
        norm,
        pair,
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


def option_of(config: OptionConfig) -> Option:
    """The registered option of a config, looked up by the config's type."""
    _load_catalog()
    option = _BY_CONFIG.get(type(config))
    if option is None:
        raise TypeError(f"{type(config).__name__} is not a registered option config; register "
                        f"it with @register_option({type(config).__name__}).")
    return option


def edits_for(config: OptionConfig, site: Any, current: Any) -> list[Edit]:
    """The edits of ``config`` at ``site`` (its handler, found by the config's type)."""
    return list(option_of(config).handler(config, site, current))


def get_option(kind: str, name: str) -> Option:
    _load_catalog()
    option = _OPTIONS.get((kind, name))
    if option is None:
        known_kinds = kinds()
        if kind not in known_kinds:
            raise UserError(f"Unknown site kind {kind!r}; known: {', '.join(known_kinds)}.")
        raise UserError(f"Unknown option {name!r} for {kind}; known: "
                        f"{', '.join(options_for(kind))}.")
    return option


def parse_option(kind: str, spec: str | dict[str, Any] | OptionConfig) -> OptionConfig:
    """Turn a user's option spec into a config.

    Accepted forms: ``"dyt"``; ``{"name": "dyt", "alpha_init": 1.0}``; a ``to_json`` mapping
    with a ``type`` tag; an :class:`OptionConfig` instance.
    """
    if isinstance(spec, OptionConfig):
        if spec.kind != kind:
            raise UserError(f"Option {spec.type_tag!r} is for {spec.kind} sites, not {kind}.")
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
    raise UserError(f"An option must be a name such as 'keep' or a mapping with 'name' "
                    f"(and parameters), but got {spec!r}.")
