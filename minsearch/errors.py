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


def did_you_mean(name: object, known: object) -> str:
    """`` Did you mean 'norm'?`` for the closest of ``known`` names, or ""."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def user_code_error(what: str, step: str, err: BaseException) -> UserError:
    """The one line for the user's own code (a model factory, a dataset function) raising:
    which spec failed, at which step, and the error. Raise it ``from err``: the CLI's
    ``--debug`` then prints the user's traceback too, e.g. ``Model factory 'pkg.mod:make'
    failed while building the model: ValueError: depth must be even; run with --debug for
    its traceback.``"""
    return UserError(f"{what} failed {step}: {one_line(err)}; run with --debug for its "
                     f"traceback.")


def one_line(err: BaseException) -> str:
    """``Type: message`` of another library's (or the user's) exception, on one line (torch's
    messages often span several)."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"
