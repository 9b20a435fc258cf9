"""The gene catalog: options per site kind, each a config dataclass plus a registered handler
that returns the edits it makes (:mod:`minsearch.catalog.edits`)."""

from minsearch.catalog.config import OptionConfig
from minsearch.catalog.edits import Edit, ReplaceOp, Rewire, Swap, replace
from minsearch.catalog.registry import (
    Option,
    all_options,
    edits_for,
    get_option,
    option_of,
    options_for,
    parse_option,
    register_option,
)

__all__ = [
    "Edit",
    "Option",
    "OptionConfig",
    "ReplaceOp",
    "Rewire",
    "Swap",
    "all_options",
    "edits_for",
    "get_option",
    "option_of",
    "options_for",
    "parse_option",
    "register_option",
    "replace",
]
