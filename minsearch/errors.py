"""The one exception type for the user's mistakes.

A :class:`UserError` says what is wrong with something the user gave (a file, a key, a value,
a model spec, a folder) and how to fix it, in one line. The CLI alone catches it, prints that
line and exits with status 2; every other exception is a bug of ours (or of a dependency) and
prints a traceback. It subclasses ``ValueError`` so that library callers catching
``ValueError`` for bad input keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the problem and the fix."""
