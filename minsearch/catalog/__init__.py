"""The gene catalog: options per site kind, each a config dataclass plus a registered handler."""

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.registry import (
    BRANCH,
    SHORTCUT,
    Option,
    all_options,
    get_option,
    options_for,
    parse_option,
    register_option,
)

__all__ = [
    "BRANCH",
    "SHORTCUT",
    "Option",
    "OptionConfig",
    "all_options",
    "get_option",
    "options_for",
    "parse_option",
    "register_option",
]
