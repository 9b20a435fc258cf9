"""minsearch: automated architecture-minimization search.

``import minsearch`` is light: the public names below load their modules on first use, and
nothing here imports torch, ray or mlflow until it is needed.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "find_sites": "minsearch.sites",
    "Site": "minsearch.sites",
    "Discovery": "minsearch.sites",
    "apply_": "minsearch.surgery",
    "Genome": "minsearch.surgery",
    "build_model": "minsearch.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'minsearch' has no attribute {name!r}")
