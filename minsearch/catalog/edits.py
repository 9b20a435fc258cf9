"""Edits: what an option handler returns — the changes it makes to a model, as data.

Every handler has one shape, ``handler(config, site, current) -> list[Edit]``, where
``current`` is the module the site stands for (:meth:`SiteKind.current`). Surgery
(:func:`minsearch.apply_`) carries the edits out; a handler never changes the model itself.
Each edit names the site it touches (``target``): two genes whose edits touch the same site
collide, and surgery refuses the genome before anything changes.

- :class:`Swap`: the module at ``target`` (a module path) is replaced.
- :class:`ReplaceOp`: the graph op of site ``target`` becomes a call of ``module`` with the
  op's operands, in the site's operand order (a residual's ``(shortcut, branch)``).
- :class:`Rewire`: the graph op's output becomes one of its operands (by role, e.g.
  ``"shortcut"``); what only fed the other operands becomes dead code and leaves the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class _PutModule:
    target: str
    module: nn.Module

    def describe(self) -> str:
        return type(self.module).__name__


class Swap(_PutModule):
    """The module at ``target`` is replaced by ``module``."""


class ReplaceOp(_PutModule):
    """The graph op of site ``target`` becomes a call of ``module``."""


@dataclass(frozen=True)
class Rewire:
    target: str
    role: str

    def describe(self) -> str:
        return self.role


Edit = Swap | ReplaceOp | Rewire


def replace(site: Any, module: nn.Module) -> Edit:
    """Put ``module`` in the place of ``site``: a swap for a module site, a replaced op for a
    graph site (a functional call lifted into a module)."""
    return ReplaceOp(site.name, module) if site.graph else Swap(site.name, module)
