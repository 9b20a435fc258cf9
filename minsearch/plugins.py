"""Plugins: importable modules named in a space file under ``plugins:``.

A plugin is any module on the Python path; importing it is what it does (it registers
something: a site kind, an option, an objective, a trial hook). :func:`load_plugins` imports
each named module once per process. The search driver loads them before it resolves genes,
and every trial worker before it builds its candidate, so a plugin sees the same registries in
both places. A module that cannot be imported is a :class:`~minsearch.errors.UserError` naming
it. This module knows nothing else of minsearch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from types import ModuleType

from minsearch.errors import UserError


def load_plugins(names: Iterable[str]) -> list[ModuleType]:
    """Import every module in ``names`` (in order; already imported ones are not re-run)."""
    modules = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"A plugin is a module name such as 'mypackage.plugin', but got "
                            f"{name!r}.")
        try:
            modules.append(importlib.import_module(name))
        except ImportError as err:
            raise UserError(f"Plugin {name!r} cannot be imported ({err}); it must be a module "
                            f"on the Python path (sys.path starts with {sys.path[0]!r}), e.g. "
                            f"'mypackage.plugin'.") from None
    return modules
