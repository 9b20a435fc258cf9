"""Replacement modules: each one small, with a ``from_module(old, ...)`` constructor."""
